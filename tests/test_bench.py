"""The bench harness with test doubles: records, resume, failure isolation, refusal, samples."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from llmos_hub import DataError, UsageError, load_plugins, load_record
from llmos_hub.bench import make_plan, run_bench
from llmos_hub.cli import main

from ._fakes import FakeFamily, FakePlugin


@pytest.fixture
def host():
    return load_plugins(autoload=False, extra=[("fake-plugin", FakePlugin())])


def _plan(host, **kw):
    kw.setdefault("models", ["fake:upper", "fake:clf", "fake:lm"])
    kw.setdefault("tasks", ["fake-suite"])
    kw.setdefault("backends", ["fake"])
    return make_plan(host, **kw)


def test_cross_product_refuses_incompatible_pairs_before_loading(host):
    FakeFamily.loads = 0
    plan = _plan(host)
    assert [(r.spec.model, r.task.name) for r in plan.runs] == [("fake:upper", "upper"), ("fake:clf", "parity"), ("fake:lm", "text")]
    assert len(plan.refused) == 6
    assert "fake:clf cannot run upper on fake: upper needs a seq2seq model (it is classifier)" in plan.refused
    assert FakeFamily.loads == 0


def test_no_compatible_pair_is_a_usage_error(host):
    with pytest.raises(UsageError, match="fake:clf cannot run upper"):
        _plan(host, models=["fake:clf"], tasks=["upper"])


def test_records_are_written_valid_and_complete(host, tmp_path):
    report = run_bench(_plan(host), host=host, output_dir=tmp_path, command="llmos-hub bench")
    assert report.ok and len(report.written) == 3
    for path, record in report.written:
        again = load_record(path)  # validates against the schema
        assert again.data == record.data
        d = record.data
        assert d["config"]["hash"] == record.config_hash and d["id"] == record.config_hash[:16]
        assert d["environment"]["plugins"]["fake-plugin"] == "unknown"
        assert d["speed"]["examples_per_second"] > 0
        assert set(d["speed"]["latency_ms"]) == {"p50", "p90", "p99"}
    upper = next(r for _, r in report.written if r.task == "upper")
    assert upper.scores["exact"]["value"] == 1.0
    assert upper.data["speed"]["generated_tokens_per_second"] > 0
    assert not list(tmp_path.glob(".*.tmp"))


def test_batching_does_not_change_scores(host, tmp_path):
    one = run_bench(_plan(host, batch_size=1), host=host, output_dir=tmp_path / "a", command="x")
    eight = run_bench(_plan(host, batch_size=8), host=host, output_dir=tmp_path / "b", command="x")
    for (_, a), (_, b) in zip(one.written, eight.written):
        assert a.scores == b.scores
        assert a.config_hash != b.config_hash
    runner = host.get("backends", "fake").runners[-1]
    assert max(runner.batches) <= 8


def test_one_failing_run_does_not_stop_the_others(host, tmp_path):
    plan = _plan(host, models=["fake:upper", "fake:broken"], tasks=["upper"], backends=["failing", "fake"])
    report = run_bench(plan, host=host, output_dir=tmp_path, command="x")
    assert [r.backend for _, r in report.written] == ["fake"]
    messages = [m for _, m in report.failed]
    assert any("operator Foo" in m for m in messages)
    assert any("weights are corrupt" in m for m in messages)
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_resume_skips_finished_runs(host, tmp_path):
    first = run_bench(_plan(host), host=host, output_dir=tmp_path, command="x")
    before = {p: p.stat().st_mtime_ns for p, _ in first.written}
    FakeFamily.loads = 0
    second = run_bench(_plan(host), host=host, output_dir=tmp_path, command="x", resume=True)
    assert not second.written and len(second.reused) == 3
    assert FakeFamily.loads == 0
    assert {p: p.stat().st_mtime_ns for p, _ in second.reused} == before
    # A different configuration is not mistaken for a finished one.
    third = run_bench(_plan(host, seed=1), host=host, output_dir=tmp_path, command="x", resume=True)
    assert len(third.written) == 3


def test_interrupt_keeps_finished_records(host, tmp_path, monkeypatch):
    from llmos_hub.bench import _execute

    real = _execute.execute
    calls = {"n": 0}

    def interrupting(spec, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(spec, **kw)

    monkeypatch.setattr("llmos_hub.bench.execute", interrupting)
    with pytest.raises(KeyboardInterrupt):
        run_bench(_plan(host), host=host, output_dir=tmp_path, command="x")
    records = list(tmp_path.glob("*.json"))
    assert len(records) == 1
    load_record(records[0])
    monkeypatch.setattr("llmos_hub.bench.execute", real)
    resumed = run_bench(_plan(host), host=host, output_dir=tmp_path, command="x", resume=True)
    assert len(resumed.reused) == 1 and len(resumed.written) == 2


def test_log_samples(host, tmp_path):
    report = run_bench(_plan(host, tasks=["upper"], models=["fake:upper"]), host=host, output_dir=tmp_path, command="x", log_samples=True)
    (path, record), = report.written
    samples = tmp_path / record.data["samples_file"]
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(rows) == 10
    assert rows[0]["prediction"] == rows[0]["reference"] == rows[0]["input"].upper()


def test_invalid_record_is_refused_with_path_and_reason(host, tmp_path):
    report = run_bench(_plan(host, tasks=["upper"], models=["fake:upper"]), host=host, output_dir=tmp_path, command="x")
    path, _ = report.written[0]
    data = json.loads(path.read_text())
    del data["scores"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=rf"{path.name}: invalid result record: \(top level\): 'scores' is a required property"):
        load_record(path)


def test_cli_bench_end_to_end_with_fakes(tmp_path, monkeypatch):
    """Through click: exit status 1 when a run failed, the others' records kept, table printed."""
    import llmos_hub._plugins as plugins

    real = plugins.load_plugins
    monkeypatch.setattr(plugins, "load_plugins", lambda **kw: real(autoload=False, extra=[("fake-plugin", FakePlugin())], **{k: v for k, v in kw.items() if k not in {"autoload", "extra"}}))
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "out"
    args = ["bench", "--model", "fake:upper", "--model", "fake:clf", "--task", "upper", "--task", "parity", "--backend", "fake", "--backend", "failing", "--output-dir", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "refused" in result.output and "run(s) failed" in result.output
    # The failing backend only fails to generate: its classification run is kept.
    assert sorted(p.name.split("__")[2] for p in out.glob("*.json")) == ["failing", "fake", "fake"]
    assert "exact ↑" in result.output and "1.00 ± 0" in result.output  # metric and direction over value ± stderr
    again = CliRunner().invoke(main, [*args[:-4], "--backend", "fake", "--output-dir", str(out), "--resume", "--json"])
    assert again.exit_code == 0, again.output
    reused = json.loads(again.output[again.output.index("["):])
    assert len(reused) == 2
    fresh_out = tmp_path / "fresh"
    fresh = CliRunner().invoke(main, [*args[:-4], "--backend", "fake", "--output-dir", str(fresh_out), "--json"])
    printed = json.loads(fresh.output[fresh.output.index("["):])
    # Fresh and reused records print their keys in one order (the files' sorted order), nested ones too.
    assert [list(r) for r in printed] == [list(r) for r in reused] == [sorted(r) for r in reused]
    assert [list(r["speed"]) for r in printed] == [list(r["speed"]) for r in reused]


def test_unsupported_dtype_pairs_are_refused_individually(host):
    plan = _plan(host, models=["fake:upper"], tasks=["upper"], dtype=["float32", "int8"])
    assert [(r.spec.backend, r.spec.dtype) for r in plan.runs] == [("fake", "float32")]
    assert plan.refused == ["backend fake does not support dtype int8; it supports float32"]
    with pytest.raises(UsageError, match="does not support dtype int8"):
        _plan(host, models=["fake:upper"], tasks=["upper"], dtype="int8")


def test_backend_options_are_part_of_the_configuration(host, tmp_path):
    from llmos_hub.leaderboard import reproduce_command

    plain = _plan(host, models=["fake:upper"], tasks=["upper"]).runs[0].spec
    tuned = _plan(host, models=["fake:upper"], tasks=["upper"], backend_options={"threads": 1}).runs[0].spec
    assert plain.hash != tuned.hash
    report = run_bench(_plan(host, models=["fake:upper"], tasks=["upper"], backend_options={"threads": 1}), host=host, output_dir=tmp_path, command="x")
    assert reproduce_command(report.written[0][1]).endswith("--backend-option threads=1")


# ------------------------------------------------------------------ review fixes


class _Seen:
    """Events that keep what the harness said (skipped / rerunning), for asserting the resume decision."""

    def __init__(self):
        self.said = []

    def started(self, run, total): pass
    def advanced(self, run, done, total): pass
    def finished(self, run, record, path): self.said.append(("finished", run.spec.task))
    def failed(self, run, message): self.said.append(("failed", message))
    def skipped(self, run, path): self.said.append(("skipped", run.spec.task))
    def rerunning(self, run, path, why): self.said.append(("rerunning", why))


def test_resume_with_log_samples_reruns_a_record_that_has_no_samples(host, tmp_path):
    plan = _plan(host, models=["fake:upper"], tasks=["upper"])
    first = run_bench(plan, host=host, output_dir=tmp_path, command="x")
    assert not list(tmp_path.glob("*.samples.jsonl"))
    seen = _Seen()
    again = run_bench(plan, host=host, output_dir=tmp_path, command="x", resume=True, log_samples=True, events=seen)
    assert len(again.written) == 1 and not again.reused
    assert seen.said[0] == ("rerunning", "its record has no samples file; running it again for --log-samples")
    (path, record), = again.written
    assert path == first.written[0][0]  # the same configuration's record, replaced, now with its samples
    assert (tmp_path / record.data["samples_file"]).is_file()
    # With the samples there, the next --resume --log-samples reuses it; without --log-samples it always did.
    third = run_bench(plan, host=host, output_dir=tmp_path, command="x", resume=True, log_samples=True, events=seen)
    assert len(third.reused) == 1 and not third.written and seen.said[-1] == ("skipped", "upper")


def test_resume_says_it_reruns_a_record_it_cannot_read(host, tmp_path):
    """A damaged record of the same configuration is replaced by a new run, and the progress line says so
    (it was replaced silently)."""
    plan = _plan(host, models=["fake:upper"], tasks=["upper"])
    [(path, _)] = run_bench(plan, host=host, output_dir=tmp_path, command="x").written
    path.write_text(path.read_text()[:200])  # cut mid-file
    seen = _Seen()
    again = run_bench(plan, host=host, output_dir=tmp_path, command="x", resume=True, events=seen)
    assert len(again.written) == 1 and not again.reused and again.written[0][0] == path
    [(event, why)] = [s for s in seen.said if s[0] == "rerunning"]
    assert why.startswith("its record cannot be read (") and why.endswith("); running it again")
    assert str(path) not in why  # the path is the line's own, not repeated in the reason


def _fake_cli(monkeypatch):
    import llmos_hub._plugins as plugins

    real = plugins.load_plugins
    monkeypatch.setattr(plugins, "load_plugins", lambda **kw: real(
        autoload=False, extra=[("fake-plugin", FakePlugin())], **{k: v for k, v in kw.items() if k not in {"autoload", "extra"}}))


def test_progress_and_refused_lines_stay_one_line_on_a_narrow_captured_stderr(tmp_path, monkeypatch):
    _fake_cli(monkeypatch)
    monkeypatch.setenv("COLUMNS", "40")
    out = tmp_path / "a-rather-long-output-folder-name-so-lines-pass-forty-columns"
    args = ["bench", "--model", "fake:upper", "--task", "upper", "--backend", "fake", "--dtype", "float32",
            "--dtype", "int8", "--output-dir", str(out)]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    lines = first.stderr.splitlines()
    assert "refused: backend fake does not support dtype int8; it supports float32" in lines
    [done] = [line for line in lines if line.startswith("done  ")]
    assert done.startswith("done  fake:upper") and done.endswith("ex/s")
    again = CliRunner().invoke(main, [*args, "--resume", "--log-samples"])
    [rerun] = [line for line in again.stderr.splitlines() if line.startswith("rerun ")]
    assert "running it again for --log-samples" in rerun and rerun.endswith(".json)")


def test_batch_size_zero_names_the_option(tmp_path, monkeypatch):
    _fake_cli(monkeypatch)
    FakeFamily.loads = 0
    result = CliRunner().invoke(main, ["bench", "--model", "fake:upper", "--task", "upper", "--backend", "fake",
                                       "--batch-size", "0", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "Invalid value for '--batch-size': '0' is not a positive integer or 'auto'" in result.stderr
    assert FakeFamily.loads == 0 and not list(tmp_path.glob("*.json"))


def _misnamed_task(tmp_path):
    folder = tmp_path / "tasks"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "test.jsonl").write_text('{"id": "a", "en": "hi", "de": "hallo"}\n', encoding="utf-8")
    path = folder / "badfield.yaml"
    path.write_text("name: badfield\nkind: translation\ndata: data/test.jsonl\n"
                    "fields: {input: english, target: de}\n", encoding="utf-8")
    return path


def test_a_misnamed_field_names_the_setting_the_data_fields_and_findable_paths(host, tmp_path, monkeypatch):
    task = _misnamed_task(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as info:
        _plan(host, models=["fake:upper"], tasks=[str(task)])
    assert str(info.value) == (
        "tasks/data/test.jsonl:1: missing field 'english' (fields.input: 'english' in tasks/badfield.yaml); "
        "the data has fields id, en, de; set fields.input to the data's name for it")
    _fake_cli(monkeypatch)
    monkeypatch.chdir(tmp_path / "tasks")
    result = CliRunner().invoke(main, ["bench", "--model", "fake:upper", "--backend", "fake", "--task", "badfield.yaml"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: data/test.jsonl:1: missing field 'english' (fields.input: 'english' in badfield.yaml); "
        "the data has fields id, en, de; set fields.input to the data's name for it"]
