"""Class 8 of issue 13: records and tables (non-finite scores, skipped files named, one name per task,
corrupt ONNX cache entries, nano configs checked field by field)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmos_hub import DataError
from llmos_hub.cli import main

from ._hardening import error_lines, fake_cli
from ._records import make_record

NANO = Path(__file__).resolve().parents[1] / "plugins" / "llmos-hub-nano" / "llmos_hub_nano" / "checkpoints"


def _write(folder: Path, record, *, nan: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = json.loads(record.to_json())
    if nan is not None:
        data["scores"][nan]["value"] = float("nan")
    path = folder / record.filename()
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("fmt", ["json", "markdown"])
def test_a_nan_score_is_never_ranked_and_its_file_is_named(tmp_path, fmt):
    good = _write(tmp_path / "r", make_record(model="nano:a", scores={"bleu": 10.0}))
    bad = _write(tmp_path / "r", make_record(model="nano:b", scores={"bleu": 20.0}), nan="bleu")
    result = CliRunner().invoke(main, ["leaderboard", str(tmp_path / "r"), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert error_lines(result.stderr) == [
        f"skipped invalid record: {bad}: invalid result record: scores/bleu/value: nan is not a finite number; "
        "the run's metric failed, rerun it"]
    assert "nano:b" not in result.stdout and "nano:a" in result.stdout
    assert good.exists() and bad.exists()  # nothing is deleted


def test_infinity_is_refused_when_a_record_is_made():
    with pytest.raises(DataError, match=r"scores/bleu/stderr: inf is not a finite number"):
        rec = make_record(scores={"bleu": 1.0})
        data = json.loads(rec.to_json())
        data["scores"]["bleu"]["stderr"] = float("inf")
        type(rec)(data)


def test_compare_names_every_file_it_skips(tmp_path):
    folder = tmp_path / "r"
    _write(folder, make_record(backend="pytorch"))
    _write(folder, make_record(backend="onnxruntime"))
    (folder / "broken.json").write_text("{not json")
    nan = _write(folder, make_record(backend="onnxruntime", seed=3), nan="bleu")
    result = CliRunner().invoke(main, ["compare", "pytorch", "onnxruntime", "--dir", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    lines = error_lines(result.stderr)
    assert len(lines) == 2
    assert lines[0].startswith(f"skipped invalid record: {folder / 'broken.json'}:1: not JSON")
    assert lines[1].startswith(f"skipped invalid record: {nan}: invalid result record: scores/bleu/value: nan")
    assert len(json.loads(result.stdout)) == 1


def test_two_tasks_with_one_name_in_a_bench_are_an_error(monkeypatch, tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"a": "x", "b": "X"}\n')
    task = tmp_path / "upper.yaml"
    task.write_text("name: upper\nkind: translation\ndata: rows.jsonl\nfields: {input: a, target: b}\n")
    out = tmp_path / "out"
    result = fake_cli(monkeypatch, ["bench", "--task", "upper", "--task", str(task), "--model", "fake:upper",
                                    "--backend", "fake", "--output-dir", str(out)])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        f"error: two tasks are named 'upper' (upper and {task}); records are kept per task name, so rename one "
        "(field 'name' of the task file)"]
    assert not out.exists()
    again = fake_cli(monkeypatch, ["bench", "--task", "upper", "--task", "upper", "--model", "fake:upper",
                                   "--backend", "fake", "--output-dir", str(out)])
    assert again.exit_code == 0, again.output  # the same task twice is still one task


def test_a_corrupt_onnx_cache_entry_is_detected_and_rebuilt(tmp_path, capsys):
    pytest.importorskip("llmos_hub_onnxruntime")
    from llmos_hub_onnxruntime.cache import ExportCache

    builds = []

    def build(folder: Path):
        builds.append(folder)
        (folder / "graph.onnx").write_bytes(b"G" * 1000)
        return {"graphs": ["graph.onnx"]}

    cache = ExportCache(tmp_path / "cache")
    first = cache.get_or_build("k1", build)
    (first.path / "graph.onnx").write_bytes(b"G" * 10)  # a killed copy
    again = cache.get_or_build("k1", build)
    assert len(builds) == 2 and not again.hit
    assert (again.path / "graph.onnx").read_bytes() == b"G" * 1000
    assert error_lines(capsys.readouterr().err) == [
        f"warning: ONNX export cache entry {first.path} is corrupt (graph.onnx has 10 bytes, not 1000); rebuilding it"]
    (again.path / "manifest.json").write_text("{trunc")
    assert cache.get_or_build("k1", build).hit is False and len(builds) == 3


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("n_heads", 0, "must be an integer from 1 to 256, not 0"),
    ("d_model", -8, "must be an integer from 1 to "),
    ("vocab_size", "big", "must be an integer from 1 to "),
    ("dropout", 1.5, "must be a number from 0 up to (not including) 1, not 1.5"),
    ("eos_id", 10**9, "must be a token id from 0 to"),
    ("labels", "a,b", "must be a list of distinct non-empty strings"),
])
def test_nano_configs_are_validated_field_by_field(tmp_path, field, value, problem):
    pytest.importorskip("llmos_hub_nano")
    from llmos_hub_nano.family import NanoFamily

    folder = tmp_path / "nano"
    shutil.copytree(NANO / "lm-sample", folder)
    config = json.loads((folder / "config.json").read_text())
    config[field] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError) as info:
        NanoFamily().capabilities(str(folder))
    message = str(info.value)
    assert message.startswith(f"{folder / 'config.json'}: field {field!r}: {problem}")
    assert message.endswith("; fix it in config.json") and "\n" not in message
