"""Publish result records to a Hub dataset repo (and, on request, to a model's card).

One publish makes **one commit per repo**: the new records under ``records/``, the regenerated
``README.md`` (dataset card + leaderboard of *all* records in the repo) and ``data/results.jsonl``.
The commit names the commit it was built on (``parent_commit``); if someone else committed in
between, the Hub refuses it (409/412) and we re-read the repo and rebuild, so two publishers racing
never drop each other's records. 5xx answers are retried with exponential backoff (the ``sleep``
function is a parameter so tests do not wait), then given up with a one-line error. Records whose
files are already in the repo byte for byte make no commit at all. ``with_samples`` adds the samples
files the records name (``samples_file``, written by ``bench --log-samples`` next to the record) to
the same commit, under ``records/`` beside their record, so the reference stays valid.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .._result import ResultRecord, iter_records, validation_error
from ..errors import DataError, UsageError
from ._auth import HubAuth, resolve_auth
from ._deadline import deadline, total, with_retries
from ._dataset_card import RECORDS_DIR, SUMMARY_PATH, dataset_card, summary_jsonl
from ._errors import ConflictError, HubError, ServerError, hub_call
from ._fetch import read_records
from ._model_card import eval_results_files, merge_model_index, task_dataset
from ._repo import RepoState, check_repo_id, make_api, read_file, repo_state

__all__ = ["PublishResult", "check_push_target", "publish", "retry_command"]

RecordInput = str | Path | ResultRecord


@dataclass
class PublishResult:
    """What a publish did. ``commit_url`` is ``None`` when the records were already there."""

    repo: str
    endpoint: str
    commit_url: str | None = None
    commit_oid: str | None = None
    pr_url: str | None = None
    files: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    model_repo: str | None = None
    model_commit_url: str | None = None
    model_pr_url: str | None = None
    model_files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    attempts: int = 1
    #: The commit of the results repo that holds the records (new, or the head they were found at);
    #: the model card's source URLs are pinned to it.
    records_revision: str | None = None
    #: Samples files sent along (``--with-samples``), as repo paths.
    samples: list[str] = field(default_factory=list)
    #: Tasks of the records that were not read from the Hub (``--model-card`` entries name the results repo).
    local_tasks: list[str] = field(default_factory=list)

    @property
    def published(self) -> bool:
        """Whether anything was committed (to the dataset repo or the model repo)."""
        return self.commit_url is not None or self.model_commit_url is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "endpoint": self.endpoint,
            "published": self.published,
            "commit_url": self.commit_url,
            "commit_oid": self.commit_oid,
            "pr_url": self.pr_url,
            "files": self.files,
            "records": self.records,
            "model_repo": self.model_repo,
            "model_commit_url": self.model_commit_url,
            "model_pr_url": self.model_pr_url,
            "model_files": self.model_files,
            "skipped": self.skipped,
            "attempts": self.attempts,
            "records_revision": self.records_revision,
            "samples": self.samples,
            "local_tasks": self.local_tasks,
        }


def publish(
    records: Iterable[RecordInput],
    *,
    repo: str,
    endpoint: str | None = None,
    token: str | None = None,
    create_pr: bool = False,
    model_card: str | None = None,
    with_samples: bool = False,
    max_attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> PublishResult:
    """Publish ``records`` (files, folders or :class:`ResultRecord`\\ s) to the dataset repo ``repo``.

    Every record is validated before anything is sent. ``create_pr`` opens pull requests instead of
    committing to ``main``; ``model_card="ns/model"`` also merges the scores into that model repo's
    card (``model-index``) and ``.eval_results/``. Conflicts and 5xx are retried up to
    ``max_attempts`` times, waiting ``sleep(1)``, ``sleep(2)``, ... in between. ``with_samples``
    also sends the samples file each record names (it must be next to the record file).
    """
    if isinstance(records, (str, Path, ResultRecord)):
        records = [records]
    records = list(records)
    check_repo_id(repo, "--repo")
    if model_card is not None:
        check_repo_id(model_card, "--model-card")
    new, samples = _collect(records, with_samples)
    if model_card is not None and len({r.model for r in new.values()}) > 1:
        models = ", ".join(sorted({r.model for r in new.values()}))
        raise UsageError(f"--model-card puts scores on one model's page, but the records are for {models}; "
                         "publish each model's records separately")
    auth = resolve_auth(endpoint, token)
    api = make_api(auth)
    result = PublishResult(repo=repo, endpoint=auth.endpoint, records=sorted(new))
    if model_card is not None:
        result.local_tasks = sorted({r.task for r in new.values() if not task_dataset(r, repo).from_hub})

    def dataset_attempt() -> None:
        _publish_dataset(api, auth, repo, new, samples, create_pr, result)

    with deadline():
        if model_card is not None:  # a missing (or unreadable) model repo is found before anything is committed
            card = model_card
            _with_retries(lambda: _check_model_repo(api, auth, card), max_attempts, sleep)
        result.attempts = _with_retries(dataset_attempt, max_attempts, sleep)
    if model_card is not None:
        # Pinned to the commit that holds the records: a URL on a branch would move with it.
        revision = quote(result.records_revision or _pr_revision(result.pr_url) or "main", safe="")
        pairs = [
            (record, f"{auth.endpoint}/datasets/{repo}/blob/{revision}/{path}") for path, record in sorted(new.items())
        ]

        def model_attempt() -> None:
            _publish_model_card(api, auth, model_card, repo, pairs, create_pr, result)

        try:
            with deadline():
                _with_retries(model_attempt, max_attempts, sleep)
        except HubError as exc:
            # The records are safely in the dataset repo: say so, and how to finish only the card.
            done = f"committed to {repo} ({result.pr_url or result.commit_url})" if result.commit_url else \
                f"already in {repo}"
            paths = [str(r) for r in records if isinstance(r, (str, Path))] or ["RECORDS"]
            again = retry_command(paths, repo, endpoint=endpoint, create_pr=create_pr, model_card=model_card)
            raise HubError(f"the records are {done}, but the model card step failed: {exc}; "
                           f"finish the card with: {again}", exc.kind) from None
    return result


def check_push_target(repo: str, *, endpoint: str | None = None, token: str | None = None) -> None:
    """What ``bench --push-to-hub`` checks before the bench runs, so a mistake does not wait for the compute.

    The repo id and the endpoint are checked as text. With a token, the Hub is asked whose it is
    (``whoami``, one small request): a refused token or an unreachable Hub is the user's to fix, so it
    is an error now (exit 2). Anything else (a 5xx, a timeout) is left to the publish after the bench,
    whose failure keeps the records and prints the command that retries it.
    """
    check_repo_id(repo, "--push-to-hub")
    auth = resolve_auth(endpoint, token)
    if auth.token is None:
        return  # nothing cheap to ask: whether the Hub takes the write is known only when it is made
    api = make_api(auth)
    try:
        who = hub_call(auth, repo, "dataset", "publish to", lambda: api.whoami())
    except HubError as exc:
        if exc.kind in ("auth", "unreachable"):
            raise
        return  # the Hub failing now says nothing of the publish later, which reports its own failure
    # A classic read token says so (``auth.accessToken.role``); a fine-grained one's rights are per repo,
    # and are known only when the write is made.
    token_info = (who.get("auth") or {}).get("accessToken") if isinstance(who, dict) else None
    if isinstance(token_info, dict) and token_info.get("role") == "read":
        raise HubError(f"{auth.describe_token()} is a read-only token, so it cannot publish to dataset repo {repo} at "
                       f"{auth.endpoint}; use a token with write access", "forbidden")


def retry_command(
    paths: Sequence[str | Path],
    repo: str,
    *,
    endpoint: str | None = None,
    create_pr: bool = False,
    model_card: str | None = None,
    with_samples: bool = False,
) -> str:
    """The ``llmos-hub publish ...`` line that retries a failed publish (never includes a token)."""
    args = ["llmos-hub", "publish", *(str(p) for p in paths), "--repo", repo]
    if endpoint:
        args += ["--endpoint", endpoint]
    if create_pr:
        args.append("--create-pr")
    if model_card:
        args += ["--model-card", model_card]
    if with_samples:
        args.append("--with-samples")
    return shlex.join(args)


# --------------------------------------------------------------------------- inputs
def _collect(records: Iterable[RecordInput], with_samples: bool = False
             ) -> tuple[dict[str, ResultRecord], dict[str, bytes]]:
    """``records/<filename>`` -> record, validated, and (``with_samples``) ``records/<samples> -> bytes``.

    Refuses an invalid record, or a samples file that is named but missing, with its path and reason.
    """
    out: dict[str, ResultRecord] = {}
    sources: dict[str, str] = {}
    samples: dict[str, bytes] = {}
    for item in records:
        if isinstance(item, ResultRecord):
            reason = validation_error(dict(item.data), read=True)
            if reason is not None:
                raise DataError(f"record {item.id}: invalid result record: {reason}")
            found: list[tuple[str, ResultRecord, Path | None]] = [(f"record {item.id}", item, None)]
        else:
            found = [(str(p), r, p) for p, r in iter_records([item])]
            if not found:
                raise UsageError(f"{item}: no result records (*.json) found there")
        for source, record, file in found:
            path = f"{RECORDS_DIR}/{record.filename()}"
            if path in out and out[path].to_json() != record.to_json():
                raise UsageError(f"{source} and {sources[path]} are different records with the same file name "
                                 f"{record.filename()}; publish one of them")
            out[path], sources[path] = record, source
            if with_samples:
                samples.update(_samples_of(record, source, file))
    if not out:
        raise UsageError("no result records to publish; give record files or folders")
    return out, samples


def _samples_of(record: ResultRecord, source: str, file: Path | None) -> dict[str, bytes]:
    """The samples file ``record`` names, as ``{records/<name>: bytes}`` (empty when it names none)."""
    name = record.data.get("samples_file")
    if not name:
        return {}
    if Path(name).name != name or name.startswith(".") or not name.endswith(".jsonl"):
        raise DataError(f"{source}: samples_file {name!r} is not a plain .jsonl file name next to the record")
    if file is None:
        raise UsageError(f"{source} names the samples file {name}; pass the record as a file (the samples file "
                         "is read from next to it) to publish it with --with-samples")
    local = file.parent / name
    if not local.is_file():
        raise UsageError(f"{source} names the samples file {name}, which is not next to it; publish without "
                         "--with-samples, or bench again with --log-samples")
    return {f"{RECORDS_DIR}/{name}": local.read_bytes()}


# --------------------------------------------------------------------------- retries
def _with_retries(attempt: Callable[[], None], max_attempts: int, sleep: Callable[[float], None]) -> int:
    """Run ``attempt`` until it succeeds: the one retry layer (jittered backoff, within the deadline).

    Conflicts, 5xx, dropped connections and stalled reads are retried; anything else is raised.
    """
    def give_up(exc: BaseException, n: int, out_of_time: bool) -> BaseException:
        assert isinstance(exc, HubError)
        if out_of_time:
            return type(exc)(f"{exc} (gave up after {n} attempts in {total():g} s; set LLMOS_HUB_HUB_DEADLINE "
                             "to wait longer)", exc.kind)
        return type(exc)(f"{exc} (gave up after {n} attempts)", exc.kind)

    _, attempts = with_retries(attempt, (ConflictError, ServerError), max_attempts=max_attempts, sleep=sleep,
                               on_give_up=give_up)
    return attempts


# --------------------------------------------------------------------------- dataset repo
def _ensure_dataset_repo(api: Any, auth: HubAuth, repo: str) -> RepoState:
    try:
        return hub_call(auth, repo, "dataset", "read", lambda: repo_state(api, repo, "dataset"))
    except HubError as exc:
        if exc.kind != "missing":
            raise
    hub_call(auth, repo, "dataset", "create",
              lambda: api.create_repo(repo, repo_type="dataset", exist_ok=True))
    return hub_call(auth, repo, "dataset", "read", lambda: repo_state(api, repo, "dataset"))


def _publish_dataset(api: Any, auth: HubAuth, repo: str, new: dict[str, ResultRecord], samples: dict[str, bytes],
                     create_pr: bool, result: PublishResult) -> None:
    from huggingface_hub import CommitOperationAdd

    state = _ensure_dataset_repo(api, auth, repo)
    record_files = {path: record.to_json().encode("utf-8") for path, record in new.items()}
    changed_records = sorted(p for p, b in record_files.items() if not state.unchanged(p, b))
    changed_samples = sorted(p for p, b in samples.items() if not state.unchanged(p, b))
    result.samples = sorted(samples)
    if not changed_records and not changed_samples:
        result.files, result.commit_url, result.commit_oid = [], None, None
        result.records_revision = state.head
        return
    skipped: list[str] = []
    everything = {**read_records(api, auth, state, skipped, skip=new), **new}
    pairs = sorted(everything.items())
    files = {p: record_files[p] for p in changed_records}
    files.update({p: samples[p] for p in changed_samples})
    files["README.md"] = dataset_card(pairs, repo=repo).encode("utf-8")
    files[SUMMARY_PATH] = summary_jsonl(pairs).encode("utf-8")
    files = {p: b for p, b in files.items() if not state.unchanged(p, b)}
    operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=b) for p, b in sorted(files.items())]
    message = f"llmos-hub: publish {len(changed_records)} result record(s)" + (
        f" and {len(changed_samples)} samples file(s)" if changed_samples else "")
    description = "\n".join(f"- {p}" for p in changed_records + changed_samples)
    info = hub_call(auth, repo, "dataset", "commit to", lambda: api.create_commit(
        repo, operations, commit_message=message, commit_description=description, repo_type="dataset",
        parent_commit=state.head, create_pr=create_pr,
    ))
    result.files = sorted(files)
    result.commit_url, result.commit_oid = str(info.commit_url), str(info.oid)
    result.records_revision = str(info.oid) if info.oid else None
    result.pr_url = info.pr_url
    result.skipped = skipped


# --------------------------------------------------------------------------- model repo
def _check_model_repo(api: Any, auth: HubAuth, model_repo: str) -> None:
    """Raise the one-line :class:`HubError` of a model repo that does not exist or cannot be read."""
    hub_call(auth, model_repo, "model", "read", lambda: api.repo_info(model_repo, repo_type="model"))


def _publish_model_card(api: Any, auth: HubAuth, model_repo: str, dataset_repo: str,
                        pairs: list[tuple[ResultRecord, str]], create_pr: bool, result: PublishResult) -> None:
    from huggingface_hub import CommitOperationAdd

    result.model_repo = model_repo
    state = hub_call(auth, model_repo, "model", "read", lambda: repo_state(api, model_repo, "model"))
    readme = None
    if "README.md" in state.files:
        readme = hub_call(auth, model_repo, "model", "read the card of",
                           lambda: read_file(api, state, "README.md")).decode("utf-8")
    files = {"README.md": merge_model_index(readme, pairs, model_repo=model_repo,
                                            results_repo=dataset_repo).encode("utf-8")}
    files.update(eval_results_files(pairs, dataset_repo=dataset_repo))
    files = {p: b for p, b in files.items() if not state.unchanged(p, b)}
    if not files:
        return
    operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=b) for p, b in sorted(files.items())]
    info = hub_call(auth, model_repo, "model", "commit to", lambda: api.create_commit(
        model_repo, operations, commit_message=f"llmos-hub: add eval results from {dataset_repo}",
        repo_type="model", parent_commit=state.head, create_pr=create_pr,
    ))
    result.model_files = sorted(files)
    result.model_commit_url = str(info.commit_url)
    result.model_pr_url = info.pr_url


def _pr_revision(pr_url: str | None) -> str | None:
    if not pr_url:
        return None
    number = pr_url.rstrip("/").rsplit("/", 1)[-1]
    return f"refs/pr/{number}" if number.isdigit() else None
