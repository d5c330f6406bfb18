"""Scores on a model's page: the card's model-index and .eval_results/*.yaml, merged, never clobbered."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import yaml
from click.testing import CliRunner

from llmos_hub import UsageError
from llmos_hub.cli import main
from llmos_hub.hub import HubError, publish

from ._records import make_record

EXISTING_CARD = """---
license: mit
model-index:
- name: tiny-model
  results:
  - task:
      type: text-classification
    dataset:
      type: glue
      name: GLUE (sst2)
      split: validation
    metrics:
    - type: accuracy
      value: 0.91
---
# tiny-model

A hand-written card that must survive.
"""
OTHER_EVAL = b"- dataset:\n    id: cais/hle\n    task_id: default\n  value: 20.9\n"


def _card(hub, repo="team/tiny-model"):
    from huggingface_hub import ModelCard

    return ModelCard(hub.files(repo, "model")["README.md"].decode())


def _record_at(hub, url):
    """The bytes a source URL points at, read from the server (blob URL -> file at that revision).

    The URL is pinned to a commit (never a branch, which moves).
    """
    path = urlsplit(url).path
    prefix = "/datasets/team/results/blob/"
    assert path.startswith(prefix), url
    revision, _, file = path[len(prefix):].partition("/")
    assert revision in {c.oid for c in hub.history("team/results")}, url
    return hub.files("team/results", revision=revision)[file]


def test_model_card_gets_our_scores_and_keeps_existing_entries(hub):
    hub.create_repo("team/tiny-model", "model", {"README.md": EXISTING_CARD.encode(),
                                                  ".eval_results/hle.yaml": OTHER_EVAL})
    record = make_record(model="nano:tiny", scores={"bleu": 17.5, "chrf": 44.0})
    before = len(hub.history("team/tiny-model", "model"))
    result = publish([record], repo="team/results", endpoint=hub.url, model_card="team/tiny-model")

    assert result.model_commit_url.startswith(f"{hub.url}/team/tiny-model/commit/")
    assert len(hub.history("team/tiny-model", "model")) == before + 1  # one commit in the model repo
    card = _card(hub)
    assert "A hand-written card that must survive." in card.text
    assert card.data.license == "mit"
    entries = card.data.eval_results
    assert any(e.dataset_type == "glue" and e.metric_value == 0.91 for e in entries)
    # A local task: the entries name the results repo, the only Hub dataset the record is in.
    ours = {e.metric_type: e for e in entries if e.task_name == record.task}
    assert {m: e.metric_value for m, e in ours.items()} == {"bleu": 17.5, "chrf": 44.0}
    assert {e.dataset_type for e in ours.values()} == {"team/results"}
    assert ours["bleu"].source_url.split("/blob/")[1].startswith(result.commit_oid + "/")
    assert ours["bleu"].dataset_split == "test" and ours["bleu"].metric_config == "pytorch/cpu/float32"
    assert _record_at(hub, ours["bleu"].source_url) == record.to_json().encode()


def test_eval_results_files_parse_back_with_huggingface_hub(hub):
    from huggingface_hub import parse_eval_result_entries

    hub.create_repo("team/tiny-model", "model", {".eval_results/hle.yaml": OTHER_EVAL})
    record = make_record(model="nano:tiny", scores={"bleu": 17.5, "chrf": 44.0}, primary="chrf")
    result = publish([record], repo="team/results", endpoint=hub.url, model_card="team/tiny-model")

    files = hub.files("team/tiny-model", "model")
    ours = [p for p in result.model_files if p.startswith(".eval_results/")]
    assert ours == [f".eval_results/llmos-hub__{record.filename()[:-5]}.yaml"]
    entries = parse_eval_result_entries(yaml.safe_load(files[ours[0]]))
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.dataset_id, entry.task_id, entry.value) == ("team/results", record.task, 44.0)
    assert entry.date == record.data["finished_at"]
    assert _record_at(hub, entry.source_url) == record.to_json().encode()
    assert files[".eval_results/hle.yaml"] == OTHER_EVAL  # another tool's file is untouched


def test_a_model_repo_without_a_card_gets_one(hub):
    hub.create_repo("team/tiny-model", "model")
    publish([make_record(model="nano:tiny")], repo="team/results", endpoint=hub.url, model_card="team/tiny-model")
    card = _card(hub)
    assert card.data.model_name == "tiny-model"
    assert sorted(e.metric_type for e in card.data.eval_results) == ["bleu", "chrf"]
    assert not card.text.lstrip().startswith("---")  # the front matter did not leak into the body


def test_republishing_with_a_model_card_makes_no_commit_anywhere(hub):
    hub.create_repo("team/tiny-model", "model", {"README.md": EXISTING_CARD.encode()})
    record = make_record(model="nano:tiny")
    publish([record], repo="team/results", endpoint=hub.url, model_card="team/tiny-model")
    before = (len(hub.history("team/results")), len(hub.history("team/tiny-model", "model")))
    again = publish([record], repo="team/results", endpoint=hub.url, model_card="team/tiny-model")
    assert not again.published
    assert (len(hub.history("team/results")), len(hub.history("team/tiny-model", "model"))) == before


def test_a_newer_result_updates_its_entry_instead_of_adding_one(hub):
    hub.create_repo("team/tiny-model", "model", {"README.md": EXISTING_CARD.encode()})
    publish([make_record(model="nano:tiny", scores={"bleu": 1.0})], repo="team/results", endpoint=hub.url,
            model_card="team/tiny-model")
    publish([make_record(model="nano:tiny", scores={"bleu": 2.0})], repo="team/results", endpoint=hub.url,
            model_card="team/tiny-model")
    bleu = [e.metric_value for e in _card(hub).data.eval_results if e.metric_type == "bleu"]
    assert bleu == [2.0]


def test_model_card_of_records_already_published_is_still_updated(hub, tmp_path):
    hub.create_repo("team/tiny-model", "model")
    record = make_record(model="nano:tiny")
    publish([record], repo="team/results", endpoint=hub.url)
    result = publish([record], repo="team/results", endpoint=hub.url, model_card="team/tiny-model")
    assert result.commit_url is None and result.model_commit_url is not None

    out = CliRunner().invoke(main, ["publish", "--repo", "team/results", "--endpoint", hub.url,
                                    "--model-card", "team/tiny-model", str(record.save(tmp_path))])
    assert out.exit_code == 0 and "nothing to publish: the records are already there" in out.output


def test_model_card_needs_records_of_one_model(hub):
    with pytest.raises(UsageError, match="the records are for nano:a, nano:b"):
        publish([make_record(model="nano:a"), make_record(model="nano:b")], repo="team/results",
                endpoint=hub.url, model_card="team/tiny-model")
    assert hub.requests == []


def test_a_missing_model_repo_is_an_error_not_created(hub):
    with pytest.raises(HubError, match=f"model repo team/ghost at {hub.url} does not exist"):
        publish([make_record()], repo="team/results", endpoint=hub.url, model_card="team/ghost")
    assert ("model", "team/ghost") not in hub.repos


def test_create_pr_opens_pull_requests_on_both_repos(hub):
    hub.create_repo("team/tiny-model", "model")
    result = publish([make_record()], repo="team/results", endpoint=hub.url, model_card="team/tiny-model",
                     create_pr=True)
    assert result.pr_url.endswith("/datasets/team/results/discussions/1")
    assert result.model_pr_url == f"{hub.url}/team/tiny-model/discussions/1"
    assert "README.md" not in hub.files("team/tiny-model", "model")
    readme = hub.files("team/tiny-model", "model", revision="refs/pr/1")["README.md"].decode()
    pr_commit = hub.refs("team/results")["refs/pr/1"]
    assert f"/datasets/team/results/blob/{pr_commit}/records/" in readme  # points at the PR's record


def test_a_card_whose_front_matter_does_not_parse_is_left_alone(hub):
    broken = b"---\nlicense: [mit\n---\n# mine\n"
    hub.create_repo("team/tiny-model", "model", {"README.md": broken})
    with pytest.raises(HubError, match="the card \\(README.md\\) of model repo team/tiny-model has front matter that"):
        publish(make_record(), repo="team/results", endpoint=hub.url, model_card="team/tiny-model")
    assert hub.files("team/tiny-model", "model")["README.md"] == broken
