"""Which CPU matmul kernels decode fastest: the weight products of one GPT-2-small step, replayed alone.

A decoding step at batch ``M`` multiplies ``M`` rows by every weight matrix once: 48 products per
GPT-2-small step (12 layers x QKV, attention output, MLP in, MLP out; 85 M weights, 340 MB, far more
than any cache, so each step streams them from memory). This script replays exactly those products,
nothing else, with each kernel a backend can reach on the CPU, contenders interleaved, best of
``--rounds``:

- ``mkl_addmm``: ``torch.addmm`` on ``[in, out]`` weights (GPT-2's ``Conv1D``, what ``generate`` and
  the pytorch backend run; PyTorch's CPU BLAS is MKL);
- ``mkl_linear``: ``torch.nn.functional.linear`` on ``[out, in]`` weights (``nn.Linear``'s layout);
- ``onednn_packed``: oneDNN with weights packed once (the pytorch backend's ``prepack`` option);
- ``ort_mlas``: one ONNX Runtime graph of the 48 ``Gemm`` nodes (MLAS, weights prepacked by ORT).

It also prints the vector extensions the CPU reports and the code path MKL chose (``MKL_VERBOSE``):
on the AMD EPYC machines this project measures on (AVX2 and FMA, no AVX-512) MKL announces its generic
"Intel(R) Architecture processors" path rather than its AVX2 one, which is why its small-``M`` products
lag MLAS's here; ``generate`` and the pytorch backend run the same MKL products, so it bounds both
alike. Writes ``benchmarks/out/kernels.json``.

Usage::

    python benchmarks/kernels.py [--rows 1,8] [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

OUT = Path(__file__).resolve().parent / "out" / "kernels.json"
#: GPT-2-small's per-layer products, ``(in, out)``.
LAYER = ((768, 2304), (768, 768), (768, 3072), (3072, 768))


def ort_products_session(weights: list[np.ndarray], biases: list[np.ndarray | None], threads: int) -> Any:
    """One ONNX Runtime graph of independent ``Gemm`` nodes, ``x{in} @ weights[k] (+ biases[k])``: the
    products alone, with MLAS (ORT prepacks the constant weights once). Inputs ``x{in}`` ``[M, in]``,
    one per distinct input width; ``generate.py`` replays a real step's products through it too."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    widths = sorted({w.shape[0] for w in weights})
    graph_inputs = [helper.make_tensor_value_info(f"x{n}", TensorProto.FLOAT, ["M", n]) for n in widths]
    nodes, inits, outputs = [], [], []
    for k, (w, b) in enumerate(zip(weights, biases)):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w, dtype=np.float32), f"w{k}"))
        names = [f"x{w.shape[0]}", f"w{k}"]
        if b is not None:
            inits.append(numpy_helper.from_array(np.ascontiguousarray(b, dtype=np.float32), f"b{k}"))
            names.append(f"b{k}")
        nodes.append(helper.make_node("Gemm", names, [f"y{k}"]))
        outputs.append(helper.make_tensor_value_info(f"y{k}", TensorProto.FLOAT, ["M", w.shape[1]]))
    model = helper.make_model(helper.make_graph(nodes, "products", graph_inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _contenders(rows: int, threads: int) -> dict[str, Callable[[], Any]]:
    generator = torch.Generator().manual_seed(0)
    shapes = [shape for _ in range(12) for shape in LAYER]
    weights = [torch.randn(i, o, generator=generator) * 0.02 for i, o in shapes]
    biases = [torch.randn(o, generator=generator) for _, o in shapes]
    transposed = [w.t().contiguous() for w in weights]
    packed = [torch.ops.mkldnn._reorder_linear_weight(w, rows) for w in transposed]
    x = {768: torch.randn(rows, 768, generator=generator), 3072: torch.randn(rows, 3072, generator=generator)}
    session = ort_products_session([w.numpy() for w in weights], [b.numpy() for b in biases], threads)
    feeds = {"x768": x[768].numpy(), "x3072": x[3072].numpy()}
    return {
        "mkl_addmm": lambda: [torch.addmm(b, x[w.shape[0]], w) for w, b in zip(weights, biases)],
        "mkl_linear": lambda: [F.linear(x[w.shape[1]], w, b) for w, b in zip(transposed, biases)],
        "onednn_packed": lambda: [torch.ops.mkldnn._linear_pointwise(x[w.shape[0]], p, b, "none", [], "")
                                  for w, p, b in zip(weights, packed, biases)],
        "ort_mlas": lambda: session.run(None, feeds),
    }


def _mkl_dispatch() -> str:
    """The processor line ``MKL_VERBOSE`` prints for one small product (what code path MKL chose)."""
    code = "import torch; torch.set_num_threads(1); torch.randn(8, 64) @ torch.randn(64, 64)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env={**os.environ, "MKL_VERBOSE": "1"})
    for line in (done.stdout + done.stderr).splitlines():
        found = re.search(r"Product build \S+ for .*? architecture (.*?)(?:,|$)", line)
        if found:
            return found.group(1).strip()
    return "unknown"


def _vector_extensions() -> str:
    """The SIMD extensions among the CPU's flags that matrix kernels dispatch on (Linux ``/proc/cpuinfo``)."""
    wanted = ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512_bf16", "amx_tile")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return " ".join(f for f in wanted if f in flags) or "none of " + " ".join(wanted)
    except OSError:
        pass
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1,8")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dispatch = _mkl_dispatch()
    extensions = _vector_extensions()
    print(f"threads {args.threads}, load average {os.getloadavg()[0]:.1f}; CPU: {extensions}; MKL dispatch: {dispatch}")
    report: dict[str, Any] = {"benchmark": "kernels", "threads": args.threads, "mkl_dispatch": dispatch,
                              "vector_extensions": extensions,
                              "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                              "load_average_before": os.getloadavg(), "rows": {}}
    for rows in (int(r) for r in args.rows.split(",")):
        contenders = _contenders(rows, args.threads)
        best = {name: float("inf") for name in contenders}
        for fn in contenders.values():
            fn()  # warm-up
        for _ in range(args.rounds):
            for name, fn in contenders.items():
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
        ms = {name: round(seconds * 1e3, 2) for name, seconds in best.items()}
        fastest = min(ms.values())
        report["rows"][rows] = {"ms_per_step": ms, "over_fastest": {n: round(v / fastest, 2) for n, v in ms.items()}}
        print(f"  {rows} row(s): " + "  ".join(f"{n} {v:.1f} ms ({v / fastest:.2f}x)" for n, v in ms.items()))
    report["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
