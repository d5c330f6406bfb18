"""How many CPU threads a backend should use on a shared machine: 1 against 2, quiet and under contention.

Issue 14 measured classification collapsing from 511 to 62.8 examples/s when PyTorch ran 2 threads on a
loaded 2-core machine: OpenMP (and ONNX Runtime's thread pool) synchronise at every parallel region, so
one descheduled worker stalls the others. This script measures it instead of guessing, in one process:

- workloads: greedy decoding of the bundled ``nano:lm-sample`` (batch 8) and classification with
  ``nano:classification-sample`` (batch 8); with ``--real gpt2-small,t5-small`` also greedy decoding
  (batch 1 and 8) of those random-weight geometries (built here as ``benchmarks/generate.py`` does);
- contenders: ``pytorch``, ``onnxruntime`` (its idle workers sleep, this project's default) and
  ``onnxruntime spinning`` (ONNX Runtime's own default, ``session.intra_op.allow_spinning = 1``);
- thread counts ``--threads`` (default 1,2): PyTorch's is switched with ``torch.set_num_threads``
  between calls, ONNX Runtime gets one prepared runner per count;
- conditions: ``quiet`` (nothing else started by this script) and ``contended`` (``--busy`` processes
  spinning on the CPU at normal priority, started and stopped here), interleaved per round.

Every (backend, workload, threads) contender keeps its best of ``--rounds``; the ratios printed are
2 threads over 1 in each condition. The defaults are what the result argues for: PyTorch keeps
``cores - 1`` (``llmos_hub.decoding.default_threads``; its OpenMP workers spin and cannot be told
otherwise once running), ONNX Runtime takes every core with sleeping workers for models of at least
ten million parameters (``llmos_hub_onnxruntime.threads``). The JSON records the machine and load
averages.

Usage::

    python benchmarks/threads.py [--threads 1,2] [--rounds 3] [--busy 1] [--real gpt2-small,t5-small]
                                 [--backends pytorch,onnxruntime,...] [--out benchmarks/out/threads.json]
"""

from __future__ import annotations

import argparse
import atexit
import json
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from llmos_hub import load_plugins
from llmos_hub.decoding import default_threads, greedy_search, pad_left

OUT = Path(__file__).resolve().parent / "out" / "threads.json"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # generate.py builds the real geometries


def _spin() -> None:  # pragma: no cover - runs in the busy child processes
    while True:
        pass


def _texts(host, task: str, n: int) -> list[str]:
    examples = host.get("tasks", task).load(split="test").examples
    return [str(example.input)[:400] for example in examples[:n]]


#: Contender name -> (backend, extra options). ONNX Runtime's workers sleep when idle by default
#: (``llmos_hub_onnxruntime.threads``); the "spinning" contender is ONNX Runtime's own default.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "pytorch": ("pytorch", {}),
    "onnxruntime": ("onnxruntime", {}),
    "onnxruntime spinning": ("onnxruntime", {"session_config": {"session.intra_op.allow_spinning": "1"}}),
}


def _decoder(runner, batch, new_tokens: int) -> Callable[[], Any]:
    def decode() -> Any:
        with torch.inference_mode():
            return greedy_search(runner, batch, max_new_tokens=new_tokens, eos_id=None)

    return decode


def _workloads(host, variant: str, threads: int, texts: dict[str, list[str]],
               real: dict[str, Path]) -> dict[str, tuple[Callable[[], Any], int]]:
    """Workload name -> (call, units per call) for one contender at ``threads``."""
    backend, extra = VARIANTS[variant]
    options = {"threads": threads, **extra}
    lm = host.get("models", "nano").load("lm-sample")
    classifier = host.get("models", "nano").load("classification-sample")
    lm_runner = host.get("backends", backend).prepare(lm, options=options)
    cls_runner = host.get("backends", backend).prepare(classifier, options=options)
    batch = pad_left([lm.tokenizer.encode(t)[:64] for t in texts["lm"]], lm.tokenizer.pad_id)

    def classify() -> Any:
        with torch.inference_mode():
            return cls_runner.classify(texts["classification"])

    found = {"nano greedy batch 8 (tokens/s)": (_decoder(lm_runner, batch, 32), 8 * 32),
             "nano classify batch 8 (examples/s)": (classify, len(texts["classification"]))}
    for name, folder in real.items():  # random-weight real geometries (benchmarks/generate.py builds them)
        from generate import _prompts

        model = host.get("models", "hf").load(str(folder))
        runner = host.get("backends", backend).prepare(model, options=options)
        for size in (1, 8):
            prompts = pad_left(_prompts(model.tokenizer, size, 32), model.tokenizer.pad_id)
            found[f"{name} greedy batch {size} (tokens/s)"] = (_decoder(runner, prompts, 16), size * 16)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--busy", type=int, default=1, help="spinning processes in the contended condition")
    parser.add_argument("--backends", default=",".join(VARIANTS), help=f"of: {', '.join(VARIANTS)}")
    parser.add_argument("--real", default="", help="also these random-weight geometries, e.g. gpt2-small,t5-small")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    counts = [int(t) for t in args.threads.split(",")]
    host = load_plugins()
    texts = {"lm": _texts(host, "lm-sample", 8), "classification": _texts(host, "classification-sample", 8)}
    build = Path(tempfile.mkdtemp(prefix="llmos-threads-"))
    atexit.register(shutil.rmtree, build, True)  # also when a contender fails
    real = {}
    for name in filter(None, args.real.split(",")):
        from generate import _build

        real[name] = _build(name, build / name, 2048)
    contenders: dict[tuple[str, str, int], tuple[Callable[[], Any], int]] = {}
    for variant in args.backends.split(","):
        for threads in counts:
            for workload, (fn, units) in _workloads(host, variant, threads, texts, real).items():
                contenders[(variant, workload, threads)] = (fn, units)
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
    print(f"{'backend':21s} {'workload':36s} {'condition':10s} " + " ".join(f"{t:>3d} thr" for t in counts) + "   ratio")
    for (backend, workload, _t) in sorted({(b, w, 0) for b, w, _ in contenders}):
        for condition in ("quiet", "contended"):
            rates = [best[condition][(backend, workload, t)] for t in counts]
            ratio = rates[-1] / rates[0]
            rows.append({"backend": backend, "workload": workload, "condition": condition,
                         "rates": dict(zip(map(str, counts), rates)), "ratio_last_over_first": ratio})
            print(f"{backend:21s} {workload:36s} {condition:10s} " + " ".join(f"{r:7.0f}" for r in rates) + f"   {ratio:.2f}x")
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
