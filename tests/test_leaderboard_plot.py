"""The HTML plot and tables show what a reader needs: right scales, every score, labels that fit and differ."""

from __future__ import annotations

import copy
import hashlib
import json
import re

import pytest

from llmos_hub import ResultRecord, load_plugins
from llmos_hub._result import config_hash
from llmos_hub.bench import make_plan, run_bench
from llmos_hub.leaderboard import build_boards, render
from llmos_hub.leaderboard._plot import _CHAR_PX, plot_svg

from ._fakes import FakePlugin

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 760, 340, 60, 20, 20, 45


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    host = load_plugins(autoload=False, extra=[("fake-plugin", FakePlugin())])
    plan = make_plan(host, models=["fake:upper", "fake:lm"], tasks=["upper", "text"], backends=["fake"])
    report = run_bench(plan, host=host, output_dir=tmp_path_factory.mktemp("records"), command="llmos-hub bench")
    return {r.task: r for _, r in report.written}


def variant(record, *, model="m:a", value=None, tps=None, metric=None, options=None, extra_scores=None):
    data = copy.deepcopy(dict(record.data))
    data["model"]["ref"] = model
    if metric is not None:
        old = data["task"]["primary_metric"]
        data["scores"] = {metric: dict(data["scores"][old], higher_is_better=False)}
        data["task"]["primary_metric"] = metric
    if value is not None:
        data["scores"][data["task"]["primary_metric"]]["value"] = value
    if tps is not None:
        data["speed"]["generated_tokens_per_second"] = tps
    if options is not None:
        data["config"]["spec"]["backend_options"] = options
    for name, score in (extra_scores or {}).items():
        data["scores"][name] = score
    data["config"]["spec"] = {**data["config"]["spec"], "model": model, "variant": [value, tps, metric]}
    data["config"]["hash"] = h = config_hash(data["config"]["spec"])
    data["id"] = h[:16]
    data["per_example"] = None  # scores set by hand have no per-example values behind them
    return ResultRecord(data)


def _points(svg):
    return [(float(x), float(y)) for x, y in re.findall(r'<circle class="pt" cx="([-\d.]+)" cy="([-\d.]+)"', svg)]


def _labels(svg):
    return [(float(x), float(y), text) for x, y, text in re.findall(r'<text class="lbl" x="([-\d.]+)" y="([-\d.]+)"[^>]*>([^<]*)</text>', svg)]


def _y_ticks(svg):
    return [t for t in re.findall(r'<text class="ax" x="54" [^>]*>([^<]*)</text>', svg)]


def test_perplexity_is_on_a_log_axis(records):
    lm = records["text"]
    rows = [variant(lm, model=f"m:{v}", value=v, tps=t, metric="word_perplexity") for v, t in ((10.0, 100.0), (100.0, 200.0), (1000.0, 400.0))]
    board, = build_boards(rows)
    svg = plot_svg(board)
    assert "word_perplexity (log scale)" in svg
    ys = sorted(y for _, y in _points(svg))
    assert ys[1] - ys[0] == pytest.approx(ys[2] - ys[1], abs=0.2)  # 10 → 100 → 1000 evenly spaced
    # The same values on a linear metric are not evenly spaced.
    linear = [variant(records["upper"], model=f"m:{v}", value=v, tps=t) for v, t in ((10.0, 100.0), (100.0, 200.0), (1000.0, 400.0))]
    ys = sorted(y for _, y in _points(plot_svg(build_boards(linear)[0])))
    assert abs((ys[1] - ys[0]) - (ys[2] - ys[1])) > 50


def test_non_negative_scores_never_get_an_axis_below_zero(records):
    up = records["upper"]
    rows = [variant(up, model="m:a", value=0.0, tps=100.0), variant(up, model="m:b", value=0.05, tps=300.0)]
    svg = plot_svg(build_boards(rows)[0])
    ticks = [float(t.replace(",", "")) for t in _y_ticks(svg)]
    assert min(ticks) == 0.0 and max(ticks) > 0.05
    # A score that can be negative keeps its margin below the lowest value.
    rows = [variant(up, model="m:a", value=-0.5, tps=100.0), variant(up, model="m:b", value=0.5, tps=300.0)]
    assert min(float(t) for t in _y_ticks(plot_svg(build_boards(rows)[0]))) < -0.5


def test_equal_scores_within_rounding_sit_at_one_height(records):
    up = records["upper"]
    rows = [variant(up, model="m:a", value=0.5, tps=100.0), variant(up, model="m:b", value=0.5 + 1e-7, tps=300.0)]
    ys = [y for _, y in _points(plot_svg(build_boards(rows)[0]))]
    assert abs(ys[0] - ys[1]) < 1.0


def test_labels_are_distinct_inside_the_plot_and_apart(records):
    up = records["upper"]
    long = "org/" + "a-rather-long-model-name" * 2
    rows = [
        variant(up, model="m:a", value=0.5, tps=1000.0),
        variant(up, model="m:a", value=0.5, tps=1000.0, options={"threads": 1}),
        variant(up, model="m:a", value=0.5, tps=1001.0, options={"threads": 2}),
        variant(up, model=long, value=0.9, tps=5000.0),
        variant(up, model=long + "x", value=0.1, tps=10.0),
    ]
    svg = plot_svg(build_boards(rows)[0])
    labels = _labels(svg)
    assert len(labels) == 5 and len({t for _, _, t in labels}) == 5
    assert any("threads=1" in t for _, _, t in labels) and any("threads=2" in t for _, _, t in labels)
    boxes = []
    for x, y, text in labels:
        w = len(text) * _CHAR_PX
        assert LEFT <= x and x + w <= WIDTH - RIGHT + 0.5, text
        assert TOP <= y - 10 and y <= HEIGHT - BOTTOM, text
        boxes.append((x, y - 10, x + w, y + 3))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)


def test_identical_rows_still_get_distinct_labels(records):
    up = records["upper"]
    rows = [variant(up, model="m:a", value=0.5, tps=10.0, options={}), variant(up, model="m:a", value=0.5, tps=11.0, options=None)]
    rows[1].data["config"]["hash"] = "f" * 64
    texts = [t for _, _, t in _labels(plot_svg(build_boards(rows)[0]))]
    assert len(set(texts)) == 2 and all("[" in t for t in texts)


def test_every_score_is_shown_and_unplottable_rows_are_named(records):
    up = records["upper"]
    extra = {"bleu": {"value": 12.5, "stderr": 0.5, "higher_is_better": True}}
    rows = [variant(up, model="m:a", value=0.5, tps=10.0, extra_scores=extra), variant(up, model="m:b", value=0.25)]
    rows[1].data["speed"].update(generated_tokens_per_second=None, prompt_tokens_per_second=None, examples_per_second=0.0)
    page = render(rows, "html")
    assert "<th>bleu ↑</th>" in page and "12.50 ± 0.5" in page
    assert "<th>exact ↑</th>" in page
    assert "Not plotted" in page and "m:b / fake: 0.25" in page
    assert "± one standard error" in page
