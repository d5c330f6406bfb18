"""User errors found in review: each is one line, exit status 2, caught before anything is written or fetched.

``new`` refuses a name an installed plugin already uses; the scaffold's wheel carries task data in every
format the loader reads; two plugins claiming one name is a conflict the user fixes (exit 2);
``--disable-plugin`` refuses a typo; ``leaderboard`` refuses folders beside ``--from-hub``, writes the
format ``-o``'s extension names, and refuses an empty board; ``compare`` refuses records of different tasks.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmos_hub import PluginError, load_plugins
from llmos_hub.cli import main
from llmos_hub.errors import UsageError

from ._fakedist import GOOD_PLUGIN, add_to_path, make_dist
from ._hardening import error_lines
from ._records import make_record

EMPTY_PLUGIN = "LLMOS_HUB_API_VERSION = '2.0'\n"


def _invoke(args: list[str]):
    return CliRunner().invoke(main, args)


# -- llmos-hub new: names already taken ------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name", "owner"), [
    ("task", "translation-sample", "llmos-hub"),
    ("metric", "chrf", "llmos-hub"),
    ("backend", "echo", "fake-echo"),
])
def test_new_refuses_a_name_an_installed_plugin_registers(kind, name, owner, tmp_path, monkeypatch):
    add_to_path(monkeypatch, make_dist(tmp_path / "site", "fake-echo", "fake_echo", GOOD_PLUGIN))
    result = _invoke(["new", kind, name, "--output", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    label = {"task": "task", "metric": "metric", "backend": "backend"}[kind]
    assert error_lines(result.stderr) == [
        f"error: a {label} named {name!r} is already registered by {owner}; choose another name"]
    assert not (tmp_path / "out").exists()


def test_new_refuses_a_name_whose_distribution_is_installed(tmp_path, monkeypatch):
    add_to_path(monkeypatch, make_dist(tmp_path / "site", "llmos-hub-widget", "fake_widget", EMPTY_PLUGIN,
                                       version="3.1"))
    result = _invoke(["new", "model", "widget", "--output", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        "error: a distribution named llmos-hub-widget is already installed (3.1); choose another name "
        "(installing yours would replace it)"]
    assert not (tmp_path / "out").exists()


def test_new_counts_a_disabled_plugin_as_taken(tmp_path, monkeypatch):
    add_to_path(monkeypatch, make_dist(tmp_path / "site", "fake-echo", "fake_echo", GOOD_PLUGIN))
    monkeypatch.setenv("LLMOS_HUB_DISABLE_PLUGINS", "fake-echo")
    result = _invoke(["new", "backend", "echo", "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and "already registered by fake-echo" in result.stderr


def test_scaffold_wheel_carries_task_data_in_every_format(tmp_path):
    """Data converted to CSV, TSV or Parquet (and kept in subfolders) is in the wheel a user installs."""
    assert _invoke(["new", "task", "my-data", "--output", str(tmp_path)]).exit_code == 0
    root = tmp_path / "llmos-hub-my-data"
    data = root / "llmos_hub_my_data" / "data"
    for rel in ("train.csv", "dev.tsv", "extra/more.parquet", "extra/more.jsonl"):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(b"x")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "--no-index", "-w", str(tmp_path / "wheel"), str(root)], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in ("test.jsonl", "train.csv", "dev.tsv", "extra/more.parquet", "extra/more.jsonl"):
        assert f"llmos_hub_my_data/data/{rel}" in names, sorted(names)
    assert "llmos_hub_my_data/my-data.yaml" in names


# -- plugin host: conflicts and --disable-plugin ---------------------------------------------------


def test_a_name_two_plugins_register_is_a_usage_error_naming_the_fix(tmp_path, monkeypatch):
    add_to_path(monkeypatch, make_dist(tmp_path / "a", "fake-echo", "fake_echo", GOOD_PLUGIN))
    add_to_path(monkeypatch, make_dist(tmp_path / "b", "fake-echo-two", "fake_echo_two", GOOD_PLUGIN, version="2.0"))
    host = load_plugins()
    with pytest.raises(PluginError) as err:  # still a plugin error for callers that catch those
        host.get("backends", "echo")
    assert isinstance(err.value, UsageError) and err.value.exit_code == 2
    first, second = (e.owner for e in host.registry._entries["backends"]["echo"])  # discovery order
    assert str(err.value) == (
        f"backend 'echo' is registered by both {first} and {second}; uninstall one "
        f"(pip uninstall {second.distribution}) or disable one, e.g. llmos-hub --disable-plugin {second.plugin} ... or "
        f"LLMOS_HUB_DISABLE_PLUGINS={second.plugin}")
    assert {first.distribution, second.distribution} == {"fake-echo", "fake-echo-two"}


def test_bench_on_a_conflicting_name_exits_2_before_any_run(tmp_path, monkeypatch):
    add_to_path(monkeypatch, make_dist(tmp_path / "a", "fake-echo", "fake_echo", GOOD_PLUGIN))
    add_to_path(monkeypatch, make_dist(tmp_path / "b", "fake-echo-two", "fake_echo_two", GOOD_PLUGIN, version="2.0"))
    result = _invoke(["bench", "--backend", "echo", "--task", "lm-sample", "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    [line] = error_lines(result.stderr)
    assert "is registered by both" in line and "pip uninstall" in line
    assert not (tmp_path / "out").exists()


def test_disable_plugin_refuses_an_unknown_name_with_a_suggestion(tmp_path, monkeypatch):
    add_to_path(monkeypatch, make_dist(tmp_path, "fake-echo", "fake_echo", GOOD_PLUGIN, ep_name="echo"))
    result = _invoke(["--disable-plugin", "ecoh", "list", "backends"])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        "error: --disable-plugin ecoh: no installed plugin or distribution is called 'ecoh'; did you mean 'echo'?"]
    ok = _invoke(["--disable-plugin", "fake-echo", "list", "backends", "--json"])
    assert ok.exit_code == 0 and "echo" not in [row["name"] for row in json.loads(ok.stdout)]


def test_bench_without_a_task_says_the_default_suites_plugin_is_disabled_not_missing():
    """The default suite's plugin is installed but disabled: the line says so and how to undo it."""
    result = _invoke(["--disable-plugin", "nano", "bench"])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        "error: no default suite: the llmos-hub-nano plugin that provides it is disabled (--disable-plugin or "
        "LLMOS_HUB_DISABLE_PLUGINS); enable it or name a task with --task"]


@pytest.mark.parametrize(("model", "hint"), [
    ("translation-sample", "did you mean nano:translation-sample?"),  # a shipped model's name
    ("my-team/my-model", "did you mean hf:my-team/my-model?"),  # a Hub id
    ("nothing", "for example nano:lm-sample (`llmos-hub list models` lists the shipped ones)"),
])
def test_a_model_without_its_family_gets_the_likely_fix(model, hint):
    result = _invoke(["bench", "--model", model, "--task", "translation-sample"])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [f"error: model {model!r} must be written family:ref; {hint}"]


def test_a_typo_close_to_one_name_suggests_that_name_alone():
    from llmos_hub.errors import close_matches

    tasks = ["translation-sample", "summarization-sample", "classification-sample", "lm-sample"]
    assert close_matches("transaltion-sample", tasks) == ["translation-sample"]  # was all three *-sample
    assert close_matches("translation", tasks) == ["translation-sample"]  # a prefix still comes first
    assert set(close_matches("sample-x", ["sample-a", "sample-b"])) == {"sample-a", "sample-b"}  # equally close: both


# -- leaderboard -----------------------------------------------------------------------------------


@pytest.fixture
def records(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    make_record(model="nano:a", scores={"bleu": 10.0}).save(folder)
    make_record(model="nano:b", scores={"bleu": 20.0}).save(folder)
    return folder


def test_leaderboard_refuses_folders_beside_from_hub_before_any_fetch(records, monkeypatch):
    import llmos_hub.hub as hub

    def fetch(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr(hub, "fetch_records", fetch)
    result = _invoke(["leaderboard", str(records), "--from-hub", "team/results"])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        f"error: --from-hub reads the records of team/results instead of folders; drop {records} or --from-hub"]


def _check_format(fmt: str, text: str) -> None:
    if fmt == "html":
        assert text.lstrip().lower().startswith("<!doctype html")
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [r["model"] for r in rows] == ["nano:b", "nano:a"]
    elif fmt == "json":
        assert json.loads(text)["boards"]
    else:
        assert "| nano:b" in text and not text.lstrip().startswith("<")


@pytest.mark.parametrize(("name", "fmt"), [("board.html", "html"), ("board.HTM", "html"), ("b.csv", "csv"),
                                           ("b.json", "json"), ("b.md", "markdown"), ("b.markdown", "markdown")])
def test_leaderboard_output_format_follows_the_extension(records, tmp_path, name, fmt):
    result = _invoke(["leaderboard", str(records), "-o", str(tmp_path / name)])
    assert result.exit_code == 0, result.output
    _check_format(fmt, (tmp_path / name).read_text())


def test_leaderboard_refuses_an_extension_it_cannot_write_unless_format_is_given(records, tmp_path):
    refused = _invoke(["leaderboard", str(records), "-o", str(tmp_path / "board.txt")])
    assert refused.exit_code == 2, refused.output
    assert error_lines(refused.stderr) == [
        "error: cannot tell which format to write to board.txt from its extension; name it .md, .markdown, "
        ".html, .htm, .csv, .json, or pass --format"]
    assert not (tmp_path / "board.txt").exists()
    explicit = _invoke(["leaderboard", str(records), "--format", "csv", "-o", str(tmp_path / "board.txt")])
    assert explicit.exit_code == 0, explicit.output
    _check_format("csv", (tmp_path / "board.txt").read_text())


def test_leaderboard_refuses_a_format_that_contradicts_the_extension(records, tmp_path):
    result = _invoke(["leaderboard", str(records), "--format", "csv", "-o", str(tmp_path / "board.html")])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        "error: --format csv contradicts board.html, whose extension means html; drop --format or name the file "
        "with a csv extension"]
    assert not (tmp_path / "board.html").exists()
    same = _invoke(["leaderboard", str(records), "--format", "table", "-o", str(tmp_path / "board.md")])
    assert same.exit_code == 0, same.output  # a table written to a file is markdown


@pytest.mark.parametrize("out", [None, "e.html"])
def test_leaderboard_with_no_valid_record_is_a_usage_error(tmp_path, out):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "broken.json").write_text("{}")
    args = ["leaderboard", str(folder)] + (["-o", str(tmp_path / out)] if out else [])
    result = _invoke(args)
    assert result.exit_code == 2, result.output
    lines = error_lines(result.stderr)
    assert lines[0].startswith("skipped invalid record: ") and len(lines) == 2
    assert lines[1] == (f"error: no result records found in {folder} (1 invalid file skipped, see above); run "
                        "`llmos-hub bench` first or point to the folders that hold the records")
    assert result.stdout == ""
    assert out is None or not (tmp_path / out).exists()


# -- compare ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("b_task", "b_version", "label"), [("lm-sample", "1", "lm-sample v1"),
                                                             ("translation-sample", "2", "translation-sample v2")])
def test_compare_refuses_records_of_different_tasks_or_versions(tmp_path, b_task, b_version, label):
    a = make_record(task="translation-sample").save(tmp_path / "a")
    b = make_record(task=b_task, extra={"task": {"version": b_version}}).save(tmp_path / "b")
    result = _invoke(["compare", str(a), str(b)])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        "error: cannot compare records of different tasks or versions: A is translation-sample v1, "
        f"B is {label}; compare two runs of the same task and version"]
    assert result.stdout == ""


def test_compare_of_different_tasks_stays_available_to_library_callers():
    from llmos_hub.compare import compare_records

    a, b = make_record(task="translation-sample"), make_record(task="lm-sample")
    comparison = compare_records(a, b, allow_different_tasks=True)
    assert not comparison.comparable and comparison.note == "different task or version: scores are not comparable"
