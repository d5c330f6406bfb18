"""Reading a results repo back: fetch_records, the leaderboard CLI, and datasets.load_dataset."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from llmos_hub.cli import main
from llmos_hub.hub import fetch_records, publish

from ._records import make_record


def test_fetch_records_returns_valid_records_and_one_line_per_invalid_file(hub):
    good = [make_record(model="nano:a"), make_record(model="nano:b", task="lm-sample", capability="causal-lm",
                                                     scores={"perplexity": 12.0})]
    broken = json.loads(good[0].to_json())
    del broken["scores"]
    hub.create_repo("team/results", files={
        **{f"records/{r.filename()}": r.to_json().encode() for r in good},
        "records/broken.json": json.dumps(broken).encode(),
        "records/garbage.json": b"{not json",
        "notes/ignored.json": b"{}",
    })
    records, problems = fetch_records("team/results", endpoint=hub.url)
    assert sorted(r.id for r in records) == sorted(r.id for r in good)
    assert [r.to_json() for r in sorted(records, key=lambda r: r.filename())] == [
        r.to_json() for r in sorted(good, key=lambda r: r.filename())
    ]
    assert len(problems) == 2
    assert problems[0].startswith("records/broken.json: invalid result record: ") and "scores" in problems[0]
    assert problems[1].startswith("records/garbage.json: not JSON")
    assert all("\n" not in p for p in problems)


def test_publish_builds_the_board_from_valid_records_and_reports_the_others(hub):
    existing = make_record(model="nano:old")
    hub.create_repo("team/results", files={
        f"records/{existing.filename()}": existing.to_json().encode(),
        "records/broken.json": b"{}",
    })
    result = publish([make_record(model="nano:new")], repo="team/results", endpoint=hub.url)
    assert len(result.skipped) == 1 and result.skipped[0].startswith("records/broken.json: invalid result record")
    card = hub.files("team/results")["README.md"].decode()
    assert "nano:old" in card and "nano:new" in card


def test_leaderboard_from_hub_at_a_revision(hub):
    first = publish([make_record(model="nano:first")], repo="team/results", endpoint=hub.url)
    publish([make_record(model="nano:second")], repo="team/results", endpoint=hub.url)
    runner = CliRunner()
    now = runner.invoke(main, ["leaderboard", "--from-hub", "team/results", "--endpoint", hub.url,
                               "--format", "json"])
    then = runner.invoke(main, ["leaderboard", "--from-hub", f"team/results@{first.commit_oid}",
                                "--endpoint", hub.url, "--format", "json"])
    assert now.exit_code == 0 and then.exit_code == 0, now.output + then.output
    assert "nano:first" in now.stdout and "nano:second" in now.stdout
    assert "nano:first" in then.stdout and "nano:second" not in then.stdout


@pytest.fixture
def datasets_on(hub, monkeypatch, tmp_path):
    """``datasets`` resolves repos through import-time endpoint constants; point them at the server."""
    import datasets
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", hub.url)
    monkeypatch.setattr(datasets.config, "HUB_DATASETS_URL", hub.url + "/datasets/{repo_id}/resolve/{revision}/{path}")
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    return datasets


def test_datasets_load_dataset_reads_the_published_records(hub, datasets_on, tmp_path):
    records = [
        make_record(model="nano:a", scores={"bleu": 21.5, "chrf": 48.0}),
        make_record(model="nano:b", task="classification-sample", capability="classifier",
                    scores={"accuracy": 0.75, "f1": 0.5}),
    ]
    publish(records, repo="team/results", endpoint=hub.url)
    ds = datasets_on.load_dataset("team/results", split="train", cache_dir=str(tmp_path / "ds"))
    assert ds.num_rows == 2
    rows = {row["model"]: row for row in ds}
    assert rows["nano:a"]["primary_value"] == 21.5 and rows["nano:b"]["primary_metric"] == "accuracy"
    assert {s["metric"]: s["value"] for s in rows["nano:b"]["scores"]} == {"accuracy": 0.75, "f1": 0.5}
    assert rows["nano:a"]["record"] == f"records/{records[0].filename()}"
