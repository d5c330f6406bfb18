"""multiple-choice-sample: finish a sentence of the Python 3.11 documentation, one of four endings.

Built from the documents of lm-sample (already in the repository), never from new text: each
paragraph is cut into sentences, and a sentence of 8–40 words that reads as prose becomes one
example. Its ``context`` is the first half (cut at the word boundary ``len(words) // 2``), and its
``choices`` are the true second half and three second halves of other sentences of the *same*
split, drawn with a seeded RNG. The gold position is a seeded permutation of ``0 1 2 3 0 1 2 3 ...``,
so each position is gold for a quarter of the examples (±1).

lm-sample's split is kept: sentences of its test documents become the test split here, and so on,
so a model trained on lm-sample's train split (``nano:lm-sample``) has never seen a test sentence,
nor a test distractor. A first half that occurs twice anywhere (boilerplate such as "Changed in
version ...") is dropped everywhere, so no context is in two splits and no example is ambiguous.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

from _common import SPLITS

SIZES = {"test": 200, "validation": 150, "train": 1000}
MIN_WORDS, MAX_WORDS = 8, 40
NUM_CHOICES = 4

#: A sentence ends at . ? or ! (maybe followed by a closing quote or bracket), then a space and a
#: capital letter (maybe after an opening quote or bracket).
_SENTENCE_END = re.compile(r"(?:(?<=[.?!])|(?<=[.?!][\"”’)]))\s+(?=[\"“‘(]?[A-Z])")
#: Characters and forms that mark code, paths or markup rather than prose.
_CODE_LIKE = re.compile(
    r"[()\[\]{}<>=_*/\\|#@$%^~`+;]"   # brackets, operators, paths, markup
    r"|\w\.\w"                          # dotted names: os.path, e.g, 3.11
    r"|\b(?:e\.g|i\.e|etc|vs|cf)\b"    # abbreviations that end with a dot mid-sentence
    r"|\.\.\.|…|::|--"
)
#: A word made only of letters (with inner apostrophes or hyphens) and optional trailing punctuation.
_PROSE_WORD = re.compile(r"^[\"“‘]?[A-Za-z][A-Za-z’'-]*[,.:?!”\"’]*$")


def sentences(text: str) -> list[str]:
    """The sentences of a document: paragraphs split on blank lines, then on sentence ends."""
    out: list[str] = []
    for paragraph in text.split("\n\n"):
        paragraph = " ".join(paragraph.split())
        out.extend(s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip())
    return out


def is_prose_sentence(sentence: str) -> bool:
    """8–40 words of letters, starting with a capital, ending with a full stop, nothing code-like."""
    words = sentence.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return False
    if not (sentence[0].isupper() and sentence.endswith(".")) or _CODE_LIKE.search(sentence):
        return False
    # Mostly ordinary words: identifiers such as PyObject or NULL, and numbers, are few.
    prose = sum(bool(_PROSE_WORD.match(w)) and not _looks_like_identifier(w) for w in words)
    return prose >= 0.9 * len(words)


def _looks_like_identifier(word: str) -> bool:
    core = word.strip(",.:?!\"“”‘’'")
    inner_caps = any(c.isupper() for c in core[1:])
    return inner_caps and not core.isupper() or len(core) > 1 and core.isupper() and core not in {"I"}


def halves(sentence: str) -> tuple[str, str]:
    """(first half, second half) cut at the word boundary nearest the middle (``len // 2`` words)."""
    words = sentence.split()
    cut = len(words) // 2
    return " ".join(words[:cut]), " ".join(words[cut:])


def candidates(documents: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, str]]]:
    """Per split, every prose sentence as ``{id, context, ending}``; repeated first halves dropped."""
    found: dict[str, list[dict[str, str]]] = {s: [] for s in SPLITS}
    for split in SPLITS:
        for doc in documents[split]:
            for i, sentence in enumerate(sentences(doc["text"])):
                if is_prose_sentence(sentence):
                    context, ending = halves(sentence)
                    found[split].append({"id": f"{doc['id']}.s{i}", "context": context, "ending": ending})
    counts = Counter(row["context"].lower() for rows in found.values() for row in rows)
    return {s: [r for r in rows if counts[r["context"].lower()] == 1] for s, rows in found.items()}


def _examples(pool: list[dict[str, str]], size: int, rng: random.Random) -> list[dict[str, Any]]:
    """``size`` examples from ``pool``: distractors are endings of other sentences of the pool."""
    chosen = rng.sample(pool, min(size, len(pool)))
    labels = [i % NUM_CHOICES for i in range(len(chosen))]
    rng.shuffle(labels)
    endings = sorted({row["ending"] for row in pool})
    examples = []
    for row, label in zip(chosen, labels):
        distractors: list[str] = []
        while len(distractors) < NUM_CHOICES - 1:
            ending = rng.choice(endings)
            if ending != row["ending"] and ending not in distractors:
                distractors.append(ending)
        choices = distractors[:label] + [row["ending"]] + distractors[label:]
        examples.append({"id": row["id"], "context": row["context"], "choices": choices, "label": label})
    return sorted(examples, key=lambda e: e["id"])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def build(lm_folder: Path, seed: int) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """The three splits from lm-sample's files in ``lm_folder``, and facts for SOURCE.md."""
    documents = {s: read_jsonl(lm_folder / f"{s}.jsonl") for s in SPLITS}
    pools = candidates(documents)
    splits = {
        s: _examples(sorted(pools[s], key=lambda r: r["id"]), SIZES[s], random.Random(f"{seed}:{s}"))
        for s in SPLITS
    }
    facts = {
        "candidates": {s: len(pools[s]) for s in SPLITS},
        "labels": {s: [sum(e["label"] == k for e in splits[s]) for k in range(NUM_CHOICES)] for s in SPLITS},
    }
    return splits, facts
