"""Which Hub to talk to and with which token, and where that token came from.

The order is the one every Hugging Face tool uses: an explicit flag, then the environment
(``HF_ENDPOINT`` / ``HF_TOKEN``), then the login saved by ``hf auth login``. We remember the token's
*source* so that a 401/403 can say which credential to fix ("the token from HF_TOKEN was refused")
without ever printing the token itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["HubAuth", "resolve_auth"]

DEFAULT_ENDPOINT = "https://huggingface.co"

#: Human names of the token sources, as they appear in error messages.
SOURCE_FLAG = "--token"
SOURCE_ENV = "HF_TOKEN"
SOURCE_LOGIN = "the saved login (hf auth login)"
SOURCE_NONE = "none"


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
    """Resolve endpoint and token: flags, then ``HF_ENDPOINT``/``HF_TOKEN``, then the saved login."""
    resolved_endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or _library_endpoint()).rstrip("/")
    if token:
        return HubAuth(resolved_endpoint, token, SOURCE_FLAG)
    env_token = (os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or "").strip()
    if env_token:
        return HubAuth(resolved_endpoint, env_token, SOURCE_ENV)
    from huggingface_hub import get_token

    saved = get_token()
    if saved:
        return HubAuth(resolved_endpoint, saved, SOURCE_LOGIN)
    return HubAuth(resolved_endpoint, None, SOURCE_NONE)


def _library_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT or DEFAULT_ENDPOINT)
