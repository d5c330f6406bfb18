"""The ``multiple_choice`` metric equals lm-evaluation-harness's acc / acc_norm / acc_bytes.

Expected numbers are computed here independently, in plain Python, from lm-eval's definitions
(lm_eval/api/task.py ``process_results`` for ``multiple_choice``, v0.4.9-v0.4.13): the choice with
the largest summed log-likelihood (acc), the largest log-likelihood divided by the choice's length in
characters (acc_norm) or UTF-8 bytes (acc_bytes), ties to the first maximum as ``numpy.argmax``; the
score is the mean of 0/1 values and its standard error lm-eval's ``mean_stderr``:
sqrt(Σ(x-μ)²/(n-1)) / sqrt(n).
"""

from __future__ import annotations

import math
import random

import pytest

import llmos_hub
from llmos_hub import Loglikelihood, Metric, UsageError
from llmos_hub.metrics import BUILTIN_METRICS, load_metric


KEYS = ("acc", "acc_norm", "acc_bytes")

#: Words whose length in characters and in UTF-8 bytes differ (é: 2 bytes, 東: 3, 🙂: 4).
_WORDS = ["a", "the", "module", "returns", "é", "café", "東京", "naïve", "🙂", "x", "résumé", "ok"]


def _first_max(values: list[float]) -> int:
    """Index of the first maximum (numpy.argmax's tie rule), without numpy."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def _lm_eval_per_example(predictions: list, golds: list[int]) -> dict[str, list[float]]:
    """The 0/1 values of acc, acc_norm and acc_bytes per example, from lm-eval's definitions."""
    per: dict[str, list[float]] = {k: [] for k in KEYS}
    for pairs, gold in zip(predictions, golds):
        lls = [float(getattr(lp, "logprob", lp)) for lp, _ in pairs]
        chars = [float(len(text)) for _, text in pairs]
        num_bytes = [float(len(text.encode("utf-8"))) for _, text in pairs]
        per["acc"].append(1.0 if _first_max(lls) == gold else 0.0)
        per["acc_norm"].append(1.0 if _first_max([ll / c for ll, c in zip(lls, chars)]) == gold else 0.0)
        per["acc_bytes"].append(1.0 if _first_max([ll / b for ll, b in zip(lls, num_bytes)]) == gold else 0.0)
    return per


def _lm_eval_scores(per: dict[str, list[float]]) -> dict[str, tuple[float, float]]:
    """(mean, lm-eval's mean_stderr) of each list of 0/1 values."""
    out = {}
    for key, values in per.items():
        n = len(values)
        mu = sum(values) / n
        stderr = math.sqrt(sum((x - mu) ** 2 for x in values) / (n - 1)) / math.sqrt(n)
        out[key] = (mu, stderr)
    return out


def _random_corpus(seed: int, n: int = 400) -> tuple[list, list[int]]:
    """Random examples with 2-6 choices of unequal lengths, many ties in raw and normalized scores."""
    rng = random.Random(seed)
    predictions, golds = [], []
    for i in range(n):
        k = rng.randint(2, 6)
        texts = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 5))) for _ in range(k)]
        kind = i % 5
        if kind == 0:  # raw ties: log-likelihoods from a tiny set
            lls = [rng.choice([-1.0, -2.0, -3.0]) for _ in range(k)]
        elif kind == 1:  # per-character ties: ll proportional to the length (exact in binary)
            lls = [-0.5 * len(t) for t in texts]
        elif kind == 2:  # per-byte ties
            lls = [-0.25 * len(t.encode("utf-8")) for t in texts]
        elif kind == 3:  # all equal: everything picks choice 0
            lls = [-4.0] * k
        else:
            lls = [rng.uniform(-40.0, 0.0) for _ in range(k)]
        if i % 7 == 0:
            lls[rng.randrange(k)] = -math.inf
        pairs = [(Loglikelihood(ll, 3) if i % 3 == 0 else ll, t) for ll, t in zip(lls, texts)]
        predictions.append(pairs)
        golds.append(rng.randrange(k))
    return predictions, golds


@pytest.fixture(scope="module")
def metric() -> Metric:
    return load_metric("multiple_choice")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_and_stderr_equal_lm_eval_definitions(metric: Metric, seed: int) -> None:
    predictions, golds = _random_corpus(seed)
    per = _lm_eval_per_example(predictions, golds)
    expected = _lm_eval_scores(per)
    scores = metric.compute(predictions, golds)
    assert set(scores) == set(KEYS) == set(load_metric("multiple_choice").score_keys)
    for key in KEYS:
        assert scores[key].value == pytest.approx(expected[key][0], abs=1e-12), key
        assert scores[key].stderr == pytest.approx(expected[key][1], rel=1e-12), key
        assert 0.0 <= scores[key].value <= 1.0 and scores[key].higher_is_better
    # The three rules disagree on many examples of this corpus, so each one is tested on its own.
    assert per["acc"] != per["acc_norm"] and per["acc_norm"] != per["acc_bytes"]


def test_a_hand_computed_example_separates_characters_from_bytes(metric: Metric) -> None:
    # lls / chars: -1.1 vs -1.0 -> choice 1; lls / bytes: -0.55 vs -1.0 -> choice 0.
    prediction = [(-3.3, "ééé"), (-4.0, "abcd")]
    assert metric.per_example(prediction, 0) == {
        "acc": 1.0, "acc_norm": 0.0, "acc_bytes": 1.0, "chosen": 0, "chosen_norm": 1, "chosen_bytes": 0,
    }
    # A tie goes to the first maximum, as numpy.argmax.
    tie = [(-2.0, "ab"), (-2.0, "cd"), (-1.0, "e")]
    assert metric.per_example(tie, 0)["chosen_norm"] == 0
    assert metric.per_example(tie, 2)["chosen"] == 2


def test_per_example_agrees_with_compute(metric: Metric) -> None:
    predictions, golds = _random_corpus(5, n=60)
    rows = [metric.per_example(p, g) for p, g in zip(predictions, golds)]
    scores = metric.compute(predictions, golds)
    for key in KEYS:
        assert scores[key].value == pytest.approx(sum(r[key] for r in rows) / len(rows), abs=1e-12)
    for row, pairs in zip(rows, predictions):
        lls = [float(getattr(lp, "logprob", lp)) for lp, _ in pairs]
        assert row["chosen"] == _first_max(lls)


def test_deterministic_and_independent_of_the_seed(metric: Metric) -> None:
    predictions, golds = _random_corpus(3)
    first = metric.compute(predictions, golds, seed=0)
    assert metric.compute(predictions, golds, seed=0) == first
    assert metric.compute(predictions, golds, seed=123) == first
    assert load_metric("multiple_choice").compute(predictions, golds) == first


def test_extremes_and_a_single_example(metric: Metric) -> None:
    right = [[(-1.0, "yes"), (-5.0, "no")]] * 4
    assert {k: s.value for k, s in metric.compute(right, [0] * 4).items()} == dict.fromkeys(KEYS, 1.0)
    assert {k: s.stderr for k, s in metric.compute(right, [0] * 4).items()} == dict.fromkeys(KEYS, 0.0)
    wrong = metric.compute(right, [1] * 4)
    assert all(s.value == 0.0 for s in wrong.values())
    one = metric.compute(right[:1], [0])
    assert one["acc"].value == 1.0 and one["acc"].stderr is None  # no spread from one example


def test_option_num_choices_checks_every_example(metric: Metric) -> None:
    four = [(-1.0, "a"), (-2.0, "b"), (-3.0, "c"), (-4.0, "d")]
    assert metric.compute([four, four], [0, 1], num_choices=4)["acc"].value == 0.5
    with pytest.raises(UsageError, match=r"prediction 1 has 3 choices, not 4 \(option num_choices\)"):
        metric.compute([four, four[:3]], [0, 0], num_choices=4)


@pytest.mark.parametrize(
    "predictions, references, options, message",
    [
        ([[(-1.0, "a"), (-2.0, "b")]], ["0"], {}, "reference 0 is '0'; pass the gold choice's index as an int"),
        ([[(-1.0, "a"), (-2.0, "b")]], [1.0], {}, "reference 0 is 1.0"),
        ([[(-1.0, "a"), (-2.0, "b")]], [True], {}, "reference 0 is True"),
        ([[(-1.0, "a"), (-2.0, "b")]], [2], {}, "reference 0 is 2, outside the 2 choices"),
        ([[(-1.0, "a"), (-2.0, "b")]], [-1], {}, "reference 0 is -1, outside the 2 choices"),
        ([[(-1.0, "a")]], [0], {}, "needs at least 2"),
        ([[(-1.0, "a"), (-2.0, "b")]], [0, 1], {}, "1 predictions and 2 references"),
        ([[(-1.0, 2), (-2.0, 2)]], [0], {}, "pass the choice's non-empty text"),
        ([[(-1.0, ""), (-2.0, "b")]], [0], {}, "pass the choice's non-empty text"),
        ([[(float("nan"), "a"), (-2.0, "b")]], [0], {}, "log-likelihood nan"),
        ([[("-1", "a"), (-2.0, "b")]], [0], {}, "log-likelihood '-1'"),
        ([[-1.0, -2.0]], [0], {}, "choice 0 is -1.0; pass a (logprob, choice text) pair"),
        ([{"logprobs": [-1.0, -2.0]}], [0], {}, "prediction 0 is dict"),
        ([[(-1.0, "a"), (-2.0, "b")]], [0], {"num_choices": 1}, "option num_choices is 1"),
        ([[(-1.0, "a"), (-2.0, "b")]], [0], {"normalize": "bytes"}, "no option 'normalize'"),
        ([], [], {}, "empty corpus"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(metric, predictions, references, options, message) -> None:
    with pytest.raises(UsageError) as info:
        metric.compute(predictions, references, **options)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_registered_as_a_builtin_metric() -> None:
    assert "multiple_choice" in BUILTIN_METRICS
    host = llmos_hub.load_plugins()
    metric = host.get("metrics", "multiple_choice")
    assert isinstance(metric, Metric) and metric.name == "multiple_choice"
