"""Reading a repo's state through ``HfApi`` methods only.

Module-level helpers of ``huggingface_hub`` (``hf_hub_download``, ``upload_file``,
``metadata_update``, ``ModelCard.load``) are bound to the endpoint read at import time, so a
``--endpoint`` would be silently ignored by them; everything here goes through one
``HfApi(endpoint=..., token=...)``. Reads are pinned to a commit sha, so what we read and the
``parent_commit`` we commit on top of always describe the same state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .._version import __version__
from ..errors import UsageError
from ._auth import HubAuth

__all__ = ["RepoState", "check_repo_id", "git_blob_sha1", "make_api", "read_file", "repo_id_problem", "repo_state"]


def check_repo_id(repo: str, flag: str) -> None:
    """Refuse a malformed repo id up front, as a one-line :class:`UsageError` (exit 2) naming ``flag``.

    Checked with the Hub client's own rule (``validate_repo_id``), so an id we accept is one every
    ``HfApi`` call accepts: otherwise ``me/a..b`` passed here and the first request raised
    ``HFValidationError`` as a traceback, after ``bench`` had run.
    """
    problem = repo_id_problem(repo)
    if problem is not None:
        raise UsageError(f"{flag} {repo!r} is not a repo id; write it as NAMESPACE/NAME ({problem})")


def repo_id_problem(repo: str) -> str | None:
    """What is wrong with ``repo`` as a ``NAMESPACE/NAME`` Hub repo id, in a few words, or ``None``."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    parts = repo.split("/")
    if repo.startswith("hf:"):
        return "drop the 'hf:' prefix, which only task arguments take"
    if any(c.isspace() for c in repo):
        return "it may not contain spaces"
    if len(parts) != 2 or not all(parts):
        return "it needs exactly one '/' between a namespace and a name"
    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        if "--" in repo or ".." in repo:
            return "it may not contain '--' or '..'"
        if repo.endswith(".git"):
            return "it may not end in '.git'"
        said = " ".join(str(exc).split())[:160]
        return f"use letters, digits, '-', '_' and '.', not starting or ending with '-' or '.' (the Hub client says: {said})"
    return None


def git_blob_sha1(content: bytes) -> str:
    """The git blob id the Hub reports for a file (compared to skip unchanged files)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class RepoState:
    """A repo at one commit: its sha and ``path -> git blob id`` of every file."""

    repo: str
    repo_type: str
    head: str
    files: dict[str, str]

    def unchanged(self, path: str, content: bytes) -> bool:
        return self.files.get(path) == git_blob_sha1(content)


def make_api(auth: HubAuth) -> Any:
    """The one ``HfApi`` every call goes through (token ``False`` means "send none")."""
    from huggingface_hub import HfApi

    return HfApi(
        endpoint=auth.endpoint, token=auth.token or False, library_name="llmos-hub", library_version=__version__
    )


def repo_state(api: Any, repo: str, repo_type: str, revision: str | None = None) -> RepoState:
    """The head commit of ``revision`` and the blob ids of all its files."""
    from huggingface_hub import RepoFile

    info = api.repo_info(repo, repo_type=repo_type, revision=revision)
    head = str(info.sha)
    files = {
        entry.path: entry.blob_id
        for entry in api.list_repo_tree(repo, repo_type=repo_type, revision=head, recursive=True)
        if isinstance(entry, RepoFile)
    }
    return RepoState(repo, repo_type, head, files)


def read_file(api: Any, state: RepoState, path: str) -> bytes:
    """The bytes of ``path`` at ``state.head`` (downloaded once, then served from the cache)."""
    from pathlib import Path

    local = api.hf_hub_download(state.repo, path, repo_type=state.repo_type, revision=state.head)
    return Path(local).read_bytes()
