"""The same 8-run sweep in this process and on a 2-worker Ray cluster, side by side in one run.

The sweep is four bundled tasks (language modelling, classification, translation, summarization, each
on its nano model, pytorch backend, 1 thread per run) at two seeds, so 8 planned runs with 8
configuration hashes. The in-process contender runs them one
after another; the Ray contender runs them on a cluster started here on 127.0.0.1 — a head and a second
node, 1 CPU each, so two runs at a time — through ``run_bench(..., executor="ray")``, connection included.
Cluster start-up is reported apart (a real cluster is already running when a sweep is submitted).

The contenders are interleaved over ``--rounds`` and each keeps its best round (timings on a shared CPU
move between runs). Both must produce the same scores for every configuration, which is checked. Prints
the speed-up and writes ``benchmarks/out/sweep.json``. The target on our 2-core machines is >= 1.6x.

What the Ray contender pays that the in-process one does not: every sweep is a new Ray job, so each
worker process starts cold (imports torch, loads the plugins and its models) — in-process pays that only
in its first round, so best-of-rounds favours in-process. Runs must be long enough for that to amortise:
the default is the full data of each task (no ``--limit``); with ``--limit 16`` the sweep is mostly
start-up and Ray loses.

Usage::

    python benchmarks/sweep.py [--limit N] [--rounds 1] [--out benchmarks/out/sweep.json]
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


def _sweep(host: Any, plan: Any, **executor: Any) -> tuple[float, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="sweep-") as out:
        start = time.perf_counter()
        report = run_bench(plan, host=host, output_dir=out, command="benchmarks/sweep.py", **executor)
        seconds = time.perf_counter() - start
    if not report.ok:
        raise SystemExit(f"a run failed: {report.failed}")
    scores = {record.config_hash: record.scores for _, record in report.written}
    return seconds, scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="examples per task (seeded subsample; default: all)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throw-away cluster on this machine
    host = load_plugins()
    plan = _plans(host, args.limit)
    assert len(plan.runs) == 8, len(plan.runs)
    t0 = time.perf_counter()
    cluster = LocalCluster(nodes=2, cpus_per_node=1)
    try:
        cluster.start()
        startup = time.perf_counter() - t0
        print(f"cluster of 2 nodes x 1 CPU up in {startup:.1f}s at {cluster.address}", flush=True)
        times: dict[str, list[float]] = {"in-process": [], "ray": []}
        reference: dict[str, Any] | None = None
        for round_ in range(args.rounds):
            for name, executor in (("in-process", {}), ("ray", {"executor": "ray", "ray_address": cluster.address})):
                seconds, scores = _sweep(host, plan, **executor)
                if reference is None:
                    reference = scores
                elif scores != reference:
                    raise SystemExit(f"{name} gave different scores than the first sweep")
                times[name].append(seconds)
                print(f"round {round_ + 1}  {name:10s} {seconds:7.1f}s", flush=True)
    finally:
        cluster.stop()
    best = {name: min(values) for name, values in times.items()}
    speedup = best["in-process"] / best["ray"]
    print(f"\n8 runs, {args.limit or 'all'} examples each: in-process {best['in-process']:.1f}s, "
          f"Ray 2 workers {best['ray']:.1f}s  ->  speed-up {speedup:.2f}x (target {TARGET}x)")
    result = {
        "benchmark": "sweep",
        "runs": len(plan.runs),
        "limit": args.limit,
        "rounds": args.rounds,
        "seconds": times,
        "best_seconds": best,
        "speedup": speedup,
        "target": TARGET,
        "meets_target": speedup >= TARGET,
        "cluster": {"nodes": 2, "cpus_per_node": 1, "startup_seconds": startup},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
