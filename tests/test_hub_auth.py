"""Endpoint and token resolution: flag, then environment, then the saved login; the source is kept."""

from __future__ import annotations

import pytest

from llmos_hub.hub import resolve_auth

TOKEN = "hf_llmosSECRETtoken_auth_0c5d"


@pytest.fixture
def saved_login(monkeypatch, tmp_path):
    from huggingface_hub import constants

    path = tmp_path / "token"
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(path))
    return path


def test_flag_beats_environment_beats_saved_login(monkeypatch, saved_login):
    saved_login.write_text("hf_saved_login_token")
    monkeypatch.setenv("HF_TOKEN", "hf_environment_token")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1/")
    auth = resolve_auth("http://127.0.0.1:2", TOKEN)
    assert (auth.endpoint, auth.token, auth.token_source) == ("http://127.0.0.1:2", TOKEN, "--token")
    auth = resolve_auth()
    assert (auth.endpoint, auth.token, auth.token_source) == ("http://127.0.0.1:1", "hf_environment_token", "HF_TOKEN")
    monkeypatch.delenv("HF_TOKEN")
    auth = resolve_auth()
    assert (auth.token, auth.describe_token()) == ("hf_saved_login_token",
                                                   "the token from the saved login (hf auth login)")


def test_the_legacy_token_variable_is_named_as_itself(monkeypatch, saved_login):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hf_legacy_environment_token")
    auth = resolve_auth("http://127.0.0.1:2")
    assert (auth.token, auth.describe_token()) == ("hf_legacy_environment_token",
                                                   "the token from HUGGING_FACE_HUB_TOKEN")
    monkeypatch.setenv("HF_TOKEN", "hf_environment_token")  # HF_TOKEN wins, as in huggingface_hub
    assert resolve_auth("http://127.0.0.1:2").token_source == "HF_TOKEN"


def test_no_token_anywhere(monkeypatch, saved_login):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    auth = resolve_auth()
    assert auth.token is None and auth.token_source == "none"
    assert auth.endpoint == "https://huggingface.co"


def test_the_token_is_not_in_repr_and_is_redacted_from_messages():
    auth = resolve_auth("http://127.0.0.1:2", TOKEN)
    assert TOKEN not in repr(auth)
    assert auth.redact(f"GET /x Authorization: Bearer {TOKEN}") == "GET /x Authorization: Bearer ***"


def test_a_commands_flags_count_as_flags_for_every_hub_read_in_its_scope(monkeypatch, saved_login):
    """``bench --endpoint/--token`` reach loaders that take no endpoint (hf: tasks, Hub models)."""
    from llmos_hub.hub import hub_flags

    monkeypatch.setenv("HF_TOKEN", "hf_environment_token")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1/")
    with hub_flags("http://127.0.0.1:2", TOKEN):
        auth = resolve_auth()
        assert (auth.endpoint, auth.token, auth.token_source) == ("http://127.0.0.1:2", TOKEN, "--token")
        other = resolve_auth("http://127.0.0.1:3")  # an explicit argument wins, and the --token stays home
        assert (other.endpoint, other.token, other.token_source) == ("http://127.0.0.1:3", "hf_environment_token", "HF_TOKEN")
        assert resolve_auth("http://127.0.0.1:2/").token == TOKEN  # the Hub the command named keeps it
    with hub_flags("http://127.0.0.1:2", None):  # no --token: the environment's, as before
        assert resolve_auth().token_source == "HF_TOKEN"
    auth = resolve_auth()  # out of scope: the environment again
    assert (auth.endpoint, auth.token_source) == ("http://127.0.0.1:1", "HF_TOKEN")
