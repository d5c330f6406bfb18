"""Every Hub command is bounded: per-request timeouts, one retry layer with jitter, one overall deadline.

* **Timeouts.** Each request ``huggingface_hub`` sends for us gets connect and read timeouts (set on
  the request by an event hook on its HTTP client, so the client the process installed, with its
  transport, is kept). Without them a Hub that accepts the connection and never answers hangs forever.
* **One retry layer.** ``huggingface_hub`` retries 5xx and network errors itself (5 times, up to 8 s
  apart, logging a line each time), and we retry around it: a 503 on a download took 131 s and 34 log
  lines. :func:`quiet_library` turns its retries off (and its warnings down) for our calls, so the
  only retries are :func:`with_retries`'s, with "full jitter" (a random wait up to the backoff), so
  concurrent publishers that fail together do not retry in lock-step.
* **Deadline.** A command's Hub work, retries included, ends by its deadline: ``LLMOS_HUB_HUB_DEADLINE``
  seconds (default 60). :func:`bounded` runs one call in a worker thread and stops waiting at the
  deadline, so even a stalled read inside a library ends in one line.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["DEADLINE_ENV", "bounded", "deadline", "quiet_library", "remaining", "with_retries"]

T = TypeVar("T")
DEADLINE_ENV = "LLMOS_HUB_HUB_DEADLINE"
DEFAULT_DEADLINE = 60.0
_END: ContextVar[float | None] = ContextVar("llmos_hub_hub_deadline", default=None)


def configured_seconds() -> float:
    try:
        return max(0.1, float(os.environ.get(DEADLINE_ENV, DEFAULT_DEADLINE)))
    except ValueError:
        return DEFAULT_DEADLINE


@contextlib.contextmanager
def deadline(seconds: float | None = None) -> Iterator[float]:
    """Bound the Hub work inside to ``seconds`` (default: the environment's); nested calls keep the outer end."""
    if _END.get() is not None:
        yield _END.get()  # type: ignore[misc]
        return
    end = time.monotonic() + (configured_seconds() if seconds is None else seconds)
    token = _END.set(end)
    try:
        yield end
    finally:
        _END.reset(token)


def remaining() -> float:
    """Seconds left before the current deadline (the configured total when none is running)."""
    end = _END.get()
    return configured_seconds() if end is None else max(0.0, end - time.monotonic())


def total() -> float:
    return configured_seconds()


class DeadlineExceeded(Exception):
    """The call did not finish before the deadline (the worker thread is abandoned)."""


#: No request timeout is set below this (seconds), so a timeout within it of the deadline is the deadline's.
_MIN_TIMEOUT = 0.5


def _timed_out(error: BaseException) -> bool:
    """Whether ``error`` is a request timeout: the builtin, or the HTTP library's under ``huggingface_hub``
    (requests' ``Timeout``, httpx's ``TimeoutException``), recognised by class so neither need be imported."""
    return isinstance(error, TimeoutError) or any(c.__name__ in ("Timeout", "TimeoutException") for c in type(error).__mro__)


def _timeout_hook(request: Any) -> None:
    left = max(_MIN_TIMEOUT, remaining())
    read = min(30.0, left)
    request.extensions["timeout"] = {"connect": min(10.0, left), "read": read, "write": read, "pool": min(10.0, left)}


def _install_timeouts() -> None:
    """Add the timeout hook to this thread's ``huggingface_hub`` client (idempotent)."""
    try:
        from huggingface_hub.utils._http import get_session
    except ImportError:  # pragma: no cover - an older huggingface_hub
        return
    client = get_session()
    hooks = client.event_hooks.get("request", [])
    if _timeout_hook not in hooks:
        client.event_hooks = {**client.event_hooks, "request": [*hooks, _timeout_hook]}


_QUIET_LOCK = threading.Lock()
_QUIETED = False


def quiet_library() -> None:
    """Turn off ``huggingface_hub``'s own retries and retry warnings, process-wide, once.

    Its retry loop (``_http_backoff_base``) is private API; it is wrapped, not copied, so a newer
    version without it only loses this (its retries then stack under ours again, still bounded by the
    deadline).
    """
    global _QUIETED
    with _QUIET_LOCK:
        if _QUIETED:
            return
        _QUIETED = True
        import logging

        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
        _single_try_downloads()
        try:
            from huggingface_hub.utils import _http
        except ImportError:  # pragma: no cover
            return
        base = getattr(_http, "_http_backoff_base", None)
        if base is None or getattr(base, "_llmos_hub_single_try", False):
            return

        def single_try(method: Any, url: Any, **kwargs: Any) -> Any:
            kwargs["max_retries"] = 0
            return base(method, url, **kwargs)

        single_try._llmos_hub_single_try = True  # type: ignore[attr-defined]
        _http._http_backoff_base = single_try


def _single_try_downloads() -> None:
    """``huggingface_hub``'s file download (``http_get``) retries a dropped or timed-out stream 5 times
    itself, a second each, under ours; make it try once (it still resumes a stream that made progress)."""
    try:
        from huggingface_hub import file_download
    except ImportError:  # pragma: no cover
        return
    get = getattr(file_download, "http_get", None)
    if get is None or getattr(get, "_llmos_hub_single_try", False):
        return

    def http_get_once(*args: Any, **kwargs: Any) -> Any:
        kwargs["_nb_retries"] = 0
        return get(*args, **kwargs)

    http_get_once._llmos_hub_single_try = True  # type: ignore[attr-defined]
    file_download.http_get = http_get_once


def bounded(fn: Callable[[], T]) -> T:
    """``fn()`` with request timeouts, given up (:class:`DeadlineExceeded`) when the deadline passes."""
    quiet_library()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            _install_timeouts()
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    import contextvars

    context = contextvars.copy_context()
    worker = threading.Thread(target=lambda: context.run(work), name="llmos-hub-hub-call", daemon=True)
    worker.start()
    worker.join(remaining())
    if worker.is_alive():
        raise DeadlineExceeded
    if "error" in outcome:
        if _timed_out(outcome["error"]) and remaining() <= _MIN_TIMEOUT:
            # The request's timeout was capped at the deadline and fired with it: the deadline is the
            # cause, whichever of the two the scheduler woke first (a race that read as "stopped answering").
            raise DeadlineExceeded from outcome["error"]
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def backoff(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Full jitter: a uniform wait up to ``min(8, 2 ** (attempt - 1))`` seconds (at least 0.1 s)."""
    return max(0.1, min(8.0, 2.0 ** (attempt - 1)) * rng())


def with_retries(attempt: Callable[[], T], retriable: tuple[type[BaseException], ...], *, max_attempts: int,
                 sleep: Callable[[float], None] = time.sleep, rng: Callable[[], float] = random.random,
                 on_give_up: Callable[[BaseException, int, bool], BaseException]) -> tuple[T, int]:
    """``(attempt(), attempts used)``; ``retriable`` errors are retried with jittered backoff until
    ``max_attempts`` or the deadline, then ``on_give_up(error, attempts, deadline_hit)`` is raised."""
    n = 0
    while True:
        n += 1
        try:
            return attempt(), n
        except retriable as exc:
            wait = backoff(n, rng)
            if n >= max(1, max_attempts):
                raise on_give_up(exc, n, False) from None
            if wait >= remaining():
                raise on_give_up(exc, n, True) from None
            sleep(wait)
