"""Running a bench on Ray: every planned run (or shard of one) handed to a pool of Ray workers, records
written by the driver.

A run is a pure function from its spec to its record, so a sweep is a set of independent pieces of work
for an engine that already knows how to place work on nodes and notice dead workers: Ray. The driver (the
``llmos-hub bench`` process) plans, checks the cluster, hands out the runs, and writes each record
atomically into ``--output-dir`` the moment it comes back; workers need only the installed plugins, and
models load on the worker. Nothing needs a shared filesystem: the samples file travels back with the record.

* Workers (:mod:`llmos_hub.bench._raypool`): one Ray actor per slot a run's resources fit in, each with
  one session (plugins and models loaded once), fed the longest remaining run as it frees up.
* Resources: a run asks for its CPU threads (``threads`` backend option, else 1) and one GPU when its
  device is CUDA; ``--ray-option num_cpus=2`` (and ``num_gpus``, ``memory``, ``resources``, ...) overrides.
* A worker that dies (killed, out of memory, its node lost) is replaced and its run handed out again,
  ``max_retries`` times (default 2), then reported as one failed run; an error *in* a run (bad model, a
  backend that cannot do the task) is not retried and reads exactly as in-process.
* Ctrl-C stops every worker of the bench; every record already written stays.
* Before any run is handed out, every alive node is asked which plugin distributions it has; a node
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

#: How often a run whose worker died is handed out again before it is reported as failed.
DEFAULT_MAX_RETRIES = 2
#: ``--ray-option`` keys: Ray's own resource and scheduling options (given to each worker), and max_retries.
RAY_OPTIONS = ("num_cpus", "num_gpus", "memory", "resources", "accelerator_type", "max_retries", "scheduling_strategy")
#: Seconds between two looks at the workers' progress (and the longest wait for a result between them).
POLL_SECONDS = 0.5


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
    #: ``bench --endpoint/--token`` (``None``: the worker's environment), for a Hub model the worker loads.
    hub_endpoint: str | None = None
    hub_token: str | None = field(default=None, repr=False)


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


def run_job(job: Job, where: dict[str, Any], session: Any, progress: Any) -> dict[str, Any]:
    """The body of one run on a worker (:class:`~llmos_hub.bench._raypool.RunWorker`): run (or answer
    one shard of) ``job`` and return plain data for the driver; ``session()`` gives the worker's session."""
    from ..hub._auth import hub_flags

    try:
        with hub_flags(job.hub_endpoint, job.hub_token):
            return _run_job(job, where, session(), progress)
    except Exception as exc:  # reported on the driver as this run's failure; the others go on
        return {"ok": False, "message": failure_message(exc, job.spec), "where": where,
                "traceback": traceback.format_exc() if job.debug else None}


def _run_job(job: Job, where: dict[str, Any], session: Any, progress: Any) -> dict[str, Any]:
    """:func:`run_job`'s work, within the bench's Hub flags: a shard's answers, or a whole run's record."""
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


# -- the driver -----------------------------------------------------------------------------------------


@dataclass
class _Item:
    """One piece of work for the pool: a job, its estimated cost, and how often it was started."""

    job: Job
    cost: float
    attempts: int = 0


@dataclass
class _Sweep:
    """The driver's view of the work in flight, for the one progress display."""

    total_runs: int
    runs_done: int = 0
    first_start: float | None = None
    examples: dict[tuple[int, int], int] = field(default_factory=dict)

    def rate(self) -> tuple[int, float]:
        done = sum(self.examples.values())
        elapsed = time.monotonic() - self.first_start if self.first_start else 0.0
        return done, (done / elapsed if elapsed > 0 else 0.0)


def check_resources(runs: Sequence[Any], overrides: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]]) -> None:
    """Some alive node can hold each run's resources (a request no node can meet would wait forever)."""
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


#: Each node's answer to "which distributions do you have", kept for the driver's connection (a driver that
#: stays connected across benches asks each node once): (Ray job id, node id) -> distributions.
_PROBED: dict[tuple[str, str], dict[str, str]] = {}


def check_plugins(ray: Any, host: Any, runs: Sequence[Any], nodes: Sequence[Mapping[str, Any]]) -> None:
    """Every alive node has the plugin distributions the plan needs; else one line naming node and distribution."""
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
    job = ray.get_runtime_context().get_job_id()
    for key in [k for k in _PROBED if k[0] != job]:
        del _PROBED[key]  # answers of an earlier connection
    probe = ray.remote(num_cpus=0)(installed_distributions)
    refs = {
        n["NodeID"]: probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
        for n in nodes if (job, n["NodeID"]) not in _PROBED
    }
    for node in nodes:
        try:
            have = _PROBED.get((job, node["NodeID"])) or ray.get(refs[node["NodeID"]], timeout=120)
        except Exception as exc:
            raise UsageError(f"node {_node_name(node)} did not answer which plugins it has ({type(exc).__name__}); check the node") from None
        _PROBED[(job, node["NodeID"])] = have
        for dist, why in needed.items():
            if dist not in have:
                raise UsageError(
                    f"node {_node_name(node)} lacks the distribution {dist} ({why} of the plan); "
                    f"install it on every node of the cluster (pip install {dist})"
                )


def check_cluster(ray: Any, host: Any, runs: Sequence[Any], overrides: Mapping[str, Any]) -> None:
    """Both checks, before anything is submitted."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    check_resources(runs, overrides, nodes)
    check_plugins(ray, host, runs, nodes)


def _node_name(node: Mapping[str, Any]) -> str:
    return f"{node.get('NodeManagerAddress', '?')} (id {str(node.get('NodeID', '?'))[:12]})"


def _died_message(exc: BaseException, where: Mapping[str, Any] | None, attempts: int, retries: int) -> str:
    first = " ".join(str(exc).split())[:200]
    place = f" on node {where.get('node_ip')} (pid {where.get('pid')})" if where else ""
    return (
        f"the Ray worker died{place} and the run was given up after {attempts} attempt(s) "
        f"(--ray-option max_retries={retries}): {type(exc).__name__}: {first}"
    )


def _warm_names(runs: Sequence[Any]) -> list[tuple[str, str]]:
    """What a worker imports before its first run: every backend, model family and task of the plan."""
    names: dict[tuple[str, str], None] = {}
    for run in runs:
        for kind, name in (("backends", run.spec.backend), ("models", run.spec.family), ("tasks", run.spec.task)):
            names[(kind, name)] = None
    return list(names)


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
    from . import reusable_record
    from ._execute import requests_of
    from ._raypool import MAX_START_FAILURES, WorkerPool, estimated_cost, keep_workers, kept_workers, slots
    from ._shards import ShardMerger, shard_batches

    overrides = parse_ray_options(options or {})
    retries = int(overrides.get("max_retries", DEFAULT_MAX_RETRIES))
    todo: list[tuple[int, Any]] = []
    for index, run in enumerate(plan.runs):
        found = reusable_record(output_dir, run, log_samples=log_samples, events=events) if resume else None
        if found is not None:
            report.reused.append(found)
        else:
            todo.append((index, run))
    if not todo:
        return report

    from ..hub._auth import current_flags

    hub_endpoint, hub_token = current_flags()  # bench --endpoint/--token, for Hub models loaded on workers
    disabled = tuple(sorted(getattr(host, "disabled", ()) or ()))
    autoload = bool(getattr(host, "autoload", True))
    owns_connection = not _import_ray().is_initialized()
    with connected(address) as ray:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        check_resources([run for _, run in todo], overrides, nodes)

        # The work, per resource shape, longest first (LPT: the workers finish together).
        queues: dict[str, list[_Item]] = {}
        mergers: dict[int, ShardMerger] = {}

        def job(index: int, run: Any, shard: int, batches: Sequence[Sequence[tuple[int, int]]] | None) -> Job:
            return Job(
                key=(index, shard), spec=run.spec, task=run.task, data=run.data, command=command,
                task_argument=run.task_argument, samples_name=_samples_name(run) if log_samples else None,
                disabled=disabled, autoload=autoload,
                batches=tuple(tuple((int(i), int(j)) for i, j in b) for b in batches) if batches is not None else None,
                debug=debug, hub_endpoint=hub_endpoint, hub_token=hub_token,
            )

        for index, run in todo:
            shape = json.dumps(task_resources(run.spec, overrides), sort_keys=True)
            try:
                cost = estimated_cost(requests_of(run.spec, run.task, run.data)[1])
            except Exception:  # the run meets the problem on its worker and fails there, as in-process
                cost = 0.0
            if shards > 1:
                parts = shard_batches(run.spec, run.task, run.data, shards)
                mergers[index] = ShardMerger(run, parts, command=command)
                total = sum(len(b) for b in parts) or 1
                for s, batches in enumerate(parts):
                    queues.setdefault(shape, []).append(_Item(job(index, run, s, batches), cost * len(batches) / total))
            else:
                queues.setdefault(shape, []).append(_Item(job(index, run, -1, None), cost))
        for queue in queues.values():
            queue.sort(key=lambda item: -item.cost)
        capacity = {shape: max(1, slots(json.loads(shape), nodes)) for shape in queues}

        # Workers start (and import the plan's libraries) while the nodes' plugins are checked.
        kept = {} if owns_connection else kept_workers(ray, disabled, autoload)
        pool = WorkerPool(ray, disabled, autoload, _warm_names([run for _, run in todo]))
        for shape, queue in queues.items():
            for _ in range(min(capacity[shape], len(queue))):
                pool.start(shape, kept.get(shape))
        for workers in kept.values():  # kept workers this bench has no run for: their resources go back
            for worker in workers:
                pool.remove(worker, kill=True)
        runs = dict(todo)
        sweep = _Sweep(total_runs=len(todo))
        inflight: dict[Any, Any] = {}  # result ref -> worker
        starting: dict[Any, Any] = {}  # ready ref -> worker
        for worker in pool.workers:
            starting[worker.ready_ref] = worker

        def start(shape: str) -> None:
            worker = pool.start(shape)
            starting[worker.ready_ref] = worker

        def top_up(shape: str) -> None:
            """Start a worker for ``shape`` if its work left needs one more than it has."""
            busy = sum(1 for w in pool.live(shape) if w.item is not None)
            if len(pool.live(shape)) < min(capacity[shape], busy + len(queues.get(shape, ()))):
                start(shape)

        def assign(worker: Any, item: _Item) -> None:
            """Queue ``item`` on ``worker`` (one that is still starting runs it as soon as it is up)."""
            item.attempts += 1
            ref = worker.handle.run.remote(item.job, item.attempts)
            worker.item, worker.ref = item, ref
            inflight[ref] = worker
            if worker.where is not None:
                announce(worker)

        def came_up(worker: Any) -> None:
            """A worker answered (or failed) its ``ready`` call."""
            try:
                worker.where = ray.get(worker.ready_ref)
            except ray.exceptions.RayError as exc:  # its queued run fails too, and is handed out again
                pool.remove(worker, kill=True)
                failures = pool.start_failures[worker.shape] = pool.start_failures.get(worker.shape, 0) + 1
                pool.start_error[worker.shape] = f"no Ray worker could be started: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                if failures <= MAX_START_FAILURES:
                    top_up(worker.shape)
                return
            if worker.item is not None:
                announce(worker)

        def announce(worker: Any) -> None:
            """The run is on a worker that is up: show it running there."""
            item = worker.item
            sweep.examples[item.job.key] = 0
            if sweep.first_start is None:
                sweep.first_start = time.monotonic()
            if events and hasattr(events, "running"):
                events.running(runs[item.job.key[0]], dict(worker.where, attempt=item.attempts))

        def requeue(item: _Item) -> None:
            queue = queues[json.dumps(task_resources(item.job.spec, overrides), sort_keys=True)]
            queue.append(item)
            queue.sort(key=lambda each: -each.cost)

        def drop_run(index: int) -> None:
            for queue in queues.values():
                queue[:] = [item for item in queue if item.job.key[0] != index]

        def outcome(item: _Item, result: Mapping[str, Any]) -> None:
            index, shard = item.job.key
            run = runs[index]
            merger = mergers.get(index)
            if merger is not None:
                if merger.failed:
                    return
                if not result["ok"]:
                    merger.failed = True
                    drop_run(index)  # its shards still running finish and are ignored
                    _failed(report, events, run, result, sweep)
                    return
                try:
                    merger.add(shard, result["shard"], result["where"])
                    if not merger.complete:
                        return
                    samples = output_dir / _samples_name(run) if log_samples else None
                    record = merger.record(samples_path=samples)
                    placed = with_placement(record.data, {"name": "ray", "shards": len(merger.parts)})
                except Exception as exc:  # merging or scoring failed: this run fails, the others go on
                    _failed(report, events, run, {"message": failure_message(exc, run.spec)}, sweep)
                    return
                _write(output_dir, run, placed, record.samples, report, events, sweep)
            elif result["ok"]:
                sweep.examples[item.job.key] = len(run.data.examples)
                _write(output_dir, run, result["record"], result.get("samples"), report, events, sweep)
            else:
                if result.get("traceback"):
                    print(result["traceback"], file=sys.stderr)
                _failed(report, events, run, result, sweep)

        try:
            check_plugins(ray, host, [run for _, run in todo], nodes)
            last_poll = time.monotonic()
            while inflight or any(queues.values()):
                for worker in list(pool.workers):
                    if worker.item is not None:
                        continue
                    work = queues.get(worker.shape)
                    if work:
                        assign(worker, work.pop(0))
                    elif worker.where is not None and any(w.where is None for w in pool.workers if w.shape != worker.shape):
                        pool.remove(worker, kill=True)  # free its resources for another shape's waiting worker
                waiting = list(starting) + list(inflight)
                if not waiting:  # work left and no worker at all: every one died starting up
                    for shape, queue in queues.items():
                        for item in list(queue):
                            queue.remove(item)
                            outcome(item, {"ok": False, "message": pool.start_error.get(shape, "no Ray worker could be started")})
                    break
                ready, _ = ray.wait(waiting, num_returns=1, timeout=POLL_SECONDS)
                for ref in ready:
                    if ref in starting:
                        came_up(starting.pop(ref))
                        continue
                    if ref not in inflight:
                        continue
                    worker = inflight.pop(ref)
                    if worker.ready_ref in starting:  # it ran before the driver saw it come up: show that first
                        came_up(starting.pop(worker.ready_ref))
                    item, worker.item, worker.ref = worker.item, None, None
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayActorError as exc:  # the worker died: retried, up to the bound
                        pool.remove(worker, kill=True)
                        if item.attempts <= retries:
                            requeue(item)
                            if pool.start_failures.get(worker.shape, 0) <= MAX_START_FAILURES:
                                top_up(worker.shape)
                            continue
                        result = {"ok": False, "message": _died_message(exc, worker.where, item.attempts, retries)}
                    except ray.exceptions.RayError as exc:
                        result = {"ok": False, "message": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
                    outcome(item, result)
                if time.monotonic() - last_poll >= POLL_SECONDS:
                    last_poll = time.monotonic()
                    _poll(ray, pool, sweep)
                if events and hasattr(events, "sweep"):
                    done, rate = sweep.rate()
                    events.sweep(sweep.runs_done, sweep.total_runs, done, rate)
        except BaseException:  # Ctrl-C, SIGTERM or a bug: stop every run in flight; written records stay
            pool.kill_all()
            raise
        if owns_connection:
            pool.kill_all()
        else:
            for worker in [w for w in pool.workers if w.where is None]:
                pool.remove(worker, kill=True)
            keep_workers(ray, pool)
    return report


def _samples_name(run: Any) -> str:
    return f"{record_stem(run.task.name, run.spec.model, run.spec.backend, run.spec.hash)}.samples.jsonl"


def _poll(ray: Any, pool: Any, sweep: _Sweep) -> None:
    """Ask every busy worker how far its run is (the display must never stop the work)."""
    busy = [w for w in pool.workers if w.item is not None]
    refs = [w.handle.status.remote() for w in busy]
    if not refs:
        return
    try:
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=2.0)
    except Exception:
        return
    for ref in done:
        try:
            status = ray.get(ref)
        except Exception:
            continue
        if status is not None:
            key, examples, _total = status
            sweep.examples[tuple(key)] = examples


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
