"""Build the bundled default suite's data from text on this machine: ``python scripts/build_suite``.

Writes ``llmos_hub/tasks/builtin/data/<task>/{train,validation,test}.jsonl`` and a ``SOURCE.md`` per
task (source, licence, filters, sizes, sha256 of each file). Seeded and sorted: the same inputs give
byte-identical files. Needs (Debian bookworm)::

    apt-get update -o Acquire::Languages=en      # Translation-en with long descriptions
    apt-get install --no-install-recommends python3.11-doc lz4
    pip install polib

``--only multiple-choice-sample`` rebuilds just that task from the committed lm-sample files (it
needs none of the above). Tests and CI never run this; they use the committed files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import debian  # noqa: E402
import lm  # noqa: E402
import multiple_choice  # noqa: E402
import translation  # noqa: E402
from _common import SPLITS, package_version, sha256_file, split_counts, write_jsonl  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "llmos_hub" / "tasks" / "builtin" / "data"
COMMAND = "python scripts/build_suite --seed 0"
TASKS = ("translation-sample", "summarization-sample", "classification-sample", "lm-sample",
         "multiple-choice-sample")


def _write_task(out: Path, task: str, splits: dict[str, list[dict[str, Any]]], source_md: str) -> None:
    folder = out / task
    lines = []
    for split in SPLITS:
        path = folder / f"{split}.jsonl"
        n = write_jsonl(path, splits[split])
        size = path.stat().st_size
        lines.append(f"| `{split}.jsonl` | {n} | {size:,} | `{sha256_file(path)}` |")
    table = "| file | examples | bytes | sha256 |\n| --- | --- | --- | --- |\n" + "\n".join(lines)
    text = source_md.strip() + f"\n\n## Files\n\n{table}\n\nBuilt with `{COMMAND}` " \
        "(`scripts/build_suite/` in the llmos-hub repository).\n"
    (folder / "SOURCE.md").write_text(text, encoding="utf-8")
    print(f"{task}: {split_counts(splits)}")


def _translation_md(facts: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| `{c['catalog']}` | {c['package']} {c['version']} | {c['licenses']} | {c['kept']} |"
        for c in facts["catalogs"]
    )
    return f"""# translation-sample: English→German messages of GNU message catalogs

**Source**: the German message catalogs (`/usr/share/locale/de/LC_MESSAGES/*.mo`) installed by the
Debian 12 (bookworm) packages listed below, read with `polib`. The English is each program's
`msgid`, the German its translators' `msgstr`.

**Licence**: each pair is covered by the licence of the package it comes from (a translation
catalog is distributed under the same licence as the program): mostly GPL-2+/GPL-3+ and
LGPL-2.1+; PostgreSQL's catalogs under the PostgreSQL Licence; MIT/X11 for krb5 and
xkeyboard-config. The per-package licences below are read from each package's
`/usr/share/doc/<package>/copyright`; the full texts are in `/usr/share/common-licenses` and those files.

**Filters** (`scripts/build_suite/translation.py`): no plural forms or message contexts; no format
directives or markup (`% {{ }} $ < > & | \\`, mnemonics `_x`, `--`, `...`, tabs, newlines, double
spaces); 20–150 characters; starts with a capital letter followed by a lower-case one; ends with a
letter, `.`, `!`, `?` or `)`; at least 4 words; German differs from English; `iso_*` catalogs
(country and language names) skipped. Duplicates of the same English text are kept once (first catalog
in sorted order). Each English message is its own group, so no English text is in two splits.
{facts['candidates']} pairs passed the filters; splits are seeded samples of them.

Fields: `id` (`msg-` + sha1 of the English, 12 hex), `en`, `de`, `catalog`.

| catalog | package | licence(s) | pairs kept |
| --- | --- | --- | --- |
{rows}"""


def _debian_md(task: str, what: str, fields: str, filters: str, lists: Path) -> str:
    return f"""# {task}: {what}

**Source**: Debian 12 (bookworm) `main` archive indexes as fetched by
`apt-get update -o Acquire::Languages=en` from deb.debian.org (Release date
{debian.release_date(lists)}): `binary-amd64/Packages` (package, `Source`, `Section`,
`Description-md5`) joined with `i18n/Translation-en` (English synopsis and long description).

**Licence**: a package description is part of that package's `debian/control` and is distributed
under the package's licence; every package in Debian `main` is free software under the Debian Free
Software Guidelines (the licence of package `P` is in its `/usr/share/doc/P/copyright`). The Debian
archive indexes themselves are published by the Debian project.

**Filters** (`scripts/build_suite/debian.py`): long-description markup turned into plain text (one
paragraph per line, list items on their own line); descriptions shared by several packages dropped;
transitional, dummy, meta and debug-symbol packages dropped; one package kept per source package
(seeded choice), and the split is by source package. {filters}

Fields: {fields}"""


def _lm_md(facts: dict[str, Any]) -> str:
    return f"""# lm-sample: English prose from the Python 3.11 documentation

**Source**: the HTML documentation of Python 3.11 as shipped by Debian's `{lm.PACKAGE}`
{package_version(lm.PACKAGE)} (`/usr/share/doc/python3.11/html`): the text of the paragraphs
(`<p>`) of each page section. Code examples, tables and headings are not included.

**Licence**: Python documentation, Copyright © 2001-2023 Python Software Foundation; licensed under
the PSF License Agreement (the documentation's code examples also under the Zero-Clause BSD licence),
see `https://docs.python.org/3.11/license.html` and `/usr/share/doc/{lm.PACKAGE}/copyright`.

**Filters** (`scripts/build_suite/lm.py`): paragraphs of one section joined with blank lines into
documents of at most {lm.MAX_CHARS} characters (cut at paragraph boundaries); documents of
{lm.MIN_CHARS}–{lm.MAX_CHARS} characters with at least 75% letters and spaces; "What's New", the C API,
licence and index pages skipped; duplicates dropped. Each HTML page is a group, so no page has text
in two splits. {facts['candidates']} documents from {facts['pages']} pages passed the filters.

Fields: `id` (page `#` section id `-` piece number), `text`."""


def _multiple_choice_md(facts: dict[str, Any]) -> str:
    pools = ", ".join(f"{facts['candidates'][s]} {s}" for s in SPLITS)
    gold = "; ".join(f"{s} {' / '.join(map(str, facts['labels'][s]))}" for s in SPLITS)
    mc = multiple_choice
    return f"""# multiple-choice-sample: finish a sentence of the Python 3.11 documentation

**Source**: the sentences of the documents of `lm-sample` (this repository's
`llmos_hub/tasks/builtin/data/lm-sample/*.jsonl`), that is the paragraphs of the HTML documentation
of Python 3.11 as shipped by Debian's `{lm.PACKAGE}` (see `lm-sample/SOURCE.md`). Each example is
one real sentence: `context` is its first half, and `choices` holds its true second half and the
second halves of three other sentences of the same split. No text was written for this task.

**Licence**: Python documentation, Copyright © 2001-2023 Python Software Foundation; licensed under
the PSF License Agreement, see `https://docs.python.org/3.11/license.html` and
`/usr/share/doc/{lm.PACKAGE}/copyright`.

**Filters** (`scripts/build_suite/multiple_choice.py`): paragraphs split into sentences at `.`, `?`
or `!` followed by a space and a capital letter; kept: sentences of {mc.MIN_WORDS}–{mc.MAX_WORDS}
words that start with a capital and end with a full stop, with no brackets, operators, paths,
markup, dotted names or mid-sentence abbreviations, and at least 90% plain words (no identifiers such
as `PyObject` or all-capitals names); a first half that occurs twice anywhere is dropped everywhere.
The cut is after word `len(words) // 2`; joining `context`, one space and the gold choice gives the
sentence back (whitespace normalised). Candidates: {pools}.

**Splits**: lm-sample's split is kept (its splits are by documentation page): test sentences and
their distractors come only from lm-sample's test documents, and so on, so a model trained on
lm-sample's train split has never seen a test sentence. Each split is a seeded sample of its
candidates; distractors are seeded draws of other candidates' second halves in the same split
(distinct from the gold and from each other); the gold position is a seeded permutation of
0 1 2 3 0 1 2 3 ..., so each position is gold equally often (±1). Gold positions 0 / 1 / 2 / 3:
{gold}.

Fields: `id` (lm-sample document id `.s` sentence number), `context`, `choices` (4 strings), `label`
(index of the true ending)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--apt-lists", type=Path, default=debian.LISTS,
                        help="folder holding the bookworm Packages, Translation-en and InRelease files")
    parser.add_argument("--only", choices=TASKS, action="append",
                        help="build only this task (repeatable); default: all")
    args = parser.parse_args(argv)
    only = set(args.only or TASKS)

    if "multiple-choice-sample" in only and only != set(TASKS):
        # Alone, it reads the committed lm-sample; with the rest, the freshly built one (below).
        only.discard("multiple-choice-sample")
        _build_multiple_choice(args.out, args.seed)
    if not only:
        return 0
    if only != set(TASKS):
        parser.error("--only supports multiple-choice-sample for now; the other tasks build together")

    splits, facts = translation.build(args.seed)
    _write_task(args.out, "translation-sample", splits, _translation_md(facts))

    records = debian.collect(args.apt_lists)
    _write_task(args.out, "summarization-sample", debian.build_summarization(records, args.seed), _debian_md(
        "summarization-sample", "Debian package long description → one-line synopsis",
        "`id` (binary package name), `description` (the long description), `synopsis`.",
        "Kept: descriptions of 200–1200 characters, synopses of 3–16 words.", args.apt_lists))
    labels = ", ".join(f"`{label}`" for label in debian.LABELS)
    per = debian.CLASSIFICATION_PER_LABEL
    _write_task(args.out, "classification-sample", debian.build_classification(records, args.seed), _debian_md(
        "classification-sample", "Debian package section from its long description",
        "`id` (binary package name), `text` (the long description), `label` (the Debian section).",
        f"Kept: packages in the sections {labels}, descriptions of 120–1200 characters; per label "
        f"at most {per['test']} test, {per['validation']} validation and {per['train']} train examples "
        "(each label is split by source package on its own).", args.apt_lists))

    splits, facts = lm.build(args.seed)
    _write_task(args.out, "lm-sample", splits, _lm_md(facts))
    _build_multiple_choice(args.out, args.seed)
    return 0


def _build_multiple_choice(out: Path, seed: int) -> None:
    splits, facts = multiple_choice.build(out / "lm-sample", seed)
    _write_task(out, "multiple-choice-sample", splits, _multiple_choice_md(facts))


if __name__ == "__main__":
    raise SystemExit(main())
