"""Edge cases of paired significance, rank bands and compare: float-rounding ties, non-finite and malformed
per-example data, pairing over different data, one example, huge McNemar counts, untestable pairs, and the
compare command's argument errors."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from llmos_hub import ResultRecord
from llmos_hub._result import SCORE_TOLERANCE, load_record
from llmos_hub.cli import main
from llmos_hub.compare import compare_records, pair_by_backend
from llmos_hub.errors import DataError, UsageError
from llmos_hub.leaderboard import build_boards
from llmos_hub.stats import mcnemar_exact, paired_bootstrap, sign_flip_permutation, unpaired_z_test
from llmos_hub.stats._paired import Arm, normal_p_value

from ._records import make_record
from .test_compare import _translation_records

scipy_stats = pytest.importorskip("scipy.stats")
contingency = pytest.importorskip("statsmodels.stats.contingency_tables")


def _digests(n: int, salt: int = 0) -> list[str]:
    return [f"{i + 1000 * salt:016x}" for i in range(n)]


def _mean_record(model: str, values, *, backend: str = "pytorch", key: str = "rougeL", ids=None,
                 fingerprint: str | None = None, kind: str = "mean", stderr=None, seed: int = 0) -> ResultRecord:
    """A consistent record whose score is the mean of its per-example values."""
    values = [float(v) for v in values]
    ids = ids if ids is not None else [str(i) for i in range(len(values))]
    rec = make_record(model=model, backend=backend, task="summarization-sample", scores={key: 0.0}, primary=key,
                      seed=seed)
    data = copy.deepcopy(dict(rec.data))
    data["scores"][key] = {"value": sum(values) / len(values), "stderr": stderr, "higher_is_better": True}
    data["per_example"] = {"ids": list(ids), "outputs": _digests(len(ids)),
                           "scores": {key: {"kind": kind, "values": values}}}
    if fingerprint:
        data["task"]["dataset_fingerprint"] = fingerprint
    return ResultRecord(data)


def _save(tmp_path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


# 1. Float noise between backends ------------------------------------------------------------------------

def test_scores_equal_within_float_rounding_tie_on_the_board_and_in_compare():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.9, 40)
    a = _mean_record("nano:s", base, backend="pytorch")
    b = _mean_record("nano:s", base * (1 + 1.3e-8), backend="onnxruntime")  # float32 noise, every example alike
    va, vb = a.scores["rougeL"]["value"], b.scores["rougeL"]["value"]
    assert va != vb and abs(vb - va) / va < SCORE_TOLERANCE
    (board,) = build_boards([a, b])
    assert [r.rank for r in board.rows] == [1, 1]
    assert [r.band for r in board.rows] == [1, 1]
    c = compare_records(a, b)
    (diff,) = c.scores
    assert diff.verdict == "no detectable difference" and diff.significant is False
    assert diff.p_value is None and "equal within float rounding" in diff.note
    assert c.parity is not None and c.parity.any_significant is False
    assert "no score differs significantly" in c.parity.summary()
    # A real difference of the same shape is still tested, and found.
    d = compare_records(a, _mean_record("nano:s", base * 1.01, backend="onnxruntime")).scores[0]
    assert d.verdict == "better" and d.p_value < 0.05 and not d.equal_within_rounding


# 2. Non-finite per-example values ---------------------------------------------------------------------

def test_a_nan_per_example_value_is_refused_on_read_naming_the_field(tmp_path):
    values = [0.2] * 10
    data = json.loads(_mean_record("nano:s", values).to_json())
    data["per_example"]["scores"]["rougeL"]["values"][3] = float("nan")
    data["scores"]["rougeL"]["value"] = 0.9  # forged: the NaN used to switch off the consistency check
    path = _save(tmp_path, "forged.json", data)
    with pytest.raises(DataError, match=r"per_example/scores/rougeL/values/3: nan is not a finite number"):
        load_record(path)
    other = _save(tmp_path, "ok.json", json.loads(_mean_record("nano:t", values).to_json()))
    result = CliRunner().invoke(main, ["compare", other, path])
    assert result.exit_code == 2
    [line] = [x for x in result.stderr.splitlines() if x.strip()]
    assert "forged.json" in line and "per_example/scores/rougeL/values/3" in line and "Traceback" not in result.output


def test_non_finite_statistics_and_loglikelihoods_are_refused_on_read(tmp_path):
    _, (a, _) = _translation_records(limit=10)
    data = json.loads(a.to_json())
    data["per_example"]["statistics"]["chrf"][2][0] = float("inf")
    with pytest.raises(DataError, match=r"per_example/statistics/chrf/2: inf is not a finite number"):
        load_record(_save(tmp_path, "inf.json", data))
    data = json.loads(_mean_record("nano:s", [0.5] * 4).to_json())
    data["per_example"]["loglikelihoods"] = [[-1.0], [-2.0], [float("-inf")], [-1.5]]
    with pytest.raises(DataError, match=r"per_example/loglikelihoods/2: a value is not a finite number"):
        load_record(_save(tmp_path, "ll.json", data))


def test_tests_refuse_non_finite_input_instead_of_a_zero_p_value():
    with pytest.raises(ValueError, match="not a finite number"):
        sign_flip_permutation([math.nan, 1.0, 2.0])
    _, _, p = paired_bootstrap(np.array([[1.0], [2.0], [math.nan]]), np.array([[1.0], [2.0], [3.0]]),
                               lambda s: s[:, 0], seed=0, resamples=50)
    assert p is None
    assert unpaired_z_test(1.0, math.nan, 0.1, 0.1) == (None, None)
    assert normal_p_value(math.nan, np.array([0.1, 0.2, 0.3])) is None


# 3. Pairing needs the same data, not only the same ids --------------------------------------------------

def test_equal_ids_over_different_data_are_not_paired_and_the_header_agrees():
    values = [1.0] * 30 + [0.0] * 10
    a = _mean_record("nano:a", values, kind="binary")
    b = _mean_record("nano:b", [1.0] * 40, kind="binary", fingerprint="f" * 64)
    assert a.data["per_example"]["ids"] == b.data["per_example"]["ids"]
    c = compare_records(a, b)
    assert c.note == "same task, different examples: unpaired tests only" and not c.comparable
    (diff,) = c.scores
    assert not diff.paired and diff.method != "exact McNemar"
    assert "different data (their dataset fingerprints differ)" in diff.note


# 4. One example, and resamples without spread ------------------------------------------------------------

def _one_example(record: ResultRecord, index: int) -> ResultRecord:
    """``record`` cut down to its example ``index``, each corpus score recomputed from that example."""
    data = copy.deepcopy(dict(record.data))
    table = data["per_example"]
    for key in ("ids", "outputs"):
        table[key] = table[key][index:index + 1]
    table["statistics"] = {k: rows[index:index + 1] for k, rows in table["statistics"].items()}
    cut = ResultRecord(data)
    arm = Arm(cut)
    for key in table["scores"]:
        data["scores"][key]["value"] = float(arm.statistic(key)(arm.rows(key).sum(0, keepdims=True))[0])
        data["scores"][key]["stderr"] = None
    return ResultRecord(data)


def test_one_example_gets_no_test_and_never_splits_a_band():
    _, (a2, b2) = _translation_records(limit=2)
    a, b = _one_example(a2, 1), _one_example(b2, 1)  # A copies the source, B gives the reference
    assert b.scores["chrf"]["value"] > a.scores["chrf"]["value"] + 10
    c = compare_records(a, b)
    for diff in c.scores:
        assert diff.p_value is None and diff.verdict == "unknown", diff
        assert "fewer than 2 examples" in diff.note
    (board,) = build_boards([a, b])
    assert [r.band for r in board.rows] == [1, 1]
    _, _, p = paired_bootstrap(np.array([[1.0]]), np.array([[2.0]]), lambda s: s[:, 0], seed=0, resamples=100)
    assert p is None
    # Every resample gives the same (non-zero) difference: nothing is known about the noise.
    assert normal_p_value(0.5, np.full(100, 0.5)) is None
    assert normal_p_value(0.0, np.zeros(100)) == 1.0
    assert unpaired_z_test(0.5, 0.6, 0.0, 0.0) == (None, None)
    one_a = _mean_record("nano:a", [0.9], stderr=0.0)
    one_b = _mean_record("nano:b", [0.1], stderr=0.0)
    (board,) = build_boards([one_a, one_b])
    assert [r.rank for r in board.rows] == [1, 2] and [r.band for r in board.rows] == [1, 1]
    assert board.band_method == "none"


# 5. Exact McNemar in O(k) floats ------------------------------------------------------------------------

@pytest.mark.parametrize(("b", "c"), [(0, 1), (1, 2), (3, 9), (0, 25), (17, 40), (100, 160), (250, 251),
                                      (700, 1000), (2400, 2600)])
def test_mcnemar_matches_scipy_and_statsmodels_to_1e_12_on_small_counts(b, c):
    reference = scipy_stats.binomtest(b, b + c).pvalue
    statsmodels = contingency.mcnemar([[0, b], [c, 0]], exact=True).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(reference, rel=1e-12)
    assert mcnemar_exact(c, b) == pytest.approx(statsmodels, rel=1e-12)


@pytest.mark.parametrize(("b", "c"), [(10000, 10300), (49000, 51000), (100000, 100900), (100000, 0)])
def test_mcnemar_matches_scipy_on_100k_discordant_pairs(b, c):
    reference = scipy_stats.binomtest(b, b + c).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(reference, rel=1e-9, abs=1e-300)


# 6. Statistics rows of the wrong width -----------------------------------------------------------------

def test_ragged_statistics_rows_are_refused_on_read_in_one_line(tmp_path):
    _, (a, b) = _translation_records(limit=10)
    data = json.loads(a.to_json())
    data["per_example"]["statistics"]["chrf"][0] = data["per_example"]["statistics"]["chrf"][0][:-1]
    path = _save(tmp_path, "ragged.json", data)
    with pytest.raises(DataError, match=r"per_example/statistics/chrf: rows of \d+ to \d+ numbers"):
        load_record(path)
    result = CliRunner().invoke(main, ["compare", _save(tmp_path, "b.json", json.loads(b.to_json())), path])
    assert result.exit_code == 2 and "ragged.json" in result.stderr and "Traceback" not in result.output
    board = CliRunner().invoke(main, ["leaderboard", str(tmp_path)])
    assert board.exit_code == 0 and "ragged.json" in board.output and "Traceback" not in board.output


def test_statistics_narrower_than_the_metric_needs_fall_back_to_the_unpaired_test():
    _, (a, b) = _translation_records(limit=10)
    data = copy.deepcopy(dict(b.data))
    data["per_example"]["statistics"]["chrf"] = [row[:2] for row in data["per_example"]["statistics"]["chrf"]]
    narrow = ResultRecord(data)
    chrf = next(s for s in compare_records(a, narrow).scores if s.metric == "chrf")
    assert not chrf.paired and "do not fit the metric 'chrf'" in chrf.note
    build_boards([a, narrow])  # no crash


# 7. Id lists of different lengths on one board; repeated ids --------------------------------------------

def test_a_board_with_id_lists_of_different_lengths_is_built():
    rng = np.random.default_rng(1)
    # The first row has the longest id list: its resample indices used to be shared with the shorter pair.
    long = _mean_record("nano:long", rng.uniform(0.9, 1, 30), stderr=0.05)
    short_a = _mean_record("nano:short-a", rng.uniform(0.5, 1, 20), stderr=0.05)
    short_b = _mean_record("nano:short-b", rng.uniform(0, 0.5, 20), stderr=0.05)
    (board,) = build_boards([long, short_a, short_b])
    assert board.rows[0].record.model == "nano:long"
    assert board.band_method == "mixed"
    by_model = {r.record.model: r for r in board.rows}
    assert by_model["nano:short-a"].band != by_model["nano:short-b"].band  # the paired pair is tested


def test_repeated_example_ids_are_refused_on_read(tmp_path):
    data = json.loads(_mean_record("nano:s", [0.5] * 5).to_json())
    data["per_example"]["ids"][1] = data["per_example"]["ids"][0]
    with pytest.raises(DataError, match=r"per_example/ids: example id '0' appears more than once"):
        load_record(_save(tmp_path, "dup.json", data))


# 8. A corpus metric that is not installed ---------------------------------------------------------------

def test_a_corpus_metric_that_is_not_installed_falls_back_with_a_note():
    _, (a, b) = _translation_records(limit=10)
    records = []
    for rec in (a, b):
        data = copy.deepcopy(dict(rec.data))
        data["per_example"]["scores"]["chrf"]["metric"] = "nosuchmetric"
        records.append(ResultRecord(data))
    chrf = next(s for s in compare_records(*records).scores if s.metric == "chrf")
    assert not chrf.paired and "'nosuchmetric'" in chrf.note and "not installed" in chrf.note
    (board,) = build_boards(records)
    assert len(board.rows) == 2


# 9. Equal scores share a band ---------------------------------------------------------------------------

def test_a_row_with_the_previous_rows_score_takes_its_band():
    base = [1.0] * 120 + [0.0] * 30
    tied_a = base.copy()  # 20 right answers lost, 10 gained: not significantly worse than the leader
    for i in range(20):
        tied_a[i] = 0.0
    for i in range(120, 130):
        tied_a[i] = 1.0
    tied_b = base.copy()  # 10 right answers lost: significantly worse than the leader
    for i in range(100, 110):
        tied_b[i] = 0.0
    records = [_mean_record(m, v, kind="binary") for m, v in
               (("nano:lead", base), ("nano:tied-a", tied_a), ("nano:tied-b", tied_b))]
    assert records[1].scores["rougeL"]["value"] == records[2].scores["rougeL"]["value"]
    assert mcnemar_exact(10, 0) * 3 < 0.05  # tied-b alone would start a band even after Holm
    (board,) = build_boards(records)
    assert [r.rank for r in board.rows] == [1, 2, 2]
    assert [r.band for r in board.rows] == [1, 1, 1]


# 10. Backend names matching several configurations ------------------------------------------------------

def _config(model: str, backend: str, dtype: str, finished: str = "2026-11-23T20:00:05Z") -> ResultRecord:
    rec = make_record(model=model, backend=backend, dtype=dtype, scores={"chrf": 40.0})
    data = copy.deepcopy(dict(rec.data))
    data["finished_at"] = finished
    return ResultRecord(data)


def test_a_backend_with_two_configurations_is_refused_naming_them(tmp_path, monkeypatch):
    pt = _config("nano:x", "pytorch", "float32")
    ort32 = _config("nano:x", "onnxruntime", "float32")
    ort8 = _config("nano:x", "onnxruntime", "int8")
    with pytest.raises(UsageError, match=r"backend onnxruntime has 2 configurations of nano:x on translation-sample "
                                         r"that differ in dtype: record \w+, record \w+; compare the two record files"):
        pair_by_backend([pt, ort8, ort32], "pytorch", "onnxruntime")
    for rec in (pt, ort8, ort32):
        rec.save(tmp_path)
    result = CliRunner().invoke(main, ["compare", "pytorch", "onnxruntime", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    [line] = [x for x in result.stderr.splitlines() if x.strip()]
    assert ort8.filename() in line and ort32.filename() in line and "differ in dtype" in line


def test_a_rerun_of_one_configuration_pairs_its_newest_record():
    pt = _config("nano:x", "pytorch", "float32")
    old = _config("nano:x", "onnxruntime", "float32", "2026-11-23T20:00:05Z")
    new = _config("nano:x", "onnxruntime", "float32", "2026-11-24T20:00:05Z")
    assert pair_by_backend([pt, new, old], "pytorch", "onnxruntime") == [(pt, new)]
    assert pair_by_backend([pt, old, new], "pytorch", "onnxruntime") == [(pt, new)]


# 11. No test possible on a board ------------------------------------------------------------------------

def test_a_board_with_no_possible_test_does_not_split_bands():
    records = [make_record(model=f"nano:{m}", scores={"chrf": v}) for m, v in (("a", 40.0), ("b", 30.0), ("c", 20.0))]
    (board,) = build_boards(records)
    assert [r.rank for r in board.rows] == [1, 2, 3]
    assert [r.band for r in board.rows] == [1, 1, 1]
    assert board.band_method == "none"


# 12. compare's arguments -------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["{a}", "{b}", "--seed", "-1"], "-1 is not in the range x>=0"),
    (["{a}", "{dir}"], "is a folder, not a record file; pass two record files"),
    (["{a}", "{b}", "--alpha", "1e-20"], "the smallest p-value 1,000 bootstrap resamples can give"),
    (["{a}", "{b}", "--alpha", "0.0009"], "at or below 0.000999 (1/1001)"),
])
def test_compare_argument_errors_are_one_line_without_a_traceback(tmp_path, args, message):
    folder = tmp_path / "records"
    folder.mkdir()
    a = _mean_record("nano:a", [0.1, 0.5, 0.3]).save(tmp_path)
    b = _mean_record("nano:b", [0.2, 0.6, 0.1]).save(tmp_path)
    result = CliRunner().invoke(main, ["compare", *(x.format(a=a, b=b, dir=folder) for x in args)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and message in result.output
    ok = CliRunner().invoke(main, ["compare", str(a), str(b), "--alpha", "0.001", "--seed", "3"])
    assert ok.exit_code == 0, ok.output


def test_a_run_whose_metric_gives_nan_for_one_example_writes_per_example_data_a_read_accepts():
    # The reader refuses non-finite per-example data; the writer leaves such an entry out instead of
    # writing a record that every later read (leaderboard, compare, --resume, publish) would refuse.
    from types import SimpleNamespace

    from llmos_hub._result import _per_example_problem
    from llmos_hub.stats._table import example_table

    class Task:
        def example_statistics(self, examples, outputs, **_):
            return {"good": {"kind": "mean", "values": [0.5, 1.0, 0.0]},
                    "bad": {"kind": "mean", "values": [0.5, float("nan"), 0.0]},
                    "ragged": {"kind": "corpus", "metric": "bleu", "values": [[1, 2], [1], [1, 2]]},
                    "wide": {"kind": "corpus", "metric": "chrf", "values": [[1, 2], [3, 4], [5, float("inf")]]}}

    examples = [SimpleNamespace(id=str(i)) for i in range(3)]
    table = example_table(Task(), examples, [["a"], ["b"], ["c"]], formulation="f")
    assert set(table["scores"]) == {"good"}
    assert "statistics" not in table
    assert _per_example_problem(table) is None
