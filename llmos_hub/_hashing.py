"""A file's sha256, computed once per process for as long as the file is unchanged.

Provenance hashes every weight file a record names, the caches hash what they store, and a bench may
ask for the same file at planning, loading and cache time: a multi-GB checkpoint should be read once.
A file's hash is remembered by its resolved path, size and modification time, so a rewritten file
(new size or modification time) is hashed again.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

__all__ = ["file_sha256"]

_KNOWN: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of the file at ``path``, read in 1 MiB blocks; remembered while the file is unchanged."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _LOCK:
        known = _KNOWN.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    with _LOCK:
        _KNOWN[key] = digest.hexdigest()
    return digest.hexdigest()
