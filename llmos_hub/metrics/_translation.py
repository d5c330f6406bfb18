"""BLEU and chrF: sacrebleu's corpus scores, their signatures, and bootstrap standard errors.

The corpus score comes from the ``evaluate`` module, which also returns each sentence's sufficient
statistics; the standard error resamples those statistics (see :mod:`._stderr`) and recomputes the
score with sacrebleu's own formula for each resample, so no sentence is tokenized twice.
Per-example scores are sacrebleu's sentence scores (sentence BLEU uses effective order, as
``sacrebleu.sentence_bleu`` does, unless ``use_effective_order`` is given).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._metric import Score
from ..errors import UsageError
from ._base import EvaluateMetric, score
from ._stderr import bootstrap_stderr


class _SacrebleuMetric(EvaluateMetric):
    """Shared by BLEU and chrF: references per example, sacrebleu statistics, bootstrap."""

    def _sacrebleu(self, options: Mapping[str, Any]) -> Any:
        """The sacrebleu metric object for ``options`` (used to score resampled statistics)."""
        raise NotImplementedError

    def _references(self, references: Sequence[Any]) -> list[list[str]]:
        """Each example's references as a list: a plain string is one reference."""
        out = []
        for i, refs in enumerate(references):
            refs = [refs] if isinstance(refs, str) else list(refs)
            self._check_strings(refs, f"references (example {i})")
            out.append(refs)
        if len({len(refs) for refs in out}) != 1 or not out[0]:
            raise UsageError(
                f"metric {self.name!r} needs the same, non-zero number of references for every example"
            )
        return out

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
        hypotheses = self._check_strings(predictions, "predictions")
        refs = self._references(references)
        result = self._evaluate(
            predictions=hypotheses, references=refs, return_statistics=True, **opts
        )
        metric = self._sacrebleu(opts)

        def statistic(sums: np.ndarray) -> np.ndarray:
            rows = np.rint(sums).astype(np.int64).tolist()
            return np.array([metric._compute_score_from_stats(row).score for row in rows])

        stderr = bootstrap_stderr(
            np.array(result["statistics"]), statistic, seed=seed, resamples=self.resamples
        )
        return {self.name: score(result[self.name], stderr, signature=result["signature"])}


class Bleu(_SacrebleuMetric):
    """Corpus BLEU (0-100) equal to ``sacrebleu.corpus_bleu``, with sacrebleu's signature."""

    name = "bleu"
    score_keys = ("bleu",)
    module_name = "bleu"
    options = {
        "tokenize": "13a",
        "lowercase": False,
        "smooth_method": "exp",
        "smooth_value": None,
        "use_effective_order": False,
        "force": False,
    }

    def _sacrebleu(self, options: Mapping[str, Any]) -> Any:
        import sacrebleu

        return sacrebleu.BLEU(
            lowercase=options["lowercase"],
            force=options["force"],
            tokenize=options["tokenize"],
            smooth_method=options["smooth_method"],
            smooth_value=options["smooth_value"],
            effective_order=options["use_effective_order"],
        )

    def per_example(self, prediction: Any, reference: Any, **options: Any) -> dict[str, float]:
        """Sentence BLEU of one pair, with effective order unless ``use_effective_order`` is given."""
        opts = self._options({"use_effective_order": True, **options})
        refs = self._references([reference])[0]
        hypothesis = self._check_strings([prediction], "predictions")[0]
        try:
            value = self._sacrebleu(opts).sentence_score(hypothesis, refs).score
        except (ValueError, TypeError, KeyError) as exc:
            raise UsageError(f"metric 'bleu' cannot score this input: {exc}") from exc
        return {"bleu": float(value)}


class Chrf(_SacrebleuMetric):
    """Corpus chrF (0-100) equal to ``sacrebleu.corpus_chrf``; ``word_order=2`` gives chrF++."""

    name = "chrf"
    score_keys = ("chrf",)
    module_name = "chrf"
    options = {
        "char_order": 6,
        "word_order": 0,
        "beta": 2,
        "lowercase": False,
        "whitespace": False,
        "eps_smoothing": False,
    }

    def _sacrebleu(self, options: Mapping[str, Any]) -> Any:
        import sacrebleu

        return sacrebleu.CHRF(**options)

    def per_example(self, prediction: Any, reference: Any, **options: Any) -> dict[str, float]:
        """Sentence chrF of one pair, with the same options as the corpus score."""
        opts = self._options(options)
        refs = self._references([reference])[0]
        hypothesis = self._check_strings([prediction], "predictions")[0]
        try:
            value = self._sacrebleu(opts).sentence_score(hypothesis, refs).score
        except (ValueError, TypeError, KeyError) as exc:
            raise UsageError(f"metric 'chrf' cannot score this input: {exc}") from exc
        return {"chrf": float(value)}
