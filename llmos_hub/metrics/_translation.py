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

    def _validate(self, opts: Mapping[str, Any]) -> None:
        """Raise a UsageError for option values sacrebleu cannot use (it asserts, or fails mid-score)."""

    def _options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        opts = super()._options(options)
        self._validate(opts)
        return opts

    def check_options(self, options: Mapping[str, Any]) -> None:
        self._options(options)

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

    def example_statistics(
        self, predictions: Sequence[Any], references: Sequence[Any], **options: Any
    ) -> Mapping[str, Mapping[str, Any]]:
        """sacrebleu's sufficient statistics of every sentence (resampled by the paired bootstrap)."""
        opts = self._options(options)
        self._check_lengths(predictions, references)
        hypotheses = self._check_strings(predictions, "predictions")
        result = self._evaluate(
            predictions=hypotheses, references=self._references(references), return_statistics=True, **opts
        )
        rows = [[int(round(v)) for v in row] for row in result["statistics"]]
        return {self.name: {"kind": "corpus", "values": rows}}

    def score_from_statistics(self, key: str, sums: Any, **options: Any) -> Any:
        """sacrebleu's corpus score of each row of summed statistics."""
        metric = self._sacrebleu(self._options(options))
        rows = np.rint(np.asarray(sums, dtype=np.float64)).astype(np.int64).tolist()
        return np.array([metric._compute_score_from_stats(row).score for row in rows])


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

    def _validate(self, opts: Mapping[str, Any]) -> None:
        """``tokenize`` and ``smooth_method`` name sacrebleu's; ``smooth_value`` is not negative."""
        import sacrebleu

        for key, known in (("tokenize", sacrebleu.BLEU.TOKENIZERS), ("smooth_method", sacrebleu.BLEU.SMOOTH_DEFAULTS)):
            if opts[key] is None and key == "tokenize":
                continue  # sacrebleu's own default (13a), as tokenize: null means in sacrebleu
            if opts[key] not in known:
                raise UsageError(f"option {key} {opts[key]!r} is not one of sacrebleu's: {', '.join(map(str, known))}")
        value = opts["smooth_value"]
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0):
            raise UsageError(f"option smooth_value must be a number of at least 0 (or left out), not {value!r}")

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

    def _validate(self, opts: Mapping[str, Any]) -> None:
        """``char_order`` at least 1; ``word_order`` and ``beta`` at least 0 (``beta`` 0 weighs precision only)."""
        for key, least in (("char_order", 1), ("word_order", 0), ("beta", 0)):
            value = opts[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise UsageError(f"option {key} must be a whole number of at least {least}, not {value!r}")

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
