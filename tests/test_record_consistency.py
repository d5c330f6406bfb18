"""A record whose parts disagree is refused like any invalid file: per-example arrays of another length
(paired statistics crashed on them), a score edited away from its per-example values, a spec edited
under its hash (deduplication and --resume trust the hash)."""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from llmos_hub import DataError, ResultRecord, load_plugins
from llmos_hub.bench import make_plan, run_bench
from llmos_hub.cli import main



@pytest.fixture(scope="module")
def record(tmp_path_factory) -> ResultRecord:
    host = load_plugins()
    plan = make_plan(host, models=["nano:classification-sample"], tasks=["classification-sample"], limit=24)
    [(_, written)] = run_bench(plan, host=host, output_dir=tmp_path_factory.mktemp("records"), command="x").written
    assert written.data["per_example"]["scores"]["accuracy"]["kind"] == "binary"
    return written


def _edited(record: ResultRecord, edit) -> dict:
    data = copy.deepcopy(dict(record.data))
    edit(data)
    return data


def _cut_values(data):
    data["per_example"]["scores"]["accuracy"]["values"] = data["per_example"]["scores"]["accuracy"]["values"][:-2]


def _cut_outputs(data):
    data["per_example"]["outputs"] = data["per_example"]["outputs"][1:]


def _score_edited(data):
    data["scores"]["accuracy"]["value"] = 0.99


def _spec_edited(data):
    data["config"]["spec"]["seed"] = 7


@pytest.mark.parametrize(("edit", "reason"), [
    (_cut_values, r"per_example/scores/accuracy/values: \d+ entries for \d+ example ids"),
    (_cut_outputs, r"per_example/outputs: \d+ entries for \d+ example ids"),
    (_score_edited, r"scores/accuracy/value: 0.99 is not the mean of its \d+ per-example values"),
    (_spec_edited, r"config/hash: is not the hash of config/spec"),
])
def test_a_record_whose_parts_disagree_is_refused(record, tmp_path, edit, reason):
    ResultRecord(copy.deepcopy(dict(record.data)))  # the record as written is consistent
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(_edited(record, edit)))
    if edit is _score_edited:  # a record being made keeps its metric's numbers; read back, it is refused
        ResultRecord(_edited(record, edit))
    else:
        with pytest.raises(DataError, match=reason):
            ResultRecord(_edited(record, edit))
    from llmos_hub import load_record

    with pytest.raises(DataError, match=f"{path}: invalid result record: {reason}"):
        load_record(path)


def test_a_score_computed_in_float32_is_not_an_edit(record, tmp_path):
    """A metric that computes its mean in float32 lands within ~1e-7 of the per-example mean: accepted."""
    import numpy as np

    data = copy.deepcopy(dict(record.data))
    values = data["per_example"]["scores"]["accuracy"]["values"]
    data["scores"]["accuracy"]["value"] = float(np.asarray(values, dtype=np.float32).mean())
    path = tmp_path / "f32.json"
    path.write_text(json.dumps(data))
    from llmos_hub import load_record

    assert load_record(path).scores["accuracy"]["value"] == data["scores"]["accuracy"]["value"]


def test_the_leaderboard_and_compare_skip_it_in_one_line(record, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    record.save(tmp_path / "a")
    (tmp_path / "a" / "cut.json").write_text(json.dumps(_edited(record, _cut_values)))
    result = CliRunner().invoke(main, ["leaderboard", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "nano:classification-sample" in result.output
    assert "skipped invalid record" in result.output and "entries for" in result.output

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "cut.json").write_text(json.dumps(_edited(record, _cut_values)))
    result = CliRunner().invoke(main, ["compare", str(tmp_path / "a" / record.filename()), str(tmp_path / "b" / "cut.json")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "entries for" in result.output
