"""Leaderboard rank bands (paired, Holm-corrected across the board) and baseline rows, in every format."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from llmos_hub.cli import main
from llmos_hub.leaderboard import build_boards, render, rich_tables
from llmos_hub.stats import mcnemar_exact

from ._records import make_record

multitest = pytest.importorskip("statsmodels.stats.multitest")

N = 100
#: Correct flags: X right on 0..59; Y on 0..53 (6 fewer than X); W on 0..47; Z on none.
FLAGS = {"X": 60, "Y": 54, "W": 48, "Z": 0}


def _record(name: str, correct: int, *, baseline: bool = False, per_example: bool = True, stderr=None):
    flags = [1] * correct + [0] * (N - correct)
    extra: dict = {}
    if per_example:
        extra["per_example"] = {"ids": [str(i) for i in range(N)], "scores": {"accuracy": {"kind": "binary", "values": flags}}}
    if baseline:
        extra["model"] = {"family": "baseline", "extra": {"baseline": "majority class of the train split"}}
    rec = make_record(model=f"{'baseline' if baseline else 'nano'}:{name}", task="clf", capability="classifier",
                      scores={"accuracy": correct / N}, extra=extra)
    if stderr is not None:
        data = json.loads(rec.to_json())
        data["scores"]["accuracy"]["stderr"] = stderr
        from llmos_hub import ResultRecord

        rec = ResultRecord(data)
    return rec


def _records():
    return [_record(k, v, baseline=(k == "Z")) for k, v in FLAGS.items()]


def test_bands_are_holm_corrected_over_all_pairs():
    (board,) = build_boards(_records())
    assert [r.data["model"]["ref"] for r in board.rows] == ["nano:X", "nano:Y", "nano:W", "baseline:Z"]
    assert [r.rank for r in board.rows] == [1, 2, 3, 4]
    # X vs Y alone: 6 discordant pairs, all one way, p = 2/64 < 0.05 ...
    names = list(FLAGS)
    raw = {(i, j): mcnemar_exact(FLAGS[names[i]] - FLAGS[names[j]], 0) for i in range(4) for j in range(i + 1, 4)}
    assert raw[(0, 1)] == pytest.approx(0.03125)
    # ... but not after Holm across the board's six pairs (statsmodels computes the reference).
    adjusted = dict(zip(sorted(raw), multitest.multipletests([raw[k] for k in sorted(raw)], method="holm")[1]))
    assert adjusted[(0, 1)] >= 0.05 and adjusted[(0, 2)] < 0.05
    assert [r.band for r in board.rows] == [1, 1, 3, 4]
    assert board.band_method == "paired"
    assert [r.baseline for r in board.rows] == [None, None, None, "majority class of the train split"]


def test_a_larger_alpha_splits_bands():
    (board,) = build_boards(_records(), alpha=0.1)
    assert [r.band for r in board.rows] == [1, 2, 3, 4]


def test_without_per_example_data_bands_use_standard_errors():
    records = [_record("A", 60, per_example=False, stderr=0.05), _record("B", 58, per_example=False, stderr=0.05),
               _record("C", 20, per_example=False, stderr=0.04)]
    (board,) = build_boards(records)
    assert board.band_method == "unpaired"
    assert [r.band for r in board.rows] == [1, 1, 3]
    no_error = [_record("A", 60, per_example=False), _record("B", 58, per_example=False)]
    (board,) = build_boards(no_error)
    assert [r.band for r in board.rows] == [1, 1]  # nothing to test with: never shown different, so not split
    assert board.band_method == "none"


def test_bands_and_baselines_in_every_format():
    records = _records()
    md = render(records, "markdown")
    assert "| # | band | model |" in md and "baseline:Z *(baseline)*" in md and "Holm-corrected" in md
    assert "| 2 | 1 | nano:Y |" in md
    rows = list(csv.DictReader(io.StringIO(render(records, "csv"))))
    assert [(r["rank"], r["band"], r["baseline"]) for r in rows] == [("1", "1", "False"), ("2", "1", "False"), ("3", "3", "False"), ("4", "4", "True")]
    assert rows[0]["band_method"] == "paired"
    board = json.loads(render(records, "json"))["boards"][0]
    assert [r["band"] for r in board["rows"]] == [1, 1, 3, 4] and board["rows"][3]["baseline"] is True
    assert board["band_method"] == "paired" and board["band_alpha"] == 0.05
    page = render(records, "html")
    assert '<tr class="baseline">' in page and '<span class="tag" title="majority class of the train split">baseline</span>' in page
    assert "<th>band</th>" in page and 'circle class="pt base"' in page
    (table,) = rich_tables(build_boards(records))
    assert [c.header for c in table.columns][:3] == ["#", "band", "model"]


def test_leaderboard_cli_alpha(tmp_path, monkeypatch):
    for r in _records():
        r.save(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    out = CliRunner().invoke(main, ["leaderboard", str(tmp_path), "--format", "csv", "--alpha", "0.1"])
    assert out.exit_code == 0, out.output
    assert [r["band"] for r in csv.DictReader(io.StringIO(out.output))] == ["1", "2", "3", "4"]
    table = CliRunner().invoke(main, ["leaderboard", str(tmp_path)])
    assert table.exit_code == 0 and "baseline:Z (baseline)" in table.output and "band" in table.output
    bad = CliRunner().invoke(main, ["leaderboard", str(tmp_path), "--alpha", "0"])
    assert bad.exit_code == 2 and "--alpha must be between 0 and 1" in bad.output
