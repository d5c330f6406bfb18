"""Read the records of a results dataset repo back (for ``llmos-hub leaderboard --from-hub``)."""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from typing import Any

from .._result import ResultRecord, validation_error
from ._auth import HubAuth, resolve_auth
from ._dataset_card import RECORDS_DIR
from ._errors import hub_call
from ._repo import RepoState, check_repo_id, make_api, read_file, repo_state

__all__ = ["fetch_records"]


def fetch_records(
    repo: str,
    *,
    revision: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
) -> tuple[list[ResultRecord], list[str]]:
    """The valid records under ``records/`` of dataset repo ``repo`` at ``revision`` (default ``main``).

    Returns ``(records, problems)``: records sorted by path, and one line per file that is not a
    valid record (``"records/x.json: invalid result record: scores: ..."``), which is skipped.
    Raises :class:`~llmos_hub.hub.HubError` if the repo or revision cannot be read.
    """
    check_repo_id(repo, "repo")
    auth = resolve_auth(endpoint, token)
    api = make_api(auth)
    from ._deadline import deadline
    from ._publish import _with_retries

    out: dict[str, Any] = {}

    def attempt() -> None:
        state = hub_call(auth, repo, "dataset", "read", lambda: repo_state(api, repo, "dataset", revision))
        out["problems"] = []
        out["records"] = read_records(api, auth, state, out["problems"])

    with deadline():
        _with_retries(attempt, 5, time.sleep)
    records = out["records"]
    return [records[path] for path in sorted(records)], out["problems"]


def read_records(api: Any, auth: HubAuth, state: RepoState, problems: list[str], *,
                 skip: Collection[str] = ()) -> dict[str, ResultRecord]:
    """The valid records under ``records/`` of a repo state, by path; invalid files go to ``problems``.

    Shared by ``fetch_records`` and by ``publish`` (which rebuilds the card from every record, skipping
    the paths it is about to replace).
    """
    out: dict[str, ResultRecord] = {}
    for path in sorted(state.files):
        if not (path.startswith(f"{RECORDS_DIR}/") and path.endswith(".json")) or path in skip:
            continue
        content = hub_call(auth, state.repo, "dataset", "download records from",
                            lambda p=path: read_file(api, state, p))  # type: ignore[misc]
        try:
            data = json.loads(content)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"{path}: not JSON: {exc}")
            continue
        reason = validation_error(data, read=True)
        if reason is not None:
            problems.append(f"{path}: invalid result record: {reason}")
            continue
        out[path] = ResultRecord(data)
    return out
