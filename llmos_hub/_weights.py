"""Weight files a model family may open: ``.safetensors`` inside the model's own folder, and whole.

Unpickling runs code, and a checkpoint is something a user downloads; so a family opens only
``*.safetensors`` files, and only inside the model's folder (or, for a Hub snapshot whose files are
links into the cache's ``blobs/``, inside that repo's cache folder). An index that maps weights to
``pytorch_model.bin`` or to ``../outside.safetensors`` is refused, naming the file. A truncated or
corrupt file (a download cut short, a disk that filled up) is found from its header and size before
any library reads it, and named with the fix.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path

from .errors import DataError

__all__ = ["check_inside", "check_safetensors"]

#: A header larger than this is not a checkpoint's (safetensors itself caps it at 100 MB).
_MAX_HEADER = 100_000_000


def _roots(folder: Path) -> list[Path]:
    real = folder.resolve()
    roots = [real]
    # A Hub cache snapshot (…/models--org--name/snapshots/<sha>) links its files into …/blobs.
    if real.parent.name == "snapshots" and real.parent.parent.name.startswith(("models--", "datasets--")):
        roots.append(real.parent.parent)
    return roots


def _outside(candidate: Path, root: Path) -> bool:
    """Whether ``candidate`` names (``..``) or links (a symlink) to a place outside ``root``."""
    lexical = Path(os.path.normpath(candidate.absolute()))
    return not lexical.is_relative_to(os.path.normpath(root.absolute())) or not any(
        candidate.resolve().is_relative_to(r) for r in _roots(root))


def check_inside(path: str | os.PathLike[str], *, folder: str | os.PathLike[str]) -> Path:
    """``folder/path`` if it stays inside ``folder``; else a one-line :class:`DataError` naming it.

    For every file a family reads from a model's folder besides the weights (config, tokenizer):
    a link that leads out of the folder would score the model with another model's tokenizer or
    config, or read any file on the machine, so it is refused as :func:`check_safetensors` refuses
    such weights. Whether the file exists is left to the caller (many are optional).
    """
    root = Path(folder)
    given = Path(path)
    candidate = given if given.is_absolute() else root / given
    if _outside(candidate, root):
        raise DataError(f"{root}: refusing {given}: it leads outside the model's folder; put the "
                        "file itself in the folder (not a link to, or a path into, another folder)")
    return candidate


def check_safetensors(path: str | os.PathLike[str], *, folder: str | os.PathLike[str],
                      fix: str = "download or save the checkpoint again") -> Path:
    """``path`` if it is a complete ``.safetensors`` file inside ``folder``; else a one-line :class:`DataError`.

    ``path`` may be relative to ``folder`` (a shard named in an index). Returns the path to open.
    """
    root = Path(folder)
    given = Path(path)
    candidate = given if given.is_absolute() else root / given
    name = str(given)
    if given.suffix != ".safetensors":
        raise DataError(f"{root}: refusing weight file {name} (llmos-hub opens only .safetensors weights, "
                        "never pickles); convert it with transformers' save_pretrained or safetensors")
    if _outside(candidate, root):
        raise DataError(f"{root}: refusing weight file {name}: it is outside the model's folder; "
                        "a checkpoint's weights must be inside its own folder")
    if not candidate.is_file():
        raise DataError(f"{candidate}: weight file not found; {fix}")
    problem = _safetensors_problem(candidate)
    if problem:
        raise DataError(f"{candidate}: truncated or corrupt safetensors file ({problem}); {fix}")
    return candidate


def check_all(paths: Iterable[Path], *, folder: Path) -> list[Path]:
    """:func:`check_safetensors` for each of ``paths``."""
    return [check_safetensors(p, folder=folder) for p in paths]


def _safetensors_problem(path: Path) -> str:
    """What is wrong with the file's framing, or ``""``: header length, header JSON, data size."""
    size = path.stat().st_size
    if size < 8:
        return f"{size} bytes, shorter than the 8-byte header length"
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > _MAX_HEADER or 8 + length > size:
            return f"header length {length} does not fit in the file's {size} bytes"
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "the header is not JSON"
    if not isinstance(header, dict):
        return "the header is not a JSON object"
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            return f"tensor {key!r} has no valid data_offsets"
        end = max(end, offsets[1])
    have = size - 8 - length
    if end != have:
        return f"the tensors need {end} bytes of data, the file has {have}"
    return ""
