"""Which Hub to talk to and with which token, and where that token came from.

The order is the one every Hugging Face tool uses: an explicit flag, then the environment
(``HF_ENDPOINT`` / ``HF_TOKEN``), then the login saved by ``hf auth login``. We remember the token's
*source* so that a 401/403 can say which credential to fix ("the token from HF_TOKEN was refused")
without ever printing the token itself.

A command whose ``--endpoint``/``--token`` must reach Hub reads it does not make itself (``bench``: a
``hf:`` task, a model plugin downloading a Hub model) sets them with :func:`hub_flags` for the scope of
the command; :func:`resolve_auth` then treats them as flags (ahead of the environment), so no plugin API
needs an endpoint argument.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from ..errors import UsageError

__all__ = ["HubAuth", "check_endpoint", "hub_flags", "resolve_auth"]

DEFAULT_ENDPOINT = "https://huggingface.co"

#: Human names of the token sources, as they appear in error messages.
SOURCE_FLAG = "--token"
SOURCE_ENV = "HF_TOKEN"
SOURCE_LOGIN = "the saved login (hf auth login)"
SOURCE_NONE = "none"

#: ``(endpoint, token)`` a command's flags set for every Hub read in its scope (see :func:`hub_flags`).
_FLAGS: ContextVar[tuple[str | None, str | None]] = ContextVar("llmos_hub_hub_flags", default=(None, None))


@contextmanager
def hub_flags(endpoint: str | None, token: str | None) -> Iterator[None]:
    """Within this scope, :func:`resolve_auth` without arguments uses ``endpoint``/``token`` as flags.

    So ``bench --endpoint URL`` reaches the same Hub for a ``hf:`` task and a Hub model as for
    ``--push-to-hub``, though the task and model loaders take no endpoint. ``None`` leaves that one to the
    environment, as before.
    """
    if endpoint:
        check_endpoint(endpoint, "--endpoint")  # bench: refused before the plan, not at the first read
    reset = _FLAGS.set((endpoint or None, token or None))
    try:
        yield
    finally:
        _FLAGS.reset(reset)


def current_flags() -> tuple[str | None, str | None]:
    """The ``(endpoint, token)`` :func:`hub_flags` set here (``(None, None)`` outside any)."""
    return _FLAGS.get()


@dataclass(frozen=True)
class HubAuth:
    """An endpoint, a token and the token's source; the token never shows in ``repr``."""

    endpoint: str
    token: str | None = field(repr=False)
    token_source: str

    def redact(self, text: str) -> str:
        """``text`` with the token replaced, for any message that may echo a request.

        Tokens shorter than 8 characters are not real Hub tokens (those are ~37) and would
        mangle ordinary words, so they are left alone.
        """
        if self.token and len(self.token) >= 8:
            text = text.replace(self.token, "***")
        return text

    def describe_token(self) -> str:
        """Who made the request, in words: "the token from HF_TOKEN", or "the request without a token"."""
        if self.token_source == SOURCE_NONE:
            return "the request without a token"
        return f"the token from {self.token_source}"


def resolve_auth(endpoint: str | None = None, token: str | None = None) -> HubAuth:
    """Resolve endpoint and token: flags, then ``HF_ENDPOINT``/``HF_TOKEN``, then the saved login.

    Flags are the arguments, else what :func:`hub_flags` set for the current command.
    """
    scoped_endpoint, scoped_token = _FLAGS.get()
    if endpoint and scoped_endpoint and endpoint.rstrip("/") != scoped_endpoint.rstrip("/"):
        scoped_token = None  # a command's --token goes only to the Hub the command named
    endpoint = endpoint or scoped_endpoint
    token = token or scoped_token
    if endpoint:
        check_endpoint(endpoint, "--endpoint")
    elif os.environ.get("HF_ENDPOINT"):
        check_endpoint(os.environ["HF_ENDPOINT"], "HF_ENDPOINT")
    resolved_endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or _library_endpoint()).rstrip("/")
    if token:
        return HubAuth(resolved_endpoint, token, SOURCE_FLAG)
    for variable in (SOURCE_ENV, "HUGGING_FACE_HUB_TOKEN"):  # the legacy name, named as itself when refused
        env_token = os.environ.get(variable, "").strip()
        if env_token:
            return HubAuth(resolved_endpoint, env_token, variable)
    from huggingface_hub import get_token

    saved = get_token()
    if saved:
        return HubAuth(resolved_endpoint, saved, SOURCE_LOGIN)
    return HubAuth(resolved_endpoint, None, SOURCE_NONE)


def check_endpoint(endpoint: str, source: str) -> None:
    """Refuse an endpoint that is not an ``http(s)://HOST[:PORT]`` URL, before any request (exit 2).

    The client would otherwise fail deep inside the first request ("Request URL is missing an
    'http://' or 'https://' protocol"), which read as if the Hub had refused something it never saw.
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(endpoint)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number, a malformed IPv6 address
        valid = False
    if valid and not any(c.isspace() for c in endpoint):
        return
    bare_host = endpoint and "://" not in endpoint and not any(c.isspace() for c in endpoint)  # 127.0.0.1:9
    example = f"http://{endpoint}" if bare_host else "https://huggingface.co"
    raise UsageError(f"{source} {endpoint!r} is not a Hub URL; write it as http(s)://HOST[:PORT], e.g. {example}")


def _library_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT or DEFAULT_ENDPOINT)
