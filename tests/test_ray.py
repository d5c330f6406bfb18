"""``--executor ray`` on a real two-node Ray cluster on this machine (head + a second node, 1 CPU each).

The cluster binds 127.0.0.1 and free ports, runs without token authentication, and is stopped at the
end of the module — exactly the processes it started, which the last check asserts are gone.

What is asserted: the default suite on Ray gives the same scores and byte-identical samples files as in
this process; a worker killed mid-run is retried and nothing is lost; past the retry bound it is one
failed run while the others are written; a node lacking a plugin distribution fails the bench before
anything is submitted, naming the node and the distribution; Ctrl-C keeps what was written; a retry and
fewer shards than asked are each told in one line; a resource no node has is a one-line error, not a wait;
the bench's SIGTERM handler survives ``ray.init``.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("ray")
pytest.importorskip("llmos_hub_nano")
pytest.importorskip("llmos_hub_pytorch")

from llmos_hub import UsageError, load_plugins, load_record  # noqa: E402
from llmos_hub.bench import make_plan, run_bench  # noqa: E402
from llmos_hub.bench._ray import check_resources, parse_ray_options, task_resources  # noqa: E402
from llmos_hub.cli import main  # noqa: E402

from ._fakedist import add_to_path, make_dist  # noqa: E402
from ._raycluster import LocalCluster  # noqa: E402

#: Examples per task, batch size, seed: three mixed-length batches per task (so three real shards),
#: small enough for 2 shared cores.
LIMIT, BATCH, SEED = 9, 3, 1


def _plan(host, **kw):
    return make_plan(host, limit=LIMIT, batch_size=BATCH, seed=SEED, **kw)


@pytest.fixture(scope="module")
def cluster():
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_AUTH_MODE", "disabled")  # this process is the driver of a throw-away cluster
    with LocalCluster(nodes=2, cpus_per_node=1) as running:
        yield running
        ours = running.pids()
    mp.undo()
    assert ours, "the cluster's processes were not found"
    assert not [pid for pid in ours if Path(f"/proc/{pid}").exists() and _state(pid) != "Z"], "Ray processes left running"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


@pytest.fixture(scope="module")
def host():
    return load_plugins()


@pytest.fixture(scope="module")
def reference(host, tmp_path_factory):
    """The default suite in this process: what every Ray run must reproduce."""
    out = tmp_path_factory.mktemp("in-process")
    report = run_bench(_plan(host), host=host, output_dir=out, command="test", log_samples=True)
    assert report.ok, report.failed
    return {record.task: (path, record) for path, record in report.written}


def _requests(host, task):
    """How many requests the run makes (one per example, or one per choice)."""
    from llmos_hub.bench._execute import requests_of

    run = _plan(host, tasks=[task]).runs[0]
    return sum(len(r) for r in requests_of(run.spec, run.task, run.data)[1])


def _by_task(report):
    return {record.task: (path, record) for path, record in report.written}


def _assert_same(reference, got):
    """Scores equal (not close) and the samples files byte-identical."""
    for task, (path, record) in got.items():
        ref_path, ref = reference[task]
        assert record.config_hash == ref.config_hash, task
        assert record.scores == ref.scores, task
        assert (path.parent / record.data["samples_file"]).read_bytes() == (ref_path.parent / ref.data["samples_file"]).read_bytes(), task


class _Killer:
    """Bench events that SIGKILL the worker running ``task`` the first time it starts (a dying worker)."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.killed: list[int] = []
        self.attempts: list[int] = []
        self.sweeps: list[tuple[int, int, int, float]] = []
        self.notes: list[str] = []

    def note(self, run, message):
        self.notes.append(message)

    def sweep(self, runs_done, runs_total, examples_done, examples_per_second):
        self.sweeps.append((runs_done, runs_total, examples_done, examples_per_second))

    def running(self, run, where):
        if run.task.name == self.task:
            self.attempts.append(where["attempt"])
            if not self.killed:
                self.killed.append(where["pid"])
                os.kill(where["pid"], signal.SIGKILL)

    def started(self, run, total): ...
    def advanced(self, run, done, total): ...
    def finished(self, run, record, path): ...
    def skipped(self, run, path): ...
    def failed(self, run, message): ...


@pytest.mark.slow
def test_default_suite_on_ray_equals_in_process(cluster, reference, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "ray"
    result = CliRunner().invoke(main, ["bench", "--executor", "ray", "--ray-address", cluster.address, "--limit", str(LIMIT),
                                       "--batch-size", str(BATCH), "--seed", str(SEED), "--log-samples", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    records = {load_record(p).task: (p, load_record(p)) for p in sorted(out.glob("*.json"))}
    assert sorted(records) == sorted(reference)
    _assert_same(reference, records)
    placements = [r.data["environment"]["executor"] for _, r in records.values()]
    assert {p["name"] for p in placements} == {"ray"}
    assert len({p["node_id"] for p in placements}) == 2, "both nodes of the cluster did work"
    assert all(p["attempt"] == 1 and p["pid"] != os.getpid() for p in placements)
    # Each run holds one CPU and Ray says so in OMP_NUM_THREADS; the backend uses that many threads,
    # not the node's cores - 1.
    details = [r.data["backend"]["details"] for _, r in records.values()]
    assert all((d["threads"], d["threads_source"]) == (1, "$OMP_NUM_THREADS") for d in details), details
    # Apart from where it ran, a Ray record is an in-process record.
    _, lm = records["lm-sample"]
    assert set(lm.data) == set(reference["lm-sample"][1].data)


@pytest.mark.slow
def test_killed_worker_is_retried_and_nothing_is_lost(cluster, host, reference, tmp_path):
    killer = _Killer("lm-sample")
    report = run_bench(_plan(host), host=host, output_dir=tmp_path, command="test", log_samples=True,
                       executor="ray", ray_address=cluster.address, events=killer)
    assert killer.killed, "the lm-sample worker was never seen running"
    assert report.ok, report.failed
    got = _by_task(report)
    assert sorted(got) == sorted(reference)
    _assert_same(reference, got)
    assert got["lm-sample"][1].data["environment"]["executor"]["attempt"] == 2
    assert killer.attempts == [1, 2]
    # The driver said so, in one line naming the run, the attempt and why.
    retried = [n for n in killer.notes if n.startswith("retrying nano:lm-sample")]
    assert len(retried) == 1 and "on another worker (attempt 2): its worker" in retried[0] and "\n" not in retried[0]
    assert f"(pid {killer.killed[0]}) died" in retried[0]
    # The one progress display was fed by the workers: runs done of all, examples and examples/s.
    assert {total for _, total, _, _ in killer.sweeps} == {len(reference)}
    done = [d for d, _, _, _ in killer.sweeps]
    assert done == sorted(done) and done[-1] >= len(reference) - 1
    assert max(e for _, _, e, _ in killer.sweeps) > 0 and max(r for _, _, _, r in killer.sweeps) > 0
    assert len(list(tmp_path.glob("*.json"))) == len(reference)


@pytest.mark.slow
def test_worker_dying_past_the_retries_is_one_failed_run(cluster, host, reference, tmp_path):
    killer = _Killer("lm-sample")
    report = run_bench(_plan(host), host=host, output_dir=tmp_path, command="test", log_samples=True,
                       executor="ray", ray_address=cluster.address, ray_options={"max_retries": 0}, events=killer)
    assert [spec.task for spec, _ in report.failed] == ["lm-sample"]
    message = report.failed[0][1]
    assert "worker died" in message and "max_retries=0" in message and "\n" not in message
    got = _by_task(report)
    assert sorted(got) == sorted(set(reference) - {"lm-sample"})
    _assert_same(reference, got)
    assert sorted(p.name.split("__")[0] for p in tmp_path.glob("*.json")) == sorted(got)


@pytest.mark.slow
def test_three_shards_on_ray_equal_no_sharding(cluster, host, reference, tmp_path):
    report = run_bench(_plan(host), host=host, output_dir=tmp_path, command="test", log_samples=True,
                       executor="ray", ray_address=cluster.address, shards=3)
    assert report.ok, report.failed
    got = _by_task(report)
    assert sorted(got) == sorted(reference)
    _assert_same(reference, got)
    nodes = set()
    for task, (_, record) in got.items():
        split = record.data["speed"]["shards"]
        assert len(split) == 3 and sum(s["requests"] for s in split) == _requests(host, task), task
        assert all(s["attempt"] == 1 and s["node_id"] for s in split), task
        nodes |= {s["node_id"] for s in split}
        assert record.data["environment"]["executor"] == {"name": "ray", "shards": 3}
        # The aggregate is over the wall time the shards took together, not their sum.
        assert record.data["speed"]["eval_seconds"] > 0
    assert len(nodes) == 2, "shards ran on both nodes"


@pytest.mark.slow
def test_fewer_shards_than_asked_are_noted(cluster, host, tmp_path):
    """9 examples in batches of 3 are 3 batches: --shards 5 gives 3 shards, and the driver says why."""
    events = _Killer("none")
    plan = _plan(host, tasks=["classification-sample"])
    report = run_bench(plan, host=host, output_dir=tmp_path, command="test", executor="ray",
                       ray_address=cluster.address, shards=5, events=events)
    assert report.ok, report.failed
    assert len(report.written[0][1].data["speed"]["shards"]) == 3
    assert events.notes == [f"shards {plan.runs[0].spec.label}: 3, not 5: its 9 example(s) make only 3 batch(es) at "
                            "--batch-size 3 and a shard is at least one batch; lower --batch-size for more shards"]


@pytest.mark.slow
def test_sigterm_handler_survives_connecting(cluster):
    """``ray.init`` installs Ray's SIGTERM handler (a crash dump, exit 1); the bench's own is put back."""
    from llmos_hub.bench._ray import connected

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with connected(cluster.address):
            assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("option", "message"),
    [
        ('resources={"big": 1}', "lower --ray-option resources or add a node with 'big'"),
        ("memory=1000000000000", "1000 GB memory"),
        ("accelerator_type=H100", "change --ray-option accelerator_type (this cluster has: none)"),
    ],
)
def test_a_resource_no_node_has_is_one_line_not_a_hang(cluster, option, message, tmp_path):
    """Before, only CPU and GPU were compared and these waited for ever for a node."""
    result = CliRunner().invoke(main, ["bench", "--executor", "ray", "--ray-address", cluster.address, "--ray-option", option,
                                       "--task", "classification-sample", "--limit", "2", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "error: no node can hold nano:classification-sample" in result.output and message in result.output
    assert "Traceback" not in result.output and not list(tmp_path.glob("*.json"))


@pytest.mark.slow
def test_ctrl_c_cancels_the_rest_and_keeps_written_records(cluster, host, tmp_path):
    class Interrupt(_Killer):
        def finished(self, run, record, path):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_bench(_plan(host), host=host, output_dir=tmp_path, command="test", executor="ray",
                  ray_address=cluster.address, events=Interrupt("none"))
    kept = list(tmp_path.glob("*.json"))
    assert len(kept) == 1
    load_record(kept[0])
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_a_node_without_a_plugin_fails_before_anything_is_submitted(cluster, tmp_path, monkeypatch):
    """The driver has a plugin distribution the cluster's nodes lack: one line, naming node and distribution."""
    from ._fakedist import GOOD_PLUGIN

    add_to_path(monkeypatch, make_dist(tmp_path / "site", "llmos-hub-fake-echo", "fake_echo", GOOD_PLUGIN))
    host = load_plugins()
    assert host.get("backends", "echo")
    plan = make_plan(host, tasks=["classification-sample"], backends=["echo"], limit=2)
    with pytest.raises(UsageError) as caught:
        run_bench(plan, host=host, output_dir=tmp_path / "out", command="test", executor="ray", ray_address=cluster.address)
    message = str(caught.value)
    assert "lacks the distribution llmos-hub-fake-echo" in message and "backend echo" in message
    assert message.startswith("node ") and "\n" not in message
    assert not list((tmp_path / "out").glob("*.json"))


# -- without a cluster ----------------------------------------------------------------------------------


def test_resume_skips_finished_runs_before_connecting(host, tmp_path, monkeypatch):
    """Every record exists: nothing is submitted, not even a connection to Ray is made."""
    import llmos_hub.bench._ray as ray_executor

    plan = make_plan(host, tasks=["classification-sample"], limit=4)
    first = run_bench(plan, host=host, output_dir=tmp_path, command="test")
    assert first.ok

    def refuse(address):
        raise AssertionError("resume connected to Ray although every record exists")

    monkeypatch.setattr(ray_executor, "connected", refuse)
    again = run_bench(plan, host=host, output_dir=tmp_path, command="test", executor="ray", resume=True)
    assert [p for p, _ in again.reused] == [p for p, _ in first.written] and not again.written


def test_resources_follow_threads_and_device_and_overrides(host):
    spec = make_plan(host, tasks=["lm-sample"], limit=2, backend_options={"threads": 3}).runs[0].spec
    assert task_resources(spec) == {"num_cpus": 3.0, "num_gpus": 0.0}
    from dataclasses import replace

    cuda = replace(spec, device="cuda")
    assert task_resources(cuda)["num_gpus"] == 1.0
    assert task_resources(spec, parse_ray_options(["num_cpus=2", "max_retries=5"])) == {"num_cpus": 2, "num_gpus": 0.0}


def test_a_cuda_run_for_the_cluster_is_planned_without_a_gpu_here_and_checked_against_the_cluster(host, monkeypatch):
    # The driver needs no GPU (docs/ray.md): its own devices are not asked; the cluster's resources are.
    from llmos_hub.bench import _checks

    monkeypatch.setattr(_checks, "_cuda_devices", lambda: 0)  # a driver without a GPU, on any machine
    with pytest.raises(UsageError, match="no CUDA device is available here"):
        make_plan(host, tasks=["lm-sample"], limit=2, device="cuda")
    plan = make_plan(host, tasks=["lm-sample"], limit=2, device="cuda", executor="ray")
    assert [run.spec.device for run in plan.runs] == ["cuda"]
    assert task_resources(plan.runs[0].spec)["num_gpus"] == 1.0
    cpu_only = [{"Alive": True, "Resources": {"CPU": 2.0}, "NodeManagerAddress": "127.0.0.1"}]
    with pytest.raises(UsageError, match="GPU"):
        check_resources(plan.runs, {}, cpu_only)
    # --device auto with a CUDA-only dtype: the workers resolve auto, so the driver's CPU refuses nothing
    with pytest.raises(UsageError, match="runs dtype float16 on CUDA only"):
        make_plan(host, tasks=["lm-sample"], limit=2, device="auto", dtype="float16")
    auto = make_plan(host, tasks=["lm-sample"], limit=2, device="auto", dtype="float16", executor="ray")
    assert [(run.spec.device, run.spec.dtype) for run in auto.runs] == [("auto", "float16")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ray-option", "num_cpus=2"], "--ray-address and --ray-option need --executor ray"),
        (["--executor", "ray", "--ray-option", "cpus=2"], "unknown --ray-option 'cpus'"),
        (["--executor", "ray", "--ray-option", "num_cpus=-1"], "num_cpus must be a number >= 0"),
        (["--executor", "ray", "--ray-option", "num_cpus"], "is not KEY=VALUE"),
    ],
)
def test_bad_ray_options_are_one_line_errors(args, message, tmp_path):
    result = CliRunner().invoke(main, ["bench", *args, "--output-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not list(tmp_path.glob("*.json"))


def test_record_placement_is_schema_valid(host, tmp_path):
    """A Ray record is the in-process record plus ``environment.executor``; the schema accepts it."""
    from llmos_hub._result import ResultRecord
    from llmos_hub.bench._ray import with_placement

    report = run_bench(make_plan(host, tasks=["classification-sample"], limit=4), host=host, output_dir=tmp_path, command="test")
    _, record = report.written[0]
    where = {"name": "ray", "node_id": "n", "node_ip": "127.0.0.1", "hostname": "h", "worker_id": "w", "pid": 1, "attempt": 1}
    placed = ResultRecord(with_placement(record.data, where))
    assert placed.data["environment"]["executor"] == where
    assert json.loads(placed.to_json())["scores"] == record.scores


# -- the worker pool: one process per CPU slot, longest run first, warm workers kept by a connected driver --


class _Timeline(_Killer):
    """Bench events noting the order runs start in, on which worker, and how many are in flight at once."""

    def __init__(self) -> None:
        super().__init__("none")
        self.order: list[str] = []
        self.pids: list[int] = []
        self.in_flight = 0
        self.most_in_flight = 0

    def running(self, run, where):
        self.order.append(run.task.name)
        self.pids.append(where["pid"])
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def finished(self, run, record, path):
        self.in_flight -= 1


def _costs(host):
    from llmos_hub.bench._execute import requests_of
    from llmos_hub.bench._raypool import estimated_cost

    return {run.task.name: estimated_cost(requests_of(run.spec, run.task, run.data)[1]) for run in _plan(host).runs}


@pytest.mark.slow
def test_two_workers_run_the_longest_runs_first_one_run_each_at_a_time(cluster, host, reference, tmp_path):
    """Two 1-CPU nodes: two worker processes for the whole sweep, never more than two runs at once (a run
    that waits must not lend its CPU to a third), and the two costliest runs handed out first, one each."""
    timeline = _Timeline()
    report = run_bench(_plan(host), host=host, output_dir=tmp_path, command="test", log_samples=True,
                       executor="ray", ray_address=cluster.address, events=timeline)
    assert report.ok, report.failed
    _assert_same(reference, _by_task(report))
    assert timeline.most_in_flight <= 2
    assert len(set(timeline.pids)) == 2
    costs = _costs(host)
    first, second = sorted(costs, key=lambda task: -costs[task])[:2]
    pid = dict(zip(timeline.order, timeline.pids))
    assert pid[first] != pid[second], "the two longest runs went to different workers"


@pytest.mark.slow
def test_a_connected_driver_keeps_its_warm_workers_between_benches(cluster, host, reference, tmp_path):
    import ray

    from llmos_hub.bench._raypool import release_workers

    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    try:
        pids = []
        for n in range(2):
            report = run_bench(_plan(host), host=host, output_dir=tmp_path / str(n), command="test", log_samples=True,
                               executor="ray", ray_address=cluster.address)
            assert report.ok, report.failed
            _assert_same(reference, _by_task(report))
            pids.append({r.data["environment"]["executor"]["pid"] for _, r in report.written})
        assert len(pids[0]) == 2 and pids[1] == pids[0], "the second bench ran on the first one's workers"
        assert release_workers() == 2
    finally:
        ray.shutdown()


def test_estimated_cost_orders_the_bundled_tasks(host):
    """Longer prompts and longer generations cost more; only used to order the work."""
    costs = _costs(host)
    assert costs["lm-sample"] == max(costs.values()) and all(c > 0 for c in costs.values())


def test_slots_count_what_fits_on_each_node():
    from llmos_hub.bench._raypool import slots

    nodes = [{"Resources": {"CPU": 4.0, "GPU": 1.0}}, {"Resources": {"CPU": 1.0}}]
    assert slots({"num_cpus": 1.0, "num_gpus": 0.0}, nodes) == 5
    assert slots({"num_cpus": 2.0, "num_gpus": 0.0}, nodes) == 2
    assert slots({"num_cpus": 1.0, "num_gpus": 1.0}, nodes) == 1
    assert slots({"num_cpus": 1.0, "num_gpus": 0.0, "resources": {"tpu": 1}}, nodes) == 0
