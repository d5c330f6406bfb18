"""Tasks as Hub dataset repos: publish-task, --task hf:NS/NAME[@REV], offline reuse, and results that name them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from click.testing import CliRunner

from llmos_hub import DataError, UsageError, hookimpl
from llmos_hub.cli import main
from llmos_hub.hub import HubError, publish, publish_task
from llmos_hub.tasks import BUILTIN_DIR, task_from_file
from llmos_hub.tasks._hub_source import HubTask, load_hub_task

from ._fakes import FakePlugin
from ._records import make_record
from .test_hub_fetch import datasets_on  # noqa: F401  (fixture)

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILTIN = BUILTIN_DIR / "translation-sample.yaml"


def _host(extra=None):
    from llmos_hub._plugins import load_plugins

    return load_plugins(autoload=False, extra=[("fake-plugin", extra or FakePlugin())])


def _fake_cli_host(monkeypatch, plugin=None):
    import llmos_hub._plugins as plugins

    real = plugins.load_plugins
    monkeypatch.setattr(plugins, "load_plugins", lambda **kw: real(
        autoload=False, extra=[("fake-plugin", plugin or FakePlugin())],
        **{k: v for k, v in kw.items() if k not in {"autoload", "extra"}}))


def _front_matter(text: str) -> dict:
    return yaml.safe_load(text.split("---", 2)[1])


def _copy_task(tmp_path: Path, name: str = "lm-sample") -> Path:
    """A copy of a bundled task (its YAML and data folder) that a test may change."""
    folder = tmp_path / "task"
    shutil.copytree(BUILTIN_DIR / "data" / name, folder / "data" / name)
    shutil.copy(BUILTIN_DIR / f"{name}.yaml", folder / f"{name}.yaml")
    return folder / f"{name}.yaml"


# ------------------------------------------------------------------ publish-task
def test_publish_task_commits_yaml_data_and_card_once(hub):
    before = len(hub.history("me/translation-sample")) if ("dataset", "me/translation-sample") in hub.repos else 0
    result = publish_task("translation-sample", repo="me/translation-sample", endpoint=hub.url, host=_host())
    assert before == 0 and result.published
    history = hub.history("me/translation-sample")
    assert len(history) == 2  # the repo's initial commit, then exactly one with the task
    assert history[0].oid == result.revision
    files = hub.files("me/translation-sample")
    data = BUILTIN_DIR / "data" / "translation-sample"
    assert files["task.yaml"] == BUILTIN.read_bytes()  # the task file as written, comments included
    for split in ("train", "validation", "test"):
        assert files[f"data/translation-sample/{split}.jsonl"] == (data / f"{split}.jsonl").read_bytes()
    assert files["data/translation-sample/SOURCE.md"] == (data / "SOURCE.md").read_bytes()
    card = files["README.md"].decode()
    front = _front_matter(card)
    assert front["configs"] == [{"config_name": "default", "data_files": [
        {"split": s, "path": f"data/translation-sample/{s}.jsonl"} for s in ("train", "validation", "test")]}]
    assert front["license"] == "other" and front["license_link"] == "data/translation-sample/SOURCE.md"
    assert front["task_categories"] == ["translation"] and front["size_categories"] == ["1K<n<10K"]  # 5400
    assert "Debian 12 packages" in card  # the task's source text is carried over
    assert "llmos-hub bench --task hf:me/translation-sample" in card
    assert result.command == f"llmos-hub bench --task hf:me/translation-sample@{result.revision}"

    again = publish_task(BUILTIN, repo="me/translation-sample", endpoint=hub.url)
    assert not again.published and again.revision == result.revision
    assert len(hub.history("me/translation-sample")) == 2


def test_publish_task_as_a_pull_request_runs_from_its_commit(hub):
    hub.create_repo("me/lm")
    result = publish_task(BUILTIN_DIR / "lm-sample.yaml", repo="me/lm", endpoint=hub.url, create_pr=True)
    assert result.pr_url.endswith("/datasets/me/lm/discussions/1")
    assert "task.yaml" not in hub.files("me/lm")  # main is untouched
    assert result.revision == hub.refs("me/lm")["refs/pr/1"]
    assert load_hub_task(result.task_id).commit == result.revision


def test_publish_task_cli_prints_the_command_that_runs_it(hub, monkeypatch):
    _fake_cli_host(monkeypatch)
    out = CliRunner().invoke(main, ["publish-task", "lm-sample", "--repo", "me/lm", "--endpoint", hub.url])
    assert out.exit_code == 0, out.output
    head = hub.refs("me/lm")["main"]
    assert f"run it with: llmos-hub bench --task hf:me/lm@{head}" in out.output
    assert "  task.yaml" in out.output and "  data/lm-sample/test.jsonl" in out.output


def test_only_yaml_tasks_with_files_under_their_folder_can_be_published(hub, tmp_path):
    with pytest.raises(UsageError, match="task 'upper' is written in Python"):
        publish_task("upper", repo="me/upper", endpoint=hub.url, host=_host())
    outside = tmp_path / "t.yaml"
    outside.write_text(BUILTIN.read_text().replace("data: data/translation-sample",
                                                   f"data: {BUILTIN_DIR / 'data' / 'translation-sample'}"))
    with pytest.raises(DataError, match="outside the task('s| file's) folder"):
        publish_task(outside, repo="me/t", endpoint=hub.url)
    bad = _copy_task(tmp_path)
    (bad.parent / "data" / "lm-sample" / "test.jsonl").write_text('{"id": "a", "text": "fine"}\nnot json\n')
    with pytest.raises(DataError, match="test.jsonl:2: not valid JSON"):
        publish_task(bad, repo="me/t", endpoint=hub.url)
    assert hub.requests == []  # refused before any request


@pytest.mark.slow
def test_datasets_load_dataset_reads_the_task_data(hub, datasets_on, tmp_path):  # noqa: F811
    publish_task(BUILTIN, repo="me/translation-sample", endpoint=hub.url)
    ds = datasets_on.load_dataset("me/translation-sample", split="test", cache_dir=str(tmp_path / "ds"))
    lines = (BUILTIN_DIR / "data" / "translation-sample" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    assert ds.num_rows == len(lines) == 200
    assert [dict(row) for row in ds] == [json.loads(line) for line in lines]


# ------------------------------------------------------------------ hf: tasks
def test_a_hub_task_reads_the_same_examples_and_keeps_its_commit(hub):
    published = publish_task(BUILTIN, repo="me/translation-sample", endpoint=hub.url)
    task = load_hub_task("hf:me/translation-sample")
    assert isinstance(task, HubTask)
    assert task.describe()["hub"] == {"repo": "me/translation-sample", "revision": published.revision,
                                      "file": "task.yaml"}
    # However the revision is asked for, the same commit is the same task.
    assert load_hub_task(f"hf:me/translation-sample@{published.revision}").describe() == task.describe()
    local = task_from_file(BUILTIN).load(limit=20, seed=3)
    remote = task.load(limit=20, seed=3)
    assert remote.fingerprint == local.fingerprint and remote.examples == local.examples
    assert remote.source == (f"hf://datasets/me/translation-sample@{published.revision}/"
                             "data/translation-sample/test.jsonl")
    # Only the task file and the split files were fetched, never the card or the provenance file.
    fetched = {unquote(p).split(f"/resolve/{published.revision}/", 1)[-1] for m, p in hub.requests
               if m == "GET" and "/resolve/" in p}
    assert fetched == {"task.yaml", *(f"data/translation-sample/{s}.jsonl" for s in ("train", "validation", "test"))}


def test_a_revision_pins_the_task_even_after_it_changes(hub, tmp_path):
    path = _copy_task(tmp_path)
    first = publish_task(path, repo="me/lm", endpoint=hub.url)
    test_file = path.parent / "data" / "lm-sample" / "test.jsonl"
    test_file.write_text("".join(test_file.read_text(encoding="utf-8").splitlines(keepends=True)[:40]),
                         encoding="utf-8")
    second = publish_task(path, repo="me/lm", endpoint=hub.url)
    assert second.published and second.revision != first.revision
    assert len(load_hub_task("hf:me/lm").load().examples) == 40
    old = load_hub_task(f"hf:me/lm@{first.revision}")
    assert old.commit == first.revision and len(old.load().examples) == 150
    assert load_hub_task(f"hf:me/lm@{first.revision[:10]}").commit == first.revision  # a short id resolves too
    with pytest.raises(HubError, match="no such revision"):
        load_hub_task("hf:me/lm@nope")


def test_a_hub_task_never_reads_outside_its_repo_nor_runs_code(hub):
    task_yaml = BUILTIN.read_bytes()
    data = (BUILTIN_DIR / "data" / "translation-sample" / "test.jsonl").read_bytes()
    hub.create_repo("evil/escape", files={"task.yaml": task_yaml.replace(
        b"data: data/translation-sample", b"data: data/../../../outside")})
    hub.create_repo("evil/absolute", files={"task.yaml": task_yaml.replace(
        b"data: data/translation-sample", b"data: /etc")})
    hub.create_repo("evil/dataset-id", files={"task.yaml": b"name: x\nkind: language-modelling\n"
                                              b"data: {dataset: someone/else}\nfields: {input: text}\n"})
    hub.create_repo("evil/code", files={"task.yaml": task_yaml, "translation_sample.py": b"raise SystemExit(1)\n",
                                        **{f"data/translation-sample/{s}.jsonl": data
                                           for s in ("train", "validation", "test")}})
    with pytest.raises(DataError, match="outside the task('s| file's) folder"):
        load_hub_task("hf:evil/escape")
    with pytest.raises(DataError, match="outside the task('s| file's) folder"):
        load_hub_task("hf:evil/absolute")
    with pytest.raises(DataError, match="names the datasets id 'someone/else'"):
        load_hub_task("hf:evil/dataset-id")
    assert len(load_hub_task("hf:evil/code").load().examples) == 200
    requested = [unquote(p) for _, p in hub.requests if "/resolve/" in p]
    assert requested and not any(p.endswith(".py") or "/outside" in p or p.endswith("/etc") for p in requested)


def test_unusable_hub_task_ids_are_one_line_errors(hub):
    hub.create_repo("me/not-a-task", files={"README.md": b"# hello\n"})
    with pytest.raises(DataError, match="has no task.yaml .* not an llmos-hub task; publish one with"):
        load_hub_task("hf:me/not-a-task")
    with pytest.raises(HubError, match="dataset repo me/ghost at .* does not exist"):
        load_hub_task("hf:me/ghost")
    head = hub.create_repo("me/bad-yaml", files={"task.yaml": b"name: x\nkind: translaton\n"})
    with pytest.raises(DataError, match=f"^hf:me/bad-yaml@{head}/task.yaml: field 'kind': unknown kind 'translaton'"):
        load_hub_task("hf:me/bad-yaml")
    head = hub.create_repo("me/no-data", files={"task.yaml": BUILTIN.read_bytes()})
    with pytest.raises(DataError, match="names 'data/translation-sample/[a-z]+.jsonl', which is not in the repo"):
        load_hub_task("hf:me/no-data")
    for text in ("hf:ghost", "hf:a/b/c", "hf:me/x@"):
        with pytest.raises(UsageError, match="is not a Hub task id"):
            load_hub_task(text)


def test_a_hub_task_is_read_from_the_cache_offline(hub, monkeypatch):
    from huggingface_hub import constants

    published = publish_task(BUILTIN, repo="me/translation-sample", endpoint=hub.url)
    expected = load_hub_task("hf:me/translation-sample").load(limit=5).fingerprint
    served = len(hub.requests)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    offline = load_hub_task("hf:me/translation-sample")
    assert offline.commit == published.revision and offline.load(limit=5).fingerprint == expected
    assert load_hub_task(f"hf:me/translation-sample@{published.revision}").commit == published.revision
    assert len(hub.requests) == served  # not one request
    with pytest.raises(UsageError, match="hf:me/other is not in the local cache and HF_HUB_OFFLINE=1"):
        load_hub_task("hf:me/other")


def test_suites_may_name_hub_tasks(hub):
    class SuitePlugin(FakePlugin):
        @hookimpl
        def register_suites(self, register):
            register("mixed", lambda: ["hf:me/lm", "upper"])

    from llmos_hub.bench._plan import resolve_tasks

    publish_task(BUILTIN_DIR / "lm-sample.yaml", repo="me/lm", endpoint=hub.url)
    resolved = resolve_tasks(_host(SuitePlugin()), ["mixed"])
    assert [(r.argument, type(r.task).__name__, r.task.name) for r in resolved] == [
        ("hf:me/lm", "HubTask", "lm-sample"), ("upper", "FakeTask", "upper")]


# ------------------------------------------------------------------ end to end
_OFFLINE_BENCH = """
import sys
sys.path.insert(0, {root!r})
import llmos_hub._plugins as plugins
from tests._fakes import FakePlugin
real = plugins.load_plugins
plugins.load_plugins = lambda **kw: real(autoload=False, extra=[("fake-plugin", FakePlugin())],
                                         **{{k: v for k, v in kw.items() if k not in ("autoload", "extra")}})
from llmos_hub.cli import main
main(sys.argv[1:])
"""


def _bench_args(out: Path) -> list[str]:
    return ["bench", "--task", "hf:me/translation-sample", "--model", "fake:upper", "--backend", "fake",
            "--limit", "5", "--output-dir", str(out)]


@pytest.mark.slow
def test_publish_bench_resume_offline_then_publish_results_that_name_the_task(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants, parse_eval_result_entries

    _fake_cli_host(monkeypatch)
    runner = CliRunner()
    out = tmp_path / "results"
    published = runner.invoke(main, ["publish-task", "translation-sample", "--repo", "me/translation-sample",
                                     "--endpoint", hub.url, "--json"])
    assert published.exit_code == 0, published.output
    task_commit = json.loads(published.stdout)["revision"]

    benched = runner.invoke(main, [*_bench_args(out), "--log-samples"])
    assert benched.exit_code == 0, benched.output
    [record_file] = sorted(out.glob("*.json"))
    record = json.loads(record_file.read_text())
    assert record["task"]["source"] == (f"hf://datasets/me/translation-sample@{task_commit}/"
                                        "data/translation-sample/test.jsonl")
    # The task's description in the record (part of the run identity) names the commit too.
    assert record["task"]["definition"]["hub"] == {"repo": "me/translation-sample", "revision": task_commit,
                                                   "file": "task.yaml"}
    samples_file = out / record["samples_file"]
    assert samples_file.is_file()

    # Offline, in a fresh process, with the Hub still up: --resume reuses the record and asks the Hub nothing.
    served = len(hub.requests)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": constants.HF_HUB_CACHE,
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _OFFLINE_BENCH.format(root=str(REPO_ROOT)),
                           *_bench_args(out), "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 record(s) written, 1 reused" in proc.stdout
    assert len(hub.requests) == served
    assert sorted(out.glob("*.json")) == [record_file]

    hub.create_repo("me/tiny-model", "model")
    done = runner.invoke(main, ["publish", str(out), "--repo", "me/results", "--endpoint", hub.url,
                                "--model-card", "me/tiny-model", "--with-samples", "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["local_tasks"] == [] and "note:" not in done.output
    results_commit = result["commit_oid"]
    results_files = hub.files("me/results")
    assert result["records_revision"] == results_commit == hub.history("me/results")[0].oid
    # The samples file went in the same commit as its record, next to it.
    assert results_files[f"records/{samples_file.name}"] == samples_file.read_bytes()
    assert f"records/{samples_file.name}" in result["files"]

    model_files = hub.files("me/tiny-model", "model")
    eval_files = [p for p in model_files if p.startswith(".eval_results/")]
    assert eval_files
    for path in eval_files:  # every entry parses with huggingface_hub's own helper
        entries = parse_eval_result_entries(yaml.safe_load(model_files[path]))
        for entry in entries:
            assert (entry.dataset_id, entry.dataset_revision, entry.task_id) == (
                "me/translation-sample", task_commit, "translation-sample")
            assert entry.value == record["scores"]["chrf"]["value"]
            _assert_pinned(hub, entry.source_url, results_commit, record_file)

    from huggingface_hub import ModelCard

    card = ModelCard(model_files["README.md"].decode())
    ours = [e for e in card.data.eval_results if e.task_name == "translation-sample"]
    assert {e.metric_type for e in ours} == {"chrf", "bleu"}
    for entry in ours:
        assert (entry.dataset_type, entry.dataset_revision, entry.dataset_config) == (
            "me/translation-sample", task_commit, "default")
        _assert_pinned(hub, entry.source_url, results_commit, record_file)


def _assert_pinned(hub, url: str, commit: str, record_file: Path) -> None:
    """``url`` is a blob URL at ``commit`` whose file there is the record, byte for byte."""
    prefix = f"/datasets/me/results/blob/{commit}/"
    path = urlsplit(url).path
    assert path.startswith(prefix), url
    assert hub.files("me/results", revision=commit)[path[len(prefix):]] == record_file.read_bytes()


def test_a_local_task_is_named_by_the_results_repo_and_the_publish_says_so(hub, tmp_path):
    hub.create_repo("me/tiny-model", "model")
    record = make_record(model="nano:tiny", scores={"bleu": 17.5, "chrf": 44.0}, primary="chrf")
    path = record.save(tmp_path)
    out = CliRunner().invoke(main, ["publish", str(path), "--repo", "me/results", "--endpoint", hub.url,
                                    "--model-card", "me/tiny-model"])
    assert out.exit_code == 0, out.output
    note = [line for line in out.output.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "translation-sample is a local task" in note[0]
    assert "llmos-hub publish-task translation-sample --repo NS/NAME" in note[0]
    from huggingface_hub import parse_eval_result_entries

    files = hub.files("me/tiny-model", "model")
    [entry] = parse_eval_result_entries(yaml.safe_load(files[f".eval_results/llmos-hub__{path.stem}.yaml"]))
    assert (entry.dataset_id, entry.dataset_revision, entry.task_id) == ("me/results", None, "translation-sample")


def test_with_samples_needs_the_samples_file_next_to_the_record(hub, tmp_path):
    record = make_record(extra={"samples_file": "x.samples.jsonl"})
    path = record.save(tmp_path)
    out = CliRunner().invoke(main, ["publish", str(path), "--repo", "me/results", "--endpoint", hub.url,
                                    "--with-samples"])
    assert out.exit_code == 2 and "names the samples file x.samples.jsonl, which is not next to it" in out.output
    assert hub.requests == []
    (tmp_path / "x.samples.jsonl").write_text('{"id": "1"}\n')
    plain = publish([path], repo="me/results", endpoint=hub.url)
    assert "records/x.samples.jsonl" not in hub.files("me/results") and plain.samples == []
    later = publish([path], repo="me/results", endpoint=hub.url, with_samples=True)
    assert later.published and later.files == ["records/x.samples.jsonl"]


def test_an_entry_written_before_entries_named_datasets_is_replaced_not_doubled(hub):
    old_card = """---
model-index:
- name: tiny-model
  results:
  - task:
      type: text2text-generation
      name: translation-sample
    dataset:
      type: translation-sample
      name: translation-sample (test)
      split: test
    metrics:
    - type: bleu
      value: 1.0
      config: pytorch/cpu/float32
---
# tiny-model
"""
    from huggingface_hub import ModelCard

    hub.create_repo("me/tiny-model", "model", {"README.md": old_card.encode()})
    publish([make_record(model="nano:tiny", scores={"bleu": 2.0})], repo="me/results", endpoint=hub.url,
            model_card="me/tiny-model")
    entries = ModelCard(hub.files("me/tiny-model", "model")["README.md"].decode()).data.eval_results
    assert [(e.dataset_type, e.metric_value) for e in entries if e.metric_type == "bleu"] == [("me/results", 2.0)]


def test_bench_push_to_hub_with_log_samples_sends_the_samples_in_the_same_commit(hub, tmp_path, monkeypatch):
    _fake_cli_host(monkeypatch)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["bench", "--model", "fake:upper", "--task", "upper", "--backend", "fake",
                                       "--output-dir", str(out), "--log-samples", "--push-to-hub", "me/results",
                                       "--endpoint", hub.url])
    assert result.exit_code == 0, result.output
    [samples] = out.glob("*.samples.jsonl")
    latest = hub.history("me/results")[0]
    assert latest.files[f"records/{samples.name}"] == samples.read_bytes()
    assert latest.parent == hub.history("me/results")[1].oid and len(hub.history("me/results")) == 2


def test_bench_reads_a_hub_task_from_the_endpoint_flag(hub, tmp_path, monkeypatch):
    """--endpoint reaches the hf: task (not only --push-to-hub); an unreachable one is exit 2, one line."""
    import socket

    published = publish_task(BUILTIN, repo="me/translation-sample", endpoint=hub.url)
    monkeypatch.delenv("HF_ENDPOINT")  # only the flag names the loopback Hub
    _fake_cli_host(monkeypatch)
    out = tmp_path / "results"
    result = CliRunner().invoke(main, [*_bench_args(out), "--endpoint", hub.url, "--json"])
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    assert record["task"]["source"].startswith(f"hf://datasets/me/translation-sample@{published.revision}/")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    failed = CliRunner().invoke(main, ["bench", "--task", "hf:me/elsewhere", "--model", "fake:upper", "--backend",
                                       "fake", "--endpoint", closed, "--output-dir", str(tmp_path / "none")])
    assert failed.exit_code == 2, failed.output
    [line] = failed.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach the Hub at {closed} (") and "check --endpoint" in line
