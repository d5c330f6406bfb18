"""Multiple-choice ``acc``, ``acc_norm`` and ``acc_bytes`` as lm-evaluation-harness defines them.

A prediction is one example's answers: one ``(logprob, choice)`` pair per choice, where ``logprob``
is the summed log-likelihood (natural log) of the continuation target delimiter + choice after the
context (a float, or a :class:`llmos_hub.Loglikelihood`), and ``choice`` is the choice's text
*without* the delimiter. The reference is the gold index. lm-eval normalizes ``acc_norm`` by the
choice's length in characters and ``acc_bytes`` by its length in UTF-8 bytes, the delimiter left
out in both (see the ``evaluate`` module), so the metric takes the text and counts itself rather
than trusting a length computed elsewhere. Every score is a mean of 0/1 values, so its standard
error is lm-eval's ``mean_stderr``: sample std (ddof=1) / sqrt(n).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

from .._metric import Score
from ..errors import UsageError
from ._base import EvaluateMetric, score
from ._stderr import mean_stderr

KEYS = ("acc", "acc_norm", "acc_bytes")


def choose(logprobs: Sequence[float], choices: Sequence[str]) -> tuple[int, int, int]:
    """The chosen index by raw, per-character and per-byte log-likelihood (``numpy.argmax`` ties)."""
    lls = np.asarray(logprobs, dtype=np.float64)
    chars = np.array([float(len(c)) for c in choices])
    num_bytes = np.array([float(len(c.encode("utf-8"))) for c in choices])
    return int(np.argmax(lls)), int(np.argmax(lls / chars)), int(np.argmax(lls / num_bytes))


class MultipleChoice(EvaluateMetric):
    """Accuracy of the highest-likelihood choice: raw, per character and per byte (0-1).

    Option ``num_choices`` (default: any): when set, every example must have exactly that many.
    """

    name = "multiple_choice"
    score_keys = KEYS
    module_name = "multiple_choice"
    options: Mapping[str, Any] = {"num_choices": None}

    def _example(self, prediction: Any, i: int, num_choices: Any) -> dict[str, list[Any]]:
        """One prediction as ``{"logprobs", "choices"}``; anything malformed is a one-line UsageError."""
        where = f"metric {self.name!r}: prediction {i}"
        if isinstance(prediction, (str, bytes, Mapping)) or not isinstance(prediction, Sequence):
            raise UsageError(
                f"{where} is {type(prediction).__name__}; pass one list of (logprob, choice text) "
                "pairs per example"
            )
        if len(prediction) < 2:
            raise UsageError(
                f"{where} has {len(prediction)} choice(s); a multiple-choice example needs at least 2"
            )
        if num_choices is not None and len(prediction) != num_choices:
            raise UsageError(
                f"{where} has {len(prediction)} choices, not {num_choices} (option num_choices); "
                "pass one (logprob, choice) pair per choice"
            )
        logprobs: list[float] = []
        choices: list[str] = []
        for j, pair in enumerate(prediction):
            if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise UsageError(f"{where}, choice {j} is {pair!r}; pass a (logprob, choice text) pair")
            logprob, choice = pair
            logprob = getattr(logprob, "logprob", logprob)  # a Loglikelihood answer
            if isinstance(logprob, bool) or not isinstance(logprob, Real) or not logprob < math.inf:
                raise UsageError(
                    f"{where}, choice {j} has log-likelihood {logprob!r}; pass a number (or -inf)"
                )
            if not isinstance(choice, str) or not choice:
                raise UsageError(
                    f"{where}, choice {j} has {choice!r} as its text; pass the choice's non-empty text "
                    "(acc_norm divides by its length in characters, as lm-evaluation-harness does)"
                )
            logprobs.append(float(logprob))
            choices.append(choice)
        return {"logprobs": logprobs, "choices": choices}

    def _gold(self, reference: Any, i: int, num_choices: int) -> int:
        if isinstance(reference, bool) or not isinstance(reference, Integral):
            raise UsageError(
                f"metric {self.name!r}: reference {i} is {reference!r}; "
                "pass the gold choice's index as an int"
            )
        if not 0 <= int(reference) < num_choices:
            raise UsageError(
                f"metric {self.name!r}: reference {i} is {int(reference)}, outside the {num_choices} "
                f"choices of prediction {i}; pass an index from 0 to {num_choices - 1}"
            )
        return int(reference)

    def _validated(
        self, predictions: Sequence[Any], references: Sequence[Any], num_choices: Any
    ) -> tuple[list[dict[str, list[Any]]], list[int]]:
        if num_choices is not None and (
            isinstance(num_choices, bool) or not isinstance(num_choices, int) or num_choices < 2
        ):
            raise UsageError(
                f"metric {self.name!r}: option num_choices is {num_choices!r}; pass an int >= 2"
            )
        examples = [self._example(p, i, num_choices) for i, p in enumerate(predictions)]
        golds = [self._gold(r, i, len(e["choices"])) for i, (e, r) in enumerate(zip(examples, references))]
        return examples, golds

    def compute(
        self,
        predictions: Sequence[Any],
        references: Sequence[Any],
        *,
        seed: int = 0,
        **options: Any,
    ) -> Mapping[str, Score]:
        opts = self._options(options)
        self._check_lengths(predictions, references)
        examples, golds = self._validated(predictions, references, opts["num_choices"])
        result = self._evaluate(predictions=examples, references=golds, return_per_example=True)
        per_example = result["per_example"]
        return {key: score(result[key], mean_stderr(per_example[key])) for key in KEYS}

    def per_example(self, prediction: Any, reference: Any, **options: Any) -> dict[str, float]:
        """The example's 0/1 scores and the chosen index by each rule (``chosen`` for acc)."""
        opts = self._options(options)
        (example,), (gold,) = self._validated([prediction], [reference], opts["num_choices"])
        picks = choose(example["logprobs"], example["choices"])
        out: dict[str, float] = {key: float(pick == gold) for key, pick in zip(KEYS, picks)}
        out.update(zip(("chosen", "chosen_norm", "chosen_bytes"), picks))
        return out
