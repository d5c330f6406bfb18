"""Helpers every builder shares: seeded group splits, jsonl writing, package facts from dpkg.

A split is decided per *group* (a source package, a message id, a module file), never per example,
so nothing that shares a group can appear in both train and test. Everything is seeded and sorted,
so the same inputs give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SPLITS = ("train", "validation", "test")


def group_split(
    items: Sequence[T],
    group_of: Callable[[T], str],
    *,
    sizes: dict[str, int],
    seed: int,
) -> dict[str, list[T]]:
    """Assign whole groups to test, then validation, then train, in a seeded order of groups.

    ``sizes`` caps each split (test and validation are filled first, train takes the rest up to
    its cap); a split's examples are then a seeded sample of exactly ``sizes[split]`` when more
    are available, so a large group never pushes a split past its size.
    """
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(group_of(item), []).append(item)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    out: dict[str, list[T]] = {s: [] for s in SPLITS}
    for key in order:
        for split in ("test", "validation", "train"):
            if split == "train" or len(out[split]) < sizes[split]:
                out[split].extend(groups[key])
                break
    rng = random.Random(seed + 1)
    for split in SPLITS:
        if len(out[split]) > sizes[split]:
            out[split] = rng.sample(out[split], sizes[split])
    return out


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as UTF-8 JSON lines (keys in the given order); returns the number written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def short_hash(text: str, n: int = 12) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


def owning_package(path: Path) -> str:
    """The Debian package that installed ``path`` (``dpkg -S``)."""
    out = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split(":", 1)[0].strip()


def package_version(package: str) -> str:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def package_licenses(package: str) -> str:
    """The licence names a package's machine-readable ``copyright`` file declares (or a pointer to it)."""
    copyright_file = Path("/usr/share/doc") / package / "copyright"
    try:
        text = copyright_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "see the package's copyright file"
    names: list[str] = []
    for line in text.splitlines():
        if line.startswith("License:"):
            name = line.split(":", 1)[1].strip()
            if name and name not in names:
                names.append(name)
    return ", ".join(names[:6]) if names else f"see {copyright_file}"


def split_counts(splits: dict[str, list[Any]]) -> str:
    return ", ".join(f"{s} {len(splits[s])}" for s in SPLITS)
