"""Hub reads that are safe to repeat (model downloads, config reads), retried in our one retry layer.

:func:`~llmos_hub.hub.hub_call` bounds one call (timeouts, the deadline, one-line errors) but does not
retry: a write is retried by its caller around the whole step (``publish``), so retrying inside would
stack. A plugin's download is one step on its own, so :func:`hub_call_retried` wraps it in the same
retry loop ``publish`` uses (5xx, dropped connections and stalled reads retried with full jitter, never
past the deadline; ``huggingface_hub``'s own retries stay off), and :func:`hub_deadline` lets a plugin
bound several such calls (model info, then the snapshot) by one deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ._auth import HubAuth
from ._errors import hub_call

__all__ = ["hub_call_retried", "hub_deadline"]

T = TypeVar("T")


@contextmanager
def hub_deadline() -> Iterator[None]:
    """Bound every Hub call inside (retries included) by one deadline, ``LLMOS_HUB_HUB_DEADLINE`` seconds."""
    from ._deadline import deadline

    with deadline():
        yield


def hub_call_retried(auth: HubAuth, repo: str, repo_type: str, action: str, fn: Callable[[], T], *,
                     max_attempts: int = 5, sleep: Callable[[float], None] = time.sleep) -> T:
    """``hub_call(auth, repo, repo_type, action, fn)``, retried like ``publish``'s steps (see module doc).

    Only for calls that may run again without harm (reads, downloads into the Hub cache, which resume).
    The last error is one line ending ``(gave up after N attempts)``.
    """
    from ._publish import _with_retries

    out: dict[str, Any] = {}

    def attempt() -> None:
        out["value"] = hub_call(auth, repo, repo_type, action, fn)

    with hub_deadline():
        _with_retries(attempt, max_attempts, sleep)
    return out["value"]  # type: ignore[no-any-return]
