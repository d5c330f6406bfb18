"""The bench harness as a library: plan runs, execute each, write its record at once.

``run_bench`` is what ``llmos-hub bench`` calls. Each run's record is written atomically the moment it is
done, so an interrupt or a crash in a later run never loses a finished one; a failing run is reported and
the others go on; ``resume=True`` skips runs whose record (same configuration hash) already exists
(with ``log_samples=True``, only if its samples file is there too; see :func:`reusable_record`).
"""

from __future__ import annotations

import traceback
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .._result import ResultRecord, load_record, record_stem
from ..errors import DataError, LlmosHubError, UsageError
from . import _output
from ._execute import Session, execute, percentile
from ._plan import Plan, PlannedRun, make_plan
from ._shards import execute_sharded, fewer_shards, note, shard_batches
from ._spec import RunSpec, parse_model_ref

__all__ = ["BenchEvents", "BenchReport", "Plan", "PlannedRun", "RunSpec", "make_plan", "parse_model_ref", "percentile", "run_bench"]


class BenchEvents(Protocol):
    """What the harness reports while it works (the CLI draws progress bars from these).

    Optional, an events object without them is simply not told: ``rerunning(run, path, why)``, called
    when ``--resume`` finds a record it cannot reuse (see :func:`reusable_record`); ``note(run, message)``,
    something the bench decided on its own (fewer shards than asked, a run retried on another Ray worker).
    """

    def started(self, run: PlannedRun, total: int) -> None: ...
    def advanced(self, run: PlannedRun, done: int, total: int) -> None: ...
    def finished(self, run: PlannedRun, record: ResultRecord, path: Path) -> None: ...
    def skipped(self, run: PlannedRun, path: Path) -> None: ...
    def failed(self, run: PlannedRun, message: str) -> None: ...


@dataclass
class BenchReport:
    """The outcome of a bench: records written or reused, and failures with one-line reasons."""

    written: list[tuple[Path, ResultRecord]] = field(default_factory=list)
    reused: list[tuple[Path, ResultRecord]] = field(default_factory=list)
    failed: list[tuple[RunSpec, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    #: Where records went that could not be written to the output folder (empty: none), and why.
    fallback: list[Path] = field(default_factory=list)
    write_problems: list[str] = field(default_factory=list)

    @property
    def records(self) -> list[tuple[Path, ResultRecord]]:
        return self.written + self.reused

    @property
    def ok(self) -> bool:
        return not self.failed


def existing_record(output_dir: Path, spec: RunSpec,
                    unreadable: list[tuple[Path, str]] | None = None) -> tuple[Path, ResultRecord] | None:
    """The record of ``spec`` already in ``output_dir`` (matched by full configuration hash), if any.

    A file of that name that is not a valid record is passed over, and listed in ``unreadable`` (path,
    reason) when given."""
    for path in sorted(output_dir.glob(f"*__{spec.hash[:12]}.json")):
        try:
            record = load_record(path)
        except DataError as exc:
            if unreadable is not None:
                unreadable.append((path, str(exc)))
            continue
        if record.config_hash == spec.hash:
            return path, record
    return None


def _without_path(reason: str, path: Path) -> str:
    """``load_record``'s reason without the path it starts with (the line names the file already):
    ``<path>:13: not JSON`` becomes ``line 13: not JSON``."""
    rest = reason.removeprefix(str(path)).removeprefix(":")
    number, colon, tail = rest.partition(":")
    return f"line {number}:{tail}" if colon and number.isdigit() else rest.strip()


def has_samples(path: Path, record: ResultRecord) -> bool:
    """Whether ``record`` (read from ``path``) names a samples file and that file is next to it."""
    name = record.data.get("samples_file")
    return bool(name) and (path.parent / str(name)).is_file()


def reusable_record(output_dir: Path, run: PlannedRun, *, log_samples: bool,
                    events: BenchEvents | None) -> tuple[Path, ResultRecord] | None:
    """The finished record ``--resume`` reuses for ``run`` (and says so), or ``None`` to run it.

    With ``--log-samples``, a record whose samples file is not next to it is not reused: reusing it would
    end the bench with no samples and exit 0. That run is run again (its record is replaced by one of the
    same configuration, now with samples) and the progress line says why.
    """
    unreadable: list[tuple[Path, str]] = []
    found = existing_record(output_dir, run.spec, unreadable)
    rerunning = getattr(events, "rerunning", None)
    if found is None:
        if unreadable and rerunning is not None:  # a damaged record is replaced, never silently
            path, reason = unreadable[0]
            rerunning(run, path, f"its record cannot be read ({_without_path(reason, path)}); running it again")
        return None
    path, record = found
    if log_samples and not has_samples(path, record):
        if rerunning is not None:
            rerunning(run, path, "its record has no samples file; running it again for --log-samples")
        return None
    if events:
        events.skipped(run, path)
    return found


def run_bench(
    plan: Plan,
    *,
    host: Any,
    output_dir: str | Path,
    command: str,
    resume: bool = False,
    log_samples: bool = False,
    events: BenchEvents | None = None,
    debug: bool = False,
    executor: str = "process",
    ray_address: str | None = None,
    ray_options: dict[str, Any] | None = None,
    shards: int = 1,
) -> BenchReport:
    """Execute every planned run; each finished record is on disk before the next run starts.

    ``executor="ray"`` runs each planned run (or each of its ``shards``) as a Ray task on a local runtime
    or the cluster at ``ray_address`` (see :mod:`llmos_hub.bench._ray`); records are written here, by
    the driver, as they arrive. ``shards > 1`` splits each run's examples and scores the merged answers
    once (see :mod:`llmos_hub.bench._shards`); the numbers equal the unsharded run's.
    """
    out = Path(output_dir)
    _output.check_output_dir(out)
    report = BenchReport(refused=list(plan.refused))
    if shards < 1:
        raise UsageError(f"--shards must be at least 1, not {shards}")
    if executor == "ray":
        from ._ray import run_on_ray

        return run_on_ray(plan, host=host, output_dir=out, command=command, resume=resume, log_samples=log_samples,
                          events=events, debug=debug, report=report, address=ray_address, options=ray_options,
                          shards=shards)
    if executor != "process":
        raise UsageError(f"unknown executor {executor!r}; use process or ray")
    session = Session(host)
    try:
        for run in plan.runs:
            if resume:
                found = reusable_record(out, run, log_samples=log_samples, events=events)
                if found is not None:
                    report.reused.append(found)
                    continue
            total = len(run.data.examples)
            if shards > 1:  # said before the run starts, as the Ray driver says it
                parts = len(shard_batches(run.spec, run.task, run.data, shards))
                if parts < shards:
                    note(events, run, fewer_shards(run, shards, parts))
            if events:
                events.started(run, total)
            try:
                samples = None
                if log_samples:
                    stem = _record_stem(run)
                    samples = out / f"{stem}.samples.jsonl"
                record = (execute if shards == 1 else execute_sharded(shards))(
                    run.spec,
                    session=session,
                    task=run.task,
                    data=run.data,
                    command=command,
                    task_argument=run.task_argument,
                    samples_path=samples,
                    progress=partial(events.advanced, run) if events else None,
                )
                path = _output.save_record(record, out, report.fallback, report.write_problems)
            except KeyboardInterrupt:
                raise
            except LlmosHubError as exc:
                _fail(report, events, run, str(exc))
            except NotImplementedError as exc:
                _fail(report, events, run, f"{run.spec.backend} cannot do this task: {exc}")
            except Exception as exc:  # one broken run must not stop the others
                if debug:
                    traceback.print_exc()
                _fail(report, events, run, f"{type(exc).__name__}: {' '.join(str(exc).split())}")
            else:
                report.written.append((path, record))
                if events:
                    events.finished(run, record, path)
    finally:
        session.close()
    return report


def _record_stem(run: PlannedRun) -> str:
    return record_stem(run.task.name, run.spec.model, run.spec.backend, run.spec.hash)


def _fail(report: BenchReport, events: BenchEvents | None, run: PlannedRun, message: str) -> None:
    report.failed.append((run.spec, message))
    if events:
        events.failed(run, message)
