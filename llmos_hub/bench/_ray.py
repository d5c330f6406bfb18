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
* Ctrl-C (or SIGTERM: the bench's handler is put back after ``ray.init`` replaced it) stops every worker
  of the bench; every record already written stays.
* ``--ray-address`` is checked before ``ray.init``, which retries an unreachable address for ever, and a
  head lost mid-bench stops it with one line before Ray ends the process from C++ (:class:`HeadWatch`).
* A resource request no node can hold (CPU, GPU, memory, custom resources, accelerator type) would wait
  for ever: it is an error before anything is submitted (:func:`check_resources`).
* Before any run is handed out, every alive node is asked which plugin distributions it has; a node
  lacking one the plan needs fails the bench with one line naming the node and the distribution.

``ray`` is imported only inside these functions, never when the package is imported.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
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
#: Seconds the driver gives the head's GCS to accept a connection and answer, before ``ray.init`` (which
#: retries an address that does not answer for ever).
CONNECT_SECONDS = 5.0
#: Seconds between two looks at whether the head's GCS still accepts connections during a bench.
HEAD_CHECK_SECONDS = 2.0


def _head_lost_seconds() -> float:
    """20 s less than Ray waits for a lost GCS before it ends the driver (at least 5 s)."""
    try:
        ray_gives_up = float(os.environ.get("RAY_gcs_rpc_server_reconnect_timeout_s") or 60)
    except ValueError:
        ray_gives_up = 60.0
    return max(5.0, ray_gives_up - 20.0)


#: Seconds the head may not answer before the bench stops with its own error. Ray ends the driver from C++
#: (no Python handler runs, no word of the records kept) once it has been without the GCS for
#: ``RAY_gcs_rpc_server_reconnect_timeout_s`` (60 s by default); until then runs on live workers still
#: finish, so the bench waits as long as it can while keeping 20 s to stop and say so first.
HEAD_LOST_SECONDS = _head_lost_seconds()
#: ``scheduling_strategy`` values Ray takes as a string (the others are objects a command line cannot give).
SCHEDULING_STRATEGIES = ("DEFAULT", "SPREAD")
#: The smallest fraction of a resource Ray can count (it rejects a finer request at submission).
RESOURCE_PRECISION = 0.0001


def parse_ray_options(pairs: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (values parsed as JSON where they parse) → validated Ray task options.

    Every value is checked here, as Ray would check it when the first worker is submitted: a bad value
    found there would stop the bench with Ray's traceback after the cluster was joined.
    """
    options: dict[str, Any] = {}
    items = pairs.items() if isinstance(pairs, Mapping) else [_split(p) for p in pairs]
    for key, value in items:
        if key not in RAY_OPTIONS:
            raise UsageError(f"unknown --ray-option {key!r}; known: {', '.join(RAY_OPTIONS)}")
        if key in ("num_cpus", "num_gpus", "memory", "max_retries"):
            _check_quantity(key, value)
        if key == "max_retries" and int(value) != value:
            raise UsageError(f"--ray-option max_retries must be a whole number, not {value!r}")
        if key == "num_gpus" and value > 1 and int(value) != value:
            raise UsageError(f"--ray-option num_gpus above 1 must be a whole number (Ray shares only one GPU), not {value!r}")
        if key == "resources":
            if not isinstance(value, dict) or not value:
                raise UsageError('--ray-option resources must be a JSON object of numbers, e.g. resources=\'{"tpu": 1}\'')
            for name, amount in value.items():
                if name in ("CPU", "GPU"):
                    raise UsageError(f"--ray-option resources must not name {name}; use --ray-option num_{name.lower()}s")
                _check_quantity(f"resources {name}", amount)
        if key == "accelerator_type" and not (isinstance(value, str) and value.strip()):
            raise UsageError(f"--ray-option accelerator_type must be a name such as H100 or A100, not {value!r}")
        if key == "scheduling_strategy":
            if str(value).upper() not in SCHEDULING_STRATEGIES:
                raise UsageError(f"--ray-option scheduling_strategy must be one of {', '.join(SCHEDULING_STRATEGIES)}, not {value!r}")
            value = str(value).upper()
        options[key] = value
    return options


def _check_quantity(key: str, value: Any) -> None:
    """A resource amount Ray accepts: a number >= 0, not finer than it can count."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise UsageError(f"--ray-option {key} must be a number >= 0, not {value!r}")
    if 0 < value < RESOURCE_PRECISION:
        raise UsageError(f"--ray-option {key} must be 0 or at least {RESOURCE_PRECISION:g} (Ray's finest share), not {value!r}")


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


def _start_one(source: str) -> str:
    """What to do about an address that cannot be reached (the end of its one-line error)."""
    drop = "drop --ray-address" if source == "--ray-address" else f"unset {source}"
    return (f"check {source} (the head's HOST:PORT, 6379 by default), start a cluster "
            f"with 'ray start --head --node-ip-address=127.0.0.1', or {drop} for a local one")
#: The HTTP/2 connection preface and an empty SETTINGS frame: a gRPC server such as the GCS answers with its
#: own SETTINGS frame, something else (a dashboard, an SSH server) does not.
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def ray_address(address: str | None) -> str | None:
    """The address ``ray.init`` will join: ``--ray-address``, else ``RAY_ADDRESS`` (which Ray itself reads)."""
    if address in (None, "auto"):
        return os.environ.get("RAY_ADDRESS") or address
    return address


def address_source(address: str | None) -> str:
    """Where :func:`ray_address`'s answer comes from, as messages name it: ``--ray-address`` or ``RAY_ADDRESS``."""
    return "RAY_ADDRESS" if address in (None, "auto") and os.environ.get("RAY_ADDRESS") else "--ray-address"


def check_address(address: str | None, source: str = "--ray-address") -> tuple[str, int] | None:
    """``(host, port)`` of a ``HOST:PORT`` address, checked before anything starts; ``None`` for no address
    and Ray's own forms (``auto``, ``local``, ``ray://...``), which ``ray.init`` answers at once. ``source``
    names where the address came from (``--ray-address``, or ``RAY_ADDRESS``)."""
    if not address or address in ("auto", "local") or "://" in address:
        return None
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    given = "--ray-address " if source == "--ray-address" else f"{source}="
    if not sep or not host:
        raise UsageError(f"{given}{address} has no port; give the head's HOST:PORT (6379 by default), "
                         f"e.g. {given}{address}:6379")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"{given}{address}: the port must be a number from 1 to 65535, not {port!r}; "
                         f"e.g. {given}{host}:6379")
    return host, int(port)


class _NotGcs(Exception):
    """Something listens at the address, but it is not a gRPC server."""


def check_reachable(address: str, host: str, port: int, timeout: float = CONNECT_SECONDS,
                    source: str = "--ray-address") -> None:
    """The head's GCS accepts a connection and answers as a gRPC server within ``timeout`` seconds.

    ``ray.init`` retries an address that refuses or does not answer for ever (a warning every 40 s), so the
    driver looks first: a TCP connection, then the HTTP/2 greeting every gRPC server answers (skipped
    when Ray talks TLS, ``RAY_USE_TLS``).
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("0", "false", ""):
                sock.sendall(_H2_HELLO)
                answer = sock.recv(9)
                if len(answer) < 4 or answer[3] != 0x04:
                    raise _NotGcs
    except socket.gaierror:
        reason = f"unknown host {host!r}"
    except ConnectionRefusedError:
        reason = f"connection refused: nothing listens on port {port}"
    except (socket.timeout, TimeoutError):
        reason = f"no answer within {timeout:g} s"
    except (_NotGcs, ConnectionResetError, BrokenPipeError):
        reason = f"port {port} answers, but not as a Ray head (GCS); is it the dashboard's or the client's port?"
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    else:
        return
    raise UsageError(f"cannot reach the Ray cluster at {address} ({reason}); {_start_one(source)}")


class HeadLost(LlmosHubError):
    """The cluster's head (its GCS) stopped answering while the bench ran."""


@dataclass
class HeadWatch:
    """Notices a lost head before Ray does, by a TCP connection to its GCS.

    Without the GCS, Ray ends the driver from C++ after 60 s (no Python handler runs, nothing says which
    records were kept), and starting a worker blocks until then. So the bench looks every
    ``HEAD_CHECK_SECONDS``, and before starting a worker, and stops with :class:`HeadLost` once the head
    has not answered for ``lost_after`` seconds.
    """

    address: str | None  # the GCS's HOST:PORT; None: nothing to watch
    output_dir: Path
    report: Any
    lost_after: float = HEAD_LOST_SECONDS
    last_check: float = field(default_factory=time.monotonic)
    lost_since: float | None = None

    def answers(self) -> bool:
        """The head accepts a connection now (also true when there is nothing to watch)."""
        where = check_address(self.address) if self.address else None
        self.last_check = time.monotonic()
        if where is None:
            return True
        try:
            socket.create_connection(where, timeout=1.0).close()
        except OSError:
            self.lost_since = self.lost_since if self.lost_since is not None else time.monotonic()
            return False
        self.lost_since = None
        return True

    def check(self, *, wait: bool = False) -> None:
        """Raise :class:`HeadLost` if the head has not answered for ``lost_after`` s; with ``wait`` (before a
        call that needs the GCS), look now and wait for the head to answer again, up to that bound."""
        while True:
            if wait or time.monotonic() - self.last_check >= HEAD_CHECK_SECONDS:
                if self.answers():
                    return
            if self.lost_since is not None and time.monotonic() - self.lost_since >= self.lost_after:
                raise HeadLost(
                    f"lost the Ray cluster: its head ({self.address}) has not answered for {self.lost_after:g} s; "
                    f"the {len(self.report.written)} record(s) written are kept in {self.output_dir}; "
                    "rerun with --resume once the cluster is back"
                )
            if not wait:
                return
            time.sleep(min(HEAD_CHECK_SECONDS, self.lost_after / 4))


@contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """Ray, connected to ``address`` (an existing cluster) or to a fresh local runtime; disconnected after.

    A process already connected (an embedding program, a notebook) keeps its connection. The address is
    checked first (``ray.init`` would retry an unreachable one for ever), and the SIGTERM handler the
    caller had is put back after ``ray.init`` (which replaces it with Ray's, dying with a crash dump).
    """
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    target, source = ray_address(address), address_source(address)
    where = check_address(target, source)
    if where is not None and target is not None:
        check_reachable(target, *where, source=source)
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": "ERROR"}
    on_sigterm = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(include_dashboard=False, **kwargs)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        where_to = f"the Ray cluster at {target}" if target else "a local Ray runtime"
        fix = (f"check {source} (host:port of the head's GCS; {'drop --ray-address' if source == '--ray-address' else f'unset {source}'}"
               " for a local runtime) and RAY_AUTH_MODE / the cluster's token") if target else \
            "check RAY_AUTH_MODE and that this machine can start Ray (ray start --head works)"
        raise UsageError(
            f"cannot connect to {where_to}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}; {fix}"
        ) from None
    finally:
        if callable(on_sigterm):  # the bench's: SIGTERM stops it like Ctrl-C, records kept, --resume named
            signal.signal(signal.SIGTERM, on_sigterm)
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
    """Some alive node can hold each run's resources (a request no node can meet would wait forever).

    Every resource a worker asks for counts: CPU, GPU, ``memory``, custom ``resources`` and
    ``accelerator_type`` (Ray's ``accelerator_type:X`` node resource).
    """
    from ._raypool import demand

    if not nodes:
        raise UsageError("the Ray cluster has no alive node; check the cluster with 'ray status'")
    for run in runs:
        want = demand(task_resources(run.spec, overrides))

        def met(node: Mapping[str, Any]) -> list[bool]:
            return [node["Resources"].get(name, 0) >= amount for name, amount in want.items()]

        if any(all(met(n)) for n in nodes):
            continue
        closest = max(nodes, key=lambda n: (sum(met(n)), n["Resources"].get("GPU", 0), n["Resources"].get("CPU", 0)))
        have = closest["Resources"]
        short = [name for name, ok in zip(want, met(closest)) if not ok]
        raise UsageError(
            f"no node can hold {run.spec.label}: it asks for {_amounts(want)}; the closest node ({_node_name(closest)}) "
            f"has {_amounts({name: have.get(name, 0) for name in want})}; {_lower(short, nodes)}"
        )


def _amounts(resources: Mapping[str, float]) -> str:
    """``{"CPU": 2, "memory": 1e12, "accelerator_type:H100": 0.001}`` → "2 CPU, 1000 GB memory, accelerator_type H100"."""

    def amount(name: str, value: float) -> str:
        if name == "memory":
            return f"{value / 1e9:.4g} GB memory"
        if name.startswith("accelerator_type:"):
            return f"{'' if value else 'no '}accelerator_type {name.split(':', 1)[1]}"
        return f"{value:g} {name}"

    return ", ".join(amount(name, value) for name, value in resources.items())


def _lower(short: Sequence[str], nodes: Sequence[Mapping[str, Any]]) -> str:
    """How to fix the request for the resources the closest node lacks."""
    fixes: dict[str, None] = {}
    for name in short:
        if name in ("CPU", "GPU"):
            fixes["lower --ray-option num_cpus/num_gpus or the threads option"] = None
        elif name == "memory":
            fixes["lower --ray-option memory (bytes)"] = None
        elif name.startswith("accelerator_type:"):
            kinds = sorted({r.split(":", 1)[1] for n in nodes for r in n["Resources"] if r.startswith("accelerator_type:")})
            fixes[f"change --ray-option accelerator_type (this cluster has: {', '.join(kinds) or 'none'})"] = None
        else:
            fixes[f"lower --ray-option resources or add a node with {name!r} ('ray start --resources')"] = None
    return "; ".join(fixes)


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


def _retry_message(run: Any, item: _Item, where: Mapping[str, Any] | None, exc: BaseException) -> str:
    """The line a retried run (or shard) gets: which, which attempt comes, and why the worker went."""
    shard = item.job.key[1]
    what = run.spec.label + (f" (shard {shard + 1})" if shard >= 0 else "")
    place = f" on node {where.get('node_ip')} (pid {where.get('pid')})" if where else ""
    first = " ".join(str(exc).split("\n", 1)[0].split())[:160]
    return f"retrying {what} on another worker (attempt {item.attempts + 1}): its worker{place} died: {type(exc).__name__}: {first}"


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
    from ._shards import ShardMerger, fewer_shards, note, shard_batches

    overrides = parse_ray_options(options or {})
    check_address(ray_address(address), address_source(address))  # an error even when --resume leaves nothing to run
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
                if len(parts) < shards:
                    note(events, run, fewer_shards(run, shards, len(parts)))
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

        # The head as the user named it (Ray may report another interface of it); a local runtime is this
        # driver's own child and is not watched.
        target = ray_address(address)
        head = HeadWatch(target if check_address(target) else None, output_dir, report, lost_after=HEAD_LOST_SECONDS)

        def start(shape: str) -> None:
            head.check(wait=True)  # Ray blocks a worker's start while the GCS is gone
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
                head.check()
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
                            head.check(wait=True)  # a worker lost with the head is no reason to retry
                            note(events, runs[item.job.key[0]], _retry_message(runs[item.job.key[0]], item, worker.where, exc))
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
        except HeadLost:  # the workers went with the head (or end with this driver); Ray cannot be asked
            raise
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
