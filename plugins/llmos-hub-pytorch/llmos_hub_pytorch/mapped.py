"""Giving the pages of a memory-mapped checkpoint back once a tensor on them has been copied.

``transformers`` loads a safetensors checkpoint as views of one private file mapping, and loading
reads every page, so the whole file is resident when a backend starts transforming the weights.
Packing (:mod:`.prepack`) writes each weight into memory of its own; the mapped pages it read stay
resident until the last view of the file is gone, at the end. The process then holds the checkpoint
twice for a moment: GPT-2-small geometry peaked at 1,172 MiB where `transformers`' ``generate``
needs 740.

:func:`release` drops the pages under one tensor from this process right after its copy exists
(``madvise(MADV_DONTNEED)``), so resident memory stays at about one copy while packing goes on.
That is safe only for pages that still equal the file: the kernel reads them back from the file
if anything touches them again (a bias sharing the weight's first page, say). So a range is
released only when it lies inside one file-backed mapping of which no page was ever written
(``Anonymous: 0 kB`` and ``Swap: 0 kB`` in ``/proc/self/smaps``: a private mapping's written pages are
anonymous copies, in memory or swapped out, and dropping them would lose the writes). Anything else (anonymous memory, a written
mapping, a platform without ``/proc`` or ``madvise``) is left alone: :func:`release` returns 0.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from torch import Tensor

__all__ = ["FileMapping", "file_mappings", "parse_smaps", "release", "trim_heap"]

_MADV_DONTNEED = 4  # Linux


@dataclass(frozen=True)
class FileMapping:
    """One file-backed mapping of this process, and whether any of its pages were written."""

    start: int
    end: int
    path: str
    written: bool


def file_mappings() -> list[FileMapping]:
    """This process's mappings of regular files (``/proc/self/smaps``); empty where there is none to read.

    A mapping counts as unwritten only when smaps shows it holds no written page, in memory or on swap
    (``Anonymous: 0 kB``, ``Swap: 0 kB``) and no huge pages; a missing line counts as written."""
    try:
        with open("/proc/self/smaps", encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    return parse_smaps(lines)


def parse_smaps(lines: list[str], regular: Callable[[str], bool] | None = None) -> list[FileMapping]:
    """:func:`file_mappings` from the lines of an smaps file; ``regular(path)`` says whether a mapped
    path is a regular file (default: ``os.stat``)."""
    regular = regular or _regular_file
    found: list[FileMapping] = []
    current: dict[str, Any] | None = None

    def close() -> None:
        if current is not None:
            clean = current.get("Anonymous") == 0 and current.get("Swap") == 0 and \
                current.get("Private_Hugetlb", 0) == 0 and current.get("Shared_Hugetlb", 0) == 0
            found.append(FileMapping(current["start"], current["end"], current["path"], not clean))

    for line in lines:
        fields = line.split()
        if fields and "-" in fields[0] and ":" not in fields[0] and len(fields) >= 5:
            close()
            start, end = (int(part, 16) for part in fields[0].split("-"))
            path = " ".join(fields[5:]) if len(fields) > 5 else ""
            current = {"start": start, "end": end, "path": path} if regular(path) else None
        elif current is not None and len(fields) >= 2 and fields[0].endswith(":") and fields[1].isdigit():
            current[fields[0][:-1]] = int(fields[1])
    close()
    return found


def _regular_file(path: str) -> bool:
    """A mapped path that names a regular file (not a device, not deleted, not anonymous)."""
    if not path.startswith("/") or path.endswith("(deleted)"):
        return False
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def release(tensor: Tensor, mappings: list[FileMapping]) -> int:
    """Drop the whole pages under ``tensor`` (the memory its elements span, not the rest of its
    storage) from this process, if they lie in one unwritten file mapping of ``mappings``; returns the
    bytes released (0: left alone)."""
    libc = _libc()
    if libc is None or tensor.device.type != "cpu" or tensor.is_mkldnn or tensor.numel() == 0:
        return 0
    if any(stride < 0 for stride in tensor.stride()):
        return 0
    span = 1 + sum((n - 1) * stride for n, stride in zip(tensor.shape, tensor.stride()))
    first, size = tensor.data_ptr(), span * tensor.element_size()
    mapping = next((m for m in mappings if m.start <= first and first + size <= m.end), None)
    if mapping is None or mapping.written:
        return 0
    page = mmap.PAGESIZE
    start = -(-first // page) * page  # whole pages only: a neighbour's partial page stays
    end = (first + size) // page * page
    if end <= start:
        return 0
    if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED) != 0:
        return 0
    return end - start


def trim_heap() -> None:
    """Return the C heap's free memory to the system (glibc ``malloc_trim``; nothing elsewhere).

    oneDNN's reorder allocates and frees a scratch copy of each weight it packs, and the heap keeps
    those pieces for reuse; trimming after each layer keeps them from adding up (~110 MiB over
    GPT-2-small) and from counting as resident for the rest of the run."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is not None:
        trim(0)
