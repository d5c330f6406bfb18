"""Turning what a user asked for (models, tasks, backends, settings) into validated run specs.

Everything that can be checked without loading a model is checked here, before any model loads: names
exist (with "did you mean"), task data parses (file, line and field on error), each model has the
capability each task needs (read from its config, not its weights), the backend accepts the device and
dtype. A bench that would fail on its fifth run for a typo fails at once instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._backend import Backend
from .._model import Capability, ModelFamily
from .._task import Task, TaskData
from ..errors import UnknownNameError, UsageError
from ._data import PlannedData, load_planned
from ._spec import RunSpec, parse_model_ref

DEFAULT_SUITE = "default"
DEFAULT_BACKEND = "pytorch"
#: ``--batch-size auto``: per request kind, a size that keeps small models busy on CPU.
AUTO_BATCH = {"generate": 8, "loglikelihood_rolling": 8, "classify": 32, "loglikelihood": 16}


@dataclass(frozen=True)
class PlannedRun:
    spec: RunSpec
    task: Task
    data: TaskData
    #: How the user named the task (a name, or a file path), for the reproducing command.
    task_argument: str


@dataclass(frozen=True)
class Plan:
    runs: list[PlannedRun]
    refused: list[str]


def _looks_like_file(name: str) -> bool:
    return name.endswith((".yaml", ".yml", ".toml")) or "/" in name or Path(name).is_file()


def resolve_tasks(host: Any, names: Sequence[str]) -> list[tuple[str, Task]]:
    """Task names, suite names and task files → ``(argument to reproduce, Task)``, in order, no repeats."""
    from ..tasks import task_from_file

    wanted = list(names) or [DEFAULT_SUITE]
    result: list[tuple[str, Task]] = []
    seen: set[str] = set()

    def add(arg: str, task: Task) -> None:
        if task.name not in seen:
            seen.add(task.name)
            result.append((arg, task))

    for name in wanted:
        if name in host.registry.names("suites"):
            for task_name in host.get("suites", name):
                add(task_name, host.get("tasks", task_name))
        elif name in host.registry.names("tasks"):
            add(name, host.get("tasks", name))
        elif not _looks_like_file(name):
            known = [*host.registry.names("tasks"), *host.registry.names("suites")]
            raise UnknownNameError("task or suite", name, known)
        else:
            path = Path(name)
            if not path.is_file():
                raise UsageError(f"task file {name} does not exist")
            add(str(path), task_from_file(path))
    return result


def default_model_for(task: Task) -> str:
    """The bundled model trained for a bundled task: ``nano:<task name>``."""
    return f"nano:{task.name}"


def _capabilities(host: Any, model: str) -> frozenset[Capability] | None:
    family_name, ref, _ = parse_model_ref(model)
    family: ModelFamily = host.get("models", family_name)
    return family.capabilities(ref)


def _batch_size(batch_size: int | str, task: Task) -> int:
    if batch_size == "auto":
        kind = {Capability.CLASSIFIER: "classify", Capability.CAUSAL_LM: "loglikelihood_rolling"}.get(
            Capability(task.capability), "generate"
        )
        return AUTO_BATCH[kind]
    size = int(batch_size)
    if size < 1:
        raise UsageError(f"--batch-size must be a positive integer or 'auto', not {batch_size}")
    return size


def make_plan(
    host: Any,
    *,
    models: Sequence[str] = (),
    tasks: Sequence[str] = (),
    backends: Sequence[str] = (),
    device: str = "cpu",
    dtype: str | Sequence[str] = "float32",
    batch_size: int | str = "auto",
    limit: int | None = None,
    seed: int = 0,
    backend_options: dict[str, Any] | None = None,
    split: str | None = None,
) -> Plan:
    """Validate everything a bench needs and return one spec per compatible (model, task, backend)."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, not {limit}")
    resolved = resolve_tasks(host, tasks)
    backend_names = list(dict.fromkeys(backends or [DEFAULT_BACKEND]))
    dtypes = [dtype] if isinstance(dtype, str) else list(dict.fromkeys(dtype)) or ["float32"]
    # (backend, dtype) pairs the backends accept; the others are refused with their reason.
    variants: list[tuple[str, str]] = []
    refused: list[str] = []
    for name in backend_names:
        backend: Backend = host.get("backends", name)
        for dt in dtypes:
            if dt in backend.dtypes:
                variants.append((name, dt))
            else:
                refused.append(f"backend {name} does not support dtype {dt}; it supports {', '.join(backend.dtypes)}")
    if not variants:
        raise UsageError(refused[0])
    model_args = list(dict.fromkeys(models))
    for model in model_args:
        parse_model_ref(model)

    datasets: dict[str, PlannedData] = {}
    for _, task in resolved:  # parse and validate all data before any model loads
        datasets[task.name] = load_planned(task, split=split, limit=limit, seed=seed)

    runs: list[PlannedRun] = []
    for arg, task in resolved:
        candidates = model_args or [default_model_for(task)]
        for model in candidates:
            caps = _capabilities(host, model)
            if caps is not None and Capability(task.capability) not in caps:
                have = ", ".join(sorted(str(c) for c in caps)) or "none"
                refused.append(f"{model} cannot run {task.name}: the task needs {task.capability}, the model has {have}")
                continue
            family, ref, revision = parse_model_ref(model)
            planned = datasets[task.name]
            data = planned.data
            for backend_name, dt in variants:
                spec = RunSpec(
                    model=f"{family}:{ref}",
                    revision=revision,
                    task=task.name,
                    task_version=str(task.version),
                    dataset_fingerprint=data.fingerprint,
                    backend=backend_name,
                    device=device,
                    dtype=dt,
                    batch_size=_batch_size(batch_size, task),
                    limit=planned.limit,
                    seed=seed,
                    generation=task.generation.to_dict() if task.generation else None,
                    backend_options=dict(backend_options) if backend_options else None,
                    split=planned.split,
                )
                runs.append(PlannedRun(spec, task, data, arg))
    if not runs:
        reason = refused[0] if refused else "nothing to run"
        raise UsageError(reason + ("" if len(refused) < 2 else f" (and {len(refused) - 1} more pairs refused)"))
    return Plan(runs, refused)
