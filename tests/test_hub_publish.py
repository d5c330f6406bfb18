"""Publishing records to a results dataset repo, with the real huggingface_hub client on a loopback Hub."""

from __future__ import annotations

import json
import threading

import pytest
import yaml
from click.testing import CliRunner

from llmos_hub import DataError, load_record
from llmos_hub.cli import main
from llmos_hub.hub import fetch_records, publish, retry_command
from llmos_hub.leaderboard import render_markdown

from ._records import make_record

TOKEN = "hf_llmosSECRETtoken_9d41c7e2"


def _api(hub):
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.url, token=TOKEN)


def _download(hub, repo, path, revision=None, repo_type="dataset"):
    with open(_api(hub).hf_hub_download(repo, path, repo_type=repo_type, revision=revision), "rb") as f:
        return f.read()


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.fixture
def two_files(tmp_path):
    a = make_record(model="nano:lm-small", scores={"bleu": 21.5, "chrf": 48.0})
    b = make_record(model="nano:lm-tiny", scores={"bleu": 9.25, "chrf": 30.5})
    folder = tmp_path / "results"
    return [a.save(folder), b.save(folder)]


def test_publish_makes_one_commit_with_records_card_and_summary(hub, two_files):
    hub.tokens = {TOKEN}
    result = publish(two_files, repo="team/results", endpoint=hub.url, token=TOKEN)

    history = hub.history("team/results")
    assert [c.title for c in history] == ["llmos-hub: publish 2 result record(s)", "initial commit"]
    assert result.commit_oid == history[0].oid
    assert result.commit_url == f"{hub.url}/datasets/team/results/commit/{history[0].oid}"
    listed = _api(hub).list_repo_files("team/results", repo_type="dataset")
    records = [load_record(p) for p in two_files]
    expected = sorted(["README.md", "data/results.jsonl", *(f"records/{r.filename()}" for r in records)])
    assert result.files == expected
    assert sorted(listed) == sorted([".gitattributes", *expected])
    for path, record in zip(two_files, records):
        assert _download(hub, "team/results", f"records/{record.filename()}") == path.read_bytes()

    card = _download(hub, "team/results", "README.md").decode()
    front = _front_matter(card)
    assert front["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/results.jsonl"}]}
    ]
    assert render_markdown(records).strip() in card
    # the Hub's own parse of the card (repo_info's cardData) round-trips the front matter
    info = _api(hub).dataset_info("team/results")
    assert info.card_data.to_dict()["configs"] == front["configs"]

    rows = [json.loads(line) for line in _download(hub, "team/results", "data/results.jsonl").splitlines()]
    by_model = {row["model"]: row for row in rows}
    assert by_model["nano:lm-small"]["primary_metric"] == "bleu"
    assert by_model["nano:lm-small"]["primary_value"] == 21.5
    assert {s["metric"]: s["value"] for s in by_model["nano:lm-tiny"]["scores"]} == {"bleu": 9.25, "chrf": 30.5}
    assert set(rows[0]) == set(rows[1])  # one fixed set of columns


def test_second_publish_adds_to_the_board_and_old_revision_still_serves_old_records(hub, tmp_path):
    first = make_record(model="nano:a", scores={"bleu": 10.0})
    second = make_record(model="nano:b", scores={"bleu": 30.0})
    r1 = publish([first], repo="team/results", endpoint=hub.url)
    r2 = publish([second.save(tmp_path)], repo="team/results", endpoint=hub.url)
    assert r1.commit_oid != r2.commit_oid
    assert r2.files == sorted(["README.md", "data/results.jsonl", f"records/{second.filename()}"])

    old, problems = fetch_records("team/results", revision=r1.commit_oid, endpoint=hub.url)
    assert [r.id for r in old] == [first.id] and problems == []
    new, _ = fetch_records("team/results", endpoint=hub.url)
    assert sorted(r.id for r in new) == sorted([first.id, second.id])

    old_card = _download(hub, "team/results", "README.md", revision=r1.commit_oid).decode()
    new_card = _download(hub, "team/results", "README.md").decode()
    assert "nano:b" not in old_card and "nano:a" in old_card
    assert "nano:a" in new_card and "nano:b" in new_card  # the board holds existing + new records
    rows = _download(hub, "team/results", "data/results.jsonl").decode().splitlines()
    assert len(rows) == 2


def test_publishing_the_same_records_again_makes_no_commit(hub, two_files):
    publish(two_files, repo="team/results", endpoint=hub.url)
    commits, seen = len(hub.history("team/results")), len(hub.requests)
    again = publish(two_files, repo="team/results", endpoint=hub.url)
    assert not again.published and again.commit_url is None and again.files == []
    assert len(hub.history("team/results")) == commits
    assert not any("/commit/" in path or "/preupload/" in path for _, path in hub.requests[seen:])

    out = CliRunner().invoke(main, ["publish", *map(str, two_files), "--repo", "team/results", "--endpoint", hub.url])
    assert out.exit_code == 0, out.output
    assert "nothing to publish: the records are already there" in out.output
    assert len(hub.history("team/results")) == commits


def test_a_record_rerun_with_the_same_file_name_replaces_the_old_one(hub):
    before = make_record(scores={"bleu": 1.0})
    after = make_record(scores={"bleu": 2.0})
    assert before.filename() == after.filename()
    publish([before], repo="team/results", endpoint=hub.url)
    publish([after], repo="team/results", endpoint=hub.url)
    records, _ = fetch_records("team/results", endpoint=hub.url)
    assert [r.scores["bleu"]["value"] for r in records] == [2.0]


def test_two_publishers_racing_keep_both_records(hub):
    hub.commit_barrier = threading.Barrier(2)  # both commits are built on the same parent
    records = [make_record(model="nano:left"), make_record(model="nano:right")]
    results, errors = {}, []

    def run(record):
        try:
            results[record.model] = publish([record], repo="team/race", endpoint=hub.url, sleep=lambda s: None)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in records]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert hub.conflicts == 1
    assert sorted(r.attempts for r in results.values()) == [1, 2]
    files = hub.files("team/race")
    assert {f"records/{r.filename()}" for r in records} <= set(files)
    card = files["README.md"].decode()
    assert "nano:left" in card and "nano:right" in card
    assert len(files["data/results.jsonl"].decode().splitlines()) == 2


def test_create_pr_opens_a_pull_request_and_leaves_main_alone(hub, tmp_path):
    record = make_record()
    main_before = hub.create_repo("team/results")
    result = publish([record], repo="team/results", endpoint=hub.url, create_pr=True)
    assert result.pr_url == f"{hub.url}/datasets/team/results/discussions/1"
    assert hub.refs("team/results")["main"] == main_before
    assert f"records/{record.filename()}" in hub.files("team/results", revision="refs/pr/1")
    assert f"records/{record.filename()}" not in hub.files("team/results")

    out = CliRunner().invoke(main, ["publish", "--repo", "team/results", "--endpoint", hub.url, "--create-pr",
                                    "--json", str(make_record(model="nano:other").save(tmp_path))])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["pr_url"] == f"{hub.url}/datasets/team/results/discussions/2" and data["published"] is True


def test_an_invalid_record_is_refused_with_path_and_reason_before_any_request(hub, tmp_path):
    good = make_record().save(tmp_path)
    bad = tmp_path / "bad.json"
    data = json.loads(good.read_text())
    data["scores"] = {}
    bad.write_text(json.dumps(data))
    with pytest.raises(DataError) as info:
        publish([good, bad], repo="team/results", endpoint=hub.url)
    message = str(info.value)
    assert str(bad) in message and "scores" in message and "\n" not in message
    assert hub.requests == []


def test_cli_publish_prints_commit_and_files_and_never_the_token(hub, tmp_path, monkeypatch):
    hub.tokens = {TOKEN}
    files = [make_record(model=m).save(tmp_path) for m in ("nano:a", "nano:b")]
    out = CliRunner().invoke(main, ["publish", str(tmp_path), "--repo", "team/results", "--endpoint", hub.url,
                                    "--token", TOKEN])
    assert out.exit_code == 0, out.output
    head = hub.refs("team/results")["main"]
    assert f"committed {hub.url}/datasets/team/results/commit/{head}" in out.output
    for f in files:
        assert f"records/{f.name}" in out.output
    assert TOKEN not in out.output
    assert any(TOKEN in h for h in hub.auth_headers)  # it was used, just never shown
    for content in hub.files("team/results").values():
        assert TOKEN.encode() not in content
    for commit in hub.history("team/results"):
        assert TOKEN not in commit.title + commit.message


def test_records_from_hf_endpoint_and_hf_token_environment(hub, monkeypatch):
    hub.tokens = {TOKEN}
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # HF_ENDPOINT is set by the hub fixture
    result = publish([make_record()], repo="team/results")
    assert result.endpoint == hub.url and result.commit_url.startswith(hub.url)


def test_retry_command_is_the_publish_line_without_the_token():
    line = retry_command(["results/a b.json", "results/c.json"], "team/results", endpoint="http://h:1",
                         model_card="team/model")
    assert line == ("llmos-hub publish 'results/a b.json' results/c.json --repo team/results "
                    "--endpoint http://h:1 --model-card team/model")
    assert retry_command(["r.json"], "team/results") == "llmos-hub publish r.json --repo team/results"


def test_the_token_is_absent_from_logs_at_debug_level(hub, caplog, capfd):
    import logging

    hub.tokens = {TOKEN}
    hub.inject(412, method="POST", path_contains="/commit/")  # also exercise the retry path's messages
    with caplog.at_level(logging.DEBUG):
        publish([make_record()], repo="team/results", endpoint=hub.url, token=TOKEN, sleep=lambda s: None)
    assert caplog.records  # huggingface_hub did log the requests
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    captured = capfd.readouterr()
    assert TOKEN not in captured.out + captured.err


def test_an_empty_folder_or_two_different_records_with_one_file_name_are_refused(hub, tmp_path):
    from llmos_hub import UsageError

    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no result records"):
        publish([tmp_path / "empty"], repo="team/results", endpoint=hub.url)
    one, other = make_record(scores={"bleu": 1.0}), make_record(scores={"bleu": 2.0})
    with pytest.raises(UsageError, match="different records with the same file name"):
        publish([one, other], repo="team/results", endpoint=hub.url)
    assert hub.requests == []
