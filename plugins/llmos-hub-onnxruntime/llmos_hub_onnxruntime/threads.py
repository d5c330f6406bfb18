"""How many intra-op threads an ONNX Runtime session gets, and whether its idle workers spin.

Two facts, measured on our 2-core machines with ``benchmarks/threads.py`` (one competing busy process
for "contended"), decide it:

- ONNX Runtime's workers *spin* while they wait for work by default. On a machine shared with other
  work a spinning worker holds a core the others need, and at GPT-2-small and T5-small sizes 2
  threads collapse under contention (0.51-0.81x of 1 thread). With spinning off
  (``session.intra_op.allow_spinning = 0``) the workers sleep, and 2 threads hold up (1.00-1.14x
  contended, 1.38-1.78x quiet).
- Whether a second thread pays depends on how much work each operator has. Sleeping workers must be
  woken at every parallel operator: on the bundled nano models (well under a million parameters)
  that costs more than it gains (0.58-0.74x contended), and spinning is no better there in every
  case (greedy 0.99x, classification 0.48x contended), while from about ten million parameters up the
  operators are big enough (a GPT-2 geometry of 11.8 M: 1.19-1.30x quiet, 0.92-0.96x contended).

So on the CPU, with no ``threads`` option and no ``$LLMOS_HUB_THREADS`` or ``$OMP_NUM_THREADS`` (which
Ray sets to a task's CPUs), a model of at least :data:`ALL_CORES_MIN_PARAMETERS` parameters gets every
usable core, and a smaller one the SDK's default (``cores - 1``,
:func:`llmos_hub.decoding.default_threads`). For models of that size, whenever a session runs more
than one thread (by default or by the option) its workers sleep, unless ``session_config`` says
otherwise; smaller models keep ONNX Runtime's own setting, which was not measured worse for them.
The choice and its reason go into the runner's ``describe()`` (``threads``, ``threads_source``,
``session_config``). Figures: ``python benchmarks/threads.py --rounds 3 --real gpt2-small,t5-small``
(docs/results.md, "Sixth round"), 2-core machines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llmos_hub.decoding import default_threads, environment_threads, threads_source, usable_cores

__all__ = ["ALL_CORES_MIN_PARAMETERS", "SPINNING", "ThreadPlan", "plan_threads"]

#: ONNX Runtime's session config entry for whether idle intra-op workers spin.
SPINNING = "session.intra_op.allow_spinning"

#: From this many parameters a CPU session gets every usable core by default (see the module docstring).
ALL_CORES_MIN_PARAMETERS = 10_000_000


@dataclass(frozen=True)
class ThreadPlan:
    """Threads for the sessions, why that many, and the session config entries to apply."""

    threads: int
    source: str
    session_config: dict[str, str] = field(default_factory=dict)


def plan_threads(
    option: object,
    *,
    num_parameters: int,
    device_kind: str,
    session_config: Mapping[str, str] | None = None,
) -> ThreadPlan:
    """The thread plan for a model of ``num_parameters`` on ``device_kind`` (``"cpu"`` or ``"cuda"``).

    ``option`` is the backend's ``threads`` option (``None`` when not given); ``session_config`` the
    user's entries, which win over the spinning choice made here.
    """
    config = {str(k): str(v) for k, v in dict(session_config or {}).items()}
    if option:
        threads, source = int(option), "option"  # type: ignore[call-overload]
    elif environment_threads() is None and device_kind == "cpu" and num_parameters >= ALL_CORES_MIN_PARAMETERS \
            and usable_cores() > 1:
        threads, source = usable_cores(), f"default: every core for a model of >= {ALL_CORES_MIN_PARAMETERS:,} parameters"
    else:  # $LLMOS_HUB_THREADS or $OMP_NUM_THREADS (a scheduler's grant, e.g. Ray's), else cores - 1
        threads, source = default_threads(), threads_source()
    if threads > 1 and num_parameters >= ALL_CORES_MIN_PARAMETERS:
        config.setdefault(SPINNING, "0")
    return ThreadPlan(threads, source, config)
