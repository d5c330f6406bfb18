"""A content-addressed cache of built folders (exported graphs, converted models), safe across processes.

Backends that turn a model into another format (an ONNX export, a CTranslate2 conversion) take
seconds to minutes, so they keep the result under a key that hashes everything it depends on. This
module is the storage half, shared by every such backend: entries are folders ``<root>/<key>/``
holding the built files and a ``manifest.json`` (which records each file's size and sha256, checked on
every hit; the hash only for a file whose modification time changed since it was written). A folder is built under a temporary name in the same
root and published with one atomic ``rename``, so a reader sees a whole entry or none. Builders of one
key take an ``flock`` on ``<root>/.locks/<key>.lock`` so that two processes do not build the same
entry twice (lock files are left in place: deleting one that another process waits on would let a
third one in); where locking is unavailable the rename still keeps the entry whole (the loser of the
race discards its copy and uses the winner's).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._fileio import atomic_write
from ._hashing import file_sha256
from .errors import UsageError

__all__ = ["CACHE_ENV", "CacheEntry", "FolderCache", "cache_root"]

#: Root of llmos-hub's caches; each backend keeps its entries in a subfolder (``onnx``, ``ctranslate2``).
CACHE_ENV = "LLMOS_HUB_CACHE"
MANIFEST = "manifest.json"


def cache_root(kind: str) -> Path:
    """``$LLMOS_HUB_CACHE/<kind>``, or ``~/.cache/llmos-hub/<kind>``."""
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "llmos-hub"
    return base / kind


@dataclass(frozen=True)
class CacheEntry:
    """A published entry: its folder, its manifest, and whether this call found it (``hit``)."""

    path: Path
    manifest: Mapping[str, Any]
    hit: bool


class FolderCache:
    """Entries under ``root``; :meth:`get_or_build` returns one, building it at most once.

    Example::

        cache = FolderCache(cache_root("ctranslate2"))
        entry = cache.get_or_build(key, lambda folder: {"files": convert(model, folder)})
        translator = ctranslate2.Translator(str(entry.path))
    """

    #: Named in the error when the root is not writable (e.g. "ONNX export cache").
    what = "llmos-hub cache"
    #: The backend option that moves the cache, named in that error.
    option = "cache_dir"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def get(self, key: str) -> CacheEntry | None:
        """The published entry for ``key``, or ``None`` (also for a corrupt entry, which is removed).

        An entry is corrupt when its manifest is not a JSON object, or a file the manifest lists is
        missing, has another size than when it was built, or has another sha256 and a new modification time
        (a killed copy, a full disk, a hand edit); it is moved aside and deleted, with a warning on stderr, so the
        caller builds it again. An entry an older llmos-hub wrote (file sizes but no hashes) cannot be
        checked that way, so it is treated as stale and rebuilt likewise.
        """
        folder = self.root / key
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError):
            if folder.is_dir():
                return self._discard(folder, f"{MANIFEST} is missing")
            return None
        except (ValueError, UnicodeDecodeError):
            return self._discard(folder, f"{MANIFEST} is not valid JSON")
        if not isinstance(manifest, dict):
            return self._discard(folder, f"{MANIFEST} is not a JSON object")
        sizes = dict(manifest.get("file_sizes") or {})
        hashes = manifest.get("file_sha256")
        if sizes and not isinstance(hashes, dict):
            return self._discard(folder, "written by an older llmos-hub, without file hashes", stale=True)
        for name, size in sizes.items():
            path = folder / name
            if not path.is_file():
                return self._discard(folder, f"{name} is missing")
            if path.stat().st_size != size:
                return self._discard(folder, f"{name} has {path.stat().st_size} bytes, not {size}")
        # Hashing a multi-GB export on every hit would cost seconds per run: a file whose modification time
        # is the one it was written with is taken as unchanged (an edit, a partial copy or a restore sets a
        # new one); any other is hashed.
        written = dict(manifest.get("file_mtime_ns") or {})
        for name, digest in dict(hashes or {}).items():
            path = folder / name
            if not path.is_file():
                return self._discard(folder, f"{name} is missing")
            if written.get(name) == path.stat().st_mtime_ns:
                continue
            if file_sha256(path) != digest:
                return self._discard(folder, f"{name} does not have the sha256 it was written with")
        return CacheEntry(folder, manifest, hit=True)

    def discard(self, key: str, reason: str) -> None:
        """Remove the entry ``key`` (one the caller found unusable, e.g. its engine cannot load it), with
        the same one-line warning as a corrupt entry, so that the next :meth:`get_or_build` builds it again."""
        folder = self.root / key
        if folder.is_dir():
            self._discard(folder, reason)

    def follow(self, alias: str) -> CacheEntry | None:
        """The entry that ``alias`` (made by :meth:`link`) points to, or ``None`` when either is missing."""
        found = self.get(alias)
        target = found.manifest.get("alias_of") if found is not None else None
        if not isinstance(target, str) or target == alias:
            return None
        return self.get(target)

    def link(self, alias: str, key: str) -> bool:
        """Make ``alias`` a second key of entry ``key``: a key that is cheaper to compute for the same content.

        An alias is an entry of its own holding only a manifest (``{"alias_of": key}``), published as
        atomically as any entry; one that points elsewhere is replaced. Best effort: an alias only saves
        time, so a cache that cannot be written (a read-only shared cache) returns ``False``, no error.
        """
        found = self.get(alias)
        if found is not None:
            if found.manifest.get("alias_of") == key:
                return True
            aside = found.path.with_name(f".{alias}.stale.{os.getpid()}.tmp")
            try:
                os.rename(found.path, aside)
            except OSError:
                return False  # another process is relinking it, or the cache is read-only
            shutil.rmtree(aside, ignore_errors=True)
        try:
            self.get_or_build(alias, lambda _folder: {"alias_of": key})
        except (OSError, UsageError):
            return False
        return True

    def _unwritable(self, exc: OSError) -> UsageError:
        return UsageError(f"cannot write the {self.what} at {self.root}: {exc.strerror or exc}; "
                          f"set {CACHE_ENV} or the backend option {self.option} to a writable folder")

    def _discard(self, folder: Path, reason: str, *, stale: bool = False) -> CacheEntry | None:
        import sys

        state = "is stale" if stale else "is corrupt"
        sys.stderr.write(f"warning: {self.what} entry {folder} {state} ({reason}); rebuilding it\n")
        aside = folder.with_name(f".{folder.name}.corrupt.{os.getpid()}.tmp")
        try:
            os.rename(folder, aside)
        except OSError:
            aside = folder
        shutil.rmtree(aside, ignore_errors=True)
        return None  # the caller builds the entry again

    def get_or_build(self, key: str, build: Callable[[Path], Mapping[str, Any]]) -> CacheEntry:
        """The entry for ``key``; if absent, ``build(folder)`` fills a fresh folder and returns the manifest.

        ``build`` runs in a private temporary folder; its files appear under ``<root>/<key>`` all at
        once, or not at all if it raises.
        """
        found = self.get(key)
        if found is not None:
            return found
        locks = self.root / ".locks"
        try:
            locks.mkdir(parents=True, exist_ok=True)
            with open(locks / f"{key}.lock", "a+b"):  # a read-only cache that has .locks/ fails here
                pass
        except OSError as exc:
            raise self._unwritable(exc) from exc
        with _locked(locks / f"{key}.lock"):
            found = self.get(key)  # built by another process while we waited
            if found is not None:
                return found
            # Builders of this key hold its lock, so a temporary folder of the key seen now was left by a
            # builder that was killed (kill -9, power loss): partial graphs of a big model are gigabytes.
            for left in self.root.glob(f".{glob.escape(key)}.*.tmp"):
                shutil.rmtree(left, ignore_errors=True)
            try:
                work = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".tmp", dir=self.root))
            except OSError as exc:
                raise self._unwritable(exc) from exc
            try:
                manifest = {"key": key, **build(work)}
                files = [p for p in sorted(work.rglob("*")) if p.is_file()]
                manifest["file_sizes"] = {str(p.relative_to(work)): p.stat().st_size for p in files}
                manifest["file_sha256"] = {str(p.relative_to(work)): file_sha256(p) for p in files}
                manifest["file_mtime_ns"] = {str(p.relative_to(work)): p.stat().st_mtime_ns for p in files}
                atomic_write(work / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
                try:
                    os.rename(work, self.root / key)
                except OSError:
                    # Lost a race with a builder that could not lock: theirs is whole, use it.
                    found = self.get(key)
                    if found is None:
                        raise
                    shutil.rmtree(work, ignore_errors=True)
                    return found
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
        return CacheEntry(self.root / key, manifest, hit=False)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` for the duration (a no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename alone keeps entries whole
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
