"""The ``onnxruntime`` backend: export (cached), optionally quantize, open sessions, return a runner.

Options (``Backend.prepare(..., options={...})``, all optional):

``threads``
    ONNX Runtime intra-op threads (default: ONNX Runtime's choice, one per core).
``exporter`` / ``opset``
    ``"dynamo"`` (default) or ``"torchscript"``, and the ONNX opset (default per exporter).
``optimization``
    Graph optimization level: ``all`` (default), ``extended``, ``basic``, ``none``.
``cache_dir``
    Where exported graphs are kept (default ``$LLMOS_HUB_CACHE/onnx`` or ``~/.cache/llmos-hub/onnx``).
``io_binding``
    Run through IO binding (default: on for CUDA, off on the CPU where it measured slower).
``session_config``
    ONNX Runtime session config entries, e.g. ``{"session.intra_op.allow_spinning": "0"}``, which
    on a CPU shared with other work made 2 threads 1.7x faster on the nano LM.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from typing import Any

from llmos_hub import Backend, LoadedModel, UsageError

from . import export as _export
from .cache import ExportCache, derived_key, export_key
from .quantize import QUANTIZATION, quantize_folder
from .runner import OnnxRunner, _Graph
from .session import check_device, make_session

__all__ = ["OnnxRuntimeBackend"]

_OPTIONS = ("threads", "exporter", "opset", "optimization", "cache_dir", "io_binding", "session_config")


class OnnxRuntimeBackend(Backend):
    """Exports a model's modules to ONNX once (content-hash cache) and runs them with ONNX Runtime."""

    name = "onnxruntime"
    devices = ("cpu", "cuda", "auto")
    dtypes = ("float32", "int8")

    def prepare(
        self,
        model: LoadedModel,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        options: Mapping[str, Any] | None = None,
    ) -> OnnxRunner:
        options = dict(options or {})
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise UsageError(f"backend 'onnxruntime' has no option {', '.join(unknown)}; known: {', '.join(_OPTIONS)}")
        if dtype not in self.dtypes:
            raise UsageError(f"backend 'onnxruntime' runs float32 or int8 (dynamic quantization), not {dtype!r}")
        kind, index = check_device(device)
        if dtype == "int8" and kind == "cuda":
            raise UsageError("dtype 'int8' (dynamic quantization) runs on the CPU only; use device='cpu'")
        exporter = str(options.get("exporter", "dynamo"))
        if exporter not in _export.EXPORTERS:
            raise UsageError(f"unknown ONNX exporter {exporter!r}; use one of: {', '.join(_export.EXPORTERS)}")
        opset = int(options.get("opset") or _export.DEFAULT_OPSET[exporter])
        cache = ExportCache(options.get("cache_dir"))

        started = time.perf_counter()
        key, parts = export_key(model, exporter=exporter, opset=opset)
        entry = cache.get_or_build(
            key, lambda folder: {**_export.export_model(model, folder, exporter=exporter, opset=opset), "key_parts": parts}
        )
        graphs_info = entry.manifest["graphs"]
        folder, quantization, hit = entry.path, None, entry.hit
        if dtype == "int8":
            import onnxruntime

            qkey = derived_key(key, QUANTIZATION, {"onnxruntime": onnxruntime.__version__})
            quantized = cache.get_or_build(
                qkey, lambda target: {**quantize_folder(entry.path, target, graphs_info), "graphs": graphs_info, "base": key}
            )
            folder, quantization, hit = quantized.path, QUANTIZATION, hit and quantized.hit
        export_seconds = time.perf_counter() - started

        threads = options.get("threads")
        optimization = str(options.get("optimization", "all"))
        io_binding = bool(options.get("io_binding", kind == "cuda"))
        session_config = {str(k): str(v) for k, v in dict(options.get("session_config") or {}).items()}
        ort_device = "cuda" if kind == "cuda" else "cpu"
        graphs = {
            role: _Graph(
                make_session(
                    folder / info["file"], kind=kind, index=index, threads=threads, optimization=optimization, extra=session_config
                ),
                io_binding=io_binding,
                device=ort_device,
                device_id=index,
            )
            for role, info in graphs_info.items()
        }
        session = next(iter(graphs.values())).session
        facts = {
            "backend": self.name,
            "device": f"{kind}:{index}" if kind == "cuda" else "cpu",
            "device_name": _cpu_name() if kind == "cpu" else f"CUDA device {index}",
            "execution_provider": session.get_providers()[0],
            "threads": int(threads) if threads else None,
            "graph_optimization": optimization,
            "io_binding": io_binding,
            "session_config": session_config,
            "quantization": quantization,
            "exporter": exporter,
            "opset": opset,
            "export": {"key": key, "cache_hit": hit, "seconds": round(export_seconds, 3)},
        }
        runner = OnnxRunner(model, graphs, device=facts["device"], dtype=dtype, facts=facts)
        runner.export_path = folder  # not in describe(): records may be published, cache paths are local
        return runner

    def versions(self) -> Mapping[str, str]:
        import onnx
        import onnxruntime

        return {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__}


def _cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux), for the record."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()
