"""Executing one :class:`RunSpec`: load, prepare, answer every request in timed batches, score, record.

Each example makes a list of typed requests under the run's formulation; requests of one type are
batched across examples (:func:`answer_all`) and the answers are handed back per example, in request
order, to the task, which scores them once. Speed is measured here, the same way for every backend:
model load and backend preparation are timed apart; the first request of each type is run untimed
(warm-up, excluded); then every batch is timed on its own, giving examples/s, generated and prompt
tokens/s and per-batch latency percentiles.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._backend import Backend, Runner
from .._model import LoadedModel, ModelFamily
from .._requests import Request, request_length
from .._result import SCHEMA_ID, ResultRecord, config_hash
from .._task import Task, TaskData
from ..errors import LlmosHubError, UsageError
from ..stats._table import example_table
from ._environment import environment
from ._spec import RunSpec
from ._window import KEEP_END, cut_rule, fit_to_window, report_truncated, truncated_summary

Progress = Callable[[int, int], None]


@dataclass
class _Loaded:
    model: LoadedModel
    load_seconds: float


@dataclass
class Session:
    """Models and runners kept across runs of one bench invocation (a model loads once)."""

    host: Any
    _models: dict[str, _Loaded] = field(default_factory=dict)
    _runners: dict[tuple[str, str, str, str, str], tuple[Runner, float]] = field(default_factory=dict)

    def model(self, spec: RunSpec) -> _Loaded:
        key = f"{spec.model}@{spec.revision}"
        if key not in self._models:
            family: ModelFamily = self.host.get("models", spec.family)
            start = time.perf_counter()
            model = family.load(spec.ref, revision=spec.revision)
            self._models[key] = _Loaded(model, time.perf_counter() - start)
        return self._models[key]

    def runner(self, spec: RunSpec, model: LoadedModel) -> tuple[Runner, float]:
        key = (f"{spec.model}@{spec.revision}", spec.backend, spec.device, spec.dtype, json.dumps(spec.backend_options, sort_keys=True))
        if key not in self._runners:
            backend: Backend = self.host.get("backends", spec.backend)
            start = time.perf_counter()
            runner = backend.prepare(model, device=spec.device, dtype=spec.dtype, options=spec.backend_options or {})
            self._runners[key] = (runner, time.perf_counter() - start)
        return self._runners[key]

    def close(self) -> None:
        for runner, _ in self._runners.values():
            try:
                runner.close()
            except Exception:
                pass
        self._runners.clear()
        self._models.clear()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _token_counts(answer: Any, request: Request, model: LoadedModel) -> tuple[int, int]:
    """(prompt tokens, generated tokens) of one answered request."""
    generated = getattr(answer, "generated_tokens", None)
    if generated is not None:
        return int(answer.prompt_tokens), int(generated)
    num_tokens = getattr(answer, "num_tokens", None)
    if num_tokens is not None:
        return int(num_tokens), 0
    return len(model.tokenizer.encode(getattr(request, "text", ""))), 0


def _group_key(request: Request) -> tuple[str, Any]:
    """Requests are batched only with others of one type (and, for generation, one config)."""
    return str(request.type), getattr(request, "config", None)


@dataclass
class Answered:
    """Every example's answers, in request order, and how long answering took."""

    answers: list[list[Any]]
    requests: list[list[Request]]
    latencies: list[float]
    warmup_seconds: float
    #: Wall-clock (``time.time()``) start of each timed batch, in ``latencies`` order: with the latencies,
    #: the intervals the runner was busy, which a sharded run's merge unites (see ``_shards.busy_seconds``).
    batch_starts: list[float] = field(default_factory=list)


Position = tuple[int, int]  # (example index, request index within the example)


def batch_schedule(per_example: Sequence[Sequence[Request]], batch_size: int) -> list[list[Position]]:
    """The run's batches: requests grouped by type, each group sorted longest first, cut into batches.

    A function of the fingerprinted example list, the formulation and the batch size only. Sharding cuts
    this schedule between batches, so a shard answers exactly the unsharded run's batches.
    """
    groups: dict[tuple[str, Any], list[Position]] = {}
    for i, reqs in enumerate(per_example):
        for j, r in enumerate(reqs):
            groups.setdefault(_group_key(r), []).append((i, j))
    batches: list[list[Position]] = []
    for items in groups.values():
        ordered = sorted(items, key=lambda ij: -request_length(per_example[ij[0]][ij[1]]))
        batches += [ordered[start : start + batch_size] for start in range(0, len(ordered), batch_size)]
    return batches


def answer_all(runner: Runner, per_example: Sequence[Sequence[Request]], batch_size: int,
               progress: Progress | None = None, batches: Sequence[Sequence[Position]] | None = None) -> Answered:
    """Answer every request (or only ``batches``, a shard), batching requests of one type across examples.

    Within a group, requests are sorted longest first (less padding) and answers are put back in
    place (:func:`batch_schedule`). The first request of each group is answered once untimed (warm-up);
    then each batch is timed alone. Requests outside ``batches`` keep ``None`` as their answer.
    """
    schedule = [list(b) for b in (batches if batches is not None else batch_schedule(per_example, batch_size))]
    wanted = {ij for batch in schedule for ij in batch}
    firsts: dict[tuple[str, Any], Request] = {}
    for i, reqs in enumerate(per_example):
        for j, r in enumerate(reqs):
            if (i, j) in wanted:
                firsts.setdefault(_group_key(r), r)
    warm_start = time.perf_counter()
    for request in firsts.values():
        runner.answer([request])
    warmup_seconds = time.perf_counter() - warm_start

    answers: list[list[Any]] = [[None] * len(reqs) for reqs in per_example]
    latencies: list[float] = []
    starts: list[float] = []
    total = sum(len(b) for b in schedule)
    runner.reset_peak_memory()
    if progress is not None:
        progress(0, total)  # timing starts now: loading, export and warm-up are done
    done = 0
    for batch in schedule:
        starts.append(time.time())
        t0 = time.perf_counter()
        got = runner.answer([per_example[i][j] for i, j in batch])
        latencies.append(time.perf_counter() - t0)
        if len(got) != len(batch):
            raise LlmosHubError(f"the runner answered {len(got)} of {len(batch)} requests")
        for (i, j), value in zip(batch, got):
            answers[i][j] = value
        done += len(batch)
        if progress is not None:
            progress(done, total)
    return Answered(answers, [list(r) for r in per_example], latencies, warmup_seconds, starts)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (as numpy's default), without numpy."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class RunAnswers:
    """A run's answers (all of them, or a shard's) with what its record needs from where they were made.

    Plain data, so it travels from a Ray worker to the driver, which scores once (:func:`finish`).
    ``positions`` are the (example, request) pairs answered here; the others are ``None``.
    """

    answered: Answered
    positions: list[Position]
    formulation: str
    started: str
    load_seconds: float
    prepare_seconds: float
    prompt_tokens: int
    generated_tokens: int
    peak_memory_bytes: int | None
    peak_memory_kind: str
    device: str
    details: dict[str, Any]
    model: dict[str, Any]
    labels: Sequence[str] | None
    environment: dict[str, Any]
    #: Wall-clock (``time.time()``) start of the first timed batch (warm-up done) and end of the last.
    window: tuple[float, float] = (0.0, 0.0)
    #: Seconds the examples/s figure is over: the timed batches' sum; for a sharded run, the time some
    #: shard was answering a batch (the union of the shards' batch intervals, see ``_shards.merge``).
    eval_seconds: float = 0.0
    #: A sharded run only: from the first shard's first timed batch to the last shard's last one, across
    #: workers, including time shards waited or their workers did other runs (``speed.wall_seconds``).
    wall_seconds: float | None = None
    #: A sharded run's per-shard figures (see :mod:`llmos_hub.bench._shards`).
    shards: list[dict[str, Any]] | None = None
    #: Examples cut to fit the model's window of ``max_length`` tokens: id -> tokens cut (see ``_window``).
    truncated: dict[str, int] = field(default_factory=dict)
    truncation_rule: str = KEEP_END
    max_length: int = 0


def requests_of(spec: RunSpec, task: Task, data: TaskData) -> tuple[Any, list[list[Request]]]:
    """The run's formulation and every example's typed requests (a pure function of spec and data)."""
    form = task.formulation(spec.formulation) if spec.formulation else task.formulations()[0]
    examples = list(data.examples)
    if not examples:
        raise UsageError(f"task {task.name} has no examples to run (check --limit and the data)")
    return form, [list(task.requests(ex, formulation=form.name, seed=spec.seed)) for ex in examples]


def answer(
    spec: RunSpec,
    *,
    session: Session,
    task: Task,
    data: TaskData,
    batches: Sequence[Sequence[Position]] | None = None,
    progress: Progress | None = None,
) -> RunAnswers:
    """Load, prepare, warm up and answer the run's requests (or only ``batches``) in timed batches."""
    started = _now()
    loaded = session.model(spec)
    model = loaded.model
    form = task.formulation(spec.formulation) if spec.formulation else task.formulations()[0]
    if form.capability is not None and not model.supports(form.capability):
        have = ", ".join(sorted(str(c) for c in model.capabilities)) or "none"
        raise UsageError(f"{spec.model} cannot run {task.name} as {form.name}: it needs a {form.capability} "
                         f"model, this one is {have}")
    if spec.weights_sha256 and model.provenance.weights_sha256 != spec.weights_sha256:
        raise LlmosHubError(f"the weights of {spec.model} changed between planning and loading; run again")
    runner, prepare_seconds = session.runner(spec, model)
    missing = sorted(map(str, form.request_types - runner.request_types))
    if missing:
        raise UsageError(f"backend {spec.backend} does not answer {', '.join(missing)} requests for {spec.model}")

    form, per_example = requests_of(spec, task, data)
    mine = sorted({i for batch in batches for i, _ in batch}) if batches is not None else None
    truncated = fit_to_window(model, task.name, [ex.id for ex in data.examples], per_example, mine)
    window_start = time.time()
    answered = answer_all(runner, per_example, spec.batch_size, progress, batches)
    window = (answered.batch_starts[0] if answered.batch_starts else window_start, time.time())  # after warm-up
    if batches is not None:
        positions = sorted((i, j) for batch in batches for i, j in batch)
    else:
        positions = [(i, j) for i, reqs in enumerate(per_example) for j in range(len(reqs))]

    prompt_tokens = generated_tokens = 0
    for i, j in positions:
        p, g = _token_counts(answered.answers[i][j], per_example[i][j], model)
        prompt_tokens += p
        generated_tokens += g

    details = dict(runner.describe())
    backend_obj = session.host.get("backends", spec.backend)
    libraries_used = dict(backend_obj.versions())
    return RunAnswers(
        answered=answered,
        positions=positions,
        formulation=form.name,
        started=started,
        load_seconds=loaded.load_seconds,
        prepare_seconds=prepare_seconds,
        prompt_tokens=prompt_tokens,
        generated_tokens=generated_tokens,
        peak_memory_bytes=runner.peak_memory_bytes(),
        peak_memory_kind=runner.peak_memory_kind(),
        device=getattr(runner, "device", spec.device),
        details={**details, "library_versions": libraries_used},
        model={
            "ref": spec.model,
            "family": spec.family,
            "revision": model.provenance.revision or spec.revision,
            "weights_sha256": model.provenance.weights_sha256,
            "num_parameters": int(model.provenance.num_parameters),
            "source": model.provenance.source,
            "extra": dict(model.provenance.extra),
        },
        labels=model.labels,
        environment=environment(
            session.host.plugin_versions(),
            libraries_used,
            gpu=str(details.get("device_name")) if not str(spec.device).startswith("cpu") and details.get("device_name") else None,
        ),
        window=window,
        eval_seconds=sum(answered.latencies),
        truncated=truncated,
        truncation_rule=cut_rule(model, per_example),
        max_length=int(getattr(model, "max_length", 0) or 0),
    )


def execute(
    spec: RunSpec,
    *,
    session: Session,
    task: Task,
    data: TaskData,
    command: str,
    task_argument: str | None = None,
    samples_path: Path | None = None,
    progress: Progress | None = None,
) -> ResultRecord:
    """Run ``spec`` and return its validated record (the caller writes it)."""
    got = answer(spec, session=session, task=task, data=data, progress=progress)
    return finish(spec, got, task=task, data=data, command=command, task_argument=task_argument,
                  samples_path=samples_path)


def finish(
    spec: RunSpec,
    got: RunAnswers,
    *,
    task: Task,
    data: TaskData,
    command: str,
    task_argument: str | None = None,
    samples_path: Path | None = None,
) -> ResultRecord:
    """Score every example's answers once and assemble the record (needs no model: a driver can do it)."""
    examples = list(data.examples)
    answered = got.answered
    if len(answered.answers) != len(examples) or any(v is None for a in answered.answers for v in a):
        raise LlmosHubError(f"not every request of {spec.label} was answered; cannot score it")
    eval_seconds = got.eval_seconds

    scores = task.score(examples, answered.answers, formulation=got.formulation, labels=got.labels, seed=spec.seed)
    report_truncated(task.name, spec.model, got.max_length, got.truncated, got.truncation_rule)
    # The samples file is written with the record (ResultRecord.save), so both share a folder.
    samples = (_samples_text(task, examples, answered.answers, got.labels, got.formulation)
               if samples_path is not None else None)

    per_second = (lambda n: n / eval_seconds if eval_seconds > 0 else 0.0)  # noqa: E731
    speed = {
        "load_seconds": round(got.load_seconds, 6),
        "prepare_seconds": round(got.prepare_seconds, 6),
        "warmup_seconds": round(answered.warmup_seconds, 6),
        "eval_seconds": round(eval_seconds, 6),
        "examples_per_second": per_second(len(examples)),
        "generated_tokens_per_second": per_second(got.generated_tokens) if got.generated_tokens else None,
        "prompt_tokens_per_second": per_second(got.prompt_tokens),
        "latency_ms": {f"p{q}": percentile(answered.latencies, q) * 1000 for q in (50, 90, 99)},
        "peak_memory_bytes": got.peak_memory_bytes,
        "peak_memory_kind": got.peak_memory_kind,
    }
    if got.wall_seconds is not None:
        speed["wall_seconds"] = round(got.wall_seconds, 6)
    if got.shards is not None:
        speed["shards"] = got.shards
    definition = dict(task.describe())
    record = {
        "schema": SCHEMA_ID,
        "id": spec.hash[:16],
        "started_at": got.started,
        "finished_at": _now(),
        "command": command,
        "model": got.model,
        "task": {
            "name": task.name,
            "version": str(task.version),
            "kind": str(definition.get("kind", type(task).__name__)),
            "formulation": got.formulation,
            "primary_metric": task.primary_metric,
            "dataset_fingerprint": data.fingerprint,
            "split": data.split,
            "num_examples": len(examples),
            "source": data.source,
            "definition": definition,
            "definition_sha256": spec.task_sha256 or config_hash(definition),
            **({"truncated_examples": truncated_summary(got.truncated)} if got.truncated else {}),
        },
        "backend": {
            "name": spec.backend,
            "device": got.device,
            "dtype": spec.dtype,
            "details": got.details,
        },
        "config": {
            "batch_size": spec.batch_size,
            "seed": spec.seed,
            "limit": spec.limit,
            "generation": spec.generation,
            "hash": spec.hash,
            "spec": spec.to_dict(),
            "task_argument": task_argument or task.name,
        },
        "scores": {name: score.to_dict() for name, score in scores.items()},
        "speed": speed,
        "environment": got.environment,
        "samples_file": samples_path.name if samples_path is not None else None,
        "per_example": example_table(task, examples, answered.answers, formulation=got.formulation, labels=got.labels),
    }
    return ResultRecord(_jsonable(record), samples=samples)


def _samples_text(task: Task, examples: Sequence[Any], answers: Sequence[Sequence[Any]],
                  labels: Sequence[str] | None, formulation: str) -> str:
    lines = []
    for example, answer in zip(examples, answers):
        extra = dict(task.per_example(example, answer, formulation=formulation, labels=labels))
        lines.append(
            json.dumps(
                {"id": example.id, "input": example.input, "reference": _jsonable(example.target),
                 **_jsonable(extra)},
                ensure_ascii=False,
            )
        )
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    """Plain JSON types only (tuples → lists, numpy scalars → Python numbers)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value
