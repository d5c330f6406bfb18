"""summarization-sample and classification-sample: Debian package descriptions (bookworm, main).

Source files (after ``apt-get update -o Acquire::Languages=en``): the ``Packages`` index, which gives
each package's ``Section`` and ``Source``, and ``i18n/Translation-en``, which gives the English long
description; both joined on (package, ``Description-md5``). A long description is turned into plain
text: paragraph lines joined by spaces, one paragraph per line, list items on lines of their own.

Leakage control: descriptions that occur under several packages are dropped, transitional and
dummy packages are dropped, and one package is kept per *source* package (seeded choice), so sister
packages (``libfoo1`` / ``libfoo-dev``) with near-identical texts never straddle two splits.
"""

from __future__ import annotations

import random
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from _common import group_split

#: Where apt keeps the indexes; ``--apt-lists`` points elsewhere (a copy, if another
#: ``apt-get update`` without ``-o Acquire::Languages=en`` may remove Translation-en meanwhile).
LISTS = Path("/var/lib/apt/lists")
SUITE_PREFIX = "deb.debian.org_debian_dists_bookworm_"
PACKAGES = f"{SUITE_PREFIX}main_binary-amd64_Packages.lz4"
TRANSLATION = f"{SUITE_PREFIX}main_i18n_Translation-en.lz4"
RELEASE = f"{SUITE_PREFIX}InRelease"

SUMMARIZATION_SIZES = {"test": 150, "validation": 150, "train": 2000}
#: Sections with distinct topics; each is balanced in test and validation.
LABELS = ("admin", "games", "graphics", "net", "science", "sound")
CLASSIFICATION_PER_LABEL = {"test": 25, "validation": 25, "train": 300}

_BORING = re.compile(r"\b(transitional|dummy package|metapackage|debug symbols)\b", re.IGNORECASE)


def _stanzas(path: Path) -> list[dict[str, str]]:
    """Deb822 stanzas of an lz4-compressed index (continuation lines kept with their newlines)."""
    text = subprocess.run(["lz4cat", str(path)], capture_output=True, check=True).stdout.decode("utf-8")
    stanzas = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.split("\n"):
            if line.startswith((" ", "\t")) and key is not None:
                fields[key] += "\n" + line
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if fields:
            stanzas.append(fields)
    return stanzas


def plain_description(long_lines: list[str]) -> str:
    """Debian's long-description markup to plain text (`` .`` is a blank line)."""
    paragraphs: list[str] = []
    current: list[str] = []
    for raw in long_lines:
        line = raw[1:] if raw.startswith(" ") else raw
        if line.strip() == ".":
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        stripped = line.strip()
        if not stripped:
            continue
        if line.startswith(" ") or stripped[:2] in {"* ", "- ", "+ ", "o "}:
            if current:
                paragraphs.append(" ".join(current))
            current = [stripped]
        else:
            current.append(stripped)
    if current:
        paragraphs.append(" ".join(current))
    return "\n".join(re.sub(r"\s+", " ", p) for p in paragraphs)


def collect(lists: Path = LISTS) -> list[dict[str, Any]]:
    """One record per package with an English long description: name, source, section, texts."""
    for name in (PACKAGES, TRANSLATION):
        if not (lists / name).is_file():
            raise SystemExit(f"{lists / name}: missing; run `apt-get update -o Acquire::Languages=en`")
    info = {}
    for st in _stanzas(lists / PACKAGES):
        if "Package" in st and "Description-md5" in st:
            source = st.get("Source", st["Package"]).split(" ")[0]
            info[(st["Package"], st["Description-md5"])] = (source, st.get("Section", ""))
    records = []
    for st in _stanzas(lists / TRANSLATION):
        key = (st.get("Package", ""), st.get("Description-md5", ""))
        if key not in info or "Description-en" not in st:
            continue
        synopsis, *long_lines = st["Description-en"].split("\n")
        source, section = info[key]
        records.append({
            "package": key[0], "source": source, "section": section.split("/")[-1],
            "synopsis": synopsis.strip(), "description": plain_description(long_lines),
        })
    counts = Counter(r["description"] for r in records)
    return [
        r for r in records
        if counts[r["description"]] == 1
        and not _BORING.search(r["synopsis"] + " " + r["description"])
    ]


def _one_per_source(records: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    by_source: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: r["package"]):
        by_source.setdefault(r["source"], []).append(r)
    rng = random.Random(seed)
    return [rng.choice(by_source[s]) for s in sorted(by_source)]


def build_summarization(records: list[dict[str, Any]], seed: int) -> dict[str, list[dict[str, Any]]]:
    eligible = [
        r for r in records
        if 200 <= len(r["description"]) <= 1200 and 3 <= len(r["synopsis"].split()) <= 16
    ]
    chosen = _one_per_source(eligible, seed)
    splits = group_split(chosen, lambda r: r["source"], sizes=SUMMARIZATION_SIZES, seed=seed)
    return {
        split: [{"id": r["package"], "description": r["description"], "synopsis": r["synopsis"]}
                for r in sorted(rows, key=lambda r: r["package"])]
        for split, rows in splits.items()
    }


def build_classification(records: list[dict[str, Any]], seed: int) -> dict[str, list[dict[str, Any]]]:
    eligible = [r for r in records if r["section"] in LABELS and 120 <= len(r["description"]) <= 1200]
    chosen = _one_per_source(eligible, seed + 7)
    out: dict[str, list[dict[str, Any]]] = {"train": [], "validation": [], "test": []}
    for label in LABELS:
        of_label = [r for r in chosen if r["section"] == label]
        splits = group_split(of_label, lambda r: r["source"], sizes=CLASSIFICATION_PER_LABEL, seed=seed)
        for split, rows in splits.items():
            out[split].extend({"id": r["package"], "text": r["description"], "label": label} for r in rows)
    return {split: sorted(rows, key=lambda r: r["id"]) for split, rows in out.items()}


def release_date(lists: Path = LISTS) -> str:
    for line in (lists / RELEASE).read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("Date:"):
            return line.split(":", 1)[1].strip()
    return "unknown"
