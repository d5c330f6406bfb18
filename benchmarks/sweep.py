"""The same 8-run sweep in this process and on a 2-worker Ray cluster, side by side in one run.

The sweep is four bundled tasks (language modelling, classification, translation, summarization, each
on its nano model, pytorch backend, 1 thread per run, all of each task's examples) at two seeds, so 8
planned runs with 8 configuration hashes. The in-process contender runs them one after another; the Ray
contender runs them on a cluster started here on 127.0.0.1 — a head and a second node, 1 CPU each, so
two runs at a time — through ``run_bench(..., executor="ray")``. Cluster start-up is reported apart (a
real cluster is already running when a sweep is submitted).

Both contenders are one long-lived driver, as an embedding program or a notebook is: the in-process
contender keeps its imports (torch, ``evaluate``) and models between rounds; the Ray contender connects
to the cluster once (timed, inside its first round) and keeps its two warm workers between rounds (see
``llmos_hub/bench/_raypool.py``). So round 1 is cold against cold (in-process imports torch and
``evaluate`` once; each Ray worker imports them too, in parallel) and later rounds warm against warm. The
contenders are interleaved over ``--rounds``; each keeps its best round and round 1 is printed apart.
Both must produce the same scores for every configuration, which is checked. Prints the speed-ups and
writes ``benchmarks/out/sweep.json`` with a timeline of every Ray run (worker, start, end) for diagnosis.
The target on our 2-core machines is >= 1.6x.

``--limit 16`` makes the runs tiny: the sweep is then mostly start-up and Ray loses.

Usage::

    python benchmarks/sweep.py [--limit N] [--rounds 3] [--out benchmarks/out/sweep.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llmos_hub import load_plugins
from llmos_hub.bench import make_plan, run_bench

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "sweep.json"
TARGET = 1.6
SEEDS = (0, 1)
TASKS = ("lm-sample", "classification-sample", "translation-sample", "summarization-sample")

sys.path.insert(0, str(HERE.parent / "tests"))
from _raycluster import LocalCluster  # noqa: E402  (the test suite's two-node cluster on 127.0.0.1)


def _plans(host: Any, limit: int | None) -> Any:
    """One plan holding the 8 runs: the four tasks at each seed, 1 thread per run."""
    plans = [make_plan(host, tasks=TASKS, limit=limit, seed=seed, backend_options={"threads": 1}) for seed in SEEDS]
    plan = plans[0]
    plan.runs.extend(run for other in plans[1:] for run in other.runs)
    return plan


class _Timeline:
    """Bench events that note when each run started and finished, and where (for the JSON)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.runs: list[dict[str, Any]] = []
        self._open: dict[str, dict[str, Any]] = {}

    def _now(self) -> float:
        return round(time.perf_counter() - self.t0, 3)

    def running(self, run: Any, where: dict[str, Any]) -> None:
        self._open[run.spec.hash] = {"run": run.spec.label, "seed": run.spec.seed, "pid": where.get("pid"),
                                     "attempt": where.get("attempt"), "start": self._now()}

    def started(self, run: Any, total: int) -> None:
        self._open[run.spec.hash] = {"run": run.spec.label, "seed": run.spec.seed, "pid": os.getpid(), "start": self._now()}

    def finished(self, run: Any, record: Any, path: Any) -> None:
        entry = self._open.pop(run.spec.hash, {"run": run.spec.label})
        entry.update(end=self._now(), eval_seconds=record.data["speed"]["eval_seconds"])
        self.runs.append(entry)

    def advanced(self, *args: Any) -> None: ...
    def skipped(self, *args: Any) -> None: ...
    def failed(self, *args: Any) -> None: ...
    def sweep(self, *args: Any) -> None: ...

    def per_worker(self) -> dict[str, dict[str, float]]:
        """Each worker's busy seconds (first start to record, summed) and when its last run ended."""
        out: dict[str, dict[str, float]] = {}
        for entry in self.runs:
            worker = out.setdefault(str(entry.get("pid")), {"runs": 0, "busy_seconds": 0.0, "last_end": 0.0})
            worker["runs"] += 1
            worker["busy_seconds"] = round(worker["busy_seconds"] + entry["end"] - entry["start"], 3)
            worker["last_end"] = max(worker["last_end"], entry["end"])
        return out


def _sweep(host: Any, plan: Any, **executor: Any) -> tuple[float, dict[str, Any], _Timeline]:
    timeline = _Timeline()
    with tempfile.TemporaryDirectory(prefix="sweep-") as out:
        start = time.perf_counter()
        report = run_bench(plan, host=host, output_dir=out, command="benchmarks/sweep.py", events=timeline, **executor)
        seconds = time.perf_counter() - start
    if not report.ok:
        raise SystemExit(f"a run failed: {report.failed}")
    scores = {record.config_hash: record.scores for _, record in report.written}
    return seconds, scores, timeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="examples per task (seeded subsample; default: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throw-away cluster on this machine
    host = load_plugins()
    plan = _plans(host, args.limit)
    assert len(plan.runs) == 8, len(plan.runs)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    cluster = LocalCluster(nodes=2, cpus_per_node=1)
    timelines: list[dict[str, Any]] = []
    try:
        cluster.start()
        startup = time.perf_counter() - t0
        print(f"cluster of 2 nodes x 1 CPU up in {startup:.1f}s at {cluster.address}", flush=True)
        import ray

        times: dict[str, list[float]] = {"in-process": [], "ray": []}
        reference: dict[str, Any] | None = None
        connect = 0.0
        for round_ in range(args.rounds):
            for name in ("in-process", "ray"):
                executor: dict[str, Any] = {}
                if name == "ray":
                    executor = {"executor": "ray", "ray_address": cluster.address}
                    if not ray.is_initialized():  # the driver connects once; its first round pays for it
                        start = time.perf_counter()
                        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
                        connect = time.perf_counter() - start
                seconds, scores, timeline = _sweep(host, plan, **executor)
                if name == "ray" and round_ == 0:
                    seconds += connect
                if reference is None:
                    reference = scores
                elif scores != reference:
                    raise SystemExit(f"{name} gave different scores than the first sweep")
                times[name].append(seconds)
                timelines.append({"round": round_ + 1, "contender": name, "seconds": seconds,
                                  "runs": timeline.runs, "workers": timeline.per_worker()})
                busy = ", ".join(f"pid {pid}: {w['runs']} runs busy {w['busy_seconds']:.1f}s"
                                 for pid, w in timeline.per_worker().items())
                print(f"round {round_ + 1}  {name:10s} {seconds:7.1f}s   ({busy})", flush=True)
    finally:
        try:
            import ray

            ray.shutdown()
        finally:
            cluster.stop()
    best = {name: min(values) for name, values in times.items()}
    speedup = best["in-process"] / best["ray"]
    cold = times["in-process"][0] / times["ray"][0]
    print(f"\n8 runs, {args.limit or 'all'} examples each, load average {os.getloadavg()[0]:.2f}: "
          f"round 1 (cold) in-process {times['in-process'][0]:.1f}s, Ray {times['ray'][0]:.1f}s "
          f"(connect {connect:.2f}s included) -> {cold:.2f}x")
    rounds = [a / b for a, b in zip(times["in-process"], times["ray"])]
    print("per round (in-process / Ray): " + ", ".join(f"{r:.2f}x" for r in rounds))
    print(f"best of {args.rounds}: in-process {best['in-process']:.1f}s, "
          f"Ray 2 workers {best['ray']:.1f}s  ->  speed-up {speedup:.2f}x (target {TARGET}x)")
    result = {
        "benchmark": "sweep",
        "runs": len(plan.runs),
        "limit": args.limit,
        "rounds": args.rounds,
        "seconds": times,
        "best_seconds": best,
        "speedup": speedup,
        "cold_speedup": cold,
        "round_speedups": rounds,
        "ray_connect_seconds": connect,
        "target": TARGET,
        "meets_target": speedup >= TARGET,
        "cluster": {"nodes": 2, "cpus_per_node": 1, "startup_seconds": startup},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_before": load_before, "load_average": os.getloadavg()},
        "timelines": timelines,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
