"""The session guard: a test that reaches for any host but the loopback one fails."""

from __future__ import annotations

import socket

import pytest

from .conftest import NetworkBlockedError


def test_the_hub_client_cannot_reach_huggingface_co():
    from huggingface_hub import HfApi

    with pytest.raises(NetworkBlockedError, match="huggingface.co"):
        HfApi(endpoint="https://huggingface.co").repo_info("gpt2")


def test_hf_hub_download_does_not_fall_back_to_a_cache_silently(tmp_path):
    from huggingface_hub import HfApi

    with pytest.raises(NetworkBlockedError):
        HfApi(endpoint="https://huggingface.co").hf_hub_download("gpt2", "config.json", cache_dir=str(tmp_path))


@pytest.mark.parametrize("address", [("192.0.2.1", 80), ("2001:db8::1", 443), ("example.com", 80)])
def test_sockets_cannot_connect_off_the_machine(address):
    with pytest.raises(NetworkBlockedError):
        socket.create_connection(address, timeout=0.5)
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s, pytest.raises(NetworkBlockedError):
        s.connect(address)
    with socket.socket(family, socket.SOCK_STREAM) as s, pytest.raises(NetworkBlockedError):
        s.connect_ex(address)


def test_loopback_stays_reachable(hub):
    from huggingface_hub import HfApi

    hub.create_repo("team/results")
    assert HfApi(endpoint=hub.url).repo_info("team/results", repo_type="dataset").id == "team/results"
    with socket.create_connection(("127.0.0.1", int(hub.url.rsplit(":", 1)[1])), timeout=2):
        pass
