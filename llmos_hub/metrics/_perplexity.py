"""Token/word/byte perplexity and bits per byte from log-likelihoods, with bootstrap standard errors.

Predictions are :class:`llmos_hub.Loglikelihood` records (or dicts with ``logprob`` and
``num_tokens``), one per document; references are the documents' original texts. The scores are
ratios of corpus sums (lm-evaluation-harness's definitions, see the ``evaluate`` module); their
standard errors come from resampling whole documents.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._metric import Score
from ..errors import UsageError
from ._base import EvaluateMetric, score
from ._stderr import bootstrap_stderr

KEYS = ("token_perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte")

#: Column of the per-document statistics [logprob, tokens, words, bytes] each score divides by.
_DENOMINATOR = {"token_perplexity": 1, "word_perplexity": 2, "byte_perplexity": 3, "bits_per_byte": 3}


def _ratio_statistic(key: str) -> Any:
    column = _DENOMINATOR[key]

    def statistic(sums: np.ndarray) -> np.ndarray:
        per_unit = -sums[:, 0] / sums[:, column]
        return per_unit / math.log(2) if key == "bits_per_byte" else np.exp(per_unit)

    return statistic


class Perplexity(EvaluateMetric):
    """The four language-modelling scores; lower is better for all of them."""

    name = "perplexity"
    score_keys = ("token_perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte")
    module_name = "perplexity"

    def _records(self, predictions: Sequence[Any]) -> list[dict[str, float | int]]:
        records = []
        for i, prediction in enumerate(predictions):
            if isinstance(prediction, Mapping):
                logprob, num_tokens = prediction.get("logprob"), prediction.get("num_tokens")
            else:
                logprob = getattr(prediction, "logprob", None)
                num_tokens = getattr(prediction, "num_tokens", None)
            if (
                not isinstance(logprob, (int, float))
                or not isinstance(num_tokens, int)
                or not math.isfinite(logprob)
                or num_tokens < 0
            ):
                raise UsageError(
                    f"metric 'perplexity' needs predictions with a finite .logprob and a "
                    f"non-negative int .num_tokens (llmos_hub.Loglikelihood); item {i} is {prediction!r}"
                )
            records.append({"logprob": float(logprob), "num_tokens": int(num_tokens)})
        return records

    def compute(
        self,
        predictions: Sequence[Any],
        references: Sequence[Any],
        *,
        seed: int = 0,
        **options: Any,
    ) -> Mapping[str, Score]:
        self._options(options)
        self._check_lengths(predictions, references)
        records = self._records(predictions)
        texts = self._check_strings(references, "references (the documents' texts)")
        result = self._evaluate(predictions=records, references=texts, return_statistics=True)
        stats = np.array(result["statistics"], dtype=np.float64)
        return {
            key: score(
                result[key],
                bootstrap_stderr(stats, _ratio_statistic(key), seed=seed, resamples=self.resamples),
                higher_is_better=False,
            )
            for key in KEYS
        }

    def per_example(self, prediction: Any, reference: Any, **options: Any) -> dict[str, float]:
        """The document's own scores; a score whose denominator is zero (empty text) is left out."""
        self._options(options)
        record = self._records([prediction])[0]
        text = self._check_strings([reference], "references (the documents' texts)")[0]
        counts = {1: record["num_tokens"], 2: len(re.split(r"\s+", text)), 3: len(text.encode("utf-8"))}
        sums = np.array([[record["logprob"], counts[1], counts[2], counts[3]]], dtype=np.float64)
        return {
            key: float(_ratio_statistic(key)(sums)[0]) for key in KEYS if counts[_DENOMINATOR[key]] > 0
        }
