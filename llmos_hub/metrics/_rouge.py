"""ROUGE-1/2/L/Lsum: mean per-example F-measure from rouge_score, with its analytic standard error.

Aggregation is the plain mean over examples (documented in the ``evaluate`` module), so the
standard error is the textbook one for a mean: sample std / sqrt(n).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from .._metric import Score
from ._base import EvaluateMetric, score
from ._stderr import mean_stderr

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


class Rouge(EvaluateMetric):
    """ROUGE F-measures on 0-1; ``rougeLsum`` splits sentences on newlines, as rouge_score does."""

    name = "rouge"
    score_keys = ("rouge1", "rouge2", "rougeL", "rougeLsum")
    module_name = "rouge"
    options = {"use_stemmer": False}

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
        result = self._evaluate(
            predictions=self._check_strings(predictions, "predictions"),
            references=self._references(references),
            return_per_example=True,
            **opts,
        )
        per_example = result["per_example"]
        return {t: score(result[t], mean_stderr(per_example[t])) for t in ROUGE_TYPES}

    def example_statistics(
        self, predictions: Sequence[Any], references: Sequence[Any], **options: Any
    ) -> Mapping[str, Mapping[str, Any]]:
        """Each example's F-measure per ROUGE type (the score is their mean)."""
        opts = self._options(options)
        self._check_lengths(predictions, references)
        result = self._evaluate(
            predictions=self._check_strings(predictions, "predictions"),
            references=self._references(references),
            return_per_example=True,
            **opts,
        )
        return {t: {"kind": "mean", "values": [float(v) for v in result["per_example"][t]]} for t in ROUGE_TYPES}

    def per_example(self, prediction: Any, reference: Any, **options: Any) -> dict[str, float]:
        """rouge_score's F-measures for one pair."""
        opts = self._options(options)
        prediction = self._check_strings([prediction], "predictions")[0]
        reference = self._references([reference])[0]
        scorer = _scorer(bool(opts["use_stemmer"]))
        if isinstance(reference, list):
            scores = scorer.score_multi(reference, prediction)
        else:
            scores = scorer.score(reference, prediction)
        return {t: float(scores[t].fmeasure) for t in ROUGE_TYPES}

    def _references(self, references: Sequence[Any]) -> list[Any]:
        """Each example's reference: a string, or a list of strings (several references)."""
        if any(isinstance(r, (list, tuple)) for r in references):
            out = [[r] if isinstance(r, str) else list(r) for r in references]
            for i, refs in enumerate(out):
                self._check_strings(refs, f"references (example {i})")
                if not refs:
                    from ..errors import UsageError

                    raise UsageError(f"metric 'rouge': example {i} has no reference")
            return out
        return self._check_strings(references, "references")


@lru_cache(maxsize=2)
def _scorer(use_stemmer: bool) -> Any:
    """One rouge_score scorer per stemming choice: building one costs more than scoring a pair."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
