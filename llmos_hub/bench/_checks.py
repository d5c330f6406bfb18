"""Checks of a bench request that need no model: all of them run before anything loads (exit status 2).

What a user can get wrong on the command line or in a task file is found here, while planning, instead
of surfacing as failed runs after minutes of loading:

* ``--device`` (``cuda`` without CUDA, a device a backend does not run on) and ``--dtype`` (``float16``
  on the CPU), through :meth:`Backend.check <llmos_hub.Backend.check>`;
* ``--backend-option``: scoped (``onnxruntime.threads=2``) or not (``threads=2``: given to every
  backend in the bench that knows it; known to none is an error), each value checked against the
  backend's declared :attr:`~llmos_hub.Backend.option_schema` (a JSON Schema per option), so an option
  meant for one backend never breaks another in a comparison;
* a negative ``--seed``; ``@revision`` on a local folder;
* metric names and metric options in a task file; two different tasks with one name;
* ``generation.max_new_tokens`` that leaves a causal model's window no room for the prompt (once the plan
  knows the window: :func:`check_generation_window`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from ..errors import DataError, UnknownNameError, UsageError

__all__ = ["backend_options", "check_backend", "check_generation_window", "check_models", "check_seed",
           "check_task_metrics", "same_task_twice", "shipped_models"]

_DEVICE = re.compile(r"^(cpu|auto|cuda)(:(\d+))?$")


def check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, not {seed!r}")


def _cuda_devices() -> int:
    """How many CUDA devices torch sees (0 without torch or CUDA)."""
    try:
        import torch
    except ImportError:
        return 0
    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # a broken driver is no device
        return 0


def device_kind(device: str) -> tuple[str, int | None]:
    """``("cuda", 1)`` for ``cuda:1``; a one-line :class:`UsageError` for anything but cpu/auto/cuda[:N]."""
    match = _DEVICE.match((device or "").strip().lower())
    if match is None or (match.group(1) != "cuda" and match.group(2)):
        raise UsageError(f"--device {device!r} is not a device; use cpu, cuda, cuda:N or auto")
    return match.group(1), int(match.group(3)) if match.group(3) else None


#: Set while a plan is made for runs placed elsewhere (``--executor ray``): the driver's own GPUs say nothing
#: about the workers', so CUDA's presence is left to the cluster's resource check (``_ray.check_resources``).
_DEVICES_ELSEWHERE: ContextVar[bool] = ContextVar("llmos_hub_devices_elsewhere", default=False)


@contextlib.contextmanager
def devices_elsewhere() -> Iterator[None]:
    """While active, :func:`check_backend` does not ask this machine for the CUDA devices a run names."""
    token = _DEVICES_ELSEWHERE.set(True)
    try:
        yield
    finally:
        _DEVICES_ELSEWHERE.reset(token)


def check_backend(backend: Any, device: str, dtype: str, options: Mapping[str, Any]) -> None:
    """The default :meth:`Backend.check`: device, dtype and options against the backend's class attributes."""
    name = backend.name or type(backend).__name__
    kind, index = device_kind(device)
    if kind not in backend.devices:
        raise UsageError(f"backend {name} does not run on {device}; it runs on {', '.join(backend.devices)}")
    if kind == "cuda" and _DEVICES_ELSEWHERE.get():
        cuda = index + 1 if index is not None else 1  # the workers' GPUs: checked against the cluster
    else:
        cuda = _cuda_devices() if kind in ("cuda", "auto") else 0
    if kind == "cuda" and cuda == 0:
        raise UsageError(f"--device {device}: no CUDA device is available here; use --device cpu (or auto)")
    if kind == "cuda" and index is not None and index >= cuda:
        raise UsageError(f"--device {device}: this machine has {cuda} CUDA device(s), numbered from 0")
    if dtype not in backend.dtypes:
        raise UsageError(f"backend {name} does not support dtype {dtype}; it supports {', '.join(backend.dtypes)}")
    # auto resolves where the run goes: on a cluster that is a worker's devices, not this machine's
    on_cpu = kind == "cpu" or (kind == "auto" and cuda == 0 and not _DEVICES_ELSEWHERE.get())
    if on_cpu and dtype in getattr(backend, "cuda_only_dtypes", ()):
        raise UsageError(f"backend {name} runs dtype {dtype} on CUDA only; on the CPU use "
                         f"{' or '.join(d for d in backend.dtypes if d not in backend.cuda_only_dtypes)}")
    check_options(backend, options)


def check_options(backend: Any, options: Mapping[str, Any]) -> None:
    """Each option known to the backend's schema and valid against it (no schema: anything goes)."""
    schema = getattr(backend, "option_schema", None)
    if schema is None:
        return
    unknown = sorted(set(options) - set(schema))
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r} for backend {backend.name}; "
                         f"known: {', '.join(sorted(schema)) or 'none'}")
    import jsonschema

    for key, value in options.items():
        try:
            jsonschema.validate(value, schema[key])
        except jsonschema.ValidationError as exc:
            raise UsageError(f"--backend-option {backend.name}.{key}={value!r}: {exc.message}") from None


def backend_options(backends: Mapping[str, Any], options: Mapping[str, Any] | None,
                    registered: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """``--backend-option`` pairs split per backend name.

    ``NAME.KEY=V`` goes to backend NAME only (an installed backend that is not in this bench is an
    error); ``KEY=V`` goes to every backend of the bench whose schema knows KEY (or that declares no
    schema); a key that no backend of the bench knows is an error.
    """
    names = dict(backends)
    per: dict[str, dict[str, Any]] = {name: {} for name in names}
    for key, value in (options or {}).items():
        scope, dot, rest = key.partition(".")
        if dot and scope in names:
            per[scope][rest] = value
            continue
        if dot and scope in registered:
            raise UsageError(f"--backend-option {key}: backend {scope} is not in this bench "
                             f"(backends: {', '.join(names)}); drop the option or add --backend {scope}")
        takers = [n for n, b in names.items() if getattr(b, "option_schema", None) is None or key in b.option_schema]
        if not takers:
            known = sorted({k for b in names.values() for k in (b.option_schema or {})})
            raise UsageError(f"--backend-option {key}: no backend in this bench knows it; known: "
                             f"{', '.join(known) or 'none'}")
        for name in takers:
            per[name][key] = value
    return per


def _looks_local(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or "\\" in ref or Path(ref).expanduser().exists()


def check_models(models: Sequence[tuple[str, str, str | None]]) -> None:
    """``@revision`` only on Hub references: a local folder has no revisions."""
    for family, ref, revision in models:
        if revision is not None and _looks_local(ref):
            raise UsageError(f"{family}:{ref}@{revision}: a local folder has no revisions; drop '@{revision}'")


def check_task_metrics(host: Any, task: Any) -> None:
    """A declared task's metric names exist and their options are ones the metric knows."""
    spec: Any = getattr(task, "spec", None)
    metrics = getattr(spec, "metrics", None)
    if spec is None or not isinstance(metrics, Mapping):
        return
    for name, options in metrics.items():
        try:
            metric = host.get("metrics", name)
        except UnknownNameError as exc:
            raise DataError(f"{spec.file}: field 'metrics': {exc}") from None
        known = getattr(metric, "options", None)
        if not isinstance(known, Mapping):
            continue
        for key, value in dict(options).items():
            if key not in known:
                raise DataError(f"{spec.file}: field 'metrics.{name}': unknown option {key!r}; "
                                f"known: {', '.join(sorted(known)) or 'none'}")
            default = known[key]
            if default is not None and value is not None and type(value) is not type(default) and not (
                    isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)):
                raise DataError(f"{spec.file}: field 'metrics.{name}.{key}': must be {type(default).__name__}, "
                                f"not {value!r}")
        check = getattr(metric, "check_options", None)
        if callable(check):
            try:
                check(dict(options))
            except UsageError as exc:
                raise DataError(f"{spec.file}: field 'metrics.{name}': {exc}") from None


def check_generation_window(task: Any, model: str, max_length: int | None) -> None:
    """A causal LM generates inside its window of ``max_length`` tokens, prompt included: ``max_new_tokens``
    at or above it leaves no token for the prompt, so every example would be generated from nothing (the
    engine keeps the prompt's last ``max_length - max_new_tokens`` tokens; lm-evaluation-harness refuses
    this too). ``max_length`` ``None`` (not known before loading) checks nothing."""
    config = getattr(task, "generation", None)
    wanted = getattr(config, "max_new_tokens", None)
    if not max_length or not isinstance(wanted, int) or wanted < max_length:
        return
    where = getattr(getattr(task, "spec", None), "file", None)
    raise UsageError(f"task {task.name}: generation.max_new_tokens {wanted} leaves no room for the prompt in "
                     f"{model}'s window of {max_length} tokens; set it below {max_length} (e.g. "
                     f"{min(256, max_length // 4) or 1}){f' in {where}' if where else ''}")


def same_task_twice(name: str, first: str, again: str) -> None:
    """Two different tasks (a task file and a registered task, two files) with one name: an error.

    Asking for the same task twice (a name and a suite holding it, one file twice) is not.
    """
    def identity(arg: str) -> str:
        path = Path(arg)
        return str(path.resolve()) if path.is_file() else arg

    if identity(first) != identity(again):
        raise UsageError(f"two tasks are named {name!r} ({first} and {again}); records are kept per task name, "
                         "so rename one (field 'name' of the task file)")


def shipped_models(host: Any, family_name: str) -> list[str]:
    """``family:ref`` for every model the family can load with no download (shipped checkpoints); none for
    a family that fails to answer (``llmos-hub plugins`` shows why; a listing or a hint must not fail on it)."""
    try:
        family = host.get("models", family_name)
        return [f"{family_name}:{ref}" for ref in family.available()]
    except Exception:
        return []
