"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file the tool writes (result records, leaderboards, exported models' manifests) goes through
:func:`atomic_write`: a temporary file in the same folder, flushed and fsynced, then renamed over
the target, then the folder fsynced, so a crash or Ctrl-C at any point leaves finished files intact.
A process killed mid-write (SIGKILL, power loss) leaves its ``.NAME.XXXX.tmp`` behind; the next
write into that folder removes such files once they are older than :data:`STALE_SECONDS`.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from pathlib import Path

#: A temporary file of a write older than this was left by a killed process (no write takes this long).
STALE_SECONDS = 3600.0
_TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.tmp$")


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically and durably; returns the path."""
    target = Path(path)
    blocker = _file_in_the_way(target.parent)
    if blocker is not None:  # mkdir would say only "File exists", which names neither the file nor the fix
        raise NotADirectoryError(errno.ENOTDIR, f"{blocker} is a file, not a folder", str(blocker))
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the usual mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(target.parent)
    clean_stale_temps(target.parent)
    return target


def _file_in_the_way(folder: Path) -> Path | None:
    """The nearest existing path at or above ``folder`` when it is not a folder (so ``folder`` cannot be
    made), else ``None``."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def clean_stale_temps(folder: str | os.PathLike[str], *, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove the temporary files of killed :func:`atomic_write` calls in ``folder``; returns what went."""
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not _TEMP_RE.match(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # gone already, or not ours to remove: leave it
            continue
    return removed


def probe_writable(folder: str | os.PathLike[str]) -> str | None:
    """Why ``folder`` cannot take a file (created if missing), or ``None`` if a test file was written there."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".llmos-hub-probe.", suffix=".tmp", dir=path)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform can open a folder
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
