"""Where a bench's records go, and where they go when that fails: a computed result is never lost.

:func:`check_output_dir` runs before anything loads: an ``--output-dir`` that cannot be created or
written (read-only mount, no permission) is a one-line usage error, exit status 2. A write that fails
later (the disk fills up, the folder is made read-only mid-bench) goes to :func:`save_record`, which
writes the record to a fallback folder instead, which the CLI prints with the command that moves the
records back, and exits non-zero.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .._fileio import probe_writable
from ..errors import UsageError

__all__ = ["FALLBACK_ENV", "check_output_dir", "fallback_dir", "save_record"]

FALLBACK_ENV = "LLMOS_HUB_FALLBACK_DIR"


def check_output_dir(out: Path) -> None:
    """A one-line :class:`UsageError` if ``out`` cannot be created and written."""
    problem = probe_writable(out)
    if problem is not None:
        raise UsageError(f"cannot write result records to {out} ({problem}); choose a writable --output-dir")


def fallback_dir() -> Path:
    """A writable folder for records that could not be written where asked (new per call)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    candidates = []
    if os.environ.get(FALLBACK_ENV):
        candidates.append(Path(os.environ[FALLBACK_ENV]))
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    candidates += [Path(state) / "llmos-hub" / "unsaved", Path(tempfile.gettempdir()) / "llmos-hub-unsaved"]
    for base in candidates:
        folder = base / f"{stamp}-{os.getpid()}"
        if probe_writable(folder) is None:
            return folder
    raise OSError("no writable fallback folder (tried " + ", ".join(str(c) for c in candidates) + ")")


def save_record(record: Any, out: Path, fallback: list[Path], problems: list[str]) -> Path:
    """Write ``record`` into ``out``; if that fails, into the fallback folder (``fallback`` holds it)."""
    try:
        return record.save(out)  # type: ignore[no-any-return]
    except OSError as exc:
        problems.append(exc.strerror or str(exc))
        if not fallback:
            fallback.append(fallback_dir())
        return record.save(fallback[0])  # type: ignore[no-any-return]
