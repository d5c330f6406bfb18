"""The paired tests and Holm's correction equal their reference implementations (scipy, statsmodels, naive)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sacrebleu

from llmos_hub.stats import holm, mcnemar_exact, paired_bootstrap, sign_flip_permutation, unpaired_z_test
from llmos_hub.stats._tests import bootstrap_p_value, percentile_interval

scipy_stats = pytest.importorskip("scipy.stats")
contingency = pytest.importorskip("statsmodels.stats.contingency_tables")
multitest = pytest.importorskip("statsmodels.stats.multitest")


@pytest.mark.parametrize("b,c", [(0, 0), (0, 1), (1, 0), (3, 3), (2, 9), (9, 2), (0, 12), (17, 31), (140, 95), (500, 560)])
def test_mcnemar_equals_statsmodels_and_binomtest(b, c):
    table = [[10, b], [c, 7]]
    reference = contingency.mcnemar(table, exact=True).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(reference, rel=1e-12, abs=1e-300)
    if b + c:
        assert mcnemar_exact(b, c) == pytest.approx(scipy_stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-12)


def test_sign_flip_is_exact_like_scipy_for_small_samples():
    rng = np.random.default_rng(4)
    for n in (5, 9, 12):
        a = rng.normal(0.5, 0.2, n)
        b = a + rng.normal(0.08, 0.1, n)
        res = scipy_stats.permutation_test(
            (b, a), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
            vectorized=True, n_resamples=np.inf, alternative="two-sided",
        )
        assert sign_flip_permutation(b - a, resamples=10000) == pytest.approx(res.pvalue, rel=1e-9)


def test_sign_flip_monte_carlo_agrees_with_scipy_within_resampling_noise():
    rng = np.random.default_rng(5)
    d = rng.normal(0.05, 0.3, 200)
    ours = sign_flip_permutation(d, seed=1, resamples=20000)
    ref = scipy_stats.permutation_test(
        (d, np.zeros_like(d)), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
        vectorized=True, n_resamples=20000, alternative="two-sided", rng=np.random.default_rng(2),
    ).pvalue
    assert abs(ours - ref) < 0.015  # two Monte Carlo estimates of one p-value (about 0.13 here)
    assert abs(ours - scipy_stats.ttest_rel(d, np.zeros_like(d)).pvalue) < 0.015  # and the paired t-test's
    assert sign_flip_permutation(np.zeros(30)) == 1.0


def test_holm_equals_statsmodels():
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 17):
        p = rng.uniform(0, 0.2, m).tolist()
        p[0] = p[-1]  # ties
        expected = multitest.multipletests(p, method="holm")[1]
        assert holm(p) == pytest.approx(list(expected), rel=1e-12)


def test_unpaired_z_test():
    ci, p = unpaired_z_test(0.50, 0.52, 0.01, 0.01)
    assert p == pytest.approx(2 * scipy_stats.norm.sf(0.02 / np.sqrt(2e-4)), rel=1e-9) and p > 0.05
    assert ci[0] == pytest.approx(0.02 - 1.959964 * np.sqrt(2e-4), rel=1e-6)
    assert unpaired_z_test(0.50, 0.55, 0.01, 0.01)[1] < 0.05
    assert unpaired_z_test(0.50, 0.55, None, 0.01) == (None, None)


def _sentences():
    """Real-looking MT output: 60 German references, two systems of different quality."""
    words = "der die das und ist nicht ein eine Datei wurde gefunden kann werden Fehler beim Öffnen von".split()
    rng = np.random.default_rng(11)
    refs, sys_a, sys_b = [], [], []
    for _ in range(60):
        ref = list(rng.choice(words, size=rng.integers(4, 10)))
        a = [w if rng.random() < 0.55 else rng.choice(words) for w in ref]
        b = [w if rng.random() < 0.75 else rng.choice(words) for w in ref]
        refs.append(" ".join(ref))
        sys_a.append(" ".join(a))
        sys_b.append(" ".join(b))
    return refs, sys_a, sys_b


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_paired_bootstrap_equals_naive_resampling_of_sentences(name):
    refs, sys_a, sys_b = _sentences()
    metric = sacrebleu.BLEU() if name == "bleu" else sacrebleu.CHRF()
    stats_a = np.array(metric._extract_corpus_statistics(sys_a, [refs]))
    stats_b = np.array(metric._extract_corpus_statistics(sys_b, [refs]))

    def statistic(sums):
        return np.array([metric._compute_score_from_stats(list(map(int, np.rint(r)))).score for r in sums])

    seed, resamples, alpha = 7, 200, 0.05
    delta, ci, p = paired_bootstrap(stats_a, stats_b, statistic, seed=seed, resamples=resamples, alpha=alpha)

    # The naive way: resample sentence indices, rescore both systems from text with sacrebleu.
    corpus = sacrebleu.corpus_bleu if name == "bleu" else sacrebleu.corpus_chrf
    rng = np.random.default_rng(seed)
    naive = []
    for _ in range(resamples):
        idx = rng.choice(len(refs), size=len(refs), replace=True)
        r = [refs[i] for i in idx]
        naive.append(corpus([sys_b[i] for i in idx], [r]).score - corpus([sys_a[i] for i in idx], [r]).score)
    naive = np.array(naive)
    observed = corpus(sys_b, [refs]).score - corpus(sys_a, [refs]).score
    assert delta == pytest.approx(observed, rel=1e-12)
    lo, hi = np.quantile(naive, [alpha / 2, 1 - alpha / 2])
    assert ci == pytest.approx((lo, hi), rel=1e-9)
    centred = np.abs(naive - naive.mean())
    assert p == pytest.approx((np.sum(centred >= abs(observed)) + 1) / (resamples + 1), rel=1e-12)
    assert delta > 0 and p < 0.05  # B is clearly better on these sentences


def test_bootstrap_helpers_edge_cases():
    assert bootstrap_p_value(np.array([0.1, -0.1, 0.0]), 0.0) == 1.0
    assert percentile_interval(np.array([1.0]), 0.05) is None
    d, ci, p = paired_bootstrap(np.ones((5, 1)), np.ones((5, 1)), lambda s: s[:, 0], seed=0, resamples=50)
    assert d == 0 and ci == (0.0, 0.0) and p == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)
    assert list(itertools.islice(holm([]), 0)) == []


def test_every_builtin_metric_gives_per_example_data_that_rebuilds_its_score():
    """binary/mean values average to the score; corpus statistics summed give it back exactly."""
    from llmos_hub import Loglikelihood
    from llmos_hub.metrics._base import EvaluateMetric
    from llmos_hub._plugins import default_host

    host = default_host()
    refs, sys_a, _ = _sentences()
    cases = {
        "accuracy": (["a", "b", "a", "c"], ["a", "b", "b", "c"]),
        "f1": (["a", "b", "a", "c"], ["a", "b", "b", "c"]),
        "bleu": (sys_a, refs),
        "chrf": (sys_a, refs),
        "rouge": (sys_a, refs),
        "perplexity": ([Loglikelihood(-3.0 * len(r), len(r.split()) + 1) for r in refs], refs),
        "multiple_choice": ([[(-1.0, "ab"), (-2.5, "abcdef")], [(-4.0, "x"), (-5.0, "yyyyyyyy")]], [1, 0]),
    }
    for name, (predictions, references) in cases.items():
        metric = host.get("metrics", name)
        assert isinstance(metric, EvaluateMetric)
        scores = metric.compute(predictions, references)
        table = metric.example_statistics(predictions, references)
        assert set(table) == set(scores), name
        for key, entry in table.items():
            if entry["kind"] == "corpus":
                sums = np.asarray(entry["values"], dtype=np.float64).sum(axis=0, keepdims=True)
                rebuilt = float(metric.score_from_statistics(key, sums)[0])
            else:
                rebuilt = float(np.mean(entry["values"]))
            assert rebuilt == pytest.approx(scores[key].value, rel=1e-9, abs=1e-12), (name, key)
