"""What a newcomer hit on a first run: the table's legend, --split, --limit, list models, --debug, hints."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from rich.console import Console

from llmos_hub import UnknownNameError, load_plugins
from llmos_hub.bench import make_plan, run_bench
from llmos_hub.cli import main
from llmos_hub.errors import close_matches
from llmos_hub.leaderboard import reproduce_command
from llmos_hub.leaderboard._text import summary_table

from ._fakes import FakePlugin


@pytest.fixture(scope="module")
def host():
    return load_plugins()


def _hash(plan):
    (run,) = plan.runs
    return run.spec


# -- the bench table ------------------------------------------------------------------------------------
def test_bench_table_says_what_plus_minus_and_the_arrows_mean(tmp_path):
    fake = load_plugins(autoload=False, extra=[("fake-plugin", FakePlugin())])
    plan = make_plan(fake, models=["fake:upper", "fake:lm", "fake:clf"], tasks=["upper", "text", "parity"], backends=["fake"])
    report = run_bench(plan, host=fake, output_dir=tmp_path, command="llmos-hub bench")
    console = Console(record=True, width=120, color_system=None)
    console.print(summary_table([r for _, r in report.written]))
    text = console.export_text()
    header = text.split("───")[0]
    assert "prompt" in header and "gen" in header and "tok/s" in header
    flat = " ".join(text.split())
    assert "± one standard error" in flat and "↑ higher is better, ↓ lower is better" in flat
    assert "nll ↓" in text and "exact ↑" in text and "accuracy ↑" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.strip().startswith(("parity", "upper", "text"))}
    # Columns end ... prompt tok/s, gen tok/s, load s, prepare s (the backend's own start, beside the model's load).
    assert "prepare" in header and all(float(row[-1]) >= 0 and float(row[-2]) >= 0 for row in rows.values())
    # The classifier generates nothing: its gen tok/s is '-', its prompt tok/s a number.
    assert rows["parity"][-3] == "-" and rows["parity"][-4].replace(",", "").replace(".", "").isdigit()
    assert rows["upper"][-3] != "-"


def test_bench_table_keeps_scores_whole_when_names_are_long(tmp_path):
    """A model given by a long path on a 120-column pipe: the names fold, the score stays one piece
    (it was squeezed to three characters a line)."""
    import dataclasses

    fake = load_plugins(autoload=False, extra=[("fake-plugin", FakePlugin())])
    plan = make_plan(fake, models=["fake:clf"], tasks=["parity"], backends=["fake"])
    report = run_bench(plan, host=fake, output_dir=tmp_path, command="llmos-hub bench")
    [record] = [r for _, r in report.written]
    long_ref = "hf:/home/someone/experiments/2026-12/checkpoints/a-rather-long-model-name-with-a-suffix/step-120000"
    data = json.loads(json.dumps(record.data))
    data["model"]["ref"] = long_ref
    data["task"]["name"] = "a-task-with-a-long-name-too"
    score = data["scores"][data["task"]["primary_metric"]]
    score["value"], score["stderr"] = 0.8066666, 0.0322
    console = Console(record=True, width=120, color_system=None)
    console.print(summary_table([dataclasses.replace(record, data=data)]))
    text = console.export_text()
    assert "0.8067 ± 0.0322" in text and "accuracy ↑" in text
    assert max(len(line) for line in text.splitlines()) <= 120
    assert "step-120000" in "".join(text.split())  # folded, not cut


# -- --limit and --split ------------------------------------------------------------------------------
def test_a_limit_above_the_data_size_is_the_same_configuration(host):
    plain = _hash(make_plan(host, tasks=["classification-sample"]))
    n = len(make_plan(host, tasks=["classification-sample"]).runs[0].data.examples)
    for limit in (n, n + 1, 10**6):
        spec = _hash(make_plan(host, tasks=["classification-sample"], limit=limit))
        assert spec.limit is None and spec.hash == plain.hash, limit
    smaller = _hash(make_plan(host, tasks=["classification-sample"], limit=n - 1))
    assert smaller.limit == n - 1 and smaller.hash != plain.hash


def test_split_chooses_the_data_and_the_default_split_by_name_changes_nothing(host):
    plain = make_plan(host, tasks=["classification-sample"]).runs[0]
    named = make_plan(host, tasks=["classification-sample"], split="test").runs[0]
    assert named.spec.hash == plain.spec.hash and named.spec.split is None and "split" not in named.spec.to_dict()
    val = make_plan(host, tasks=["classification-sample"], split="validation", limit=7).runs[0]
    assert val.data.split == "validation" and val.spec.split == "validation"
    assert val.data.fingerprint != make_plan(host, tasks=["classification-sample"], limit=7).runs[0].data.fingerprint
    with pytest.raises(Exception, match="no split 'nope'; its splits: train, validation, test"):
        make_plan(host, tasks=["classification-sample"], split="nope")


@pytest.mark.slow
def test_split_reaches_the_record_and_the_reproducing_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["bench", "--task", "classification-sample", "--split", "validation", "--limit", "6", "--json"])
    assert result.exit_code == 0, result.output
    (data,) = json.loads(result.stdout)
    assert data["task"]["split"] == "validation" and data["task"]["num_examples"] == 6
    from llmos_hub import ResultRecord

    command = reproduce_command(ResultRecord(data))
    assert "--split validation --limit 6" in command
    again = CliRunner().invoke(main, ["bench", "--task", "classification-sample", "--split", "validation", "--limit", "6", "--resume", "--json"])
    assert json.loads(again.stdout)[0]["config"]["hash"] == data["config"]["hash"]


# -- list models --------------------------------------------------------------------------------------
def test_list_models_shows_the_references_that_run_as_they_are(host):
    result = CliRunner().invoke(main, ["list", "models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    nano = host.get("models", "nano")
    assert rows["nano"]["runnable"] == [f"nano:{n}" for n in nano.available()]
    assert "nano:lm-sample" in rows["nano"]["runnable"]
    for ref in rows["nano"]["runnable"]:
        assert nano.capabilities(ref.split(":", 1)[1])  # each one resolves to a shipped checkpoint
    table = CliRunner().invoke(main, ["list", "models"], env={"COLUMNS": "200"})
    assert "nano:translation-sample" in table.output and "ready to run" in table.output
    assert "hf:namespace/name[@revision]" in table.output  # descriptions are text, not rich markup


# -- --debug and hints ----------------------------------------------------------------------------------
def test_debug_is_accepted_after_the_subcommand():
    quiet = CliRunner().invoke(main, ["bench", "--task", "defualt"])
    assert quiet.exit_code == 2 and "did you mean 'default'" in quiet.output
    loud = CliRunner().invoke(main, ["bench", "--task", "defualt", "--debug"])
    assert isinstance(loud.exception, UnknownNameError)  # the traceback, not the one-line message
    listing = CliRunner().invoke(main, ["list", "kinds", "--debug"])
    assert isinstance(listing.exception, UnknownNameError)


def test_disable_plugin_is_accepted_after_the_subcommand_too():
    # The messages that suggest it read "--disable-plugin X"; typed after the subcommand it was "No such option".
    result = CliRunner().invoke(main, ["bench", "--disable-plugin", "nano", "--limit", "2"])
    assert result.exit_code == 2, result.output
    assert "no default suite: the llmos-hub-nano plugin that provides it is disabled" in result.output
    listing = CliRunner().invoke(main, ["list", "models", "--json", "--disable-plugin", "nano"])
    assert listing.exit_code == 0, listing.output
    assert "nano" not in {row["name"] for row in json.loads(listing.output)}
    both = CliRunner().invoke(main, ["--disable-plugin", "baseline", "list", "models", "--json", "--disable-plugin", "nano"])
    assert {row["name"] for row in json.loads(both.output)}.isdisjoint({"nano", "baseline"})
    # compare, leaderboard and publish read records through the same host: the option reaches them (a typo
    # is named) rather than being accepted and ignored
    for command in (["compare", "a.json", "b.json"], ["leaderboard", "."], ["publish", "x.json", "--repo", "me/r"]):
        typo = CliRunner().invoke(main, [*command, "--disable-plugin", "nanoo"])
        assert typo.exit_code == 2 and "--disable-plugin nanoo: no installed plugin" in typo.output, (command, typo.output)


def test_task_kinds_list_their_formulations():
    # docs/data.md sends readers there to see what --formulation may pick for a kind
    listing = CliRunner().invoke(main, ["list", "task_kinds", "--json"])
    rows = {row["name"]: row["formulations"] for row in json.loads(listing.output)}
    host = load_plugins()
    for name, shown in rows.items():
        kind = host.get("task_kinds", name)
        assert [line.split(":", 1)[0] for line in shown] == [f.name for f in kind.formulations()]
    assert rows["classification"][0].startswith("logits: ")


def test_a_prefix_gets_a_suggestion():
    assert close_matches("onnx", ["onnxruntime", "pytorch"]) == ["onnxruntime"]
    assert close_matches("translation", ["translation-sample", "summarization-sample"])[0] == "translation-sample"
    assert "did you mean 'onnxruntime'?" in str(UnknownNameError("backend", "onnx", ["onnxruntime", "pytorch"]))
    assert close_matches("o", ["onnxruntime"]) == []  # one letter is not a hint
    result = CliRunner().invoke(main, ["bench", "--backend", "onnx"])
    assert result.exit_code == 2 and "did you mean 'onnxruntime'?" in result.output
