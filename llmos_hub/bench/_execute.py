"""Executing one :class:`RunSpec`: load, prepare, answer every request in timed batches, score, record.

Speed is measured here, the same way for every backend: model load and backend preparation are timed
apart; one request is run untimed first (warm-up, excluded); then every batch is timed on its own, giving
examples/s, generated and prompt tokens/s and per-batch latency percentiles. Requests are sorted by
length before batching (less padding) and answers put back in dataset order, which is safe because a
runner's answers do not depend on how requests are batched.
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
from .._requests import GenerationConfig
from .._fileio import atomic_write
from .._model import LoadedModel, ModelFamily
from .._result import SCHEMA_ID, ResultRecord
from .._task import Request, Task, TaskData
from ..errors import LlmosHubError, UsageError
from ._environment import environment
from ._spec import RunSpec

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


def _answer(runner: Runner, requests: Sequence[Request], generation: GenerationConfig | None) -> list[Any]:
    kind = requests[0].kind
    if kind == "generate":
        return list(runner.generate([r.text for r in requests], generation or GenerationConfig()))
    if kind == "loglikelihood_rolling":
        return list(runner.loglikelihood_rolling([r.text for r in requests]))
    if kind == "classify":
        return list(runner.classify([r.text for r in requests]))
    if kind == "loglikelihood":
        return list(runner.loglikelihood([(r.text, r.continuation or "") for r in requests]))
    raise UsageError(f"unknown request kind {kind!r}")


def _token_counts(output: Any, request: Request, model: LoadedModel) -> tuple[int, int]:
    """(prompt tokens, generated tokens) of one answered request."""
    generated = getattr(output, "generated_tokens", None)
    if generated is not None:
        return int(output.prompt_tokens), int(generated)
    num_tokens = getattr(output, "num_tokens", None)
    if num_tokens is not None:
        return int(num_tokens), 0
    return len(model.tokenizer.encode(request.text)), 0


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (as numpy's default), without numpy."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


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
    started = _now()
    loaded = session.model(spec)
    model = loaded.model
    if not model.supports(task.capability):
        have = ", ".join(sorted(str(c) for c in model.capabilities)) or "none"
        raise UsageError(f"{spec.model} cannot run {task.name}: it needs {task.capability}, the model has {have}")
    runner, prepare_seconds = session.runner(spec, model)

    examples = list(data.examples)
    requests = [task.request(ex) for ex in examples]
    if not requests:
        raise UsageError(f"task {task.name} has no examples to run (check --limit and the data)")
    generation = task.generation if requests[0].kind == "generate" else None

    warm_start = time.perf_counter()
    _answer(runner, requests[:1], generation)
    warmup_seconds = time.perf_counter() - warm_start

    order = sorted(range(len(requests)), key=lambda i: -len(requests[i].text))
    outputs: list[Any] = [None] * len(requests)
    latencies: list[float] = []
    runner.reset_peak_memory()
    if progress is not None:
        progress(0, len(requests))  # timing starts now: loading, export and warm-up are done
    done = 0
    for start in range(0, len(order), spec.batch_size):
        batch = order[start : start + spec.batch_size]
        t0 = time.perf_counter()
        answers = _answer(runner, [requests[i] for i in batch], generation)
        latencies.append(time.perf_counter() - t0)
        if len(answers) != len(batch):
            raise LlmosHubError(f"backend {spec.backend} answered {len(answers)} of {len(batch)} requests")
        for i, answer in zip(batch, answers):
            outputs[i] = answer
        done += len(batch)
        if progress is not None:
            progress(done, len(requests))
    eval_seconds = sum(latencies)

    prompt_tokens = generated_tokens = 0
    for output, request in zip(outputs, requests):
        p, g = _token_counts(output, request, model)
        prompt_tokens += p
        generated_tokens += g

    scores = task.score(examples, outputs, labels=model.labels, seed=spec.seed)
    if samples_path is not None:
        _write_samples(samples_path, task, examples, outputs, model)

    per_second = (lambda n: n / eval_seconds if eval_seconds > 0 else 0.0)  # noqa: E731
    speed = {
        "load_seconds": round(loaded.load_seconds, 6),
        "prepare_seconds": round(prepare_seconds, 6),
        "warmup_seconds": round(warmup_seconds, 6),
        "eval_seconds": round(eval_seconds, 6),
        "examples_per_second": per_second(len(requests)),
        "generated_tokens_per_second": per_second(generated_tokens) if generated_tokens else None,
        "prompt_tokens_per_second": per_second(prompt_tokens),
        "latency_ms": {f"p{q}": percentile(latencies, q) * 1000 for q in (50, 90, 99)},
        "peak_memory_bytes": runner.peak_memory_bytes(),
        "peak_memory_kind": "cuda-allocated" if spec.device.startswith("cuda") else "process-rss",
    }
    details = dict(runner.describe())
    backend_obj = session.host.get("backends", spec.backend)
    libraries_used = dict(backend_obj.versions())
    record = {
        "schema": SCHEMA_ID,
        "id": spec.hash[:16],
        "started_at": started,
        "finished_at": _now(),
        "command": command,
        "model": {
            "ref": spec.model,
            "family": spec.family,
            "revision": model.provenance.revision or spec.revision,
            "weights_sha256": model.provenance.weights_sha256,
            "num_parameters": int(model.provenance.num_parameters),
            "source": model.provenance.source,
            "extra": dict(model.provenance.extra),
        },
        "task": {
            "name": task.name,
            "version": str(task.version),
            "capability": str(task.capability),
            "primary_metric": task.primary_metric,
            "dataset_fingerprint": data.fingerprint,
            "split": data.split,
            "num_examples": len(examples),
            "source": data.source,
        },
        "backend": {
            "name": spec.backend,
            "device": getattr(runner, "device", spec.device),
            "dtype": spec.dtype,
            "details": {**details, "library_versions": libraries_used},
        },
        "config": {
            "batch_size": spec.batch_size,
            "seed": spec.seed,
            "limit": spec.limit,
            "generation": generation.to_dict() if generation else None,
            "hash": spec.hash,
            "spec": spec.to_dict(),
            "task_argument": task_argument or task.name,
        },
        "scores": {name: score.to_dict() for name, score in scores.items()},
        "speed": speed,
        "environment": environment(session.host.plugin_versions()),
        "samples_file": samples_path.name if samples_path is not None else None,
    }
    return ResultRecord(_jsonable(record))


def _write_samples(path: Path, task: Task, examples: Sequence[Any], outputs: Sequence[Any], model: LoadedModel) -> None:
    lines = []
    for example, output in zip(examples, outputs):
        extra = dict(task.per_example(example, output, labels=model.labels))
        lines.append(
            json.dumps(
                {"id": example.id, "input": example.input, "reference": example.target, **_jsonable(extra)},
                ensure_ascii=False,
            )
        )
    atomic_write(path, "\n".join(lines) + "\n")


def _jsonable(value: Any) -> Any:
    """Plain JSON types only (tuples → lists, numpy scalars → Python numbers)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value
