"""Default CPU thread counts that hold up when the machine is shared.

PyTorch's OpenMP workers and ONNX Runtime's intra-op threads wait for each other at every parallel
region. When a thread count equals the number of cores and other processes hold some of them, a
worker descheduled by the OS stalls all the others at the next barrier, and throughput collapses
instead of degrading: measured on our 2-core machines under load, classification ran at 62.8
examples/s with 2 threads against 511 with 1 (issue 14). So the default leaves one core free:
``cores - 1`` threads (at least 1), where ``cores`` is what this process may run on
(``os.sched_getaffinity``). ``LLMOS_HUB_THREADS`` overrides it, then ``OMP_NUM_THREADS``: the
variable schedulers use to say how many CPUs a process was granted (Ray sets it to a task's or actor's
``num_cpus``, and pins nothing, so a run on a Ray worker of a 16-core node would otherwise take 15
threads while holding one CPU). A backend's ``threads`` option overrides all of them; runners record
the count they used, and where it came from, in ``describe()``.
"""

from __future__ import annotations

import os

__all__ = ["OMP_THREADS_ENV", "THREADS_ENV", "default_threads", "environment_threads", "threads_source", "usable_cores"]

#: Environment variable that sets the default thread count of every backend.
THREADS_ENV = "LLMOS_HUB_THREADS"

#: The OpenMP variable schedulers (Ray among them) set to the CPUs a process was granted.
OMP_THREADS_ENV = "OMP_NUM_THREADS"


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def environment_threads() -> tuple[int, str] | None:
    """``(count, variable)`` from ``$LLMOS_HUB_THREADS``, else ``$OMP_NUM_THREADS``; ``None`` when neither
    holds a positive integer.

    ``OMP_NUM_THREADS`` may list one count per nesting level (``"4,2"``): the first is the one that
    applies. It is capped at :func:`usable_cores`, since a container may inherit a value above its CPUs;
    ``LLMOS_HUB_THREADS`` is taken as given (it is this tool's own setting).
    """
    for name in (THREADS_ENV, OMP_THREADS_ENV):
        value = os.environ.get(name, "").strip()
        if name == OMP_THREADS_ENV:
            value = value.split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            count = int(value)
            return (min(count, usable_cores()) if name == OMP_THREADS_ENV else count), name
    return None


def default_threads() -> int:
    """The environment's count (:func:`environment_threads`), else ``usable_cores() - 1`` (at least 1)."""
    found = environment_threads()
    return found[0] if found else max(1, usable_cores() - 1)


def threads_source(option: object = None) -> str:
    """What a runner records as ``threads_source``: ``option``, ``$VARIABLE`` or ``default``."""
    if option:
        return "option"
    found = environment_threads()
    return f"${found[1]}" if found else "default"
