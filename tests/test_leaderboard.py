"""Leaderboards from records alone: ranking, comparability, formats, escaping, the HTML page in Chromium."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from llmos_hub import ResultRecord, load_plugins
from llmos_hub._result import config_hash
from llmos_hub.bench import make_plan, run_bench
from llmos_hub.cli import main
from llmos_hub.leaderboard import build_boards, render, reproduce_command

from ._fakes import FakePlugin


@pytest.fixture(scope="module")
def base_records(tmp_path_factory):
    host = load_plugins(autoload=False, extra=[("fake-plugin", FakePlugin())])
    plan = make_plan(host, models=["fake:upper", "fake:lm"], tasks=["upper", "text"], backends=["fake"])
    out = tmp_path_factory.mktemp("records")
    report = run_bench(plan, host=host, output_dir=out, command="llmos-hub bench")
    return {r.task: r for _, r in report.written}


def variant(record: ResultRecord, *, model: str, value: float, fingerprint: str | None = None, version: str | None = None, tps: float | None = None) -> ResultRecord:
    data = copy.deepcopy(dict(record.data))
    data["model"]["ref"] = model
    metric = data["task"]["primary_metric"]
    data["scores"][metric]["value"] = value
    if fingerprint:
        data["task"]["dataset_fingerprint"] = fingerprint
    if version:
        data["task"]["version"] = version
    if tps is not None:
        data["speed"]["generated_tokens_per_second"] = tps
    # A consistent record: its spec says what differs (so its hash does), and a score set by hand has no
    # per-example values behind it (records whose score is not the mean of those are refused).
    data["config"]["spec"] = {**data["config"]["spec"], "model": model, "variant": [value, fingerprint, version]}
    data["config"]["hash"] = h = config_hash(data["config"]["spec"])
    data["id"] = h[:16]
    data["per_example"] = None
    return ResultRecord(data)


def test_ranking_follows_metric_direction(base_records):
    up = base_records["upper"]
    lm = base_records["text"]
    records = [variant(up, model="m:a", value=0.2), variant(up, model="m:b", value=0.9), variant(up, model="m:c", value=0.5)]
    records += [variant(lm, model="m:x", value=3.0), variant(lm, model="m:y", value=1.5)]
    boards = {b.task: b for b in build_boards(records)}
    assert [r.data["model"]["ref"] for r in boards["upper"].rows] == ["m:b", "m:c", "m:a"]
    assert boards["upper"].higher_is_better
    assert [r.data["model"]["ref"] for r in boards["text"].rows] == ["m:y", "m:x"]  # lower nll first
    assert [r.rank for r in boards["text"].rows] == [1, 2]


def test_incomparable_rows_are_kept_apart(base_records):
    up = base_records["upper"]
    records = [variant(up, model="m:a", value=0.2), variant(up, model="m:b", value=0.9, fingerprint="f" * 64), variant(up, model="m:c", value=0.7, version="2")]
    boards = build_boards(records)
    assert len(boards) == 3
    assert all(len(b.rows) == 1 for b in boards)
    assert len({b.title for b in boards}) == 3
    # Only boards the version does not tell apart are numbered, each with its data; v2 needs no variant.
    titles = sorted(b.title for b in boards)
    fingerprint = up.data["task"]["dataset_fingerprint"][:8]
    assert titles == sorted([f"upper v1 (variant 1: data {fingerprint})", "upper v1 (variant 2: data ffffffff)",
                             "upper v2"]) or titles == sorted([f"upper v1 (variant 2: data {fingerprint})",
                                                               "upper v1 (variant 1: data ffffffff)", "upper v2"])


def test_rows_carry_hash_and_reproducing_command(base_records):
    rec = base_records["upper"]
    board, = build_boards([rec])
    row = board.rows[0].to_dict()
    assert row["config_hash"] == rec.config_hash
    cmd = reproduce_command(rec)
    assert cmd.startswith("llmos-hub bench --model fake:upper --task upper --backend fake --device cpu --dtype float32 --batch-size 8 --seed 0")
    md = render([rec], "markdown")
    assert rec.config_hash[:12] in md and cmd in md


def test_csv_and_json_formats(base_records):
    up = base_records["upper"]
    records = [variant(up, model="m:a", value=0.25), variant(up, model="m:b", value=0.75)]
    rows = list(csv.DictReader(io.StringIO(render(records, "csv"))))
    assert [(r["rank"], r["model"], float(r["primary"])) for r in rows] == [("1", "m:b", 0.75), ("2", "m:a", 0.25)]
    data = json.loads(render(records, "json"))
    assert data["boards"][0]["rows"][0]["scores"]["exact"] == 0.75


def test_cli_table_and_invalid_records_skipped(base_records, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    base_records["upper"].save(tmp_path)
    (tmp_path / "broken.json").write_text('{"schema": "llmos-hub/result/1"}')
    result = CliRunner().invoke(main, ["leaderboard", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "fake:upper" in result.output and "upper v1" in result.output
    assert "skipped invalid record" in result.output and "broken.json" in result.output


HOSTILE = "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>"


def test_html_escapes_every_record_value(base_records):
    up = base_records["upper"]
    page = render([variant(up, model=HOSTILE, value=0.5, tps=100.0), variant(up, model="m:b", value=0.7, tps=1000.0)], "html")
    assert "<img src=x" not in page and "<script>document.title" not in page
    assert "&lt;img src=x" in page
    assert page.count("<svg") == 1 and page.count("<circle") == 2


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium installed (.ci/run installs Debian's chromium)")
def test_html_page_renders_in_headless_chromium(base_records, tmp_path):
    up, lm = base_records["upper"], base_records["text"]
    records = [variant(up, model=HOSTILE, value=0.5, tps=100.0), variant(up, model="m:b", value=0.7, tps=1000.0), variant(lm, model="m:x", value=2.0)]
    page = tmp_path / "board.html"
    for i, record in enumerate(records):
        record.save(tmp_path / "records" / str(i))
    result = CliRunner().invoke(main, ["leaderboard", str(tmp_path / "records"), "--format", "html", "--output", str(page)])
    assert result.exit_code == 0, result.output
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "<title>llmos-hub leaderboard</title>" in dom  # the injected handlers never ran
    assert dom.count('<table class="board">') == 2
    assert dom.count("<svg") == 2 and dom.count("<circle") == 3  # a plot per task, a point per row
    assert "&lt;img src=x" in dom and "<img" not in dom
    shot = tmp_path / "board.png"
    subprocess.run([_chromium(), *flags, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000


def test_equal_scores_share_a_rank(base_records):
    up = base_records["upper"]
    records = [variant(up, model="m:a", value=0.5), variant(up, model="m:b", value=0.5 + 1e-13), variant(up, model="m:c", value=0.1)]
    board, = build_boards(records)
    assert [r.rank for r in board.rows] == [1, 1, 3]


@pytest.mark.parametrize(("value", "shown"), [
    (8_372_259_301_846.0, "8.372e+12"),  # an untrained model's word perplexity
    (-3.2e9, "-3.2e+09"),
    (9_999_999.0, "9,999,999"),
    (1282.4, "1,282"),
    (0.219124, "0.2191"),
])
def test_huge_scores_are_shown_with_an_exponent(value, shown):
    from llmos_hub.leaderboard._text import fmt_number

    assert fmt_number(value) == shown


def test_no_results_folder_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["leaderboard"])
    assert result.exit_code == 2, result.output
    assert "no results folder here (the default); run `llmos-hub bench` first" in result.output
