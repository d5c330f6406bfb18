"""Two records side by side: score deltas, whether they exceed their standard errors, speed ratios.

Two scores differ meaningfully only if their difference is larger than the noise of both estimates:
``|a - b| > z * sqrt(se_a² + se_b²)`` with ``z = 1.96`` (a 95% two-sided test, treating the two
estimates as independent, which is conservative for runs on the same examples).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._result import ResultRecord

__all__ = ["Comparison", "ScoreDelta", "compare_records", "pair_by_backend"]

Z_95 = 1.96
_SPEED_KEYS = ("examples_per_second", "generated_tokens_per_second", "prompt_tokens_per_second", "load_seconds")


@dataclass(frozen=True)
class ScoreDelta:
    metric: str
    a: float | None
    b: float | None
    stderr_a: float | None
    stderr_b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def significant(self) -> bool | None:
        """True if the difference exceeds 1.96 combined standard errors; None if unknowable."""
        if self.delta is None or self.stderr_a is None or self.stderr_b is None:
            return None
        combined = math.sqrt(self.stderr_a**2 + self.stderr_b**2)
        if combined == 0:
            return self.delta != 0
        return abs(self.delta) > Z_95 * combined


@dataclass(frozen=True)
class Comparison:
    a: ResultRecord
    b: ResultRecord
    scores: list[ScoreDelta]
    speed: list[tuple[str, float | None, float | None]]
    comparable: bool
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": {"id": self.a.id, "model": self.a.model, "backend": self.a.backend, "task": self.a.task},
            "b": {"id": self.b.id, "model": self.b.model, "backend": self.b.backend, "task": self.b.task},
            "comparable": self.comparable,
            "note": self.note,
            "scores": [
                {"metric": s.metric, "a": s.a, "b": s.b, "delta": s.delta, "stderr_a": s.stderr_a, "stderr_b": s.stderr_b, "significant": s.significant}
                for s in self.scores
            ],
            "speed": [{"metric": k, "a": a, "b": b, "ratio_b_over_a": (b / a if a and b else None)} for k, a, b in self.speed],
        }


def compare_records(a: ResultRecord, b: ResultRecord) -> Comparison:
    da, db = a.data, b.data
    same_data = (
        da["task"]["name"] == db["task"]["name"]
        and da["task"]["version"] == db["task"]["version"]
        and da["task"]["dataset_fingerprint"] == db["task"]["dataset_fingerprint"]
    )
    note = "same task, version and examples" if same_data else "different task, version or examples: scores are not comparable"
    metrics = sorted(set(da["scores"]) | set(db["scores"]))
    scores = []
    for m in metrics:
        sa, sb = da["scores"].get(m), db["scores"].get(m)
        scores.append(
            ScoreDelta(m, sa and sa["value"], sb and sb["value"], sa and sa.get("stderr"), sb and sb.get("stderr"))
        )
    speed = [(k, da["speed"].get(k), db["speed"].get(k)) for k in _SPEED_KEYS]
    return Comparison(a, b, scores, speed, same_data, note)


def pair_by_backend(records: Iterable[ResultRecord], backend_a: str, backend_b: str) -> list[tuple[ResultRecord, ResultRecord]]:
    """Pairs of records that differ only in backend (same model, task, data, batch size, seed, limit)."""

    def key(r: ResultRecord) -> tuple[Any, ...]:
        d = r.data
        c = d["config"]
        return (d["model"]["ref"], d["model"].get("revision"), d["task"]["name"], d["task"]["dataset_fingerprint"], c["batch_size"], c["seed"], c["limit"])

    by_a: dict[tuple[Any, ...], ResultRecord] = {}
    by_b: dict[tuple[Any, ...], ResultRecord] = {}
    for r in records:
        if r.backend == backend_a:
            by_a[key(r)] = r
        elif r.backend == backend_b:
            by_b[key(r)] = r
    return [(by_a[k], by_b[k]) for k in sorted(by_a, key=str) if k in by_b]
