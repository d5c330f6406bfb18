"""Against the real Hugging Face Hub: skipped unless LLMOS_HUB_LIVE=1.

Also needs ``LLMOS_HUB_LIVE_TOKEN`` (a write token; the test session clears ``HF_TOKEN`` on purpose)
and ``LLMOS_HUB_LIVE_REPO``.

The test suite's guard allows loopback hosts only, so this test lifts it for itself. It publishes one
record to ``LLMOS_HUB_LIVE_REPO`` (a dataset repo you own, e.g. ``you/llmos-hub-live``), reads it back
and checks that re-publishing makes no commit.
"""

from __future__ import annotations

import os
import socket

import pytest

from llmos_hub.hub import fetch_records, publish

from . import conftest
from ._records import make_record

pytestmark = pytest.mark.skipif(
    os.environ.get("LLMOS_HUB_LIVE") != "1", reason="live Hub test: set LLMOS_HUB_LIVE=1, LLMOS_HUB_LIVE_TOKEN, LLMOS_HUB_LIVE_REPO"
)


@pytest.fixture
def network(monkeypatch):
    import huggingface_hub
    from huggingface_hub.utils._http import default_client_factory

    monkeypatch.setattr(socket.socket, "connect", conftest._real_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", conftest._real_connect_ex)
    monkeypatch.setattr(socket, "create_connection", conftest._real_create_connection)
    huggingface_hub.set_client_factory(default_client_factory)
    yield
    huggingface_hub.set_client_factory(conftest._loopback_client)


def test_publish_and_read_back_on_the_real_hub(network, monkeypatch):
    repo = os.environ["LLMOS_HUB_LIVE_REPO"]
    token = os.environ["LLMOS_HUB_LIVE_TOKEN"]
    record = make_record(model="nano:live-check", seed=int.from_bytes(os.urandom(2), "big"))
    first = publish([record], repo=repo, token=token, endpoint="https://huggingface.co")
    assert first.commit_url and first.commit_url.startswith("https://huggingface.co/datasets/")
    records, _ = fetch_records(repo, token=token, endpoint="https://huggingface.co")
    assert record.id in {r.id for r in records}
    again = publish([record], repo=repo, token=token, endpoint="https://huggingface.co")
    assert not again.published
