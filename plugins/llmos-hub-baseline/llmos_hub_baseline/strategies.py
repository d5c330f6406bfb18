"""The trivial baselines, one per task kind, fitted on the task's train split and answering its requests.

=================== ============================================================================
kind                baseline
=================== ============================================================================
classification      the majority class of the train split (ties: the label declared first)
translation         the source copied unchanged
summarization       the first sentence of the input (up to the first ``.``, ``!`` or ``?`` + space)
language-modelling  a unigram model of whitespace-separated words fitted on the train split
multiple-choice     the choice position that is most often right in the train split
=================== ============================================================================

The unigram model is a proper distribution over word sequences: a word seen at least twice in the
train split has probability ``count / (N + 1)``; every other word is ``<unk>`` (probability
``(n1 + 1) / (N + 1)``, ``n1`` the number of words seen once) times the probability of its spelling
under an add-one smoothed model of UTF-8 bytes (fitted on the words seen once) that ends with an end
symbol. It scores ``len(text.split())`` tokens, so token perplexity is per word. Generated text is cut
at the task's stop strings, as a model's is; ``max_new_tokens`` (a count of a model's tokens) does not
apply to text that is not decoded token by token.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DESCRIPTIONS", "STRATEGIES", "Baseline", "ChoiceIndex", "Unigram", "first_sentence", "fit_baseline"]

#: The baseline strategy of each task kind.
STRATEGIES = {
    "classification": "majority-class",
    "translation": "copy-source",
    "summarization": "first-sentence",
    "language-modelling": "unigram",
    "multiple-choice": "choice-position",
}

DESCRIPTIONS = {
    "majority-class": "majority class of the train split",
    "copy-source": "copy the source",
    "first-sentence": "first sentence of the input",
    "unigram": "unigram word model of the train split",
    "choice-position": "most frequent right choice position of the train split",
}

_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def first_sentence(text: str) -> str:
    """``text`` up to its first sentence end (``.``, ``!`` or ``?`` followed by white space)."""
    match = _SENTENCE_END.search(text)
    return text[: match.start()] if match else text


@dataclass(frozen=True)
class Unigram:
    """Word unigram probabilities with an ``<unk>`` class spelled byte by byte (see the module doc)."""

    counts: Mapping[str, int]
    total: int
    singletons: int
    byte_counts: tuple[int, ...]  # 256 bytes + the end symbol

    @classmethod
    def fit(cls, texts: Sequence[str]) -> Unigram:
        words = Counter(w for text in texts for w in text.split())
        rare = [w for w, c in words.items() if c == 1]
        byte_counts = [0] * 257
        for word in rare:
            for b in word.encode("utf-8"):
                byte_counts[b] += 1
            byte_counts[256] += 1
        return cls({w: c for w, c in sorted(words.items()) if c >= 2}, sum(words.values()), len(rare), tuple(byte_counts))

    def word_logprob(self, word: str) -> float:
        count = self.counts.get(word)
        if count is not None:
            return math.log(count / (self.total + 1))
        denominator = sum(self.byte_counts) + 257
        spelling = sum(math.log((self.byte_counts[b] + 1) / denominator) for b in word.encode("utf-8"))
        spelling += math.log((self.byte_counts[256] + 1) / denominator)
        return math.log((self.singletons + 1) / (self.total + 1)) + spelling

    def logprob(self, text: str) -> tuple[float, int]:
        """(summed natural-log probability, number of words) of ``text``."""
        words = text.split()
        return sum(self.word_logprob(w) for w in words), len(words)

    def to_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "total": self.total, "singletons": self.singletons,
                "byte_counts": list(self.byte_counts)}


@dataclass(frozen=True)
class Baseline:
    """A fitted baseline: its strategy, what it was fitted on and its parameters (plain data)."""

    strategy: str
    task: str
    params: Mapping[str, Any] = field(default_factory=dict)
    fitted_on: Mapping[str, Any] = field(default_factory=dict)
    unigram: Unigram | None = None

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.strategy]

    def to_dict(self) -> dict[str, Any]:
        params = dict(self.params)
        if self.unigram is not None:
            params["unigram"] = self.unigram.to_dict()
        return {"strategy": self.strategy, "task": self.task, "params": params, "fitted_on": dict(self.fitted_on)}

    @property
    def sha256(self) -> str:
        """The hash of everything the baseline's answers depend on (its "weights")."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def num_parameters(self) -> int:
        if self.unigram is not None:
            return len(self.unigram.counts) + 257
        return 1 if self.strategy in ("majority-class", "choice-position") else 0


def fit_baseline(kind: str, task_name: str, train: Sequence[Any] | None, *, labels: Sequence[str] | None = None,
                 fitted_on: Mapping[str, Any] | None = None) -> Baseline:
    """The baseline of a task of ``kind``, fitted on the ``train`` examples where it needs data."""
    strategy = STRATEGIES[kind]
    fitted = dict(fitted_on or {})
    if strategy in ("copy-source", "first-sentence"):
        return Baseline(strategy, task_name)
    if not train:
        raise ValueError(f"the {DESCRIPTIONS[strategy]} needs the task's train split")
    if strategy == "majority-class":
        counts = Counter(str(ex.target) for ex in train)
        order = list(labels or sorted(counts))
        label = max(order, key=lambda name: (counts.get(name, 0), -order.index(name)))
        return Baseline(strategy, task_name, {"label": label, "labels": order}, fitted)
    if strategy == "unigram":
        return Baseline(strategy, task_name, {}, fitted, Unigram.fit([ex.input for ex in train]))
    positions = Counter(int(ex.target) for ex in train)
    position = max(sorted(positions), key=lambda p: positions[p])
    return Baseline(strategy, task_name, {"position": position}, fitted)


class ChoiceIndex:
    """Where each (context, continuation) request of a multiple-choice task sits among its example's choices.

    A runner answers log-likelihood requests one by one, batched across examples, so the choice-position
    baseline looks each request up: the context ends with an example's prompt (after any few-shot
    prefix) and the continuation is the delimiter plus one of that example's choices. Built from every
    split of the task, so it answers exactly the task's own examples.
    """

    def __init__(self, choices_by_prompt: Mapping[str, Sequence[str]], delimiter: str) -> None:
        self.choices_by_prompt = {k: list(v) for k, v in choices_by_prompt.items()}
        self.delimiter = delimiter
        self._by_length = sorted(self.choices_by_prompt, key=len, reverse=True)

    @classmethod
    def of_task(cls, task: Any) -> ChoiceIndex:
        table: dict[str, Sequence[str]] = {}
        for split in getattr(task.spec, "splits", {}) or {}:
            for ex in task.load(split=split).examples:
                table.setdefault(task.lm_prompt(ex), list(ex.extra["choices"]))
        return cls(table, str(getattr(task.spec, "target_delimiter", " ")))

    def position(self, context: str, continuation: str) -> int | None:
        """The choice's index in its example, or None if the request is not one of the task's."""
        choices = self.choices_by_prompt.get(context)
        if choices is None:
            choices = next((self.choices_by_prompt[p] for p in self._by_length if context.endswith(p)), None)
        if choices is None:
            return None
        text = continuation[len(self.delimiter):] if continuation.startswith(self.delimiter) else continuation
        return choices.index(text) if text in choices else None
