"""``--executor ray`` failing early and in one line instead of hanging or dumping Ray's crash output.

Without a cluster: a malformed or unreachable ``--ray-address`` (a closed port on 127.0.0.1, a listener
that never answers, one that is not a GCS), Ray option values Ray would reject at submission, a resource
request no node can hold, and the watch that notices a lost head. With a cluster of its own (slow): the
head's GCS killed mid-bench ends the bench with the tool's error line, the records written kept.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("ray")

from llmos_hub import UsageError  # noqa: E402
from llmos_hub.bench._ray import HeadLost, HeadWatch, check_address, check_reachable, check_resources, parse_ray_options  # noqa: E402
from llmos_hub.bench._raypool import demand, slots  # noqa: E402
from llmos_hub.cli import main  # noqa: E402

from ._raycluster import LocalCluster, free_port  # noqa: E402

#: A generous bound for a command that must end on its own (a hang guard, never a timing assertion).
HANG_GUARD_SECONDS = 240


def _bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``llmos-hub bench ARGS`` in a subprocess (a hang in Ray's C++ cannot stop the test run)."""
    code = "import sys; from llmos_hub.cli import main; main(sys.argv[1:], prog_name='llmos-hub')"
    return subprocess.run([sys.executable, "-c", code, "bench", *args], capture_output=True, text=True,
                          timeout=HANG_GUARD_SECONDS, env={**os.environ, "RAY_AUTH_MODE": "disabled", **(env or {})})


# -- the address ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1", "--ray-address 127.0.0.1 has no port"),
        ("127.0.0.1:99999", "the port must be a number from 1 to 65535, not '99999'"),
        ("127.0.0.1:0", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:abc", "not 'abc'"),
    ],
)
def test_a_malformed_address_is_a_usage_error(address, message):
    with pytest.raises(UsageError) as caught:
        check_address(address)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_well_formed_addresses_pass():
    assert check_address("127.0.0.1:6379") == ("127.0.0.1", 6379)
    assert check_address("[::1]:6379") == ("::1", 6379)
    assert check_address(None) is None and check_address("auto") is None and check_address("ray://h:10001") is None


def test_a_closed_port_is_one_line_and_exit_2_not_a_hang(tmp_path):
    """Before: ``ray.init`` retried 127.0.0.1:9 for ever. Now: the GCS is tried first, with a deadline."""
    port = free_port()  # bound and released: nothing listens there
    result = _bench("--executor", "ray", "--ray-address", f"127.0.0.1:{port}", "--task", "classification-sample",
                    "--limit", "2", "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: cannot reach the Ray cluster at 127.0.0.1:{port} (connection refused"), lines
    assert "ray start --head" in lines[-1] and "drop --ray-address" in lines[-1]
    assert "Traceback" not in result.stderr and "gcs_client" not in result.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))


def test_an_out_of_range_port_fails_before_any_plan(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--executor", "ray", "--ray-address", "127.0.0.1:99999",
                                       "--task", "classification-sample", "--limit", "2", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "the port must be a number from 1 to 65535" in result.output and "Traceback" not in result.output


def test_an_address_from_ray_address_is_named_as_coming_from_it(tmp_path, monkeypatch):
    # The user never passed --ray-address: the line names the variable they set, and how to drop it.
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:99999")
    result = CliRunner().invoke(main, ["bench", "--executor", "ray", "--task", "classification-sample", "--limit", "2",
                                       "--output-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "error: RAY_ADDRESS=127.0.0.1:99999: the port must be a number from 1 to 65535" in result.output
    assert "--ray-address" not in result.output
    port = free_port()
    with pytest.raises(UsageError) as caught:
        check_reachable(f"127.0.0.1:{port}", "127.0.0.1", port, source="RAY_ADDRESS")
    assert "check RAY_ADDRESS (" in str(caught.value) and "or unset RAY_ADDRESS for a local one" in str(caught.value)


def _listener(reply: bytes | None) -> tuple[socket.socket, int]:
    """A socket on 127.0.0.1 that accepts and then says ``reply`` (``None``: stays silent)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        if reply is not None:
            conn.sendall(reply)
        time.sleep(2)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


@pytest.mark.parametrize(("answer", "timeout", "reason"), [
    (None, 0.2, "no answer within 0.2 s"),  # a listener that never answers hits the deadline
    (b"SSH-2.0-OpenSSH_9.6\r\n", 2, "answers, but not as a Ray head (GCS)"),  # not a GCS: named
], ids=["silent", "not-a-gcs"])
def test_a_listener_that_is_not_a_head_is_named(answer, timeout, reason):
    server, port = _listener(answer)
    try:
        with pytest.raises(UsageError) as caught:
            check_reachable(f"127.0.0.1:{port}", "127.0.0.1", port, timeout=timeout)
    finally:
        server.close()
    assert reason in str(caught.value)


def test_a_grpc_like_listener_passes():
    server, port = _listener(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # an HTTP/2 SETTINGS frame, as the GCS sends
    try:
        check_reachable(f"127.0.0.1:{port}", "127.0.0.1", port, timeout=2)
    finally:
        server.close()


# -- Ray option values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("scheduling_strategy=PACK", "scheduling_strategy must be one of DEFAULT, SPREAD, not 'PACK'"),
        ("accelerator_type=7", "accelerator_type must be a name such as H100"),
        ('resources={"CPU": 1}', "resources must not name CPU; use --ray-option num_cpus"),
        ('resources={"big": -1}', "resources big must be a number >= 0"),
        ("resources={}", "resources must be a JSON object of numbers"),
        ("num_gpus=1.5", "num_gpus above 1 must be a whole number"),
        ("num_cpus=0.00001", "num_cpus must be 0 or at least 0.0001"),
    ],
)
def test_ray_option_values_are_checked_before_anything_starts(option, message):
    with pytest.raises(UsageError) as caught:
        parse_ray_options([option])
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_scheduling_strategy_is_a_cli_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--executor", "ray", "--ray-option", "scheduling_strategy=PACK",
                                       "--output-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "scheduling_strategy must be one of DEFAULT, SPREAD" in result.output and "Traceback" not in result.output


def test_good_option_values_are_kept():
    assert parse_ray_options(["scheduling_strategy=spread", "accelerator_type=H100", 'resources={"big": 0.5}']) == {
        "scheduling_strategy": "SPREAD", "accelerator_type": "H100", "resources": {"big": 0.5}}


# -- resources no node can hold -------------------------------------------------------------------------


class _Run:
    """Just what :func:`check_resources` reads of a planned run."""

    class spec:  # noqa: N801
        label = "nano:lm-sample · lm-sample · pytorch"
        backend_options: dict[str, object] = {}
        device = "cpu"


NODES = [
    {"NodeID": "a" * 20, "NodeManagerAddress": "10.0.0.7", "Resources": {"CPU": 4.0, "memory": 8e9, "big": 1.0}},
    {"NodeID": "b" * 20, "NodeManagerAddress": "10.0.0.8",
     "Resources": {"CPU": 8.0, "GPU": 1.0, "memory": 16e9, "accelerator_type:A100": 1.0}},
]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"resources": {"huge": 1}}, "lower --ray-option resources or add a node with 'huge'"),
        ({"memory": 1e12}, "it asks for 1 CPU, 1000 GB memory"),
        ({"accelerator_type": "H100"}, "change --ray-option accelerator_type (this cluster has: A100)"),
        ({"resources": {"big": 1}, "num_gpus": 1}, "the closest node"),  # big on one node, the GPU on the other
        ({"num_cpus": 16}, "lower --ray-option num_cpus/num_gpus"),
    ],
)
def test_a_request_no_node_can_hold_names_the_resource(options, message):
    with pytest.raises(UsageError) as caught:
        check_resources([_Run()], parse_ray_options(options), NODES)
    assert message in str(caught.value) and str(caught.value).startswith("no node can hold nano:lm-sample")


@pytest.mark.parametrize("options", [{}, {"resources": {"big": 1}}, {"memory": 4e9}, {"accelerator_type": "A100"},
                                     {"num_gpus": 1, "memory": 10e9}])
def test_a_request_some_node_can_hold_passes(options):
    check_resources([_Run()], parse_ray_options(options), NODES)


def test_slots_count_the_accelerator_type():
    assert demand({"num_cpus": 1, "accelerator_type": "A100"}) == {"CPU": 1.0, "accelerator_type:A100": 0.001}
    assert slots({"num_cpus": 1, "accelerator_type": "A100"}, NODES) == 8
    assert slots({"num_cpus": 1, "accelerator_type": "H100"}, NODES) == 0


# -- a lost head ----------------------------------------------------------------------------------------


class _Report:
    written = [("a", "record")]


def test_the_head_watch_stops_at_its_deadline(tmp_path):
    """A head that stops answering ends the bench after ``lost_after`` s (40 by default, 20 before Ray ends the driver)."""
    watch = HeadWatch(f"127.0.0.1:{free_port()}", tmp_path, _Report(), lost_after=0.3)
    with pytest.raises(HeadLost) as caught:
        watch.check(wait=True)
    message = str(caught.value)
    assert "has not answered for 0.3 s" in message and "the 1 record(s) written are kept" in message
    assert "rerun with --resume" in message and "\n" not in message


def test_the_head_watch_passes_while_the_head_answers(tmp_path):
    server, port = _listener(None)
    try:
        HeadWatch(f"127.0.0.1:{port}", tmp_path, _Report(), lost_after=0.3).check(wait=True)
    finally:
        server.close()
    HeadWatch(None, tmp_path, _Report()).check(wait=True)  # nothing to watch


#: The CLI with a short head deadline (a test must not wait the default 40 s), far shorter than the work
#: left when the head is killed (runs still going on live workers may otherwise finish, rightly, first).
_SHORT_DEADLINE = (
    "import sys, llmos_hub.bench._ray as r; r.HEAD_LOST_SECONDS = 1.0; r.HEAD_CHECK_SECONDS = 0.2\n"
    "from llmos_hub.cli import main; main(sys.argv[1:], prog_name='llmos-hub')\n"
)


@pytest.mark.slow
def test_a_killed_head_ends_the_bench_with_one_line_and_keeps_the_records(tmp_path):
    """kill -9 of the GCS mid-bench: Ray would end the driver after 60 s from C++, with no word of what was
    kept; the bench says so itself, exit 1, the records already written on disk."""
    pytest.importorskip("llmos_hub_nano")
    out = tmp_path / "out"
    with LocalCluster(nodes=1, cpus_per_node=1) as cluster:
        log = tmp_path / "bench.log"
        with open(log, "w") as stderr:
            bench = subprocess.Popen(
                [sys.executable, "-c", _SHORT_DEADLINE, "bench", "--executor", "ray", "--ray-address", cluster.address,
                 "--task", "lm-sample", "--task", "classification-sample", "--task", "translation-sample",
                 "--output-dir", str(out)],
                stdout=subprocess.DEVNULL, stderr=stderr, env={**cluster.env}, cwd=tmp_path,
            )
            try:
                deadline = time.monotonic() + HANG_GUARD_SECONDS
                while "done " not in log.read_text() and bench.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert bench.poll() is None, f"the bench ended before the head was killed: {log.read_text()}"
                gcs = [pid for pid in cluster.pids() if b"gcs_server" in Path(f"/proc/{pid}/cmdline").read_bytes()]
                assert gcs, "the cluster's GCS was not found"
                os.kill(gcs[0], signal.SIGKILL)
                bench.wait(timeout=HANG_GUARD_SECONDS)
            finally:
                if bench.poll() is None:
                    bench.kill()
                    bench.wait()
    text = log.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert bench.returncode == 1, text
    assert lines[-1].startswith("error: lost the Ray cluster: its head") and "rerun with --resume" in lines[-1], text
    written = list(out.glob("*.json"))
    assert f"the {len(written)} record(s) written are kept in {out}" in lines[-1]
    assert written and "Traceback" not in text


def test_a_failed_ray_init_names_where_its_address_came_from(monkeypatch):
    # ray:// and auto addresses are not probed up front; when ray.init refuses one taken from RAY_ADDRESS,
    # the line names RAY_ADDRESS, not a --ray-address the user never passed.
    import ray

    from llmos_hub.bench._ray import connected

    def refuse(*args, **kwargs):
        raise ConnectionError("no head at that address")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setenv("RAY_ADDRESS", "ray://127.0.0.1:10001")
    with pytest.raises(UsageError) as caught:
        with connected(None):
            pass
    message = str(caught.value)
    assert message.startswith("cannot connect to the Ray cluster at ray://127.0.0.1:10001: ConnectionError")
    assert "check RAY_ADDRESS (" in message and "unset RAY_ADDRESS for a local runtime" in message
    assert "--ray-address" not in message
