"""Decoding speed of the shared engine on the nano LM, contenders side by side in one run.

Measures greedy tokens/s (batch 8, 128-token prompts, 64 new tokens, EOS ignored so every contender
does the same work):

- the engine with the KV cache vs the engine recomputing the whole sequence at every step;
- batch 8 vs batch 1 (8 prompts one after the other), both with the cache;
- the engine (``greedy_search`` over the ``pytorch`` runner) vs the plainest possible loop: the
  model's ``causal_lm`` module called by hand with the KV cache, no engine in between.

Timings on a shared CPU move between runs, so the contenders are interleaved over several rounds and
each keeps its best round. Prints a table and writes ``benchmarks/out/decode.json``.

Usage::

    python benchmarks/decode.py [--model nano:lm-sample] [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from llmos_hub import load_plugins
from llmos_hub.decoding import greedy_search, pad_left

OUT = Path(__file__).resolve().parent / "out" / "decode.json"
TARGETS = {"kv_cache_speedup": 3.0, "batch8_over_batch1": 3.0, "engine_overhead_max": 0.10}


def _prompts(model, n: int, length: int) -> list[list[int]]:
    """``n`` real prompts of exactly ``length`` tokens, cut from the lm-sample test split."""
    host = load_plugins()
    texts = [ex.input for ex in host.get("tasks", "lm-sample").load(split="test").examples]
    stream: list[int] = []
    for text in texts:
        stream += model.tokenizer.encode(text)
        if len(stream) >= n * length:
            break
    return [stream[i * length : (i + 1) * length] for i in range(n)]


def _plain_loop(module, ids: torch.Tensor, new_tokens: int, cache: torch.Tensor) -> list[list[int]]:
    """Greedy decoding written by hand over the calling convention: the baseline for overhead.

    ``cache`` is preallocated for the whole generation; each call writes its keys/values in place.
    """
    width = ids.shape[1]
    mask = torch.ones(ids.shape[0], cache.shape[4], dtype=torch.long)
    slots = torch.arange(cache.shape[4] + 1)
    logits, _ = module(ids, mask, cache, slots[:width], slots[width - 1 : width])
    token = logits[:, -1].argmax(-1, keepdim=True)
    out = [token]
    first = slots[:1]
    for step in range(new_tokens - 1):
        logits, _ = module(token, mask, cache, slots[width + step : width + step + 1], first)
        token = logits[:, -1].argmax(-1, keepdim=True)
        out.append(token)
    return torch.cat(out, dim=1).tolist()


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="nano:lm-sample")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    host = load_plugins()
    family_name, _, ref = args.model.partition(":")
    model = host.get("models", family_name).load(ref)
    backend = host.get("backends", "pytorch")
    cached = backend.prepare(model, device="cpu", dtype="float32")
    uncached = backend.prepare(model, device="cpu", dtype="float32", options={"use_cache": False})
    if args.prompt_tokens + args.new_tokens > model.max_length:
        print(f"note: {args.prompt_tokens}+{args.new_tokens} tokens exceed the context {model.max_length}; "
              "positions are clamped (speed is unaffected)", file=sys.stderr)

    prompts = _prompts(model, args.batch, args.prompt_tokens)
    batch = pad_left(prompts, model.tokenizer.pad_id)
    singles = [pad_left([p], model.tokenizer.pad_id) for p in prompts]
    module = cached.modules["causal_lm"]
    ids = torch.tensor(prompts)
    n = args.new_tokens
    generated = args.batch * n

    def engine(runner, b):
        return lambda: greedy_search(runner, b, max_new_tokens=n, eos_id=None)

    def empty(rows: int) -> torch.Tensor:
        layers, heads, head_dim = model.cache_geometry("causal_lm")
        return torch.zeros(layers, 2, rows, heads, args.prompt_tokens + n - 1, head_dim)

    contenders: dict[str, Callable[[], object]] = {
        "engine_kv_cache_batch8": engine(cached, batch),
        "engine_no_cache_batch8": engine(uncached, batch),
        "engine_kv_cache_batch1x8": lambda: [engine(cached, s)() for s in singles],
        "plain_loop_kv_cache_batch8": lambda: _plain_loop(module, ids, n, empty(args.batch)),
    }
    best: dict[str, float] = {}
    outputs: dict[str, object] = {}
    with torch.inference_mode():
        for fn in contenders.values():  # warm-up
            fn()
        for _ in range(args.rounds):
            for name, fn in contenders.items():
                seconds, result = _timed(fn)
                best[name] = min(best.get(name, float("inf")), seconds)
                outputs[name] = result
    # Every contender must have produced the same tokens, or the comparison means nothing.
    reference = outputs["engine_kv_cache_batch8"]
    same = {
        "no_cache": outputs["engine_no_cache_batch8"] == reference,
        "batch1": [o[0] for o in outputs["engine_kv_cache_batch1x8"]] == reference,
        "plain_loop": outputs["plain_loop_kv_cache_batch8"] == reference,
    }
    tps = {name: generated / seconds for name, seconds in best.items()}
    ratios = {
        "kv_cache_speedup": tps["engine_kv_cache_batch8"] / tps["engine_no_cache_batch8"],
        "batch8_over_batch1": tps["engine_kv_cache_batch8"] / tps["engine_kv_cache_batch1x8"],
        "engine_overhead": best["engine_kv_cache_batch8"] / best["plain_loop_kv_cache_batch8"] - 1.0,
    }
    met = {
        "kv_cache_speedup": ratios["kv_cache_speedup"] >= TARGETS["kv_cache_speedup"],
        "batch8_over_batch1": ratios["batch8_over_batch1"] >= TARGETS["batch8_over_batch1"],
        "engine_overhead": ratios["engine_overhead"] <= TARGETS["engine_overhead_max"],
    }
    report = {
        "benchmark": "decode",
        "command": "python benchmarks/decode.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": args.model,
        "weights_sha256": model.provenance.weights_sha256,
        "num_parameters": model.provenance.num_parameters,
        "device": "cpu",
        "cpu": cached.describe().get("device_name"),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "settings": {"batch": args.batch, "prompt_tokens": args.prompt_tokens, "new_tokens": n, "rounds": args.rounds},
        "seconds_best": best,
        "tokens_per_second": tps,
        "ratios": ratios,
        "targets": TARGETS,
        "targets_met": met,
        "same_tokens": same,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print(f"{args.model}: batch {args.batch}, {args.prompt_tokens}-token prompts, {n} new tokens, "
          f"{report['threads']} threads, best of {args.rounds}")
    for name, value in tps.items():
        print(f"  {name:30s} {value:9.0f} tokens/s  ({best[name] * 1000:.0f} ms)")
    print(f"  KV cache speed-up       {ratios['kv_cache_speedup']:.2f}x (target >= 3x)  {'ok' if met['kv_cache_speedup'] else 'MISSED'}")
    print(f"  batch 8 / batch 1       {ratios['batch8_over_batch1']:.2f}x (target >= 3x)  {'ok' if met['batch8_over_batch1'] else 'MISSED'}")
    print(f"  engine over plain loop  {ratios['engine_overhead'] * 100:+.1f}% (target <= 10%)  {'ok' if met['engine_overhead'] else 'MISSED'}")
    print(f"  same tokens: {same}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
