"""Facts about the machine and software for a record's provenance, read without heavy imports.

The core records the versions of the libraries it scores with itself; the libraries a run executed on
(torch, onnxruntime, ctranslate2, ...) come from the backend's own ``versions()`` and the GPU's name from
the runner's ``describe()``, so the core names no plugin's library.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import platform
from collections.abc import Mapping
from typing import Any

from .._version import __version__

#: The core's own scoring and data libraries.
_LIBRARIES = ("numpy", "sacrebleu", "rouge_score", "evaluate", "datasets", "huggingface_hub")


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


def environment(plugins: dict[str, str], libraries: Mapping[str, str] | None = None,
                gpu: str | None = None) -> dict[str, Any]:
    """The record's environment: ``libraries`` are the backend's ``versions()`` (added to the core's),
    ``gpu`` the device name the runner reported for a GPU run."""
    return {
        "python": platform.python_version(),
        "llmos_hub": __version__,
        "plugins": dict(sorted(plugins.items())),
        "libraries": {**{name: _version(name) for name in _LIBRARIES}, **dict(libraries or {})},
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "gpu": gpu,
    }
