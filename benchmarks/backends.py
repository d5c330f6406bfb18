"""``pytorch``, ``onnxruntime`` and ``ctranslate2`` on the same models and inputs, side by side in one run.

Measured on the CPU with the same thread count for both backends:

- greedy decode tokens/s at batch 1 and batch 8, KV cache in both, through the shared engine
  (``greedy_search`` with EOS ignored, so both backends generate exactly the same number of tokens);
- classification examples/s at batch 1;
- rolling log-likelihood tokens/s (lm-evaluation-harness windows, batches of 8 texts);
- the ONNX export: cold (empty cache folder) against a cache hit.

The contenders are interleaved over several rounds and each keeps its best round, since timings on a
shared CPU move between runs. ``onnxruntime-int8`` (dynamic quantization) runs as a third contender
unless ``--no-int8``. Prints a table with the ratios against ``pytorch`` and writes
``benchmarks/out/backends.json``.

``ctranslate2`` reads transformers checkpoints, not nano ones (it refuses them; the reason is in the
report), so it competes on a second set of workloads: GPT-2-small and T5-small *geometry* models with
random weights built offline (``benchmarks/_geometry.py``), where all three backends (and their int8
variants) run greedy decoding at batch 1 and 8 (exactly ``--hf-new-tokens`` tokens, EOS ignored), and
scoring (GPT-2: rolling log-likelihood; T5: log-likelihood of a German target given its English
source). Ratios are printed against ``pytorch`` and ``onnxruntime``. ``--no-hf`` skips this part.

Usage::

    python benchmarks/backends.py [--lm nano:lm-sample] [--classifier nano:classification-sample]
                                  [--threads 2] [--rounds 3] [--prompt-tokens 32] [--new-tokens 64]
                                  [--hf-models gpt2-small,t5-small] [--hf-new-tokens 32] [--no-hf]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmos_hub import load_plugins
from llmos_hub.decoding import greedy_search, pad_left

OUT = Path(__file__).resolve().parent / "out" / "backends.json"
#: onnxruntime / pytorch throughput that issue 7 asks for on the CPU.
TARGETS = {"greedy_batch1": 2.0, "greedy_batch8": 1.3, "classify_batch1": 1.5}


def _load(host, ref: str):
    family, _, name = ref.partition(":")
    return host.get("models", family).load(name)


def _texts(host, task: str, split: str = "test") -> list[str]:
    return [ex.input for ex in host.get("tasks", task).load(split=split).examples]


def _prompts(model, texts: list[str], n: int, length: int) -> list[list[int]]:
    """``n`` prompts of exactly ``length`` tokens cut from real text."""
    stream: list[int] = []
    for text in texts:
        stream += model.tokenizer.encode(text)
        if len(stream) >= n * length:
            break
    if len(stream) < n * length:
        raise SystemExit(f"not enough text for {n} prompts of {length} tokens")
    return [stream[i * length : (i + 1) * length] for i in range(n)]


def _best(contenders: dict[str, Callable[[], Any]], rounds: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Best wall time of each contender over ``rounds`` interleaved rounds (after one warm-up)."""
    best: dict[str, float] = {}
    outputs: dict[str, Any] = {}
    for fn in contenders.values():
        fn()
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            outputs[name] = fn()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    return best, outputs


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lm", default="nano:lm-sample")
    parser.add_argument("--classifier", default="nano:classification-sample")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--classify-examples", type=int, default=64)
    parser.add_argument("--rolling-texts", type=int, default=32)
    parser.add_argument("--exporter", default="dynamo", choices=["dynamo", "torchscript"])
    parser.add_argument("--no-int8", action="store_true", help="skip the dynamic-int8 onnxruntime contender")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--hf-models", default="gpt2-small,t5-small", help="geometry models for the three-way contest")
    parser.add_argument("--hf-prompts", type=int, default=8)
    parser.add_argument("--hf-new-tokens", type=int, default=32)
    parser.add_argument("--hf-rounds", type=int, default=2)
    parser.add_argument("--hf-dir", type=Path, default=Path(tempfile.gettempdir()) / "llmos-hub-bench-geometry",
                        help="where the random geometry checkpoints are built (kept between runs)")
    parser.add_argument("--no-hf", action="store_true", help="skip the ctranslate2 contest on the geometry models")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    if load_before > max(0.5, (os.cpu_count() or 1) - args.threads):
        print(f"warning: load average {load_before:.1f} on {os.cpu_count()} cores: other work competes for the CPU; "
              "threaded kernels (PyTorch's OpenMP above all) stall under contention, so figures are unreliable; "
              "rerun on an idle machine or with --threads 1", file=sys.stderr)
    host = load_plugins()
    torch_backend = host.get("backends", "pytorch")
    ort_backend = host.get("backends", "onnxruntime")
    lm = _load(host, args.lm)
    classifier = _load(host, args.classifier)

    # -- export: cold (fresh cache folder) vs cache hit; pytorch's prepare for scale --------------
    export: dict[str, dict[str, float]] = {}
    runners: dict[str, dict[str, Any]] = {"lm": {}, "classifier": {}}
    with tempfile.TemporaryDirectory(prefix="llmos-bench-onnx-") as cache:
        ort_options = {"threads": args.threads, "exporter": args.exporter, "cache_dir": cache}
        for kind, model in (("lm", lm), ("classifier", classifier)):
            cold, runner = _timed(lambda m=model: ort_backend.prepare(m, options=ort_options))
            hit, again = _timed(lambda m=model: ort_backend.prepare(m, options=ort_options))
            assert not runner.describe()["export"]["cache_hit"] and again.describe()["export"]["cache_hit"]
            torch_seconds, torch_runner = _timed(lambda m=model: torch_backend.prepare(m, options={"threads": args.threads}))
            export[kind] = {"onnx_cold_s": cold, "onnx_cache_hit_s": hit, "pytorch_prepare_s": torch_seconds}
            runners[kind] = {"pytorch": torch_runner, "onnxruntime": again}
            if not args.no_int8:
                seconds, int8 = _timed(lambda m=model: ort_backend.prepare(m, dtype="int8", options=ort_options))
                export[kind]["onnx_int8_cold_s"] = seconds
                runners[kind]["onnxruntime-int8"] = int8

        # -- inputs: real text from the bundled tasks' test splits ---------------------------------
        lm_texts = _texts(host, "lm-sample")
        prompts = _prompts(lm, lm_texts, args.prompts, args.prompt_tokens)
        pad = lm.tokenizer.pad_id
        singles = [pad_left([p], pad) for p in prompts]
        eights = [pad_left(prompts[i : i + 8], pad) for i in range(0, len(prompts), 8)]
        n_new = args.new_tokens
        class_texts = (_texts(host, "classification-sample") * 8)[: args.classify_examples]
        rolling_texts = lm_texts[: args.rolling_texts]

        results: dict[str, dict[str, float]] = {}
        same_tokens: dict[str, bool] = {}
        for metric, make in (
            ("greedy_batch1", lambda r: lambda: [greedy_search(r, b, max_new_tokens=n_new, eos_id=None)[0] for b in singles]),
            ("greedy_batch8", lambda r: lambda: [t for b in eights for t in greedy_search(r, b, max_new_tokens=n_new, eos_id=None)]),
            ("classify_batch1", lambda r: lambda: [r.classify([t])[0] for t in class_texts]),
            ("rolling_loglikelihood", lambda r: lambda: [ll for i in range(0, len(rolling_texts), 8) for ll in r.loglikelihood_rolling(rolling_texts[i : i + 8])]),
        ):
            kind = "classifier" if metric.startswith("classify") else "lm"
            with torch.inference_mode():
                best, outputs = _best({name: make(r) for name, r in runners[kind].items()}, args.rounds)
            if metric.startswith("greedy"):
                work = len(prompts) * n_new
                same_tokens[metric] = outputs["pytorch"] == outputs["onnxruntime"]
            elif metric.startswith("classify"):
                work = len(class_texts)
            else:
                work = sum(ll.num_tokens for ll in outputs["pytorch"])
            for name, seconds in best.items():
                results.setdefault(name, {})[metric] = work / seconds

    ratios = {
        name: {metric: value / results["pytorch"][metric] for metric, value in values.items()}
        for name, values in results.items()
        if name != "pytorch"
    }
    ct2_refusals = _ctranslate2_refusals(host, {args.lm: lm, args.classifier: classifier})
    hf_report = None if args.no_hf else _hf_contest(host, args)
    met = {metric: ratios["onnxruntime"][metric] >= target for metric, target in TARGETS.items()}
    ort_facts = runners["lm"]["onnxruntime"].describe()
    report = {
        "benchmark": "backends",
        "command": "python benchmarks/backends.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "models": {
            "lm": {"ref": args.lm, "weights_sha256": lm.provenance.weights_sha256, "num_parameters": lm.provenance.num_parameters},
            "classifier": {"ref": args.classifier, "weights_sha256": classifier.provenance.weights_sha256, "num_parameters": classifier.provenance.num_parameters},
        },
        "device": "cpu",
        "cpu": ort_facts.get("device_name"),
        "threads": args.threads,
        "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "versions": {"python": platform.python_version(), **torch_backend.versions(), **ort_backend.versions()},
        "settings": {
            "prompts": len(prompts),
            "prompt_tokens": args.prompt_tokens,
            "new_tokens": n_new,
            "classify_examples": len(class_texts),
            "rolling_texts": len(rolling_texts),
            "rounds": args.rounds,
            "exporter": args.exporter,
        },
        "units": {
            "greedy_batch1": "tokens/s",
            "greedy_batch8": "tokens/s",
            "classify_batch1": "examples/s",
            "rolling_loglikelihood": "scored tokens/s",
        },
        "throughput": results,
        "ratios_vs_pytorch": ratios,
        "targets": TARGETS,
        "targets_met": met,
        "same_greedy_tokens": same_tokens,
        "export_seconds": export,
        "onnxruntime": {k: ort_facts[k] for k in ("execution_provider", "graph_optimization", "io_binding", "exporter", "opset")},
        "ctranslate2_on_nano": ct2_refusals,
        "hf_geometry": hf_report,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print(f"{args.lm} / {args.classifier}: {args.threads} threads, best of {args.rounds} rounds, cpu {report['cpu']}")
    names = list(results)
    print(f"  {'metric':24s}" + "".join(f"{n:>18s}" for n in names) + "   ratio ort/pt  target")
    for metric, unit in report["units"].items():
        row = "".join(f"{results[n][metric]:18.0f}" for n in names)
        ratio = ratios["onnxruntime"][metric]
        target = TARGETS.get(metric)
        verdict = "" if target is None else f"  >= {target}x {'ok' if met[metric] else 'MISSED'}"
        print(f"  {metric:24s}{row}   {ratio:6.2f}x{verdict}   ({unit})")
    for kind, seconds in export.items():
        print(f"  export {kind:10s} cold {seconds['onnx_cold_s']:.2f} s, cache hit {seconds['onnx_cache_hit_s']:.3f} s "
              f"(pytorch prepare {seconds['pytorch_prepare_s']:.3f} s)")
    print(f"  same greedy tokens (pytorch vs onnxruntime): {same_tokens}")
    for ref, reason in ct2_refusals.items():
        print(f"  ctranslate2 on {ref}: {reason}")
    print(f"wrote {args.out}")
    return 0


def _ctranslate2_refusals(host, models: dict[str, Any]) -> dict[str, str]:
    """Why ctranslate2 sits out the nano workloads (its check_model, before any load)."""
    from llmos_hub import ModelInfo

    try:
        backend = host.get("backends", "ctranslate2")
    except Exception as exc:  # noqa: BLE001 - the plugin is optional
        return {ref: f"not installed ({exc})" for ref in models}
    return {
        ref: backend.check_model(ModelInfo(capabilities=m.capabilities, artifacts=m.artifacts)) or "runs"
        for ref, m in models.items()
    }


def _greedy(runner, prompts: list[list[int]], n_new: int, pad: int) -> list[list[int]]:
    """Exactly ``n_new`` greedy tokens per prompt: CTranslate2's own search, or the shared engine."""
    if hasattr(runner, "greedy_ids"):
        return runner.greedy_ids(prompts, n_new, eos_id=None)
    return greedy_search(runner, pad_left(prompts, pad), max_new_tokens=n_new, eos_id=None)


def _hf_contest(host, args) -> dict[str, Any]:
    """pytorch / onnxruntime / ctranslate2 (+ int8) on random GPT-2-small and T5-small geometry models."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _geometry import save_geometry

    backends = {name: host.get("backends", name) for name in ("pytorch", "onnxruntime", "ctranslate2")}
    family = host.get("models", "hf")
    lm_texts = _texts(host, "lm-sample")
    pairs = [(ex.input, ex.target) for ex in host.get("tasks", "translation-sample").load(split="test").examples]
    report: dict[str, Any] = {"settings": {"prompts": args.hf_prompts, "prompt_tokens": args.prompt_tokens,
                                           "new_tokens": args.hf_new_tokens, "rounds": args.hf_rounds}, "models": {}}
    for name in [n for n in args.hf_models.split(",") if n]:
        folder = save_geometry(name, args.hf_dir / name)
        model = family.load(str(folder))
        seq2seq = name.startswith("t5")
        prepare: dict[str, float] = {}
        runners: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="llmos-bench-hf-") as cache:
            variants = [("pytorch", "pytorch", "float32", {}),
                        ("onnxruntime", "onnxruntime", "float32", {"exporter": args.exporter, "cache_dir": cache}),
                        ("ctranslate2", "ctranslate2", "float32", {"cache_dir": cache})]
            if not args.no_int8:
                variants += [("onnxruntime-int8", "onnxruntime", "int8", {"exporter": args.exporter, "cache_dir": cache}),
                             ("ctranslate2-int8", "ctranslate2", "int8", {"cache_dir": cache})]
            for label, backend, dtype, options in variants:
                seconds, runner = _timed(lambda b=backend, d=dtype, o=options: backends[b].prepare(
                    model, dtype=d, options={"threads": args.threads, **o}))
                prepare[label] = seconds
                runners[label] = runner
            prompts = _prompts(model, lm_texts, args.hf_prompts, args.prompt_tokens)
            pad = model.tokenizer.pad_id
            n_new = args.hf_new_tokens
            scoring = ("loglikelihood", lambda r: lambda: r.loglikelihood(pairs[: args.hf_prompts])) if seq2seq else \
                ("rolling_loglikelihood", lambda r: lambda: r.loglikelihood_rolling(lm_texts[: args.hf_prompts]))
            results: dict[str, dict[str, float]] = {}
            same: dict[str, dict[str, bool]] = {}
            for metric, make in (
                ("greedy_batch1", lambda r: lambda: [t for p in prompts for t in _greedy(r, [p], n_new, pad)]),
                ("greedy_batch8", lambda r: lambda: [t for i in range(0, len(prompts), 8) for t in _greedy(r, prompts[i:i + 8], n_new, pad)]),
                scoring,
            ):
                with torch.inference_mode():
                    best, outputs = _best({label: make(r) for label, r in runners.items()}, args.hf_rounds)
                if metric.startswith("greedy"):
                    work = len(prompts) * n_new
                    same[metric] = {label: outputs[label] == outputs["pytorch"] for label in outputs if label != "pytorch"}
                else:
                    work = sum(ll.num_tokens for ll in outputs["pytorch"])
                for label, seconds in best.items():
                    results.setdefault(label, {})[metric] = work / seconds
        report["models"][name] = {
            "num_parameters": model.provenance.num_parameters,
            "throughput": results,
            "ratios_vs_pytorch": {l: {m: v / results["pytorch"][m] for m, v in vals.items()} for l, vals in results.items()},
            "ratios_vs_onnxruntime": {l: {m: v / results["onnxruntime"][m] for m, v in vals.items()} for l, vals in results.items()},
            "same_greedy_tokens_as_pytorch": same,
            "prepare_seconds_cold": prepare,
            "torch_modules_built_by_ctranslate2": False if not model.modules_built else "built (pytorch/onnxruntime need them)",
        }
        for runner in runners.values():
            runner.close()
        _print_hf({"settings": report["settings"], "models": {name: report["models"][name]}})  # as each model ends
        sys.stdout.flush()
    report["versions"] = {**backends["ctranslate2"].versions()}
    return report


def _print_hf(report: dict[str, Any]) -> None:
    settings = report["settings"]
    print(f"geometry models (random weights): {settings['prompts']} prompts x {settings['prompt_tokens']} tokens, "
          f"{settings['new_tokens']} new tokens, best of {settings['rounds']} rounds")
    for name, data in report["models"].items():
        names = list(data["throughput"])
        print(f"  {name} ({data['num_parameters'] / 1e6:.0f} M parameters)")
        print(f"    {'metric':22s}" + "".join(f"{n:>18s}" for n in names))
        for metric in data["throughput"]["pytorch"]:
            print(f"    {metric:22s}" + "".join(f"{data['throughput'][n][metric]:18.1f}" for n in names))
            print(f"    {'  / pytorch':22s}" + "".join(f"{data['ratios_vs_pytorch'][n][metric]:17.2f}x" for n in names))
            print(f"    {'  / onnxruntime':22s}" + "".join(f"{data['ratios_vs_onnxruntime'][n][metric]:17.2f}x" for n in names))
        print("    prepare (cold) s: " + ", ".join(f"{n} {s:.1f}" for n, s in data["prepare_seconds_cold"].items()))
        print(f"    same greedy tokens as pytorch: {data['same_greedy_tokens_as_pytorch']}")


if __name__ == "__main__":
    raise SystemExit(main())
