"""``compare``: deltas, the standard-error test, pairing records by backend."""

from __future__ import annotations

import copy
import json

from click.testing import CliRunner

from llmos_hub import ResultRecord, load_plugins
from llmos_hub.bench import make_plan, run_bench
from llmos_hub.cli import main
from llmos_hub.compare import ScoreDelta, compare_records, pair_by_backend

from ._fakes import FakePlugin


def test_significance_uses_both_standard_errors():
    assert ScoreDelta("m", 0.50, 0.52, 0.01, 0.01).significant is False  # 0.02 < 1.96*0.01414
    assert ScoreDelta("m", 0.50, 0.55, 0.01, 0.01).significant is True
    assert ScoreDelta("m", 0.50, 0.55, None, 0.01).significant is None


def _records(tmp_path):
    host = load_plugins(autoload=False, extra=[("fake-plugin", FakePlugin())])
    plan = make_plan(host, models=["fake:upper"], tasks=["upper"], backends=["fake"])
    (path, record), = run_bench(plan, host=host, output_dir=tmp_path, command="x").written
    data = copy.deepcopy(dict(record.data))
    data["backend"]["name"] = "other"
    data["scores"]["exact"] = {"value": 0.6, "stderr": 0.1, "signature": None, "higher_is_better": True}
    data["speed"]["examples_per_second"] = record.data["speed"]["examples_per_second"] * 2
    data["config"]["hash"] = "0" * 64
    other = ResultRecord(data)
    return path, record, other.save(tmp_path), other


def test_compare_two_records(tmp_path):
    _, a, _, b = _records(tmp_path)
    c = compare_records(a, b)
    assert c.comparable
    exact = next(s for s in c.scores if s.metric == "exact")
    assert exact.delta == 0.6 - 1.0
    assert exact.significant is True
    ratio = next(s for s in c.to_dict()["speed"] if s["metric"] == "examples_per_second")["ratio_b_over_a"]
    assert abs(ratio - 2.0) < 1e-9


def test_pair_by_backend_and_cli(tmp_path, monkeypatch):
    pa, a, pb, b = _records(tmp_path)
    assert pair_by_backend([a, b], "fake", "other") == [(a, b)]
    monkeypatch.setenv("COLUMNS", "200")
    files = CliRunner().invoke(main, ["compare", str(pa), str(pb), "--json"])
    assert files.exit_code == 0, files.output
    assert json.loads(files.output)[0]["scores"][0]["delta"] == -0.4
    backends = CliRunner().invoke(main, ["compare", "fake", "other", "--dir", str(tmp_path)])
    assert backends.exit_code == 0 and "beyond noise?" in backends.output
    missing = CliRunner().invoke(main, ["compare", "fake", "nope", "--dir", str(tmp_path)])
    assert missing.exit_code == 2 and "backends found: fake, other" in missing.output
