"""Standard errors: a seeded bootstrap for corpus-level metrics, the analytic formula for means.

Corpus metrics (BLEU, chrF, macro-F1, perplexities) are functions of *sums* of per-example
statistics, so one bootstrap resample is a vector of multinomial counts ``w`` (how often each example
was drawn) and its sums are ``w @ stats``: the corpus is tokenized once, and a thousand resamples
cost one matrix product plus the metric's formula on each row. The standard error is the sample
standard deviation (ddof=1) of the resampled scores. Draws come from
``numpy.random.default_rng(seed)``, so the same seed and data give the same number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["DEFAULT_RESAMPLES", "bootstrap_stderr", "mean_stderr", "proportion_stderr"]

DEFAULT_RESAMPLES = 1000

#: Upper bound on weight-matrix cells drawn at once (memory stays in the tens of MB).
_MAX_CELLS = 4_000_000


def bootstrap_stderr(
    stats: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
) -> float | None:
    """Bootstrap standard error of ``statistic`` over resamples of the rows of ``stats``.

    ``stats`` is (examples × k); ``statistic`` maps (resamples × k) column sums to one score per
    row. Returns None for fewer than two examples, where no spread can be estimated. Resamples on
    which the statistic is undefined (NaN or infinite, e.g. a resample of only empty documents) are
    left out.
    """
    stats = np.asarray(stats, dtype=np.float64)
    n = stats.shape[0]
    if n < 2 or resamples < 2:
        return None
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, _MAX_CELLS // n))
    probabilities = np.full(n, 1.0 / n)
    scores = []
    for start in range(0, resamples, chunk):
        weights = rng.multinomial(n, probabilities, size=min(chunk, resamples - start))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            values = np.asarray(statistic(weights.astype(np.float64) @ stats), dtype=np.float64)
        scores.append(values[np.isfinite(values)])
    finite = np.concatenate(scores)
    return float(np.std(finite, ddof=1)) if finite.size >= 2 else None


def mean_stderr(values: Sequence[float]) -> float | None:
    """Standard error of a mean of per-example values: sample std (ddof=1) / sqrt(n)."""
    n = len(values)
    if n < 2:
        return None
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1) / math.sqrt(n))


def proportion_stderr(p: float, n: int) -> float | None:
    """Standard error of a proportion of ``n`` independent 0/1 outcomes: sqrt(p(1-p)/n)."""
    if n < 2:
        return None
    return math.sqrt(p * (1.0 - p) / n)
