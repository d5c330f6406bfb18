"""A small factory of valid result records for tests (validated against the shipped schema)."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from llmos_hub._result import ResultRecord, config_hash

__all__ = ["make_record"]


def make_record(
    *,
    model: str = "nano:lm-small",
    task: str = "translation-sample",
    backend: str = "pytorch",
    scores: dict[str, float] | None = None,
    primary: str | None = None,
    capability: str = "seq2seq",
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    extra: dict[str, Any] | None = None,
) -> ResultRecord:
    """A valid :class:`ResultRecord`; distinct arguments give distinct ids and file names."""
    scores = scores if scores is not None else {"bleu": 12.5, "chrf": 40.25}
    primary = primary or next(iter(scores))
    spec = {"model": model, "task": task, "backend": backend, "seed": seed, "device": device, "dtype": dtype}
    chash = config_hash(spec)
    data: dict[str, Any] = {
        "schema": "llmos-hub/result/1",
        "id": chash[:16],
        "started_at": "2026-11-23T20:00:00Z",
        "finished_at": "2026-11-23T20:00:05Z",
        "command": f"llmos-hub bench --model {model} --task {task} --backend {backend}",
        "model": {
            "ref": model,
            "family": model.split(":")[0],
            "revision": None,
            "weights_sha256": hashlib.sha256(model.encode()).hexdigest(),
            "num_parameters": 123456,
            "source": "local",
        },
        "task": {
            "name": task,
            "version": "1",
            "capability": capability,
            "primary_metric": primary,
            "dataset_fingerprint": hashlib.sha256(task.encode()).hexdigest(),
            "split": "test",
            "num_examples": 20,
        },
        "backend": {"name": backend, "device": device, "dtype": dtype},
        "config": {"batch_size": 4, "seed": seed, "limit": None, "generation": None, "hash": chash, "spec": spec},
        "scores": {
            name: {"value": value, "stderr": None, "higher_is_better": True} for name, value in scores.items()
        },
        "speed": {
            "load_seconds": 0.5,
            "examples_per_second": 10.0,
            "generated_tokens_per_second": 100.0,
            "latency_ms": {"p50": 10.0, "p90": 20.0, "p99": 30.0},
            "peak_memory_bytes": 1000,
        },
        "environment": {
            "python": "3.11.7",
            "llmos_hub": "0.1.0",
            "plugins": {},
            "platform": "Linux",
            "cpu": "test-cpu",
            "gpu": None,
        },
    }
    if extra:
        data = _merge(data, extra)
    return ResultRecord(data)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
