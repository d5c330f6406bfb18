"""Whether two records' scores differ: the paired test each metric calls for, or the unpaired fallback.

Two runs on the same examples are compared example by example (see :mod:`._tests` for the tests).
When either record lacks its per-example table, or the two tables hold different examples, the
comparison falls back to the unpaired z-test on the records' standard errors and says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._result import SCORE_TOLERANCE, scores_equal, values_problem
from ._table import table_of
from ._tests import (
    bootstrap_indices,
    bootstrap_p_value,
    bootstrap_scores,
    mcnemar_exact,
    percentile_interval,
    sign_flip_permutation,
    unpaired_z_test,
)

__all__ = ["Arm", "Difference", "compare_metric", "pairing_problem"]

DEFAULT_ALPHA = 0.05
DEFAULT_RESAMPLES = 1000
DEFAULT_PERMUTATIONS = 10000

METHODS = {"binary": "exact McNemar", "mean": "paired permutation", "corpus": "paired bootstrap"}


@dataclass(frozen=True)
class Difference:
    """``b - a`` for one score, with its interval, p-value and the test that gave them."""

    metric: str
    a: float | None
    b: float | None
    stderr_a: float | None
    stderr_b: float | None
    higher_is_better: bool
    method: str
    paired: bool
    ci: tuple[float, float] | None
    p_value: float | None
    alpha: float
    note: str = ""

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    #: The two scores are equal within float rounding (:func:`~llmos_hub._result.scores_equal`): not
    #: tested, never significant, and the verdict is "no detectable difference".
    equal_within_rounding: bool = False

    @property
    def significant(self) -> bool | None:
        if self.equal_within_rounding:
            return False
        return None if self.p_value is None else self.p_value < self.alpha

    @property
    def verdict(self) -> str:
        """``better`` / ``worse`` (B against A, at ``alpha``), ``no detectable difference`` or ``unknown``."""
        if self.equal_within_rounding:
            return "no detectable difference"
        if self.significant is None or self.delta is None:
            return "unknown"
        if not self.significant or self.delta == 0:
            return "no detectable difference"
        return "better" if (self.delta > 0) == self.higher_is_better else "worse"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric, "a": self.a, "b": self.b, "delta": self.delta,
            "stderr_a": self.stderr_a, "stderr_b": self.stderr_b, "higher_is_better": self.higher_is_better,
            "test": self.method, "paired": self.paired, "ci": list(self.ci) if self.ci else None,
            "p_value": self.p_value, "alpha": self.alpha, "significant": self.significant,
            "verdict": self.verdict, "note": self.note, "equal_within_rounding": self.equal_within_rounding,
        }


class Arm:
    """One record's side of comparisons: its per-example columns, with resampled scores cached."""

    def __init__(self, record: Any) -> None:
        self.record = record
        self.data: Mapping[str, Any] = record.data
        self.table = table_of(self.data)
        self._resampled: dict[tuple[str, int, int], np.ndarray] = {}

    @property
    def ids(self) -> list[str] | None:
        return None if self.table is None else list(self.table["ids"])

    def score(self, key: str) -> Mapping[str, Any] | None:
        return self.data["scores"].get(key)

    def entry(self, key: str) -> Mapping[str, Any] | None:
        if self.table is None:
            return None
        return self.table.get("scores", {}).get(key)

    def rows(self, key: str) -> np.ndarray:
        """The per-example values (binary, mean) or statistics rows (corpus) of ``key``."""
        entry = self.entry(key)
        assert entry is not None
        values = entry["values"] if entry["kind"] != "corpus" else self.table["statistics"][entry["statistics"]]  # type: ignore[index]
        array = np.asarray(values, dtype=np.float64)
        return array[:, None] if array.ndim == 1 else array

    def statistic(self, key: str) -> Any:
        """Rows of sums → the score of each row (a mean, or the metric's corpus formula)."""
        entry = self.entry(key)
        assert entry is not None
        if entry["kind"] != "corpus":
            n = float(len(self.table["ids"]))  # type: ignore[index]
            return lambda sums: sums[:, 0] / n
        from .._plugins import default_host

        metric = default_host().get("metrics", entry["metric"])
        options = dict(entry.get("options") or {})
        return lambda sums: np.asarray(metric.score_from_statistics(key, sums, **options), dtype=np.float64)

    def resampled(self, key: str, indices: Sequence[np.ndarray], seed: int) -> np.ndarray:
        """The score of ``key`` on every bootstrap resample (cached per key, seed and count)."""
        cache_key = (key, seed, sum(len(i) for i in indices))
        if cache_key not in self._resampled:
            self._resampled[cache_key] = bootstrap_scores(self.rows(key), self.statistic(key), indices)
        return self._resampled[cache_key]


def normal_p_value(delta: float, deltas: np.ndarray) -> float | None:
    """Two-sided normal p-value of ``delta`` with the standard deviation of its resamples as its error."""
    finite = deltas[np.isfinite(deltas)]
    if finite.size < 2:
        return None
    se = float(np.std(finite, ddof=1))
    if not math.isfinite(delta):
        return None
    if se == 0:  # resamples without spread say nothing about the noise: no test, never significant
        return 1.0 if delta == 0 else None
    return math.erfc(abs(delta) / se / math.sqrt(2))


def _installed(metric: str) -> bool:
    """Whether the corpus metric ``metric`` can be loaded here (a plugin metric may not be installed)."""
    from .._plugins import default_host
    from ..errors import LlmosHubError

    try:
        default_host().get("metrics", metric)
    except LlmosHubError:
        return False
    return True


def _rows_problem(arm: Arm, key: str, name: str) -> str | None:
    """Why ``key``'s per-example rows in ``arm`` cannot be used (ragged, too few, not finite), or None.

    Records read from files are refused for these on read (:func:`llmos_hub._result.validation_error`);
    this guards records built in process."""
    entry = arm.entry(key)
    assert entry is not None and arm.table is not None
    if entry["kind"] == "corpus":
        values = (arm.table.get("statistics") or {}).get(entry["statistics"])
        if values is None:
            return f"{name} lacks the statistics of {key}"
    else:
        values = entry.get("values")
    if values is None or len(values) != len(arm.table["ids"]):
        return f"{name}'s per-example {key} does not have one entry per example"
    return values_problem(entry["kind"], values, f"{name}'s per-example {key}")


def pairing_problem(a: Arm, b: Arm, key: str) -> str | None:
    """Why ``key`` cannot be compared pair by pair, or None if it can.

    Pairs are examples with the same id in records of the same task, version and data (dataset
    fingerprint): equal ids over different data are different examples."""
    for arm, name in ((a, "A"), (b, "B")):
        if arm.table is None:
            return f"no per-example data in {name}"
        if arm.entry(key) is None:
            return f"no per-example {key} in {name}"
    ta, tb = a.data["task"], b.data["task"]
    if (ta["name"], ta["version"]) != (tb["name"], tb["version"]):
        return "the records are of different tasks or versions"
    if ta["dataset_fingerprint"] != tb["dataset_fingerprint"]:
        return "the records scored different data (their dataset fingerprints differ)"
    if a.ids != b.ids:
        return "the records scored different examples"
    ea, eb = a.entry(key), b.entry(key)
    assert ea is not None and eb is not None
    if ea["kind"] != eb["kind"] or ea.get("metric") != eb.get("metric") or (ea.get("options") or {}) != (eb.get("options") or {}):
        return f"{key} was computed differently in A and B"
    if len(a.ids or []) < 2:
        return "fewer than 2 examples, too few to test pair by pair"
    for arm, name in ((a, "A"), (b, "B")):
        problem = _rows_problem(arm, key, name)
        if problem is not None:
            return problem
    if ea["kind"] == "corpus" and not _installed(str(ea["metric"])):
        return (f"the metric {ea['metric']!r} that computes {key} from per-example statistics is not installed "
                "(install the plugin that provides it to test pair by pair)")
    if ea["kind"] == "corpus":
        for arm, name in ((a, "A"), (b, "B")):
            try:
                value = arm.statistic(key)(arm.rows(key).sum(0, keepdims=True))
                np.asarray(value, dtype=np.float64).reshape(-1)[0]
            except Exception as exc:  # a plugin metric's own error on rows it cannot use
                return (f"{name}'s per-example statistics of {key} do not fit the metric {ea['metric']!r} "
                        f"({type(exc).__name__}: {exc})")
    return None


def compare_metric(
    a: Arm,
    b: Arm,
    key: str,
    *,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    permutations: int = DEFAULT_PERMUTATIONS,
    indices: Sequence[np.ndarray] | None = None,
    normal_p: bool = False,
) -> Difference:
    """Test ``key`` of B against A: paired when both records have the same examples, unpaired otherwise.

    ``indices`` (from :func:`bootstrap_indices`) lets many comparisons on one board share resamples.
    ``normal_p`` replaces the permutation and bootstrap p-values by the normal one from the paired
    bootstrap's standard error of the difference (continuous, so it survives a multiple-test
    correction over many pairs); McNemar stays exact.
    """
    sa, sb = a.score(key), b.score(key)
    va = None if sa is None else float(sa["value"])
    vb = None if sb is None else float(sb["value"])
    ea = None if sa is None else sa.get("stderr")
    eb = None if sb is None else sb.get("stderr")
    higher = bool((sa or sb or {}).get("higher_is_better", True))
    common = dict(metric=key, a=va, b=vb, stderr_a=ea, stderr_b=eb, higher_is_better=higher, alpha=alpha)
    if va is None or vb is None:
        return Difference(method="none", paired=False, ci=None, p_value=None,
                          note=f"{key} is missing in {'A' if va is None else 'B'}", **common)  # type: ignore[arg-type]
    if va != vb and scores_equal(va, vb):
        return Difference(method="none", paired=False, ci=None, p_value=None, equal_within_rounding=True,
                          note=f"equal within float rounding (relative difference at most {SCORE_TOLERANCE:g}), not tested", **common)  # type: ignore[arg-type]
    problem = pairing_problem(a, b, key)
    if problem is not None:
        z_ci, z_p = unpaired_z_test(va, vb, ea, eb, alpha=alpha)
        note = f"unpaired test: {problem}" + ("" if z_p is not None else "; no standard errors either")
        return Difference(method="unpaired z-test" if z_p is not None else "none", paired=False, ci=z_ci,
                          p_value=z_p, note=note, **common)  # type: ignore[arg-type]
    kind = a.entry(key)["kind"]  # type: ignore[index]
    rows_a, rows_b = a.rows(key), b.rows(key)
    n = rows_a.shape[0]
    if indices is None:
        indices = bootstrap_indices(n, seed=seed, resamples=resamples)
    deltas = b.resampled(key, indices, seed) - a.resampled(key, indices, seed)
    ci = percentile_interval(deltas, alpha)
    p: float | None
    if kind != "binary" and normal_p:
        p = normal_p_value(float(vb - va), deltas)
    elif kind == "binary":
        right_a, right_b = rows_a[:, 0] > 0.5, rows_b[:, 0] > 0.5
        p = mcnemar_exact(int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b)))
    elif kind == "mean":
        p = sign_flip_permutation(rows_b[:, 0] - rows_a[:, 0], seed=seed, resamples=permutations)
    else:
        full = float(b.statistic(key)(rows_b.sum(0, keepdims=True))[0] - a.statistic(key)(rows_a.sum(0, keepdims=True))[0])
        p = bootstrap_p_value(deltas, full)
    method = METHODS[kind] if kind == "binary" or not normal_p else "paired bootstrap (normal p)"
    return Difference(method=method, paired=True, ci=ci, p_value=p, **common)  # type: ignore[arg-type]
