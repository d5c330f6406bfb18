"""Long-lived Ray workers for a bench: one actor per CPU slot, fed runs by the driver, longest first.

Why not one Ray task per run (the first design): measured on the 8-run sweep (``benchmarks/sweep.py``),

* a task that waits on anything (it asked the progress actor for its attempt number) *releases its CPU*
  to Ray while it waits, so Ray starts another task on that "free" CPU: four runs, four cold worker
  processes (each importing torch) on two 1-CPU nodes, each run three times slower;
* Ray starts tasks in submission order, so two long runs could end up last, on one worker, while the
  other idles.

So the driver runs a small pool of actors instead, one per slot a run's resources fit in (per resource
shape), capped by the number of runs. An actor holds its resources for its life, keeps one
:class:`~llmos_hub.bench._execute.Session` (plugins loaded and models cached once, so runs that share a
model reuse it), and imports the plan's backends, model families, tasks and metrics as soon as it is
created — while the driver still checks the cluster's plugins. The driver hands each free actor the
longest remaining run (LPT scheduling: :func:`estimated_cost`), so the workers finish together; each new
actor is given its first run at once (it starts it when up), so the longest runs go to different workers. Retries are the
driver's: an actor that dies (killed, out of memory, its node lost) is replaced and its run handed out
again, with the attempt number in the record, up to ``max_retries`` times.

A driver that connected Ray itself (an embedding program, ``benchmarks/sweep.py``) keeps its idle actors
between benches (:func:`release_workers` or ``ray.shutdown()`` frees them); the CLI connects per bench,
so its workers end with it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._requests import RequestType

__all__ = ["RunWorker", "WorkerPool", "demand", "estimated_cost", "release_workers", "slots"]

#: A generated token's cost in prompt-token equivalents (a decoding step is one forward pass per token;
#: measured on the bundled nano models, where one new token costs about as much as 2 prompt tokens
#: of a batched forward, ``max_new_tokens`` being an upper bound of what is generated).
GENERATED_TOKEN_WEIGHT = 2.0
#: Characters per prompt token, roughly, for the estimate only.
CHARS_PER_TOKEN = 4.0
#: Actor deaths before any actor of a shape came up, after which its runs are reported failed.
MAX_START_FAILURES = 5


def estimated_cost(requests: Sequence[Sequence[Any]]) -> float:
    """A run's (or shard's) work in prompt-token equivalents, from its typed requests alone.

    Prompt characters / 4, plus ``GENERATED_TOKEN_WEIGHT`` x ``max_new_tokens`` x beams per generation
    request. Crude, and used only to order the work longest first; a wrong estimate costs balance, never
    a number.
    """
    cost = 0.0
    for per_example in requests:
        for request in per_example:
            chars = sum(len(getattr(request, name, "") or "") for name in ("text", "context", "continuation"))
            cost += chars / CHARS_PER_TOKEN
            if request.type == RequestType.GENERATE:
                config = request.config
                cost += GENERATED_TOKEN_WEIGHT * config.max_new_tokens * max(1, config.num_beams)
    return cost


#: What Ray counts of an ``accelerator_type`` request: a sliver of the node's ``accelerator_type:X`` resource.
ACCELERATOR_SHARE = 0.001


def demand(resources: Mapping[str, Any]) -> dict[str, float]:
    """The node resources (Ray's names) a worker with these Ray options holds, zero amounts left out."""
    want = {"CPU": float(resources.get("num_cpus", 1)), "GPU": float(resources.get("num_gpus", 0))}
    if resources.get("memory"):
        want["memory"] = float(resources["memory"])
    want.update({k: float(v) for k, v in (resources.get("resources") or {}).items()})
    if resources.get("accelerator_type"):
        want[f"accelerator_type:{resources['accelerator_type']}"] = ACCELERATOR_SHARE
    return {name: amount for name, amount in want.items() if amount > 0}


def slots(resources: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]]) -> int:
    """How many actors asking for ``resources`` the alive ``nodes`` hold at once (0: none fits)."""
    want = demand(resources)
    total = 0
    for node in nodes:
        have = node.get("Resources", {})
        fits = [int(have.get(name, 0) // amount) for name, amount in want.items()]
        total += min(fits) if fits else 1_000_000
    return total


# -- the actor ------------------------------------------------------------------------------------------


class RunWorker:
    """A Ray actor body. Threaded (``max_concurrency=3``): it answers ``ready`` and ``status`` while it
    warms up or runs, so the driver knows where it is at once and can read progress during a run."""

    def __init__(self, disabled: tuple[str, ...], autoload: bool) -> None:
        # Held by ``warm`` and by ``run`` for their whole length: a run never overlaps the warm-up's
        # imports, so its timed batches (the record's speed section) measure the run alone.
        self._lock = threading.RLock()
        self._disabled, self._autoload = tuple(disabled), bool(autoload)
        self._session: Any = None
        self._status: tuple[Any, int, int] | None = None

    def session(self) -> Any:
        """This worker's plugin host and model session, made once (plugins load once per worker)."""
        from .._plugins import load_plugins, set_default_host
        from ._execute import Session

        with self._lock:
            if self._session is None:
                self._session = Session(load_plugins(disabled=self._disabled, autoload=self._autoload))
            set_default_host(self._session.host)  # declared tasks resolve their metrics through it
            return self._session

    def warm(self, names: Sequence[tuple[str, str]]) -> None:
        """Import what the plan's runs will use before the first run: backend libraries (torch), model
        families, tasks and their metrics (a metric's ``evaluate`` module: ``import evaluate`` pulls in
        transformers, seconds on a small CPU). Best effort: a real problem is reported by the run that
        meets it."""
        with self._lock:
            try:
                host = self.session().host
            except Exception:
                return
            for kind, name in names:
                try:
                    made = host.get(kind, name)
                    for metric in (getattr(getattr(made, "spec", None), "metrics", None) or {}) if kind == "tasks" else ():
                        getattr(host.get("metrics", metric), "module", None)  # loads an evaluate module
                except Exception:
                    continue

    def ready(self) -> dict[str, Any]:
        """Where this worker runs (node, worker, pid); answering at all means it is up."""
        from ._ray import where_am_i

        return where_am_i()

    def run(self, job: Any, attempt: int) -> dict[str, Any]:
        from ._ray import run_job, where_am_i

        with self._lock:
            self._status = (job.key, 0, 0)
            try:
                return run_job(job, dict(where_am_i(), attempt=attempt), self.session, self._advanced)
            finally:
                self._status = None

    def _advanced(self, done: int, total: int) -> None:
        if self._status is not None:
            self._status = (self._status[0], done, total)

    def status(self) -> tuple[Any, int, int] | None:
        """(job key, examples done, examples total) of the run in progress, or None when idle."""
        return self._status


# -- the driver's side ----------------------------------------------------------------------------------


@dataclass
class Worker:
    """One actor as the driver sees it."""

    handle: Any
    shape: str
    ready_ref: Any
    where: dict[str, Any] | None = None
    item: Any = None  # the work item it is running
    ref: Any = None  # the ObjectRef of that run's result


@dataclass
class WorkerPool:
    """The bench's actors, per resource shape (``json.dumps`` of the Ray options a run asks for)."""

    ray: Any
    disabled: tuple[str, ...]
    autoload: bool
    warm: list[tuple[str, str]]
    workers: list[Worker] = field(default_factory=list)
    start_failures: dict[str, int] = field(default_factory=dict)
    start_error: dict[str, str] = field(default_factory=dict)

    def start(self, shape: str, reuse: list[Worker] | None = None) -> Worker:
        """A worker for ``shape``: a kept idle one (warmed for this plan too) or a new actor."""
        if reuse:
            worker = reuse.pop()
            worker.handle.warm.remote(self.warm)
            self.workers.append(worker)
            return worker
        options = dict(json.loads(shape))
        actor = self.ray.remote(RunWorker).options(max_concurrency=3, max_restarts=0, **options)
        handle = actor.remote(self.disabled, self.autoload)
        handle.warm.remote(self.warm)  # imports while its first run waits for the session (one lock)
        worker = Worker(handle, shape, handle.ready.remote())
        self.workers.append(worker)
        return worker

    def live(self, shape: str) -> list[Worker]:
        return [w for w in self.workers if w.shape == shape]

    def remove(self, worker: Worker, kill: bool = False) -> None:
        if worker in self.workers:
            self.workers.remove(worker)
        if kill:
            try:
                self.ray.kill(worker.handle, no_restart=True)
            except Exception:
                pass

    def kill_all(self) -> None:
        for worker in list(self.workers):
            self.remove(worker, kill=True)


#: Idle actors kept between benches of a driver that holds its own Ray connection:
#: (Ray job id, disabled plugins, autoload) -> shape -> workers.
_KEPT: dict[tuple[str, tuple[str, ...], bool], dict[str, list[Worker]]] = {}


def kept_workers(ray: Any, disabled: tuple[str, ...], autoload: bool) -> dict[str, list[Worker]]:
    """Take the idle actors this driver kept from its last bench (empty for a new connection)."""
    key = (ray.get_runtime_context().get_job_id(), disabled, autoload)
    for other in [k for k in _KEPT if k[0] != key[0]]:
        del _KEPT[other]  # actors of an earlier connection died with it
    return _KEPT.pop(key, {})


def keep_workers(ray: Any, pool: WorkerPool) -> None:
    """Keep the pool's idle actors for this driver's next bench."""
    key = (ray.get_runtime_context().get_job_id(), pool.disabled, pool.autoload)
    kept: dict[str, list[Worker]] = {}
    for worker in pool.workers:
        if worker.item is None:
            kept.setdefault(worker.shape, []).append(worker)
        else:
            pool.remove(worker, kill=True)
    _KEPT[key] = kept


def release_workers() -> int:
    """Free every idle actor kept between benches (their CPUs and GPUs go back to the cluster)."""
    import ray

    count = 0
    for shapes in _KEPT.values():
        for workers in shapes.values():
            for worker in workers:
                try:
                    ray.kill(worker.handle, no_restart=True)
                except Exception:
                    pass
                count += 1
    _KEPT.clear()
    return count
