"""A real two-node Ray cluster on this machine, for tests: a head and a second node joining it.

Every port is chosen free on 127.0.0.1 and every node is told ``--node-ip-address=127.0.0.1`` (Ray may
still *report* the machine's interface address; nothing here ever points at another host). Token
authentication is turned off for this throw-away cluster (``RAY_AUTH_MODE=disabled``).

Each node is a ``ray start --block`` process in a session of its own: stopping the cluster sends it
SIGTERM, which makes Ray stop the daemons and workers it started; anything of ours still alive after
that (processes descended from our ``ray start`` processes, or naming our temp dir on their command
line) is killed by PID. Nothing else on the machine is touched — other people's Ray clusters share it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_ports(head: bool) -> list[str]:
    names = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port"]
    if head:
        names += ["--dashboard-port"]  # (no Ray Client server: it needs ray[client])
    return [f"{name}={free_port()}" for name in names]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _descendants(pids: list[int]) -> set[int]:
    tree = _children()
    found: set[int] = set()
    stack = list(pids)
    while stack:
        pid = stack.pop()
        for child in tree.get(pid, []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _mentioning(text: str) -> set[int]:
    """PIDs whose command line contains ``text`` (our unique temp dir)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        found.add(int(entry))
            except OSError:
                pass
    return found - {os.getpid()}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class LocalCluster:
    """``with LocalCluster(nodes=2) as cluster: ... cluster.address``: a head plus ``nodes - 1`` joiners."""

    def __init__(self, *, nodes: int = 2, cpus_per_node: int = 1, env: dict[str, str] | None = None) -> None:
        self.nodes = nodes
        self.cpus = cpus_per_node
        self.root = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths are limited
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # Without thread variables of the caller's shell: Ray sets OMP_NUM_THREADS only where it is unset.
        inherited = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "LLMOS_HUB_THREADS")}
        self.env = {**inherited, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
        self.procs: list[subprocess.Popen[bytes]] = []

    def _start(self, args: list[str], env: dict[str, str], log: str) -> None:
        with open(self.root / log, "wb") as out:
            self.procs.append(subprocess.Popen(
                [RAY, "start", "--block", "--node-ip-address=127.0.0.1", f"--num-cpus={self.cpus}",
                 "--object-store-memory=80000000", "--disable-usage-stats", *args],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            ))

    def start(self, timeout: float = 600.0) -> LocalCluster:
        deadline = time.monotonic() + timeout
        self._head(deadline)
        for i in range(1, self.nodes):
            self._join(i, deadline)
        self.wait_for_nodes(self.nodes, max(30.0, deadline - time.monotonic()))
        return self

    def _head(self, deadline: float, attempts: int = 5) -> None:
        """Start the head (again on new ports if Ray's fixed start-up wait ran out on a loaded machine)."""
        for attempt in range(attempts):
            self.port = free_port()
            self.address = f"127.0.0.1:{self.port}"
            log = f"head.{attempt}.log"
            self._start(["--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.root}",
                         *_node_ports(head=True)], self.env, log)
            proc = self.procs[-1]
            try:
                self._wait_for_log(log, deadline, proc)
                return
            except RuntimeError:
                if proc.poll() is None or attempt == attempts - 1:
                    raise
                self.procs.remove(proc)
                self._kill_strays()

    def _join(self, i: int, deadline: float, attempts: int = 5) -> None:
        """Start joining node ``i``; on a loaded machine Ray's fixed 30 s raylet start-up wait can run out,
        so a node that gave up is cleaned away (its own processes, by PID) and started again."""
        for attempt in range(attempts):
            log = f"node{i}.{attempt}.log"
            self._start([f"--address={self.address}", *_node_ports(head=False)], self.env, log)
            proc = self.procs[-1]
            try:
                self._wait_for_log(log, deadline, proc)
                return
            except RuntimeError:
                if proc.poll() is None or attempt == attempts - 1:
                    raise
                self.procs.remove(proc)
                self._kill_strays()

    def _wait_for_log(self, name: str, deadline: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        """``ray start --block`` prints "Ray runtime started." once its node is up."""
        while time.monotonic() < deadline:
            if "Ray runtime started" in (self.root / name).read_text(errors="replace"):
                return
            for each in [proc] if proc is not None else self.procs:
                if each.poll() is not None:
                    raise RuntimeError(f"ray start exited with {each.returncode}: {self.logs()}")
            time.sleep(0.5)
        raise RuntimeError(f"{name}: the node did not start in time: {self.logs()}")

    def _kill_strays(self) -> None:
        """Processes of this cluster (naming our temp dir) no live ``ray start`` of ours owns: a failed node's."""
        live = [p.pid for p in self.procs if p.poll() is None]
        keep = set(live) | _descendants(live)
        for pid in _mentioning(str(self.root)) - keep:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait_for_nodes(self, count: int, timeout: float) -> None:
        """Poll (in a subprocess, so this test process's Ray state stays clean) until ``count`` nodes are alive."""
        code = (
            "import ray,sys\n"
            f"ray.init(address={self.address!r}, log_to_driver=False, logging_level='ERROR')\n"
            "print(sum(1 for n in ray.nodes() if n['Alive']))\n"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"ray start exited with {proc.returncode}: {self.logs()}")
            try:
                out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=120)
            except subprocess.TimeoutExpired:
                continue
            if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
                return
            time.sleep(2)
        raise RuntimeError(f"cluster did not reach {count} nodes in {timeout:.0f}s: {self.logs()}")

    def logs(self) -> str:
        return " | ".join(p.read_text(errors="replace")[-600:] for p in sorted(self.root.glob("*.log")))

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM our ``ray start`` processes, then SIGKILL whatever of ours survived."""
        ours = {p.pid for p in self.procs} | _descendants([p.pid for p in self.procs]) | _mentioning(str(self.root))
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        ours |= _mentioning(str(self.root))
        while time.monotonic() < deadline and any(_alive(pid) for pid in ours):
            time.sleep(0.5)
        for pid in ours:
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.procs.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def pids(self) -> set[int]:
        """Live processes of this cluster (for tests asserting that all are gone)."""
        return {pid for pid in _descendants([p.pid for p in self.procs]) | _mentioning(str(self.root)) if _alive(pid)}

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
