"""How many CPU threads a backend should use on a shared machine: 1 against 2, quiet and under contention.

Issue 14 measured classification collapsing from 511 to 62.8 examples/s when PyTorch ran 2 threads on a
loaded 2-core machine: OpenMP (and ONNX Runtime's thread pool) synchronise at every parallel region, so
one descheduled worker stalls the others. This script measures it instead of guessing, in one process:

- workloads: greedy decoding of the bundled ``nano:lm-sample`` (batch 8) and classification with
  ``nano:classification-sample`` (batch 8), on ``pytorch`` and ``onnxruntime``;
- thread counts ``--threads`` (default 1,2): PyTorch's is switched with ``torch.set_num_threads``
  between calls, ONNX Runtime gets one prepared runner per count;
- conditions: ``quiet`` (nothing else started by this script) and ``contended`` (``--busy`` processes
  spinning on the CPU at normal priority, started and stopped here), interleaved per round.

Every (backend, workload, threads) contender keeps its best of ``--rounds``; the ratios printed are
2 threads over 1 in each condition. The default thread count (``llmos_hub.decoding.default_threads``:
cores - 1) is what the result argues for; the JSON records the machine and load averages.

Usage::

    python benchmarks/threads.py [--threads 1,2] [--rounds 3] [--busy 1] [--out benchmarks/out/threads.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from llmos_hub import load_plugins
from llmos_hub.decoding import default_threads, greedy_search, pad_left

OUT = Path(__file__).resolve().parent / "out" / "threads.json"


def _spin() -> None:  # pragma: no cover - runs in the busy child processes
    while True:
        pass


def _texts(host, task: str, n: int) -> list[str]:
    examples = host.get("tasks", task).load(split="test").examples
    return [str(example.input)[:400] for example in examples[:n]]


def _workloads(host, backend: str, threads: int, texts: dict[str, list[str]]) -> dict[str, Callable[[], Any]]:
    lm = host.get("models", "nano").load("lm-sample")
    classifier = host.get("models", "nano").load("classification-sample")
    options = {"threads": threads}
    lm_runner = host.get("backends", backend).prepare(lm, options=options)
    cls_runner = host.get("backends", backend).prepare(classifier, options=options)
    prompts = [lm.tokenizer.encode(t)[:64] for t in texts["lm"]]
    batch = pad_left(prompts, lm.tokenizer.pad_id)

    def decode() -> Any:
        with torch.inference_mode():
            return greedy_search(lm_runner, batch, max_new_tokens=32, eos_id=None)

    def classify() -> Any:
        with torch.inference_mode():
            return cls_runner.classify(texts["classification"])

    return {"greedy batch 8 (tokens/s)": decode, "classify batch 8 (examples/s)": classify}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--busy", type=int, default=1, help="spinning processes in the contended condition")
    parser.add_argument("--backends", default="pytorch,onnxruntime")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    counts = [int(t) for t in args.threads.split(",")]
    host = load_plugins()
    texts = {"lm": _texts(host, "lm-sample", 8), "classification": _texts(host, "classification-sample", 8)}
    contenders: dict[tuple[str, str, int], tuple[Callable[[], Any], int]] = {}
    for backend in args.backends.split(","):
        for threads in counts:
            for workload, fn in _workloads(host, backend, threads, texts).items():
                units = 8 * 32 if workload.startswith("greedy") else len(texts["classification"])
                contenders[(backend, workload, threads)] = (fn, units)
    for fn, _ in contenders.values():  # warm-up (and ONNX export, once)
        torch.set_num_threads(1)
        fn()
    best: dict[str, dict[tuple[str, str, int], float]] = {"quiet": {}, "contended": {}}
    loads: dict[str, list[float]] = {"quiet": [], "contended": []}
    for _ in range(args.rounds):
        for condition in ("quiet", "contended"):
            busy = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy if condition == "contended" else 0)]
            for p in busy:
                p.start()
            try:
                time.sleep(0.5 if busy else 0)
                for key, (fn, units) in contenders.items():
                    torch.set_num_threads(key[2])  # pytorch's count; an onnxruntime runner has its own
                    start = time.perf_counter()
                    fn()
                    rate = units / (time.perf_counter() - start)
                    best[condition][key] = max(best[condition].get(key, 0.0), rate)
                loads[condition].append(os.getloadavg()[0])
            finally:
                for p in busy:
                    p.terminate()
                    p.join()
    torch.set_num_threads(default_threads())
    rows = []
    print(f"{'backend':12s} {'workload':32s} {'condition':10s} " + " ".join(f"{t:>3d} thr" for t in counts) + "   ratio")
    for (backend, workload, _t) in sorted({(b, w, 0) for b, w, _ in contenders}):
        for condition in ("quiet", "contended"):
            rates = [best[condition][(backend, workload, t)] for t in counts]
            ratio = rates[-1] / rates[0]
            rows.append({"backend": backend, "workload": workload, "condition": condition,
                         "rates": dict(zip(map(str, counts), rates)), "ratio_last_over_first": ratio})
            print(f"{backend:12s} {workload:32s} {condition:10s} " + " ".join(f"{r:7.0f}" for r in rates) + f"   {ratio:.2f}x")
    result = {
        "benchmark": "threads",
        "threads": counts,
        "rounds": args.rounds,
        "busy_processes": args.busy,
        "rows": rows,
        "default_threads": default_threads(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": loads},
        "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"default threads here: {default_threads()}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
