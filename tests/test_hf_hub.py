"""``hf:namespace/name[@revision]``: the hf family downloads from the Hub named by HF_ENDPOINT.

Runs against the loopback Hub of ``tests/hubserver.py`` (the ``hub`` fixture sets ``HF_ENDPOINT``
for the test only, after ``huggingface_hub`` was imported, so code that ignored the variable at
call time would reach for huggingface.co and be stopped by the network guard).
"""

from __future__ import annotations

import hashlib
import shutil

import pytest

pytest.importorskip("transformers")
pytest.importorskip("llmos_hub_transformers")

from llmos_hub import Capability, DataError, GenerationConfig  # noqa: E402
from llmos_hub.hub import HubError  # noqa: E402


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    from llmos_hub_transformers.tiny import save_tiny

    return save_tiny("gpt2", tmp_path_factory.mktemp("hf-hub") / "gpt2")


def test_load_a_hub_model_at_the_resolved_commit(hub, tiny_gpt2):
    import torch
    from huggingface_hub import HfApi

    from llmos_hub_pytorch.backend import TorchBackend
    from llmos_hub_transformers.family import HFFamily

    api = HfApi(endpoint=hub.url)
    api.create_repo("team/tiny-gpt2", repo_type="model")
    first = api.upload_folder(repo_id="team/tiny-gpt2", folder_path=str(tiny_gpt2), repo_type="model")
    family = HFFamily()
    assert family.capabilities("team/tiny-gpt2") == {Capability.CAUSAL_LM}
    model = family.load("team/tiny-gpt2")
    assert model.provenance.source == "team/tiny-gpt2"
    assert model.provenance.revision == first.oid
    assert model.provenance.extra["endpoint"] == hub.url
    weights = (tiny_gpt2 / "model.safetensors").read_bytes()
    assert model.provenance.weights_sha256 == hashlib.sha256(weights).hexdigest()
    # The downloaded model answers as the local folder does.
    local = family.load(str(tiny_gpt2))
    torch.set_num_threads(1)
    config = GenerationConfig(max_new_tokens=5)
    prompt = ["This License"]
    assert TorchBackend().prepare(model).generate(prompt, config)[0].token_ids == \
        TorchBackend().prepare(local).generate(prompt, config)[0].token_ids
    # A later commit does not move a pinned revision; "@main" follows the branch.
    second = api.upload_file(path_or_fileobj=b"# tiny\n", path_in_repo="README.md",
                             repo_id="team/tiny-gpt2", repo_type="model")
    assert family.load(f"team/tiny-gpt2@{first.oid}").provenance.revision == first.oid
    assert family.load("team/tiny-gpt2", revision="main").provenance.revision == second.oid
    # Only the files a model needs are fetched: never the README (nor any pickle).
    fetched = [path for method, path in hub.requests if "/resolve/" in path]
    assert any(path.endswith("/model.safetensors") for path in fetched)
    assert not any(path.endswith("/README.md") for path in fetched)


def test_the_chat_templates_a_hub_model_keeps_beside_its_config_are_fetched(hub, tiny_gpt2, tmp_path):
    from llmos_hub_transformers.family import HFFamily

    folder = tmp_path / "chat"
    shutil.copytree(tiny_gpt2, folder)
    (folder / "chat_template.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    (folder / "additional_chat_templates").mkdir()
    (folder / "additional_chat_templates" / "tool_use.jinja").write_text("{{ messages[0]['content'] }}")
    files = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    hub.create_repo("team/chat", repo_type="model", files=files)
    model = HFFamily().load("team/chat")
    fetched = [path for method, path in hub.requests if "/resolve/" in path]
    assert any(path.endswith("/chat_template.jinja") for path in fetched)
    assert any(path.endswith("/additional_chat_templates/tool_use.jinja") for path in fetched)
    templates = model.tokenizer.backend.chat_template  # the tokenizer read both from the snapshot
    assert set(templates) == {"default", "tool_use"}, templates


def test_a_hub_repo_with_only_pickle_weights_is_refused_before_download(hub, tiny_gpt2, tmp_path):
    from llmos_hub_transformers.family import HFFamily

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_gpt2, folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    hub.create_repo("team/pickled", repo_type="model", files={p.name: p.read_bytes() for p in folder.iterdir()})
    with pytest.raises(DataError, match=r"hf:team/pickled has only pickle weights \(pytorch_model.bin\)"):
        HFFamily().load("team/pickled")
    assert not any("pytorch_model.bin" in path for _, path in hub.requests)


def test_a_missing_hub_repo_is_a_one_line_error(hub):
    from llmos_hub_transformers.family import HFFamily

    with pytest.raises(HubError, match="does not exist") as info:
        HFFamily().load("team/nothing-here")
    assert "\n" not in str(info.value) and hub.url in str(info.value)


def test_offline_mode_loads_the_cached_snapshot_without_a_request(hub, tiny_gpt2, monkeypatch):
    from huggingface_hub import HfApi

    from llmos_hub_transformers.family import HFFamily

    api = HfApi(endpoint=hub.url)
    api.create_repo("team/cached", repo_type="model")
    commit = api.upload_folder(repo_id="team/cached", folder_path=str(tiny_gpt2), repo_type="model")
    online = HFFamily().load("team/cached")
    served = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = HFFamily().load("team/cached")
    assert len(hub.requests) == served  # nothing asked of the Hub
    assert offline.provenance.revision == commit.oid == online.provenance.revision
    assert offline.provenance.weights_sha256 == online.provenance.weights_sha256
    with pytest.raises(DataError, match="not in the Hub cache and HF_HUB_OFFLINE is set"):
        HFFamily().load("team/never-downloaded")
