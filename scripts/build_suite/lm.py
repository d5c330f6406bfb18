"""lm-sample: English prose from the Python 3.11 documentation (Debian's ``python3.11-doc``).

The rendered HTML pages are parsed with :mod:`html.parser`; the text of every ``<p>`` is kept with its
innermost ``<section>``, and a document is the paragraphs of one section, joined by blank lines and
cut at paragraph boundaries into pieces of at most 3000 characters. Documents shorter than 300
characters or with less than 75% letters and spaces are dropped, as are the changelog, the licence
pages and the C API (mostly identifiers). Each HTML *page* is a group, so test documents come from
pages none of whose text is in train.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from _common import group_split

DOCS = Path("/usr/share/doc/python3.11/html")
PACKAGE = "python3.11-doc"
SIZES = {"test": 150, "validation": 150, "train": 1000}
MIN_CHARS, MAX_CHARS = 300, 3000
_SKIP_TOP = {"_sources", "_static", "_images", "_downloads", "whatsnew", "c-api", "license.html",
             "genindex.html", "py-modindex.html", "search.html", "contents.html", "copyright.html"}


class _Paragraphs(HTMLParser):
    """Collects ``(section id, paragraph text)`` for every ``<p>`` inside a ``<section>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[str] = []
        self.paragraphs: list[tuple[str, str]] = []
        self._text: list[str] | None = None
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "section":
            self.sections.append(attr.get("id") or f"s{len(self.sections)}")
        elif tag == "p" and self.sections:
            self._text = []
        elif tag == "a" and "headerlink" in (attr.get("class") or ""):
            self._skip_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self.sections:
            self.sections.pop()
        elif tag == "p" and self._text is not None:
            text = re.sub(r"\s+", " ", "".join(self._text)).strip()
            if text:
                self.paragraphs.append((self.sections[-1], text))
            self._text = None
        elif tag == "a" and self._skip_depth:
            self._skip_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._text is not None and not self._skip_depth:
            self._text.append(data)


def is_prose(text: str) -> bool:
    letters = sum(c.isalpha() or c == " " for c in text)
    return MIN_CHARS <= len(text) <= MAX_CHARS and letters / len(text) >= 0.75


def _documents(paragraphs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Paragraphs of one section joined into documents of at most ``MAX_CHARS``."""
    docs: list[tuple[str, str]] = []
    current_section, current = None, []  # type: ignore[var-annotated]
    counter: dict[str, int] = {}

    def flush() -> None:
        if current_section is not None and current:
            n = counter.get(current_section, 0)
            counter[current_section] = n + 1
            docs.append((f"{current_section}-{n}", "\n\n".join(current)))

    for section, text in paragraphs:
        if len(text) > MAX_CHARS:
            continue
        too_long = sum(len(p) + 2 for p in current) + len(text) > MAX_CHARS
        if section != current_section or too_long:
            flush()
            current_section, current = section, []
        current.append(text)
    flush()
    return docs


def collect(docs_dir: Path = DOCS) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted(docs_dir.rglob("*.html")):
        rel = path.relative_to(docs_dir)
        if rel.parts[0] in _SKIP_TOP:
            continue
        parser = _Paragraphs()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        page = rel.with_suffix("").as_posix()
        for ident, text in _documents(parser.paragraphs):
            if is_prose(text) and text not in rows:
                rows[text] = {"id": f"{page}#{ident}", "text": text, "page": page}
    return list(rows.values())


def build(seed: int) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    rows = collect()
    splits = group_split(rows, lambda r: r["page"], sizes=SIZES, seed=seed)
    out = {s: [{"id": r["id"], "text": r["text"]} for r in sorted(part, key=lambda r: r["id"])]
           for s, part in splits.items()}
    return out, {"candidates": len(rows), "pages": len({r["page"] for r in rows})}
