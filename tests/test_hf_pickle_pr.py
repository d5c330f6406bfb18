"""Pickle-only Hub repos are never unpickled; a safetensors conversion offered as a pull request is used.

Runs against the loopback Hub: the repo's main branch holds ``pytorch_model.bin`` (a real pickle of
the weights), and a pull request (``refs/pr/N``) adds ``model.safetensors``, as the Hub's conversion
bot does. The family loads the pull request's commit and records it; it never downloads the pickle.
"""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("transformers")
pytest.importorskip("llmos_hub_transformers")

from llmos_hub import DataError, GenerationConfig  # noqa: E402


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    from llmos_hub_transformers.tiny import save_tiny

    return save_tiny("gpt2", tmp_path_factory.mktemp("hf-pr") / "gpt2")


def _pickled_repo(hub, tiny_gpt2, tmp_path, repo_id):
    """A repo whose main branch has the weights as a torch pickle only; returns the folder it came from."""
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_gpt2, folder)
    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    hub.create_repo(repo_id, repo_type="model", files={p.name: p.read_bytes() for p in folder.iterdir()})
    return folder


def test_a_safetensors_pull_request_is_used_and_recorded(hub, tiny_gpt2, tmp_path):
    import torch
    from huggingface_hub import HfApi

    from llmos_hub_pytorch.backend import TorchBackend
    from llmos_hub_transformers.family import HFFamily

    _pickled_repo(hub, tiny_gpt2, tmp_path, "team/old")
    api = HfApi(endpoint=hub.url)
    # An unrelated pull request first (a README), then the conversion.
    api.upload_file(path_or_fileobj=b"# old model\n", path_in_repo="README.md", repo_id="team/old", create_pr=True)
    pr = api.upload_file(path_or_fileobj=str(tiny_gpt2 / "model.safetensors"), path_in_repo="model.safetensors",
                         repo_id="team/old", create_pr=True)
    commit = hub.refs("team/old", "model")["refs/pr/2"]
    model = HFFamily().load("team/old")
    assert model.provenance.revision == commit
    assert model.provenance.extra["safetensors_from"] == "refs/pr/2" and model.provenance.extra["requested_revision"] == "main"
    assert pr.pr_url and not any("pytorch_model.bin" in path for _, path in hub.requests)
    torch.set_num_threads(1)
    local = HFFamily().load(str(tiny_gpt2))
    config = GenerationConfig(max_new_tokens=5)
    assert TorchBackend().prepare(model).generate(["This License"], config) == \
        TorchBackend().prepare(local).generate(["This License"], config)


def test_a_pull_request_that_changes_the_config_is_not_a_conversion(hub, tiny_gpt2, tmp_path):
    import json

    from huggingface_hub import CommitOperationAdd, HfApi

    from llmos_hub_transformers.family import HFFamily

    _pickled_repo(hub, tiny_gpt2, tmp_path, "team/swapped")
    config = json.loads((tiny_gpt2 / "config.json").read_text())
    config["n_layer"] = 1
    HfApi(endpoint=hub.url).create_commit(
        "team/swapped", operations=[
            CommitOperationAdd("model.safetensors", str(tiny_gpt2 / "model.safetensors")),
            CommitOperationAdd("config.json", json.dumps(config).encode()),
        ], commit_message="another model", create_pr=True,
    )
    with pytest.raises(DataError, match="no pull request offers a safetensors conversion") as info:
        HFFamily().load("team/swapped")
    assert "\n" not in str(info.value) and "save_pretrained" in str(info.value) and "refs/pr/N" in str(info.value)
    assert not any("pytorch_model.bin" in path for _, path in hub.requests)


def test_the_pull_request_lookup_is_retried_in_our_one_layer(hub, tiny_gpt2, tmp_path, monkeypatch):
    import llmos_hub.hub._deadline as deadline
    from huggingface_hub import HfApi

    from llmos_hub_transformers.family import HFFamily

    waits = []
    monkeypatch.setattr(deadline, "backoff", lambda attempt, rng=None: waits.append(attempt) or 0.01)
    _pickled_repo(hub, tiny_gpt2, tmp_path, "team/flaky")
    HfApi(endpoint=hub.url).upload_file(path_or_fileobj=str(tiny_gpt2 / "model.safetensors"),
                                        path_in_repo="model.safetensors", repo_id="team/flaky", create_pr=True)
    hub.inject(503, method="GET", path_contains="/refs", times=1)
    model = HFFamily().load("team/flaky")
    assert model.provenance.extra["safetensors_from"] == "refs/pr/1"
    assert waits == [1]  # one failed lookup, one wait of ours, then the lookup found the conversion
