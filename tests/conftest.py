"""Test-session safety: a Hub-safe environment and a loopback-only network guard.

``huggingface_hub`` reads its environment once, at import, so the variables are set here, at the top
of the root conftest, before anything imports it: no telemetry, progress bars or update checks, a
throw-away ``HF_HOME`` (so no real saved login or cache is used), no ``HF_TOKEN`` and no offline
mode (offline mode blocks 127.0.0.1 too). ``HF_ENDPOINT`` is *not* set globally: the ``hub``
fixture starts a Hub-compatible server (``tests/hubserver.py``) and sets it for its test only.

The project's rule is that no test reaches the network. Two guards enforce it for the whole session,
and a test that reaches for any host but 127.0.0.1/::1/localhost fails with
:class:`NetworkBlockedError`:

* a socket-level guard on ``socket.socket.connect``/``connect_ex`` and ``socket.create_connection``
  (catches every library, whatever its HTTP stack);
* ``huggingface_hub.set_client_factory`` with a transport that refuses non-loopback URLs before any
  DNS lookup. It raises a ``RuntimeError`` subclass on purpose: an ``httpx2.ConnectError`` would be
  swallowed by ``hf_hub_download``, which then silently serves a cached copy.

Fixtures of other concerns do not belong in this file.
"""

from __future__ import annotations

import os
import tempfile

_HF_HOME = tempfile.mkdtemp(prefix="llmos-hub-tests-hf-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_CACHE"] = os.path.join(_HF_HOME, "hub")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["HF_HUB_DISABLE_UPDATE_CHECK"] = "1"
os.environ["DO_NOT_TRACK"] = "1"
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN",
              "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE", "HF_ENDPOINT"):
    os.environ.pop(_name, None)

import ipaddress  # noqa: E402
import socket  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402


class NetworkBlockedError(RuntimeError):
    """A test tried to reach a host other than the loopback one."""


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: Any) -> bool:
    """Whether ``host`` (a name or an address) is this machine."""
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    host = host.strip("[]").split("%")[0]
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_address(family: int, address: Any) -> None:
    if family == getattr(socket, "AF_UNIX", None):
        return
    host = address[0] if isinstance(address, tuple) and address else address
    if not is_loopback(host):
        raise NetworkBlockedError(f"tests may only reach 127.0.0.1, not {host!r} (no network in tests)")


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_create_connection = socket.create_connection


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_address(self.family, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_address(self.family, address)
    return _real_connect_ex(self, address)


def _guarded_create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
    _check_address(socket.AF_INET, address)
    return _real_create_connection(address, *args, **kwargs)


def _loopback_client() -> Any:
    """The ``huggingface_hub`` HTTP client for tests: the default one, loopback hosts only."""
    import httpx2
    from huggingface_hub.utils._http import hf_request_event_hook

    class _LoopbackOnlyTransport(httpx2.HTTPTransport):
        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            if not is_loopback(request.url.host):
                raise NetworkBlockedError(f"tests may only reach 127.0.0.1, not {request.url}")
            return super().handle_request(request)

    return httpx2.Client(
        transport=_LoopbackOnlyTransport(),
        event_hooks={"request": [hf_request_event_hook]},
        follow_redirects=True,
        timeout=None,
        trust_env=False,  # never route loopback requests through a proxy from the environment
    )


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    """For the whole session: sockets and the Hub client reach loopback hosts only."""
    import huggingface_hub
    from huggingface_hub import constants

    # In case something imported huggingface_hub before this file set the environment.
    constants.HF_HUB_OFFLINE = False
    constants.HF_HUB_DISABLE_TELEMETRY = True
    constants.HF_HUB_DISABLE_PROGRESS_BARS = True
    constants.HF_HUB_CACHE = os.environ["HF_HUB_CACHE"]
    constants.HF_TOKEN_PATH = os.path.join(_HF_HOME, "token")
    constants.HF_STORED_TOKENS_PATH = os.path.join(_HF_HOME, "stored_tokens")

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", _guarded_connect)
    mp.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    mp.setattr(socket, "create_connection", _guarded_create_connection)
    huggingface_hub.set_client_factory(_loopback_client)
    try:
        yield
    finally:
        from huggingface_hub.utils._http import default_client_factory

        huggingface_hub.set_client_factory(default_client_factory)
        mp.undo()


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Any]:
    """A fresh in-memory Hub on 127.0.0.1 for one test, with ``HF_ENDPOINT`` and a private cache.

    Only the environment is pointed at it (``huggingface_hub.constants.ENDPOINT`` keeps its
    import-time value), so code that ignores ``HfApi(endpoint=...)`` is caught, not masked.
    """
    from huggingface_hub import constants

    from .hubserver import HubServer

    server = HubServer().start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    try:
        yield server
    finally:
        server.stop()
