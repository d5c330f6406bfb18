"""Boards built from result records alone: one per task, ranked by the task's primary metric.

Rows are comparable only when they measured the same thing: the same task version and the same dataset
fingerprint (the exact examples scored). Records that differ in either are put on separate boards for the
same task instead of being mixed, and each board names what it holds.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._result import ResultRecord, scores_equal

__all__ = ["Board", "Row", "build_boards", "reproduce_command"]


@dataclass(frozen=True)
class Row:
    """One record's line on a board."""

    rank: int
    record: ResultRecord
    primary: float
    primary_stderr: float | None
    #: The tied rank: the rank of the best row this one is not significantly different from.
    band: int | None = None
    #: What baseline the row is (e.g. "majority class of the train split"), None for a model.
    baseline: str | None = None

    @property
    def data(self) -> Mapping[str, Any]:
        return self.record.data

    def speed(self, key: str) -> float | None:
        value = self.data["speed"].get(key)
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        d = self.data
        return {
            "rank": self.rank,
            "band": self.band,
            "baseline": self.baseline is not None,
            "baseline_kind": self.baseline,
            "model": d["model"]["ref"],
            "backend": d["backend"]["name"],
            "device": d["backend"]["device"],
            "dtype": d["backend"]["dtype"],
            "quantization": d["backend"].get("details", {}).get("quantization"),
            "primary_metric": d["task"]["primary_metric"],
            "primary": self.primary,
            "primary_stderr": self.primary_stderr,
            "scores": {k: v["value"] for k, v in d["scores"].items()},
            "stderrs": {k: v["stderr"] for k, v in d["scores"].items()},
            "examples_per_second": self.speed("examples_per_second"),
            "generated_tokens_per_second": self.speed("generated_tokens_per_second"),
            "prompt_tokens_per_second": self.speed("prompt_tokens_per_second"),
            "latency_p50_ms": d["speed"]["latency_ms"]["p50"],
            "peak_memory_bytes": d["speed"].get("peak_memory_bytes"),
            "num_examples": d["task"]["num_examples"],
            "config_hash": d["config"]["hash"],
            "record_id": d["id"],
            "command": reproduce_command(self.record),
        }


@dataclass
class Board:
    """Comparable rows of one task (same version, same dataset fingerprint), best first."""

    task: str
    task_version: str
    dataset_fingerprint: str
    primary_metric: str
    higher_is_better: bool
    rows: list[Row] = field(default_factory=list)
    #: Set when the task has several boards, to tell them apart in titles.
    variant: int | None = None
    #: How rank bands were tested: "paired", "unpaired", "mixed" (some pairs each way) or "none".
    band_method: str = "none"
    #: The significance level of the bands (Holm-corrected across the board).
    alpha: float = 0.05
    #: Records left off this board, each named with the reason (a rerun of a configuration superseded).
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        suffix = "" if self.variant is None else f" (variant {self.variant}: data {self.dataset_fingerprint[:8]})"
        return f"{self.task} v{self.task_version}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "task_version": self.task_version,
            "dataset_fingerprint": self.dataset_fingerprint,
            "primary_metric": self.primary_metric,
            "higher_is_better": self.higher_is_better,
            "title": self.title,
            "band_method": self.band_method,
            "band_alpha": self.alpha,
            "rows": [r.to_dict() for r in self.rows],
            "notes": list(self.notes),
        }


def reproduce_command(record: ResultRecord) -> str:
    """The ``llmos-hub bench`` line that reproduces a record's configuration."""
    d = record.data
    cfg = d["config"]
    args = [
        "llmos-hub", "bench",
        "--model", d["model"]["ref"] + (f"@{d['model']['revision']}" if d["model"].get("revision") else ""),
        "--task", cfg.get("task_argument") or d["task"]["name"],
        "--backend", d["backend"]["name"],
        "--device", d["backend"]["device"],
        "--dtype", d["backend"]["dtype"],
        "--batch-size", str(cfg["batch_size"]),
        "--seed", str(cfg["seed"]),
    ]
    if cfg.get("spec", {}).get("split"):
        args += ["--split", str(cfg["spec"]["split"])]
    if cfg.get("limit") is not None:
        args += ["--limit", str(cfg["limit"])]
    formulation = cfg.get("spec", {}).get("formulation")
    if formulation:
        args += ["--formulation", str(formulation)]
    shots = (d["task"].get("definition") or {}).get("num_fewshot")
    if shots:
        args += ["--num-fewshot", str(shots)]
    for key, value in sorted((cfg.get("spec", {}).get("backend_options") or {}).items()):
        args += ["--backend-option", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return shlex.join(args)


def _primary(record: ResultRecord) -> tuple[float, float | None, bool]:
    metric = record.primary_metric
    score = record.scores.get(metric)
    if score is None:  # a record without its primary metric sorts last
        return math.nan, None, True
    return float(score["value"]), score.get("stderr"), bool(score.get("higher_is_better", True))


def build_boards(records: Iterable[ResultRecord], *, alpha: float = 0.05, seed: int = 0) -> list[Board]:
    """Group records into boards (task, version, fingerprint) and rank each by its primary metric.

    When the same configuration hash appears more than once (a rerun), the newest record (by
    ``finished_at``) is ranked and every other one is named in the board's notes, never dropped silently.
    Rows not significantly different at ``alpha`` share a rank band (see :mod:`._bands`).
    """
    from ._bands import assign_bands

    newest: dict[str, ResultRecord] = {}
    superseded: dict[str, list[ResultRecord]] = {}
    for record in records:
        key = record.config_hash
        old = newest.get(key)
        if old is None or record.data["finished_at"] >= old.data["finished_at"]:
            newest[key] = record
            if old is not None:
                superseded.setdefault(key, []).append(old)
        else:
            superseded.setdefault(key, []).append(record)
    groups: dict[tuple[str, str, str], list[ResultRecord]] = {}
    for record in newest.values():
        t = record.data["task"]
        groups.setdefault((t["name"], t["version"], t["dataset_fingerprint"]), []).append(record)
    boards: list[Board] = []
    for (task, version, fingerprint), members in sorted(groups.items()):
        _, _, higher = _primary(members[0])
        board = Board(task, version, fingerprint, members[0].primary_metric, higher)
        scored = []
        for record in members:
            value, stderr, _ = _primary(record)
            scored.append((value, stderr, record))
        sign = -1.0 if higher else 1.0
        scored.sort(key=lambda x: (math.isnan(x[0]), sign * (0.0 if math.isnan(x[0]) else x[0]), x[2].model, x[2].backend))
        board.rows = []
        for i, (value, stderr, rec) in enumerate(scored):
            # Equal scores (within float rounding, as two backends give: SCORE_TOLERANCE relative) share a
            # rank: 1, 1, 3.
            tied = i > 0 and not math.isnan(value) and scores_equal(board.rows[-1].primary, value)
            board.rows.append(Row(board.rows[-1].rank if tied else i + 1, rec, value, stderr))
        for rec in members:
            for old in superseded.get(rec.config_hash, []):
                board.notes.append(
                    f"record {old.data['id']} ({old.model} on {old.backend}, finished {old.data['finished_at']}) is "
                    f"superseded by the newer record {rec.data['id']} of the same configuration "
                    f"({rec.data['finished_at']})")
        assign_bands(board, alpha=alpha, seed=seed)
        boards.append(board)
    _number_variants(boards)
    return boards


def _number_variants(boards: Sequence[Board]) -> None:
    """Number the boards that the title (task and version) does not tell apart: the same task and version
    on other data. Boards of two versions are told apart by ``v1``/``v2`` already."""
    by_task: dict[tuple[str, str], list[Board]] = {}
    for board in boards:
        by_task.setdefault((board.task, board.task_version), []).append(board)
    for same in by_task.values():
        if len(same) > 1:
            for i, board in enumerate(same, start=1):
                board.variant = i
