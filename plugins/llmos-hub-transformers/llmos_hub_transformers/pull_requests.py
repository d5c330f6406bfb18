"""A safetensors conversion of a pickle-only Hub repo, found among its pull requests.

Many older repos (opus-mt among them) hold only ``pytorch_model.bin``; llmos-hub never unpickles, but
the Hub's conversion bot (or a user) often opened a pull request adding ``model.safetensors``. Such a
pull request is a ref ``refs/pr/N`` that ``snapshot_download`` can fetch like a branch. It is used when
it holds safetensors weights and the *same* ``config.json`` as the revision asked for (a pull request
that changed the architecture is another model); the newest such one wins, and the record keeps both
the pull request's ref and the commit it pointed to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Conversion", "find_conversion", "CONVERT_HINT"]

#: What to do when no conversion is offered (one sentence, the end of a one-line error).
CONVERT_HINT = (
    "convert it where you trust the file (transformers' save_pretrained(..., safe_serialization=True) writes "
    "model.safetensors) and give hf:/that/folder, or open a conversion pull request with the Hub's "
    "safetensors convert Space and give hf:REPO@refs/pr/N"
)


@dataclass(frozen=True)
class Conversion:
    """A pull request offering safetensors weights: its ref and the commit it points to."""

    ref: str
    commit: str


def _absent(exc: Exception) -> bool:
    """Whether the Hub answered that the thing is not there or not ours to read (a 4xx), as opposed to a
    server error or a dropped connection, which must reach the retry layer instead of reading as "none"."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return isinstance(status, int) and 400 <= status < 500


def _config_bytes(auth: Any, repo_id: str, revision: str) -> bytes | None:
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(repo_id, "config.json", revision=revision, endpoint=auth.endpoint, token=auth.token)
    except Exception as exc:  # a pull request without a readable config is not a candidate
        if not _absent(exc):
            raise
        return None
    with open(path, "rb") as handle:
        return handle.read()


def find_conversion(auth: Any, api: Any, repo_id: str, revision: str | None, has_safetensors: Any) -> Conversion | None:
    """The newest pull request of ``repo_id`` adding safetensors weights to the model at ``revision``."""
    try:
        refs = api.list_repo_refs(repo_id, include_pull_requests=True)
    except Exception as exc:  # no refs listing (old Hub, no rights): no conversion to offer
        if not _absent(exc):
            raise
        return None
    pulls = sorted(getattr(refs, "pull_requests", None) or [], key=lambda r: _number(r.ref), reverse=True)
    wanted: bytes | None = None
    for pull in pulls:
        try:
            info = api.model_info(repo_id, revision=pull.target_commit)
        except Exception as exc:  # a closed or unreadable pull request
            if not _absent(exc):
                raise
            continue
        names = [s.rfilename for s in (info.siblings or [])]
        if not has_safetensors(names) or "config.json" not in names:
            continue
        if wanted is None:
            wanted = _config_bytes(auth, repo_id, revision or "main")
        if wanted is not None and _config_bytes(auth, repo_id, pull.target_commit) == wanted:
            return Conversion(ref=pull.ref, commit=pull.target_commit)
    return None


def _number(ref: str) -> int:
    tail = ref.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else -1
