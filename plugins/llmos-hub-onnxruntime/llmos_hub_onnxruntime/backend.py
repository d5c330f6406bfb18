"""The ``onnxruntime`` backend: export (cached), optionally quantize, open sessions, return a runner.

Options (``Backend.prepare(..., options={...})``, all optional):

``threads``
    ONNX Runtime intra-op threads. Default on the CPU: every core for a model of at least ten million
    parameters, else :func:`llmos_hub.decoding.default_threads` (``$LLMOS_HUB_THREADS``,
    ``$OMP_NUM_THREADS``, or one core left free, which also apply first to the large models); for those
    models, with more than one thread, the idle workers sleep instead of spinning, so a shared machine
    does not stall them (:mod:`.threads` has the measurements).
``exporter`` / ``opset``
    ``"dynamo"`` (default) or ``"torchscript"``, and the ONNX opset (default per exporter).
``optimization``
    Graph optimization level: ``all`` (default), ``extended``, ``basic``, ``none``.
``cache_dir``
    Where exported graphs are kept (default ``$LLMOS_HUB_CACHE/onnx`` or ``~/.cache/llmos-hub/onnx``).
``io_binding``
    Run through IO binding (default: on; outputs go into buffers bound once per shape, and on CUDA
    the cache and logits stay on the device).
``session_config``
    ONNX Runtime session config entries, e.g. ``{"session.intra_op.allow_spinning": "1"}`` to let
    idle workers spin again (a dedicated machine, lowest latency); these win over the defaults.
"""

from __future__ import annotations

import copy
import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos_hub import Backend, LoadedModel, UsageError

from . import export as _export
from .cache import CacheEntry, ExportCache, build_key, derived_key, export_key
from .quantize import QUANTIZATION, quantize_folder
from .runner import OnnxRunner, OrtGraph
from .session import check_device, make_session
from .threads import plan_threads

__all__ = ["OnnxRuntimeBackend"]

#: The lowest opset each exporter writes: the dynamo exporter writes 18 for anything lower (the record then
#: named an opset the graph does not have), and the TorchScript one needs 7.
MIN_OPSET = {"dynamo": 18, "torchscript": 7}


@dataclass(frozen=True)
class _Exported:
    """The graphs a runner will load: their folder, their manifest entries, and how they were got."""

    folder: Path
    graphs: Mapping[str, Any]
    key: str
    cache_hit: bool
    quantization: str | None
    seconds: float


class OnnxRuntimeBackend(Backend):
    """Exports a model's modules to ONNX once (content-hash cache) and runs them with ONNX Runtime."""

    name = "onnxruntime"
    priority = 50
    devices = ("cpu", "cuda", "auto")
    dtypes = ("float32", "int8")
    option_schema = {
        "threads": {"type": "integer", "minimum": 1},
        "exporter": {"enum": ["dynamo", "torchscript"]},
        "opset": {"type": "integer", "minimum": 7},
        "optimization": {"enum": ["all", "extended", "basic", "none"]},
        "cache_dir": {"type": "string", "minLength": 1},
        "io_binding": {"type": "boolean"},
        "session_config": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
    }

    def check(self, device: str, dtype: str, options: Mapping[str, Any]) -> None:
        """The schema's checks, then the opset the exporter can write and a ``cache_dir`` that is a folder:
        both failed only after the model loaded (exit 1), the opset with a misleading exporter error."""
        super().check(device, dtype, options)
        exporter = str(options.get("exporter") or "dynamo")
        opset = options.get("opset")
        if opset is not None:
            import onnx

            low, high = MIN_OPSET.get(exporter, 7), int(onnx.defs.onnx_opset_version())
            if not low <= int(opset) <= high:
                raise UsageError(f"option opset of backend onnxruntime: the {exporter} exporter writes opsets {low} "
                                 f"to {high} here, not {opset}; drop the option for its default "
                                 f"({_export.default_opset(exporter)})")
        cache_dir = options.get("cache_dir")
        if cache_dir is not None and Path(str(cache_dir)).expanduser().exists() and \
                not Path(str(cache_dir)).expanduser().is_dir():
            raise UsageError(f"option cache_dir of backend onnxruntime: {cache_dir} is a file, not a folder; "
                             "name a folder (it is created if missing)")

    def prepare(
        self,
        model: LoadedModel,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        options: Mapping[str, Any] | None = None,
    ) -> OnnxRunner:
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.option_schema or {}))
        if unknown:
            raise UsageError(f"backend 'onnxruntime' has no option {', '.join(unknown)}; known: {', '.join(self.option_schema or {})}")
        if dtype not in self.dtypes:
            raise UsageError(f"backend 'onnxruntime' runs float32 or int8 (dynamic quantization), not {dtype!r}")
        kind, index = check_device(device)
        if dtype == "int8" and kind == "cuda":
            raise UsageError("dtype 'int8' (dynamic quantization) runs on the CPU only; use device='cpu'")
        exporter = str(options.get("exporter", "dynamo"))
        if exporter not in _export.EXPORTERS:
            raise UsageError(f"unknown ONNX exporter {exporter!r}; use one of: {', '.join(_export.EXPORTERS)}")
        opset = int(options.get("opset") or _export.default_opset(exporter))

        io_binding = _as_bool(options.get("io_binding", True))
        attention = _export.default_attention(exporter, kind, io_binding)
        exported = _exported(model, ExportCache(options.get("cache_dir")), exporter=exporter, opset=opset, dtype=dtype,
                             attention=attention)
        plan = plan_threads(options.get("threads"), num_parameters=model.provenance.num_parameters,
                            device_kind=kind, session_config=options.get("session_config"))
        threads, threads_source, session_config = plan.threads, plan.source, plan.session_config
        optimization = str(options.get("optimization", "all"))
        graphs = {
            role: OrtGraph(
                make_session(
                    exported.folder / info["file"],
                    kind=kind,
                    index=index,
                    threads=threads,
                    optimization=optimization,
                    extra=session_config,
                ),
                io_binding=io_binding,
                device=kind,
                device_id=index,
            )
            for role, info in exported.graphs.items()
        }
        session = next(iter(graphs.values())).session
        facts = {
            "backend": self.name,
            "device": f"cuda:{index}" if kind == "cuda" else "cpu",
            "device_name": _cpu_name() if kind == "cpu" else f"CUDA device {index}",
            "execution_provider": session.get_providers()[0],
            "threads": threads,
            "threads_source": threads_source,
            "graph_optimization": optimization,
            "io_binding": io_binding,
            "session_config": session_config,
            "quantization": exported.quantization,
            "exporter": exporter,
            "opset": opset,
            # what the graphs hold: a module that does not attend through cache_attention stays decomposed
            "attention": "group-query" if any(graph.presents for graph in graphs.values()) else "decomposed",
            "export": {"key": exported.key, "cache_hit": exported.cache_hit, "seconds": round(exported.seconds, 3)},
        }
        runner = OnnxRunner(model, graphs, device=facts["device"], dtype=dtype, facts=facts)
        runner.export_path = exported.folder  # not in describe(): records may be published, cache paths are local
        return runner

    def versions(self) -> Mapping[str, str]:
        import onnx
        import onnxruntime

        return {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__}


def _exported(
    model: LoadedModel, cache: ExportCache, *, exporter: str, opset: int, dtype: str, attention: str = "decomposed"
) -> _Exported:
    """The cached export of ``model`` (built on a miss), quantized into its own entry for ``int8``.

    The key hashes the model's torch modules. When no one has built the model's shared modules yet,
    the entry is first looked up under the model's :attr:`~llmos_hub.LoadedModel.build_digest` (what
    the modules would be built from), so a cache hit builds no torch model at all; on a miss a private
    copy is hashed (and exported) and dropped before the sessions load, so the process does not keep a
    torch copy of the weights next to ONNX Runtime's, and the build key is linked to the entry.
    """
    started = time.perf_counter()
    alias = None
    if not model.modules_built:
        digest = model.build_digest
        alias = build_key(digest, exporter=exporter, opset=opset, attention=attention) if digest else None
        found = cache.follow(alias) if alias else None
        if found is not None:
            return _finish(cache, found, found.manifest["key"], dtype, started)
        private = copy.copy(model)
        private.modules = model.own_modules()
        model = private
    key, parts = export_key(model, exporter=exporter, opset=opset, attention=attention)

    def build(folder: Path) -> dict[str, Any]:
        manifest = _export.export_model(model, folder, exporter=exporter, opset=opset, attention=attention)
        return {**manifest, "model": model.name, "key_parts": parts}

    entry = cache.get_or_build(key, build)
    if alias:
        cache.link(alias, key)
    return _finish(cache, entry, key, dtype, started)


def _finish(cache: ExportCache, entry: CacheEntry, key: str, dtype: str, started: float) -> _Exported:
    """``entry`` as the backend runs it: quantized into its own entry for ``int8``."""
    graphs = entry.manifest["graphs"]
    if dtype != "int8":
        return _Exported(entry.path, graphs, key, entry.hit, None, time.perf_counter() - started)

    import onnxruntime

    def quantize(folder: Path) -> dict[str, Any]:
        return {**quantize_folder(entry.path, folder, graphs), "graphs": graphs, "base": key}

    qkey = derived_key(key, QUANTIZATION, {"onnxruntime": onnxruntime.__version__})
    quantized = cache.get_or_build(qkey, quantize)
    hit = entry.hit and quantized.hit
    return _Exported(quantized.path, graphs, qkey, hit, QUANTIZATION, time.perf_counter() - started)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in {"0", "false", "no", "off"}
    return bool(value)


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
