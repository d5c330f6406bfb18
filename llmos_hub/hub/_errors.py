"""Hub failures as one-line :class:`HubError` messages that name the problem and the fix.

``huggingface_hub`` raises multi-line exceptions (URL, request id, server text, advice); a user of
``llmos-hub publish`` needs one line: what failed, against which repo or endpoint, and what to do.
:func:`explain` does that translation in one place, so every command speaks the same way, and
passes the result through :meth:`HubAuth.redact` so a token can never leak into a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..errors import LlmosHubError
from ._auth import HubAuth

__all__ = ["USER_KINDS", "ConflictError", "HubError", "ServerError", "explain", "hub_call", "status_of"]

T = TypeVar("T")


#: Kinds the user fixes (``--endpoint``/the network, the repo or revision name, the token): exit status 2
#: like every user error, in every command. The Hub failing (5xx, timeouts, dropped connections, endless
#: conflicts) is not the user's doing and stays exit 1.
USER_KINDS = frozenset({"unreachable", "auth", "forbidden", "missing"})


class HubError(LlmosHubError):
    """A Hub operation failed (unreachable, refused credentials, missing repo, conflict, 5xx).

    ``kind`` says which, for callers that react differently (a missing dataset repo is created):
    ``unreachable``, ``auth`` (401), ``forbidden`` (403), ``missing``, ``conflict``, ``server``, ``other``.
    ``exit_code`` follows from it (see :data:`USER_KINDS`).
    """

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind
        self.exit_code = 2 if kind in USER_KINDS else 1


class ConflictError(HubError):
    """Someone else committed first (409/412); the publisher re-reads the repo and tries again."""

    def __init__(self, message: str, kind: str = "conflict") -> None:
        super().__init__(message, kind)


class ServerError(HubError):
    """The Hub answered 5xx; retried with backoff, then given up."""

    def __init__(self, message: str, kind: str = "server") -> None:
        super().__init__(message, kind)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a ``huggingface_hub`` error, if it carries a response."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def explain(exc: BaseException, auth: HubAuth, *, repo: str, repo_type: str = "dataset", action: str) -> HubError:
    """A one-line :class:`HubError` for ``exc`` raised while doing ``action`` on ``repo``."""
    import httpx2
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_type} repo {repo} at {auth.endpoint}"
    status = status_of(exc)
    if isinstance(exc, httpx2.TimeoutException) and not isinstance(exc, httpx2.ConnectTimeout):
        return ServerError(auth.redact(
            f"the Hub at {auth.endpoint} stopped answering while trying to {action} {repo} "
            f"({type(exc).__name__}); check the network or try again later"), "timeout")
    if isinstance(exc, (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError, ConnectionResetError,
                        ConnectionAbortedError, BrokenPipeError)):
        return ServerError(auth.redact(
            f"the Hub at {auth.endpoint} dropped the connection while trying to {action} {repo}; "
            "try again later"), "dropped")
    if isinstance(exc, (httpx2.ConnectError, httpx2.TimeoutException, httpx2.NetworkError)) or (
        status is None and isinstance(exc, ConnectionError)
    ):
        reason = _first_line(exc) or type(exc).__name__
        message = (
            f"cannot reach the Hub at {auth.endpoint} ({reason}) while trying to {action} {repo}; "
            "check --endpoint / HF_ENDPOINT and the network"
        )
        return HubError(auth.redact(message), "unreachable")
    if isinstance(exc, RevisionNotFoundError):
        return HubError(auth.redact(f"{where}: no such revision; check the name after '@'"), "missing")
    if isinstance(exc, RepositoryNotFoundError) and status != 401:
        hint = (
            "or it is private: pass --token, set HF_TOKEN or run `hf auth login`"
            if auth.token is None
            else f"or it is private and {auth.describe_token()} cannot see it"
        )
        return HubError(auth.redact(f"{where} does not exist ({hint}); check the name"), "missing")
    if status == 401 or isinstance(exc, RepositoryNotFoundError):
        return HubError(auth.redact(
            f"the Hub at {auth.endpoint} refused {auth.describe_token()} (401) while trying to {action} "
            f"{repo}; pass a valid token with --token, set HF_TOKEN or run `hf auth login`"
        ), "auth")
    said = _server_said(exc)
    if status == 403:
        return HubError(auth.redact(
            f"{auth.describe_token()} may not {action} {where} (403 forbidden{said}); "
            "use a token with write access to that namespace"
        ), "forbidden")
    if isinstance(exc, EntryNotFoundError) or status == 404:
        message = _server_message(exc)
        return HubError(auth.redact(f"{where}: not found while trying to {action}"
                                    + (f" (the Hub said: {message})" if message else "")), "missing")
    if status in (409, 412):
        return ConflictError(auth.redact(
            f"{where} changed while trying to {action} it ({status}); run the command again"
        ))
    if status is not None and status >= 500:
        return ServerError(auth.redact(
            f"the Hub at {auth.endpoint} failed with {status} while trying to {action} {repo}; "
            "try again later"
        ))
    detail = _server_message(exc) or _first_line(exc)
    return HubError(auth.redact(
        f"the Hub at {auth.endpoint} refused to {action} {repo}"
        + (f" ({status})" if status else "")
        + (f": {detail}" if detail else "")
    ))


def hub_call(auth: HubAuth, repo: str, repo_type: str, action: str, fn: Callable[[], T]) -> T:
    """``fn()`` with Hub exceptions turned into one-line :class:`HubError`\\ s, bounded in time.

    The call runs with request timeouts and ends at the command's deadline (:mod:`._deadline`), without
    the library's progress bars (:mod:`._bars`).
    """
    import httpx2
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    from ._bars import no_progress_bars
    from ._deadline import DeadlineExceeded, bounded, deadline, total

    try:
        with deadline(), no_progress_bars():
            return bounded(fn)
    except DeadlineExceeded:
        raise HubError(auth.redact(
            f"the Hub at {auth.endpoint} did not answer within {total():g} s while trying to {action} {repo}; "
            "check the network, or set LLMOS_HUB_HUB_DEADLINE to wait longer"), "timeout") from None
    except LlmosHubError:
        raise
    except HFValidationError as exc:  # refused by the client before any request: a repo id or revision we let by
        from ..errors import UsageError

        raise UsageError(f"{repo!r} is not a {repo_type} repo id the Hub accepts ({_first_line(exc).rstrip('.')}); "
                         "write it as NAMESPACE/NAME") from None
    except LocalEntryNotFoundError as exc:  # hf_hub_download could not reach the Hub
        cause = exc.__cause__ or exc.__context__ or exc
        raise explain(cause if isinstance(cause, httpx2.HTTPError) else ConnectionError(str(exc)), auth,
                      repo=repo, repo_type=repo_type, action=action) from None
    except (httpx2.HTTPError, ConnectionError) as exc:
        raise explain(exc, auth, repo=repo, repo_type=repo_type, action=action) from None


def _server_message(exc: BaseException) -> str:
    """The reason text the Hub put in its answer (``huggingface_hub`` keeps it as ``server_message``)."""
    message = getattr(exc, "server_message", None)
    return " ".join(str(message).split())[:200] if message else ""


def _server_said(exc: BaseException) -> str:
    message = _server_message(exc)
    return f"; the Hub said: {message}" if message else ""


def _first_line(exc: BaseException) -> str:
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""
