"""Facts about the machine and software for a record's provenance, read without heavy imports."""

from __future__ import annotations

import functools
import importlib.metadata as md
import platform
import sys
from typing import Any

from .._version import __version__

_LIBRARIES = ("torch", "onnxruntime", "onnx", "numpy", "tokenizers", "safetensors", "transformers", "sacrebleu", "rouge_score", "evaluate", "datasets", "huggingface_hub")


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_name() -> str | None:
    """The CUDA device's name if torch is already imported and sees one (never imports torch)."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            return str(torch.cuda.get_device_name(torch.cuda.current_device()))
    except Exception:  # a broken CUDA install must not lose a record
        return None
    return None


def environment(plugins: dict[str, str]) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "llmos_hub": __version__,
        "plugins": dict(sorted(plugins.items())),
        "libraries": {name: _version(name) for name in _LIBRARIES},
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "gpu": gpu_name(),
    }
