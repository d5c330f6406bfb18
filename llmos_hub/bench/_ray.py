"""Running a bench on Ray: one Ray task per planned run (or per shard of one), records written by the driver.

A run is a pure function from its spec to its record, so a sweep is a set of independent tasks for an
engine that already knows how to place, retry and cancel work: Ray. The driver (the ``llmos-hub bench``
process) plans, checks the cluster, submits, and writes each record atomically into ``--output-dir`` the
moment it comes back; workers need only the installed plugins, and models load on the worker. Nothing
needs a shared filesystem: the samples file travels back with the record.

* Resources: a run asks for its CPU threads (``threads`` backend option, else 1) and one GPU when its
  device is CUDA; ``--ray-option num_cpus=2`` (and ``num_gpus``, ``memory``, ``resources``, ...) overrides.
* A worker that dies (killed, out of memory, its node lost) is retried by Ray ``max_retries`` times
  (default 2), then reported as one failed run; an error *in* a run (bad model, a backend that cannot do
  the task) is not retried and reads exactly as in-process.
* Ctrl-C cancels what is pending or running; every record already written stays.
* Before anything is submitted, every alive node is asked which plugin distributions it has; a node
  lacking one the plan needs fails the bench with one line naming the node and the distribution.

``ray`` is imported only inside these functions, never when the package is imported.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._result import ResultRecord, record_stem
from .._task import Task, TaskData
from ..errors import LlmosHubError, UsageError
from ._spec import RunSpec
from . import _output

__all__ = ["DEFAULT_MAX_RETRIES", "RAY_OPTIONS", "parse_ray_options", "run_on_ray", "task_resources"]

#: How often a run whose worker died is tried again before it is reported as failed.
DEFAULT_MAX_RETRIES = 2
#: ``--ray-option`` keys: Ray's own task options, passed through.
RAY_OPTIONS = ("num_cpus", "num_gpus", "memory", "resources", "accelerator_type", "max_retries", "scheduling_strategy")
#: Seconds between two looks at the workers' progress while waiting for results.
POLL_SECONDS = 0.25


def parse_ray_options(pairs: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (values parsed as JSON where they parse) → validated Ray task options."""
    options: dict[str, Any] = {}
    items = pairs.items() if isinstance(pairs, Mapping) else [_split(p) for p in pairs]
    for key, value in items:
        if key not in RAY_OPTIONS:
            raise UsageError(f"unknown --ray-option {key!r}; known: {', '.join(RAY_OPTIONS)}")
        if key in ("num_cpus", "num_gpus", "memory", "max_retries"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UsageError(f"--ray-option {key} must be a number >= 0, not {value!r}")
        if key == "max_retries" and int(value) != value:
            raise UsageError(f"--ray-option max_retries must be a whole number, not {value!r}")
        if key == "resources" and not (isinstance(value, dict) and all(isinstance(v, (int, float)) for v in value.values())):
            raise UsageError('--ray-option resources must be a JSON object of numbers, e.g. resources=\'{"tpu": 1}\'')
        options[key] = value
    return options


def _split(pair: str) -> tuple[str, Any]:
    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise UsageError(f"--ray-option {pair!r} is not KEY=VALUE (e.g. num_cpus=2)")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def task_resources(spec: RunSpec, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a run asks Ray for: its CPU threads (else 1), one GPU on CUDA, then the user's overrides."""
    threads = (spec.backend_options or {}).get("threads")
    resources: dict[str, Any] = {
        "num_cpus": float(threads) if isinstance(threads, (int, float)) and threads > 0 else 1.0,
        "num_gpus": 1.0 if spec.device.startswith("cuda") else 0.0,
    }
    resources.update({k: v for k, v in (overrides or {}).items() if k != "max_retries"})
    return resources


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray; install it with: pip install 'llmos-hub[ray]'") from None
    return ray


@contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """Ray, connected to ``address`` (an existing cluster) or to a fresh local runtime; disconnected after.

    A process already connected (an embedding program, a notebook) keeps its connection.
    """
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": "ERROR"}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(include_dashboard=False, **kwargs)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray runtime"
        raise UsageError(
            f"cannot connect to {where}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}; "
            "check --ray-address (host:port of the head's GCS) and RAY_AUTH_MODE / the cluster's token"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


# -- what runs on a worker ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One unit of work for a worker: a whole run, or one shard (``batches`` of its schedule) of a run."""

    key: tuple[int, int]  # (run index in the plan, shard index or -1 for a whole run)
    spec: RunSpec
    task: Task
    data: TaskData
    command: str
    task_argument: str
    samples_name: str | None
    disabled: tuple[str, ...]
    autoload: bool
    batches: tuple[tuple[tuple[int, int], ...], ...] | None = None
    debug: bool = False


_WORKER_SESSIONS: dict[tuple[tuple[str, ...], bool], Any] = {}


def _worker_session(job: Job) -> Any:
    """The plugin host and model session of this worker process (a model loads once per worker)."""
    from .._plugins import load_plugins, set_default_host
    from ._execute import Session

    key = (job.disabled, job.autoload)
    if key not in _WORKER_SESSIONS:
        host = load_plugins(disabled=job.disabled, autoload=job.autoload)
        _WORKER_SESSIONS[key] = Session(host)
    session = _WORKER_SESSIONS[key]
    set_default_host(session.host)  # declared tasks resolve their metrics through it
    return session


def where_am_i() -> dict[str, Any]:
    """Where this worker runs: node, worker and process, for the record."""
    import socket

    import ray

    context = ray.get_runtime_context()
    return {
        "name": "ray",
        "node_id": context.get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "hostname": socket.gethostname(),
        "worker_id": context.get_worker_id(),
        "pid": os.getpid(),
    }


def failure_message(exc: BaseException, spec: RunSpec) -> str:
    """The one-line reason a run failed, worded as the in-process harness words it."""
    if isinstance(exc, LlmosHubError):
        return str(exc)
    if isinstance(exc, NotImplementedError):
        return f"{spec.backend} cannot do this task: {exc}"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def run_job(job: Job, board: Any) -> dict[str, Any]:
    """The Ray task body: run (or answer one shard of) ``job`` and return plain data for the driver."""
    import ray

    where = where_am_i()
    where["attempt"] = ray.get(board.started.remote(job.key, where))
    progress = lambda done, total: board.advanced.remote(job.key, done, total)  # noqa: E731
    try:
        session = _worker_session(job)
        if job.batches is not None:
            from ._shards import answer_shard

            shard = answer_shard(job.spec, session=session, task=job.task, data=job.data,
                                 batches=[list(b) for b in job.batches], progress=progress)
            return {"ok": True, "shard": shard, "where": where}
        from ._execute import execute

        samples_path = Path(job.samples_name) if job.samples_name else None  # only its name is used
        record = execute(job.spec, session=session, task=job.task, data=job.data, command=job.command,
                         task_argument=job.task_argument, samples_path=samples_path, progress=progress)
        return {"ok": True, "record": with_placement(record.data, where), "samples": record.samples, "where": where}
    except Exception as exc:  # reported on the driver as this run's failure; the others go on
        return {"ok": False, "message": failure_message(exc, job.spec), "where": where,
                "traceback": traceback.format_exc() if job.debug else None}


def with_placement(record: Mapping[str, Any], where: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` plus where it ran, under ``environment.executor`` (the rest is the in-process record)."""
    data = dict(record)
    data["environment"] = {**record["environment"], "executor": dict(where)}
    return data


def installed_distributions() -> dict[str, str]:
    """This node's llmos-hub and plugin distributions (normalised name → version)."""
    import importlib.metadata as md

    from .._plugins import _normalize

    found: dict[str, str] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"] or ""
        if _normalize(name) == "llmos-hub" or any(ep.group == "llmos_hub" for ep in dist.entry_points):
            found.setdefault(_normalize(name), dist.version)
    return found


class ProgressBoard:
    """A Ray actor the workers report to (start of each attempt, examples done); the driver reads it."""

    def __init__(self) -> None:
        self.attempts: dict[tuple[int, int], int] = {}
        self.where: dict[tuple[int, int], dict[str, Any]] = {}
        self.done: dict[tuple[int, int], tuple[int, int]] = {}

    def started(self, key: tuple[int, int], where: dict[str, Any]) -> int:
        self.attempts[key] = self.attempts.get(key, 0) + 1
        self.where[key] = where
        self.done.pop(key, None)
        return self.attempts[key]

    def advanced(self, key: tuple[int, int], done: int, total: int) -> None:
        self.done[key] = (done, total)

    def snapshot(self) -> dict[str, Any]:
        return {"attempts": dict(self.attempts), "where": dict(self.where), "done": dict(self.done)}


# -- the driver -----------------------------------------------------------------------------------------


@dataclass
class _Pending:
    run_index: int
    shard_index: int
    attempts_seen: int = 0


@dataclass
class _Sweep:
    """The driver's view of the work in flight, for the one progress display."""

    total_runs: int
    runs_done: int = 0
    first_progress: float | None = None
    examples: dict[tuple[int, int], int] = field(default_factory=dict)

    def rate(self) -> tuple[int, float]:
        done = sum(self.examples.values())
        elapsed = time.monotonic() - self.first_progress if self.first_progress else 0.0
        return done, (done / elapsed if elapsed > 0 else 0.0)


def check_cluster(ray: Any, host: Any, runs: Sequence[Any], overrides: Mapping[str, Any]) -> None:
    """Before submitting: every alive node has the plugin distributions the plan needs, and some node can
    hold each run's resources (an infeasible request would wait forever)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .._plugins import _normalize

    needed: dict[str, str] = {"llmos-hub": "the core"}
    for run in runs:
        for kind, name in (("models", run.spec.family), ("backends", run.spec.backend), ("tasks", run.spec.task)):
            try:
                owner = host.registry.entry(kind, name).owner
            except LlmosHubError:  # a task from a file is not registered: it travels with the job
                continue
            if owner.distribution != owner.plugin or owner.version != "unknown":
                needed.setdefault(_normalize(owner.distribution), f"{kind[:-1]} {name}")
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    probe = ray.remote(num_cpus=0)(installed_distributions)
    refs = [
        probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
        for n in nodes
    ]
    for node, ref in zip(nodes, refs):
        try:
            have = ray.get(ref, timeout=120)
        except Exception as exc:
            raise UsageError(f"node {_node_name(node)} did not answer which plugins it has ({type(exc).__name__}); check the node") from None
        for dist, why in needed.items():
            if dist not in have:
                raise UsageError(
                    f"node {_node_name(node)} lacks the distribution {dist} ({why} of the plan); "
                    f"install it on every node of the cluster (pip install {dist})"
                )
    for run in runs:
        want = task_resources(run.spec, overrides)
        fits = any(
            n["Resources"].get("CPU", 0) >= want["num_cpus"] and n["Resources"].get("GPU", 0) >= want["num_gpus"]
            for n in nodes
        )
        if not fits:
            biggest = max(nodes, key=lambda n: (n["Resources"].get("GPU", 0), n["Resources"].get("CPU", 0)))
            raise UsageError(
                f"no node can hold {run.spec.label}: it asks for {want['num_cpus']:g} CPU and {want['num_gpus']:g} GPU, "
                f"the largest node ({_node_name(biggest)}) has {biggest['Resources'].get('CPU', 0):g} CPU and "
                f"{biggest['Resources'].get('GPU', 0):g} GPU; lower --ray-option num_cpus/num_gpus or the threads option"
            )


def _node_name(node: Mapping[str, Any]) -> str:
    return f"{node.get('NodeManagerAddress', '?')} (id {str(node.get('NodeID', '?'))[:12]})"


def _died_message(exc: BaseException, where: Mapping[str, Any] | None, attempts: int, retries: int) -> str:
    first = " ".join(str(exc).split())[:200]
    place = f" on node {where.get('node_ip')} (pid {where.get('pid')})" if where else ""
    return (
        f"the Ray worker died{place} and the run was given up after {attempts} attempt(s) "
        f"(--ray-option max_retries={retries}): {type(exc).__name__}: {first}"
    )


def run_on_ray(
    plan: Any,
    *,
    host: Any,
    output_dir: Path,
    command: str,
    resume: bool,
    log_samples: bool,
    events: Any,
    debug: bool,
    report: Any,
    address: str | None = None,
    options: Mapping[str, Any] | None = None,
    shards: int = 1,
) -> Any:
    """Run ``plan`` on Ray, filling ``report`` (a :class:`~llmos_hub.bench.BenchReport`) as records arrive."""
    from . import existing_record
    from ._shards import ShardMerger, shard_batches

    overrides = parse_ray_options(options or {})
    retries = int(overrides.get("max_retries", DEFAULT_MAX_RETRIES))
    todo: list[tuple[int, Any]] = []
    for index, run in enumerate(plan.runs):
        found = existing_record(output_dir, run.spec) if resume else None
        if found is not None:
            report.reused.append(found)
            if events:
                events.skipped(run, found[0])
        else:
            todo.append((index, run))
    if not todo:
        return report

    disabled = tuple(sorted(getattr(host, "disabled", ()) or ()))
    autoload = bool(getattr(host, "autoload", True))
    with connected(address) as ray:
        check_cluster(ray, host, [run for _, run in todo], overrides)
        board = ray.remote(num_cpus=0, max_restarts=-1)(ProgressBoard).remote()
        remote = ray.remote(run_job)
        pending: dict[Any, _Pending] = {}
        mergers: dict[int, ShardMerger] = {}
        sweep = _Sweep(total_runs=len(todo))

        def submit(index: int, run: Any, shard: int, batches: Sequence[Sequence[tuple[int, int]]] | None) -> None:
            job = Job(
                key=(index, shard), spec=run.spec, task=run.task, data=run.data, command=command,
                task_argument=run.task_argument, samples_name=_samples_name(run) if log_samples else None,
                disabled=disabled, autoload=autoload,
                batches=tuple(tuple((int(i), int(j)) for i, j in b) for b in batches) if batches is not None else None,
                debug=debug,
            )
            ref = remote.options(max_retries=retries, retry_exceptions=False, **task_resources(run.spec, overrides)).remote(job, board)
            pending[ref] = _Pending(index, shard)

        try:
            for index, run in todo:
                if shards > 1:
                    parts = shard_batches(run.spec, run.task, run.data, shards)
                    mergers[index] = ShardMerger(run, parts, command=command)
                    for s, batches in enumerate(parts):
                        submit(index, run, s, batches)
                else:
                    submit(index, run, -1, None)
            runs = dict(todo)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                snapshot = _poll(ray, board)
                _show(snapshot, pending, runs, sweep, events)
                for ref in ready:
                    item = pending.pop(ref)
                    run = runs[item.run_index]
                    attempts = snapshot["attempts"].get((item.run_index, item.shard_index), 1) if snapshot else 1
                    where = snapshot["where"].get((item.run_index, item.shard_index)) if snapshot else None
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        result = {"ok": False, "message": _died_message(exc, where, attempts, retries)}
                    merger = mergers.get(item.run_index)
                    if merger is not None:
                        if merger.failed:
                            continue
                        if not result["ok"]:
                            merger.failed = True
                            _cancel(ray, [r for r, p in pending.items() if p.run_index == item.run_index])
                            for r in [r for r, p in pending.items() if p.run_index == item.run_index]:
                                pending.pop(r)
                            _failed(report, events, run, result, sweep)
                            continue
                        try:
                            merger.add(item.shard_index, result["shard"], result["where"])
                            if not merger.complete:
                                continue
                            samples = output_dir / _samples_name(run) if log_samples else None
                            record = merger.record(samples_path=samples)
                            placed = with_placement(record.data, {"name": "ray", "shards": len(merger.parts)})
                        except Exception as exc:  # merging or scoring failed: this run fails, the others go on
                            _failed(report, events, run, {"message": failure_message(exc, run.spec)}, sweep)
                            continue
                        _write(output_dir, run, placed, record.samples, report, events, sweep)
                    elif result["ok"]:
                        _write(output_dir, run, result["record"], result.get("samples"), report, events, sweep)
                    else:
                        if result.get("traceback"):
                            print(result["traceback"], file=sys.stderr)
                        _failed(report, events, run, result, sweep)
        except KeyboardInterrupt:
            _cancel(ray, list(pending))
            raise
    return report


def _samples_name(run: Any) -> str:
    return f"{record_stem(run.task.name, run.spec.model, run.spec.backend, run.spec.hash)}.samples.jsonl"


def _poll(ray: Any, board: Any) -> dict[str, Any] | None:
    try:
        return ray.get(board.snapshot.remote(), timeout=10)  # type: ignore[no-any-return]
    except Exception:  # the display must never stop the work
        return None


def _show(snapshot: dict[str, Any] | None, pending: dict[Any, _Pending], runs: dict[int, Any], sweep: _Sweep, events: Any) -> None:
    if snapshot is None or events is None:
        return
    for item in pending.values():
        key = (item.run_index, item.shard_index)
        attempts = snapshot["attempts"].get(key, 0)
        if attempts > item.attempts_seen:
            item.attempts_seen = attempts
            if hasattr(events, "running"):
                events.running(runs[item.run_index], dict(snapshot["where"][key], attempt=attempts))
    for key, (done, _total) in snapshot["done"].items():
        if done and sweep.first_progress is None:
            sweep.first_progress = time.monotonic()
        sweep.examples[key] = done
    if hasattr(events, "sweep"):
        done, rate = sweep.rate()
        events.sweep(sweep.runs_done, sweep.total_runs, done, rate)


def _cancel(ray: Any, refs: Sequence[Any]) -> None:
    for ref in refs:
        try:
            ray.cancel(ref, force=True)
        except Exception:
            pass


def _write(out: Path, run: Any, data: Mapping[str, Any], samples: str | None, report: Any, events: Any, sweep: _Sweep) -> None:
    """Validate and write one arrived record with its samples (to the fallback folder if ``out`` fails)."""
    try:
        record = ResultRecord(dict(data), samples=samples)
        path = _output.save_record(record, out, report.fallback, report.write_problems)
    except LlmosHubError as exc:
        _failed(report, events, run, {"message": str(exc)}, sweep)
        return
    sweep.runs_done += 1
    report.written.append((path, record))
    if events:
        events.finished(run, record, path)


def _failed(report: Any, events: Any, run: Any, result: Mapping[str, Any], sweep: _Sweep) -> None:
    sweep.runs_done += 1
    report.failed.append((run.spec, str(result["message"])))
    if events:
        events.failed(run, str(result["message"]))
