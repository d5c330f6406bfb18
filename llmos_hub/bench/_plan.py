"""Turning what a user asked for (models, tasks, backends, settings) into validated run specs.

Everything that can be checked without loading a model is checked here, before any model loads: names
exist (with "did you mean"), task data parses (file, line and field on error), each model has the
capability each task needs (read from its config, not its weights), the backend accepts the device and
dtype. A bench that would fail on its fifth run for a typo fails at once instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._backend import Backend
from .._model import Capability, ModelFamily, ModelInfo
from .._result import config_hash
from .._task import Formulation, Task, TaskData
from .._guard import plugin_call
from ..errors import LlmosHubError, UnknownNameError, UsageError
from . import _checks
from ._data import PlannedData, load_planned
from ._spec import RunSpec, parse_model_ref

DEFAULT_SUITE = "default"
#: ``--batch-size auto``: per request type, a size that keeps small models busy on CPU.
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


@dataclass(frozen=True)
class _Resolved:
    argument: str
    task: Task
    #: The model a plugin's suite declares for this task (used when the user names no model).
    default_model: str | None


def _looks_like_file(name: str) -> bool:
    return name.endswith((".yaml", ".yml", ".toml")) or "/" in name or Path(name).is_file()


def _suite_entries(host: Any, name: str) -> list[tuple[str, str | None]]:
    """``(task, model or None)`` of a suite, whatever form its plugin registered it in."""
    value = host.get("suites", name)
    items = value.get("tasks", []) if isinstance(value, Mapping) else value
    return [(i, None) if isinstance(i, str) else (i["task"], i.get("model")) for i in items]


def declared_models(host: Any) -> dict[str, str]:
    """task name → the model a suite entry pairs it with (the first suite that names one)."""
    out: dict[str, str] = {}
    for suite in host.registry.names("suites"):
        try:
            entries = _suite_entries(host, suite)
        except LlmosHubError:
            continue
        for task, model in entries:
            if model and task not in out:
                out[task] = model
    return out


def _no_default_suite(host: Any) -> str:
    """Why ``bench`` without ``--task`` has nothing to run: the plugin that ships the default suite is
    disabled (say so, and how to undo it) or not installed."""
    disabled = [p for p in getattr(host, "plugins", ()) if p.status == "disabled" and p.distribution == "llmos-hub-nano"]
    if disabled:
        return (f"no default suite: the {disabled[0].distribution} plugin that provides it is disabled "
                "(--disable-plugin or LLMOS_HUB_DISABLE_PLUGINS); enable it or name a task with --task")
    return "no default suite is installed (the llmos-hub-nano plugin provides it); name a task with --task"


def _without_family(host: Any, text: str) -> str:
    """The error for a ``--model`` written without its family, with the likely fix: the shipped model of
    that name (``translation-sample`` -> ``nano:translation-sample``), else ``hf:`` for a folder or a
    Hub id, else an example."""
    shipped = [ref for name in host.registry.names("models") for ref in _checks.shipped_models(host, name)
               if ref.split(":", 1)[1] == text]
    if shipped:
        hint = f"did you mean {' or '.join(shipped)}?"
    elif "hf" in host.registry.names("models") and ("/" in text or Path(text).is_dir()):
        hint = f"did you mean hf:{text}?"
    else:
        hint = "for example nano:lm-sample (`llmos-hub list models` lists the shipped ones)"
    return f"model {text!r} must be written family:ref; {hint}"


def resolve_tasks(host: Any, names: Sequence[str]) -> list[_Resolved]:
    """Task names, suite names and task files → tasks with their declared default model, in order."""
    from ..tasks import task_from_file
    from ..tasks._hub_source import is_hub_ref

    if not names and DEFAULT_SUITE not in host.registry.names("suites"):
        raise UsageError(_no_default_suite(host))
    wanted = list(names) or [DEFAULT_SUITE]
    defaults = declared_models(host)
    result: list[_Resolved] = []
    seen: set[str] = set()

    def add(arg: str, task: Task, model: str | None) -> None:
        if task.name not in seen:
            seen.add(task.name)
            result.append(_Resolved(arg, task, model or defaults.get(task.name)))
        else:
            _checks.same_task_twice(task.name, next(r.argument for r in result if r.task.name == task.name), arg)

    for name in wanted:
        if name in host.registry.names("suites"):
            for task_name, model in _suite_entries(host, name):
                add(task_name, _hub_task(task_name) if is_hub_ref(task_name) else host.get("tasks", task_name),
                    model)
        elif name in host.registry.names("tasks"):
            add(name, host.get("tasks", name), None)
        elif is_hub_ref(name):  # hf:NS/NAME[@REV], a task repo on the Hub
            add(name, _hub_task(name), None)
        elif not _looks_like_file(name):
            known = [*host.registry.names("tasks"), *host.registry.names("suites")]
            raise UnknownNameError("task or suite", name, known)
        else:
            path = Path(name)
            if path.exists() and not path.is_file():  # a folder, a FIFO, a device: never opened
                kind = "a folder" if path.is_dir() else "not a regular file"
                raise UsageError(f"task file {name} is {kind}; name the task's YAML file")
            if not path.is_file():
                raise UsageError(f"task file {name} does not exist")
            add(str(path), task_from_file(path), None)
    return result


#: Hub failures reading a ``hf:`` task that the user fixes (endpoint, name, token): usage errors, exit 2.
_USER_HUB_FAILURES = ("unreachable", "missing", "auth", "forbidden")


def _hub_task(name: str) -> Task:
    """The task of ``hf:NS/NAME[@REV]``, read from the Hub ``--endpoint``/``--token`` name (see ``hub_flags``).

    A Hub that cannot be reached, a repo that does not exist or a refused token is the user's to fix
    (``--endpoint``, the name, ``--token``), found before any model loads: exit status 2, like an unknown
    task name. A Hub that fails (5xx, timeout) stays a :class:`~llmos_hub.hub.HubError` (exit 1).
    """
    from ..hub import HubError
    from ..tasks._hub_source import load_hub_task

    try:
        task: Task = load_hub_task(name)
    except HubError as exc:
        if exc.kind in _USER_HUB_FAILURES:
            raise UsageError(str(exc)) from None
        raise
    return task


def default_backend(host: Any) -> str:
    """The installed backend with the highest ``priority`` (the reference one, ``pytorch``)."""
    names = host.registry.names("backends")
    if not names:
        raise UsageError("no backend is installed; install one, e.g. pip install llmos-hub-pytorch")
    ranked = []
    for name in names:
        try:
            ranked.append((-int(getattr(host.get("backends", name), "priority", 0)), name))
        except LlmosHubError:
            continue
    if not ranked:
        raise UsageError("no installed backend loads; see llmos-hub plugins")
    return min(ranked)[1]


def _inspect(host: Any, model: str) -> ModelInfo | None:
    family_name, ref, revision = parse_model_ref(model)
    family: ModelFamily = host.get("models", family_name)
    return plugin_call(host, "models", family_name, "inspect()", lambda: family.inspect(ref, revision=revision))


def choose_formulation(task: Task, info: ModelInfo | None, backend: Backend,
                       wanted: str | None = None) -> tuple[Formulation | None, str]:
    """The first formulation of ``task`` that ``backend`` can answer for the model, or why none can.

    ``info is None`` (a family that cannot tell before loading) accepts the first formulation.
    """
    forms = [task.formulation(wanted)] if wanted else list(task.formulations())
    if info is None:
        return forms[0], ""
    answers = backend.request_types(info.capabilities)
    have = ", ".join(sorted(map(str, info.capabilities))) or "none"
    reasons = []
    for form in forms:
        if form.capability is not None and form.capability not in info.capabilities:
            reasons.append(f"{form.name} needs a {form.capability} model (it is {have})")
            continue
        missing = sorted(map(str, form.request_types - answers))
        if missing:
            reasons.append(f"{form.name} needs {', '.join(missing)} requests, which {backend.name} does not "
                           f"answer for a {have} model")
            continue
        task_labels = getattr(task, "labels", None)
        if form.needs_labels and (info.labels is None or task_labels is None
                                  or sorted(info.labels) != sorted(task_labels)):
            reasons.append(f"{form.name} needs a classifier with the task's labels")
            continue
        return form, ""
    return None, "; ".join(reasons)


def _batch_size(batch_size: int | str, form: Formulation) -> int:
    if batch_size == "auto":
        return min(AUTO_BATCH[str(t)] for t in form.request_types)
    size = int(batch_size)
    if size < 1:
        raise UsageError(f"--batch-size must be a positive integer or 'auto', not {batch_size}")
    return size


def task_sha256(task: Task) -> str:
    """sha256 of the task's full resolved description: what makes a changed prompt a new configuration."""
    return config_hash(dict(task.describe()))


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
    formulation: str | None = None,
    num_fewshot: int | None = None,
    split: str | None = None,
    executor: str = "process",
) -> Plan:
    """Validate everything a bench needs and return one spec per compatible (model, task, backend).

    ``executor="ray"``: the runs go to a cluster, so a ``--device cuda`` run is not refused for want of
    a GPU on this machine (the cluster's resources are checked when the runs are placed)."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, not {limit}")
    if num_fewshot is not None and num_fewshot < 0:
        raise UsageError(f"--num-fewshot must be 0 or more, not {num_fewshot}")
    _checks.check_seed(seed)
    resolved = resolve_tasks(host, tasks)
    # Tasks no formulation of which takes demonstrations: their runs are refused, like a backend's, and
    # the other tasks of the bench still run.
    no_fewshot: dict[str, str] = {}
    if num_fewshot:
        for r in resolved:
            why = _fewshot_refusal(r.task, None, num_fewshot, formulation)
            if why:
                no_fewshot[r.task.name] = why
    if num_fewshot is not None:
        resolved = [r if r.task.name in no_fewshot else _Resolved(r.argument, _with_fewshot(r.task, num_fewshot), r.default_model)
                    for r in resolved]
    if formulation is not None:
        for r in resolved:
            r.task.formulation(formulation)  # an unknown formulation is a one-line error now
    backend_names = list(dict.fromkeys(backends or [default_backend(host)]))
    dtypes = [dtype] if isinstance(dtype, str) else list(dict.fromkeys(dtype)) or ["float32"]
    # (backend, dtype) pairs the backends accept; the others are refused with their reason.
    variants: list[tuple[str, Backend, str]] = []
    refused: list[str] = list(no_fewshot.values())
    options_for = _checks.backend_options({n: host.get("backends", n) for n in backend_names}, backend_options,
                                          host.registry.names("backends"))
    for name in backend_names:
        backend: Backend = host.get("backends", name)
        for dt in dtypes:
            try:
                with _checks.devices_elsewhere() if executor == "ray" else contextlib.nullcontext():
                    backend.check(device, dt, options_for[name])
            except UsageError as exc:
                refused.append(str(exc))
            else:
                variants.append((name, backend, dt))
    if not variants:
        raise UsageError(refused[0])
    model_args = list(dict.fromkeys(models))
    for model in model_args:
        if ":" not in model:
            raise UsageError(_without_family(host, model))
    _checks.check_models([parse_model_ref(model) for model in model_args])
    for r in resolved:
        _checks.check_task_metrics(host, r.task)

    datasets: dict[str, PlannedData] = {}
    for r in resolved:  # parse and validate all data before any model loads
        def load(t: Task = r.task) -> PlannedData:
            return load_planned(t, split=split, limit=limit, seed=seed)

        datasets[r.task.name] = plugin_call(host, "tasks", r.task.name, "load()", load)

    infos: dict[str, ModelInfo | None] = {}
    runs: list[PlannedRun] = []
    for r in resolved:
        task = r.task
        if task.name in no_fewshot:
            continue
        candidates = model_args or ([r.default_model] if r.default_model else [])
        if not candidates:
            raise UsageError(f"task {task.name} has no default model; name one with --model")
        description_hash = task_sha256(task)
        for model in candidates:
            if model not in infos:
                infos[model] = _inspect(host, model)
            info = infos[model]
            family, ref, revision = parse_model_ref(model)
            planned = datasets[task.name]
            data = planned.data
            model_variants = variants
            if info is not None and info.backends and not backends:  # the model's own backend by default
                own: Backend = host.get("backends", info.backends[0])
                model_variants = [(info.backends[0], own, dt) for dt in dtypes if dt in own.dtypes]
            for backend_name, backend, dt in model_variants:
                reason = backend.check_model(info) if info is not None else None
                if reason:
                    refused.append(f"{model} cannot run on {backend_name}: {reason}")
                    continue
                form, why = choose_formulation(task, info, backend, formulation)
                if form is None:
                    refused.append(f"{model} cannot run {task.name} on {backend_name}: {why}")
                    continue
                why = _fewshot_refusal(task, form, num_fewshot, formulation) if num_fewshot else None
                if why:
                    refused.append(f"{model} on {backend_name}: {why}")
                    continue
                check_pool = getattr(task, "check_fewshot_pool", None)
                if form.fewshot and callable(check_pool):  # enough demonstrations, where they are used
                    check_pool(data.examples)
                if info is not None and _generation(task, form) and Capability.SEQ2SEQ not in info.capabilities:
                    try:  # a causal LM's prompt and generation share its window
                        _checks.check_generation_window(task, model, info.max_length)
                    except UsageError as exc:
                        refused.append(str(exc))
                        continue
                spec = RunSpec(
                    model=f"{family}:{ref}",
                    revision=revision,
                    task=task.name,
                    task_version=str(task.version),
                    dataset_fingerprint=data.fingerprint,
                    backend=backend_name,
                    device=device,
                    dtype=dt,
                    batch_size=_batch_size(batch_size, form),
                    limit=planned.limit,
                    seed=seed,
                    generation=_generation(task, form),
                    backend_options=dict(options_for.get(backend_name) or {}) or None,
                    weights_sha256=info.weights_sha256 if info is not None else None,
                    task_sha256=description_hash,
                    formulation=form.name,
                    split=planned.split,
                )
                runs.append(PlannedRun(spec, task, data, r.argument))
    if not runs:
        reason = refused[0] if refused else "nothing to run"
        raise UsageError(reason + ("" if len(refused) < 2 else f" (and {len(refused) - 1} more pairs refused)"))
    return Plan(runs, refused)


def _fewshot_refusal(task: Task, form: Formulation | None, num_fewshot: int, wanted: str | None) -> str | None:
    """Why ``--num-fewshot N`` (N > 0) is refused for a run, or ``None``: demonstrations are ignored there
    (``Formulation.fewshot`` false).

    Such a run scores exactly as without them, yet the flag changes the task's description and so the
    configuration hash: a second leaderboard row for the same numbers. ``form`` is the formulation the plan
    chose for one model (``None``: check the task as a whole, or the ``--formulation`` asked for). The
    plan refuses such runs and keeps the others; only a bench with nothing left exits 2.
    """
    forms = list(task.formulations())
    if form is None and wanted is not None:
        form = task.formulation(wanted)
    takers = [f.name for f in forms if f.fewshot]
    if form is not None and form.fewshot or form is None and takers:
        return None
    what = f"task {task.name} as {form.name}" if form is not None else f"task {task.name} ({', '.join(f.name for f in forms)})"
    fix = "drop --num-fewshot"
    if takers:
        fix += f", or pick a formulation that takes them: --formulation {' / '.join(takers)} (with a model that can run it)"
    return (f"--num-fewshot {num_fewshot}: {what} takes no demonstrations, so they would change nothing "
            f"but the configuration; {fix}")


def _with_fewshot(task: Task, num_fewshot: int) -> Task:
    with_fewshot = getattr(task, "with_fewshot", None)
    if with_fewshot is None:
        raise UsageError(f"task {task.name} does not take --num-fewshot")
    result: Task = with_fewshot(num_fewshot)
    return result


def _generation(task: Task, form: Formulation) -> dict[str, Any] | None:
    config = getattr(task, "generation", None)
    if config is None or "generate" not in {str(t) for t in form.request_types}:
        return None
    return dict(config.to_dict())
