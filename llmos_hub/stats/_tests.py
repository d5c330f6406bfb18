"""Significance tests for two systems scored on the same examples, and Holm's correction.

Only numpy and the standard library: ``llmos-hub compare`` and the leaderboard run these, and the CLI
must not pay for scipy. Each test is checked against its reference implementation in the tests
(statsmodels' exact McNemar, scipy's permutation test, statsmodels' Holm, a naive bootstrap).

- Accuracy-type scores (one right/wrong flag per example): the **exact McNemar test**, a two-sided
  binomial test on the discordant pairs (b examples only A got right, c only B got right):
  ``p = min(1, 2 * P(X <= min(b, c)))`` with ``X ~ Binomial(b + c, 1/2)``.
- Scores that are a mean of per-example values (ROUGE): the **paired sign-flip permutation test** on
  the per-example differences; exact (all 2^n sign patterns) when 2^n is at most the number of
  resamples, otherwise Monte Carlo with the ``(count + 1) / (resamples + 1)`` p-value.
- Corpus scores (BLEU, chrF, macro-F1, perplexities): the **paired bootstrap** over examples. One
  resample draws n example indices with replacement and recomputes *both* systems' scores from the same
  examples' sufficient statistics; the p-value is the share of resampled differences, centred on their
  mean, at least as far from zero as the observed one (``(count + 1) / (resamples + 1)``), and the
  confidence interval is the percentile interval of the resampled differences.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np

__all__ = [
    "bootstrap_indices",
    "bootstrap_scores",
    "holm",
    "mcnemar_exact",
    "paired_bootstrap",
    "percentile_interval",
    "sign_flip_permutation",
    "unpaired_z_test",
]

#: Rows of indices drawn at once (keeps the index matrix in the tens of MB).
_MAX_CELLS = 4_000_000


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` and ``c``.

    ``2 * P(X <= min(b, c))`` for ``X ~ Binomial(b + c, 1/2)``, capped at 1: equal to
    ``scipy.stats.binomtest(b, b + c).pvalue`` and statsmodels' ``mcnemar(exact=True)`` to about 1e-13
    relative (about 1e-10 beyond 5,000 discordant pairs). The tail is summed in floats relative to its
    largest term ``C(n, k)`` (the terms fall geometrically away from it), and that term's logarithm is
    taken once, so the cost is O(min(b, c)) float operations however many pairs are discordant (it was
    a sum of big integers, ~60 s at 20,000 pairs). No discordant pair gives 1.
    """
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    if 2 * k >= n - 1:  # b == c, or |b - c| == 1: the two tails cover every outcome
        return 1.0
    # sum_{i<=k} C(n, i) = C(n, k) * sum_{i<=k} C(n, i) / C(n, k); the ratios fall by i / (n - i + 1).
    ratio, total = 1.0, 1.0
    for i in range(k, 0, -1):
        ratio *= i / (n - i + 1)
        total += ratio
        if ratio < 1e-17 * total:
            break
    # log C(n, k): exact up to 5,000 pairs (a big integer, still quick), lgamma beyond (~1e-10 relative).
    if n <= 5_000:
        log_top = math.log(math.comb(n, k))
    else:
        log_top = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    log_p = math.log(2.0) + log_top + math.log(total) - n * math.log(2.0)
    return min(1.0, math.exp(log_p))


def bootstrap_indices(n: int, *, seed: int, resamples: int) -> list[np.ndarray]:
    """``resamples`` rows of ``n`` indices drawn with replacement, in chunks, from ``default_rng(seed)``.

    The draw is ``rng.choice(n, size=(rows, n))`` chunk after chunk, which is the same stream as one
    ``rng.choice(n, size=n)`` per resample: a naive loop with the same seed sees the same resamples.
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, _MAX_CELLS // max(n, 1)))
    out = []
    for start in range(0, resamples, chunk):
        out.append(rng.choice(n, size=(min(chunk, resamples - start), n), replace=True))
    return out


def bootstrap_scores(
    stats: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], indices: Sequence[np.ndarray]
) -> np.ndarray:
    """The score of every resample: ``statistic`` of the column sums of ``stats[rows]``.

    ``stats`` is (examples × k); each resample's sums are a weighted sum of rows, computed as one
    matrix product per chunk (a count of how often each example was drawn, times ``stats``).
    """
    stats = np.asarray(stats, dtype=np.float64)
    if stats.ndim == 1:
        stats = stats[:, None]
    n = stats.shape[0]
    scores = []
    for rows in indices:
        flat = (rows + np.arange(rows.shape[0])[:, None] * n).ravel()
        counts = np.bincount(flat, minlength=rows.shape[0] * n).reshape(rows.shape[0], n).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            scores.append(np.asarray(statistic(counts @ stats), dtype=np.float64))
    return np.concatenate(scores) if scores else np.zeros(0)


def percentile_interval(values: np.ndarray, alpha: float) -> tuple[float, float] | None:
    """The (alpha/2, 1 - alpha/2) percentile interval of the finite ``values``."""
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return None
    lo, hi = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bootstrap_p_value(deltas: np.ndarray, observed: float) -> float | None:
    """Two-sided p-value of ``observed`` against resampled differences centred on their mean.

    None (no test) when the observed difference is not a finite number, or when the finite resampled
    differences are fewer than two, or all equal while the observed difference is not zero: a resampling
    with no spread (one example, or examples that all move the score alike) says nothing about the
    noise, and would give the floor p-value. No difference and no spread (identical systems) gives 1.
    """
    finite = deltas[np.isfinite(deltas)]
    if not math.isfinite(observed) or finite.size < 2:
        return None
    if float(np.ptp(finite)) == 0.0:
        return 1.0 if observed == 0 else None
    centred = np.abs(finite - finite.mean())
    # A difference of exactly zero is never significant, whatever the resamples say.
    count = int(np.sum(centred >= abs(observed) - 1e-12 * max(1.0, abs(observed))))
    return (count + 1) / (finite.size + 1)


def paired_bootstrap(
    stats_a: np.ndarray,
    stats_b: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    seed: int = 0,
    resamples: int = 1000,
    alpha: float = 0.05,
) -> tuple[float, tuple[float, float] | None, float | None]:
    """``(delta, ci, p)`` for ``statistic(B) - statistic(A)`` over the same resampled examples.

    Fewer than two examples, or resampled differences with no spread, give no test (p None).
    """
    a = np.asarray(stats_a, dtype=np.float64)
    b = np.asarray(stats_b, dtype=np.float64)
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    if a.shape[0] != b.shape[0]:
        raise ValueError("paired statistics need the same examples in both arms")
    observed = float(statistic(b.sum(axis=0, keepdims=True))[0] - statistic(a.sum(axis=0, keepdims=True))[0])
    indices = bootstrap_indices(a.shape[0], seed=seed, resamples=resamples)
    deltas = bootstrap_scores(b, statistic, indices) - bootstrap_scores(a, statistic, indices)
    p = bootstrap_p_value(deltas, observed) if a.shape[0] >= 2 else None
    return observed, percentile_interval(deltas, alpha), p


def sign_flip_permutation(differences: Sequence[float], *, seed: int = 0, resamples: int = 10000) -> float:
    """Two-sided p-value of the mean of paired ``differences`` under random sign flips.

    Exact when ``2 ** n <= resamples`` (every sign pattern, the observed one included, as
    ``scipy.stats.permutation_test`` does); otherwise ``(count + 1) / (resamples + 1)`` over seeded
    random patterns. All-zero differences give 1. A difference that is not a finite number is refused
    (``ValueError``): NaN compares false with everything, and would count as no pattern being as extreme.
    """
    d = np.asarray(differences, dtype=np.float64)
    if not np.all(np.isfinite(d)):
        raise ValueError("the paired differences hold a value that is not a finite number (NaN or infinity)")
    n = d.size
    observed = abs(float(d.mean())) if n else 0.0
    if n == 0 or not np.any(d):
        return 1.0
    tolerance = 1e-12 * max(1.0, observed)
    if n < 63 and 2**n <= resamples:
        patterns = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2.0 - 1.0
        means = np.abs(patterns @ d) / n
        return float(np.mean(means >= observed - tolerance))
    rng = np.random.default_rng(seed)
    count = 0
    chunk = max(1, min(resamples, _MAX_CELLS // n))
    for start in range(0, resamples, chunk):
        signs = rng.integers(0, 2, size=(min(chunk, resamples - start), n)) * 2.0 - 1.0
        count += int(np.sum(np.abs(signs @ d) / n >= observed - tolerance))
    return (count + 1) / (resamples + 1)


def unpaired_z_test(
    a: float, b: float, stderr_a: float | None, stderr_b: float | None, *, alpha: float = 0.05
) -> tuple[tuple[float, float] | None, float | None]:
    """``(ci, p)`` of ``b - a`` treating the two estimates as independent normals.

    No test (``(None, None)``) without both standard errors, with non-finite inputs, or when both
    standard errors are zero (a score of one example, say): a zero error is no evidence of a difference.
    """
    if stderr_a is None or stderr_b is None:
        return None, None
    if not all(math.isfinite(float(x)) for x in (a, b, stderr_a, stderr_b)):
        return None, None
    combined = math.sqrt(stderr_a**2 + stderr_b**2)
    delta = b - a
    if combined == 0:
        return None, None
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p = math.erfc(abs(delta) / combined / math.sqrt(2))
    return (delta - z * combined, delta + z * combined), p


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
