"""Sharded runs: one run's requests answered as N separate pieces of work, merged in order, scored once.

A shard is a contiguous range of the run's **batch schedule** (:func:`~llmos_hub.bench._execute.batch_schedule`):
every example's typed requests under the run's formulation, grouped by request type, each group sorted
by length and cut into ``batch_size`` batches — a pure function of the fingerprinted example list, the
formulation and the batch size. Shards are cut between batches, as evenly as whole batches allow. Every
shard therefore answers exactly the batches the unsharded run answers, with the same padding, so every
answer is bit-identical; the answers are put back in place (example, request), and the task scores all
examples once. The scores and the samples file equal the unsharded run's (asserted by the tests), and
the configuration hash is the same: sharding changes how the work is split, never the numbers.

Why not contiguous ranges of the example list itself: a shard of, say, examples 0–49 would batch its own
longest requests together, so requests would share a padded batch with different neighbours than
unsharded; float sums over a padded batch depend on its shape, and on the bundled models 33 of 150
rolling log-likelihoods and 46 of 150 classifier logit rows differed in the last bits that way (batch 8
and 32) — close, not equal. The record's speed section says how the work was split.

Speed of a sharded run is the speed of its work, not of the queue around it: ``eval_seconds`` is the time
during which at least one shard was answering a timed batch (:func:`busy_seconds`, the union of every
batch's interval). Shards that ran one after another, even with a worker's other runs between them,
count their batches' own time (the unsharded figure); shards that ran side by side count the overlap
once (what the split achieved together). The span from the first shard's first batch to the last shard's
last is kept apart as ``wall_seconds``. Intervals are ``time.time()`` on each worker's node, so clock
skew between nodes can shift the overlap, never push ``eval_seconds`` above the shards' summed batch
time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from .._result import ResultRecord
from .._task import Task, TaskData
from ..errors import LlmosHubError, UsageError
from ._execute import Position, Progress, RunAnswers, Session, answer, batch_schedule, finish, requests_of
from ._spec import RunSpec

__all__ = ["ShardMerger", "answer_shard", "busy_seconds", "execute_sharded", "fewer_shards", "merge", "note",
           "shard_batches"]

Batches = list[list[Position]]


def shard_batches(spec: RunSpec, task: Task, data: TaskData, shards: int) -> list[Batches]:
    """Each shard's batches: consecutive whole batches of the run's schedule.

    At most one shard per batch (a run of 3 batches split 8 ways is 3 shards); sizes differ by at most
    one batch.
    """
    if shards < 1:
        raise UsageError(f"--shards must be at least 1, not {shards}")
    _, per_example = requests_of(spec, task, data)
    schedule = batch_schedule(per_example, spec.batch_size)
    n = min(shards, len(schedule))
    bounds = [k * len(schedule) // n for k in range(n + 1)]
    return [schedule[bounds[k] : bounds[k + 1]] for k in range(n)]


def note(events: Any, run: Any, message: str) -> None:
    """Tell the user something the bench did on its own (a retry, fewer shards), if the events listen."""
    if events is not None and hasattr(events, "note"):
        events.note(run, message)


def fewer_shards(run: Any, shards: int, parts: int) -> str:
    """Why ``--shards`` gave fewer shards: a shard is at least one batch of the run's schedule."""
    return (
        f"shards {run.spec.label}: {parts}, not {shards}: its {len(run.data.examples)} example(s) make only "
        f"{parts} batch(es) at --batch-size {run.spec.batch_size} and a shard is at least one batch; "
        f"lower --batch-size for more shards"
    )


def answer_shard(
    spec: RunSpec,
    *,
    session: Session,
    task: Task,
    data: TaskData,
    batches: Sequence[Sequence[Position]],
    progress: Progress | None = None,
) -> RunAnswers:
    """Answer one shard (a worker's part of a sharded run); the driver merges and scores."""
    return answer(spec, session=session, task=task, data=data, batches=batches, progress=progress)


def busy_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """Seconds covered by at least one of ``intervals`` (``(start, end)`` pairs): overlaps count once."""
    total = 0.0
    current: tuple[float, float] | None = None
    for start, end in sorted((s, max(s, e)) for s, e in intervals):
        if current is None or start > current[1]:
            if current is not None:
                total += current[1] - current[0]
            current = (start, end)
        else:
            current = (current[0], max(current[1], end))
    if current is not None:
        total += current[1] - current[0]
    return total


def _batch_intervals(part: RunAnswers) -> list[tuple[float, float]]:
    """When a shard's runner was busy: each timed batch's wall-clock start plus its measured latency.

    A shard without per-batch starts (answered by an older worker) counts as one interval of its summed
    batch time from its window's start.
    """
    latencies = part.answered.latencies
    starts = part.answered.batch_starts
    if len(starts) != len(latencies):
        return [(part.window[0], part.window[0] + sum(latencies))]
    return [(s, s + t) for s, t in zip(starts, latencies)]


def merge(parts: Sequence[RunAnswers], *, where: Sequence[dict[str, Any] | None] | None = None) -> RunAnswers:
    """The shards' answers as one run's: every answer in its place; speed over the time the shards worked.

    ``eval_seconds`` is :func:`busy_seconds` of every shard's timed batches (so examples/s and tokens/s
    count neither queueing nor a worker's other runs; shards side by side overlap once); ``wall_seconds``
    is the span from the first shard's first timed batch to the last shard's last one. ``shards`` keeps
    each shard's requests, examples, batches, seconds, tokens and, on Ray, where it ran. Load, preparation
    and warm-up are the slowest shard's; peak memory the largest; latency percentiles are over every batch
    of every shard.
    """
    if not parts:
        raise LlmosHubError("no shard answered")
    first = parts[0]
    answers: list[list[Any]] = [[None] * len(a) for a in first.answered.answers]
    seen: set[Position] = set()
    for part in parts:
        for i, j in part.positions:
            if (i, j) in seen:
                raise LlmosHubError(f"request {j} of example {i} was answered by two shards")
            seen.add((i, j))
            answers[i][j] = part.answered.answers[i][j]
    start = min(p.window[0] for p in parts)
    end = max(p.window[1] for p in parts)
    split = []
    for k, part in enumerate(parts):
        info: dict[str, Any] = {
            "shard": k,
            "requests": len(part.positions),
            "examples": len({i for i, _ in part.positions}),
            "batches": len(part.answered.latencies),
            "eval_seconds": round(sum(part.answered.latencies), 6),
            "prompt_tokens": part.prompt_tokens,
            "generated_tokens": part.generated_tokens,
            "load_seconds": round(part.load_seconds, 6),
            "warmup_seconds": round(part.answered.warmup_seconds, 6),
        }
        placed = where[k] if where else None
        if placed:
            info.update({key: placed.get(key) for key in ("node_ip", "node_id", "pid", "attempt")})
        split.append(info)
    peaks = [p.peak_memory_bytes for p in parts if p.peak_memory_bytes is not None]
    answered = replace(
        first.answered,
        answers=answers,
        latencies=[t for p in parts for t in p.answered.latencies],
        batch_starts=[s for p in parts for s in p.answered.batch_starts],
        warmup_seconds=max(p.answered.warmup_seconds for p in parts),
    )
    return replace(
        first,
        answered=answered,
        positions=sorted(seen),
        started=min(p.started for p in parts),
        load_seconds=max(p.load_seconds for p in parts),
        prepare_seconds=max(p.prepare_seconds for p in parts),
        prompt_tokens=sum(p.prompt_tokens for p in parts),
        generated_tokens=sum(p.generated_tokens for p in parts),
        peak_memory_bytes=max(peaks) if peaks else None,
        window=(start, end),
        eval_seconds=busy_seconds([iv for p in parts for iv in _batch_intervals(p)]),
        wall_seconds=max(end - start, 0.0),
        shards=split,
        truncated={ex: n for p in parts for ex, n in p.truncated.items()},
    )


def execute_sharded(shards: int) -> Callable[..., ResultRecord]:
    """In-process sharding: ``execute``'s signature; the shards run one after another here."""

    def run(
        spec: RunSpec,
        *,
        session: Session,
        task: Task,
        data: TaskData,
        command: str,
        task_argument: str | None = None,
        samples_path: Any = None,
        progress: Progress | None = None,
    ) -> ResultRecord:
        parts = shard_batches(spec, task, data, shards)
        total = sum(len(b) for part in parts for b in part)
        answered: list[RunAnswers] = []
        offset = 0
        for batches in parts:
            shard_progress = None
            if progress is not None:
                shard_progress = (lambda done, _t, base=offset: progress(base + done, total))  # noqa: E731
            answered.append(answer_shard(spec, session=session, task=task, data=data, batches=batches,
                                         progress=shard_progress))
            offset += sum(len(b) for b in batches)
        return finish(spec, merge(answered), task=task, data=data, command=command, task_argument=task_argument,
                      samples_path=samples_path)

    return run


class ShardMerger:
    """The driver's collector for one sharded run on Ray: shards arrive in any order, the record is made once."""

    def __init__(self, run: Any, parts: Sequence[Batches], *, command: str) -> None:
        self.run = run
        self.parts = [list(p) for p in parts]
        self.command = command
        self.answered: dict[int, RunAnswers] = {}
        self.where: dict[int, dict[str, Any] | None] = {}
        self.failed = False

    def add(self, shard: int, answered: RunAnswers, where: dict[str, Any] | None) -> None:
        if list(answered.positions) != sorted(tuple(ij) for b in self.parts[shard] for ij in b):
            raise LlmosHubError(f"shard {shard} of {self.run.spec.label} answered other requests than it was given")
        self.answered[shard] = answered
        self.where[shard] = where

    @property
    def complete(self) -> bool:
        return len(self.answered) == len(self.parts)

    def record(self, *, samples_path: Any = None) -> ResultRecord:
        """Merge in shard order, score once, and build the record (the caller writes it)."""
        order = range(len(self.parts))
        merged = merge([self.answered[k] for k in order], where=[self.where[k] for k in order])
        return finish(self.run.spec, merged, task=self.run.task, data=self.run.data, command=self.command,
                      task_argument=self.run.task_argument, samples_path=samples_path)
