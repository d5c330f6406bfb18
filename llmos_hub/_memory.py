"""The process's peak resident memory, resettable on Linux, so every backend's CPU peak is measured alike.

Linux keeps a high-water mark of resident memory (``VmHWM`` in ``/proc/self/status``) that writing ``5``
to ``/proc/self/clear_refs`` resets, so a run's peak excludes what earlier runs touched. Elsewhere the
fallback is ``getrusage``'s ``ru_maxrss``, which covers the whole process and cannot be reset.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_rss_bytes() -> int:
    """Peak resident memory since the last :func:`reset_peak_rss` (or process start)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def reset_peak_rss() -> None:
    """Start a new peak measurement where the OS allows it (Linux); a no-op elsewhere."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
