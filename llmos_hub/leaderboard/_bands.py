"""Rank bands: rows whose primary scores are not significantly different share a (tied) rank.

Every pair of rows on a board is tested on the primary metric — pair by pair over the shared examples
when both records keep per-example data (exact McNemar for accuracy-type scores; for means and corpus
scores a paired bootstrap, whose standard error of the difference gives a normal p-value), otherwise the
unpaired z-test on the two standard errors. The p-values of all pairs are Holm-corrected together (the
whole board is one family). Then, best row first, each band's best row takes every following row not
significantly different from it; the first row that is starts the next band. A row's band is the point
rank of its band's best row, so ranks read like tied ranks in sport: 1, 1, 1, 4, 4, 6.

Normal p-values on the board (not the bootstrap's own ``(count + 1) / (resamples + 1)``): after Holm
multiplies the smallest p-value by the number of pairs, a resampling p-value floored at 1/1001 could
never be significant on a board of 15 rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..stats._paired import Arm, compare_metric, pairing_problem
from ..stats._tests import bootstrap_indices, holm

__all__ = ["assign_bands", "baseline_of"]


def baseline_of(record: Any) -> str | None:
    """The baseline a record's model is (its description), or None for a real model.

    A model family marks a baseline with ``extra.baseline`` in its provenance (the ``baseline`` family
    does); a record of the ``baseline`` family is one even without the description.
    """
    model = record.data["model"]
    described = (model.get("extra") or {}).get("baseline")
    if described:
        return str(described)
    return "baseline" if model.get("family") == "baseline" else None


def _pvalues(arms: Sequence[Arm], metric: str, *, alpha: float, seed: int, resamples: int) -> tuple[dict[tuple[int, int], float], str]:
    """Raw p-values of every pair (i < j) that could be tested, and how they were tested (paired,
    unpaired, mixed, or none when no pair could be).

    A pair with no test (no per-example data and no standard errors, equal scores, no spread) is left
    out: it never separates two rows. Resample indices are shared by the pairs of one length of example
    list (paired arms have the same ids, so the same length); each length gets its own draw."""
    indices: dict[int, list[Any]] = {}
    pvalues: dict[tuple[int, int], float] = {}
    kinds: set[bool] = set()
    for i in range(len(arms)):
        for j in range(i + 1, len(arms)):
            paired = pairing_problem(arms[i], arms[j], metric) is None
            shared = None
            if paired:
                n = len(arms[i].ids or [])
                if n not in indices:
                    indices[n] = bootstrap_indices(n, seed=seed, resamples=resamples)
                shared = indices[n]
            diff = compare_metric(arms[i], arms[j], metric, alpha=alpha, seed=seed, resamples=resamples,
                                  indices=shared, normal_p=True)
            if diff.p_value is None:
                continue
            kinds.add(diff.paired)
            pvalues[(i, j)] = diff.p_value
    method = "paired" if kinds == {True} else "unpaired" if kinds == {False} else "mixed" if kinds else "none"
    return pvalues, method


def assign_bands(board: Any, *, alpha: float = 0.05, seed: int = 0, resamples: int = 1000) -> None:
    """Set ``band`` (and ``baseline``) on every row of ``board``, and ``board.band_method``.

    A row whose score equals the previous row's (the same rank: equal within float rounding) takes that
    row's band. Otherwise it joins its band leader's band unless their Holm-corrected p-value is below
    ``alpha``; a pair that could not be tested never starts a new band."""
    rows = [replace(r, baseline=baseline_of(r.record)) for r in board.rows]
    ranked = [i for i, r in enumerate(rows) if not math.isnan(r.primary)]
    board.band_method = "none"
    if len(ranked) == 1:
        rows[ranked[0]] = replace(rows[ranked[0]], band=rows[ranked[0]].rank)
    elif ranked:
        arms = [Arm(rows[i].record) for i in ranked]
        raw, board.band_method = _pvalues(arms, board.primary_metric, alpha=alpha, seed=seed, resamples=resamples)
        pairs = sorted(raw)
        adjusted = dict(zip(pairs, holm([raw[p] for p in pairs])))
        leader = 0
        for pos in range(len(ranked)):
            here = rows[ranked[pos]]
            if pos > 0 and here.rank == rows[ranked[pos - 1]].rank:  # equal scores always share a band
                rows[ranked[pos]] = replace(here, band=rows[ranked[pos - 1]].band)
                continue
            if pos > 0 and adjusted.get((leader, pos), 1.0) < alpha:
                leader = pos
            rows[ranked[pos]] = replace(here, band=rows[ranked[leader]].rank)
    board.rows = rows
    board.alpha = alpha
