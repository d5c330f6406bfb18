"""A content-addressed cache of exported ONNX folders, safe with concurrent processes.

Exporting takes seconds to minutes, so an export is kept under a key that hashes everything its
result depends on: the weights exactly as they are in the modules (and the provenance hash of the
weight file), the model's config, the source code of the module classes, the exporter, the opset,
and the versions of torch, onnx, onnxscript and this plugin. The same model exported with the same
tools is found again; a changed weight, architecture or tool gives a new key, never a stale graph.

Entries are folders ``<root>/<key>/`` holding the graphs and a ``manifest.json``, stored by the
SDK's :class:`llmos_hub.FolderCache` (atomic publication by rename, one builder per key by ``flock``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmos_hub import CacheEntry, FolderCache, LoadedModel, cache_root

#: Root of llmos-hub's caches; exported graphs go to ``$LLMOS_HUB_CACHE/onnx``.
CACHE_ENV = "LLMOS_HUB_CACHE"

__all__ = ["CACHE_ENV", "CacheEntry", "ExportCache", "build_key", "default_cache_dir", "export_key", "modules_digest"]

#: Bumped when the layout of an entry or the meaning of a key changes. 2: calling convention v2
#: (preallocated slot cache in, ``new_kv`` out, a ``cross_kv`` graph), so no v1 graph is reused.
#: 3: per-layer cache inputs (``cache.0.0`` ...) for modules that take them, read-only in the graph.
#: 4: weights in ``<graph>.onnx.data`` (external data), which ONNX Runtime maps instead of parsing.
#: 5: a vocabulary-sized output product read in pieces (:mod:`._output_layer`).
FORMAT_VERSION = 5


def default_cache_dir() -> Path:
    """``$LLMOS_HUB_CACHE/onnx``, or ``~/.cache/llmos-hub/onnx``."""
    return cache_root("onnx")


def modules_digest(modules: Mapping[str, Any]) -> dict[str, str]:
    """Per role, a sha256 of the module's parameters and buffers (names, dtypes, shapes, bytes).

    Hashing the tensors themselves, not only the weight file, keeps the key honest for modules that
    were built or changed in memory (random test models, fine-tuned in place).
    """
    import torch

    digests: dict[str, str] = {}
    for role, module in sorted(modules.items()):
        h = hashlib.sha256()
        for name, tensor in sorted(module.state_dict().items()):
            data = tensor.detach().cpu().contiguous()
            h.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
            if data.dtype in (torch.bfloat16, torch.float16):
                data = data.view(torch.int16)
            elif data.dtype == torch.bool:
                data = data.to(torch.uint8)
            h.update(memoryview(data.numpy()).cast("B"))
        digests[role] = h.hexdigest()
    return digests


def _code_digest(modules: Mapping[str, Any]) -> str:
    """A sha256 of the source files defining every module class used, so an edited ``forward`` or
    any helper it calls in the same file (a cache layer, a mask function) re-exports."""
    h = hashlib.sha256()
    classes = sorted({type(sub) for module in modules.values() for sub in module.modules()}, key=lambda c: (c.__module__, c.__qualname__))
    files: set[str] = set()
    for cls in classes:
        h.update(f"{cls.__module__}.{cls.__qualname__}\n".encode())
        if cls.__module__.startswith(("torch.", "transformers.")):
            continue  # covered by the torch / transformers versions
        try:
            files.add(inspect.getsourcefile(cls) or "")
            h.update(inspect.getsource(cls).encode())
        except (OSError, TypeError):
            pass
    for name in sorted(f for f in files if f):
        try:
            h.update(Path(name).read_bytes())
        except OSError:
            pass
    return h.hexdigest()


def _tool_versions() -> dict[str, str]:
    """Versions of the tools an export depends on, read from package metadata: importing onnxscript
    only to ask its version would cost a cache hit ~68 MiB of memory and a second of start-up."""
    import torch

    from . import __version__

    versions = {"torch": torch.__version__, "llmos-hub-onnxruntime": __version__}
    for package in ("onnx", "transformers", "onnxscript"):  # the last two: only some models / exporters need them
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def export_key(model: LoadedModel, *, exporter: str, opset: int, attention: str = "decomposed") -> tuple[str, dict[str, Any]]:
    """The cache key of ``model`` exported with ``exporter``/``opset``, and what it was made of.

    The model's name is not part of the key: the same weights reached as ``nano:lm-sample`` or as
    ``nano:/path/to/lm-sample`` are one entry.
    """
    parts: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "weights_sha256": model.provenance.weights_sha256,
        "modules_sha256": modules_digest(model.modules),
        "code_sha256": _code_digest(model.modules),
        "config": json.loads(json.dumps(dict(model.config), sort_keys=True, default=str)),
        "exporter": exporter,
        "opset": opset,
        "attention": attention,
        "versions": _tool_versions(),
    }
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:32], parts


def build_key(build_digest: str, *, exporter: str, opset: int, attention: str = "decomposed") -> str:
    """A second key for the export of a model whose modules are not built yet (see
    :attr:`llmos_hub.LoadedModel.build_digest`): found through :meth:`ExportCache.follow`, it spares a
    cache hit building and hashing a torch model that ONNX Runtime would never run."""
    parts = {"format": FORMAT_VERSION, "build_sha256": build_digest, "exporter": exporter, "opset": opset,
             "attention": attention, "versions": _tool_versions()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def derived_key(key: str, variant: str, versions: Mapping[str, str]) -> str:
    """The key of an entry made from another (``variant`` such as ``"dynamic-int8"``)."""
    blob = json.dumps({"base": key, "variant": variant, "versions": dict(versions)}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


class ExportCache(FolderCache):
    """Exported graphs under ``root`` (default :func:`default_cache_dir`); see :class:`llmos_hub.FolderCache`.

    Example::

        cache = ExportCache(default_cache_dir())
        entry = cache.get_or_build(key, lambda folder: export_model(model, folder))
        session = InferenceSession(entry.path / "causal_lm.onnx")
    """

    what = "ONNX export cache"

    def __init__(self, root: str | Path | None = None) -> None:
        super().__init__(root if root is not None else default_cache_dir())
