"""Tasks that live in a Hub dataset repo: ``--task hf:NAMESPACE/NAME[@REVISION]``.

A task repo (written by ``llmos-hub publish-task``) holds ``task.yaml`` at its root and the split
files it names, at the same relative paths. Loading one:

* reads **YAML only**: ``task.yaml`` goes through the same safe parser as a local task file, and
  nothing in the repo is ever imported or executed (no loading script, no ``datasets`` builder: the
  split files are read by our own jsonl/csv/tsv/parquet readers);
* downloads only ``task.yaml`` and the split files it names, and refuses any data path that leaves
  the repo (absolute, ``~``, ``..``), a ``datasets`` id or a ``datasets`` folder — checked on the
  declared text, before anything but ``task.yaml`` is fetched;
* resolves the revision (``main`` by default, a branch, a tag or a commit) to a commit id, which the
  task's description (``hub.revision``) and every record's data source
  (``hf://datasets/NS/NAME@<commit>/<file>``) keep;
* goes through the ``huggingface_hub`` cache, so once a task was read it is read again with
  ``HF_HUB_OFFLINE=1`` (the cache maps ``main`` to the commit it last saw); online, the Hub is always
  asked which commit the revision is, and a Hub that cannot be reached is an error that names the
  cached commit, never a silent fall-back to it.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._task import TaskData
from ..errors import DataError, UsageError
from ._declared import DeclaredTask
from ._spec import FILE_SUFFIXES, TaskSpec, parse_spec

__all__ = ["HUB_PREFIX", "TASK_FILE", "HubTask", "HubTaskRef", "is_hub_ref", "load_hub_task", "parse_hub_ref",
           "repo_path", "split_files"]

#: How a task argument names a Hub task: ``hf:NAMESPACE/NAME[@REVISION]``.
HUB_PREFIX = "hf:"
#: The task declaration at the root of a task repo.
TASK_FILE = "task.yaml"

_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_REF_RE = re.compile(rf"^({_PART})/({_PART})(?:@([^\s@]+))?$")
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class HubTaskRef:
    """A parsed ``hf:NAMESPACE/NAME[@REVISION]``."""

    repo: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"{HUB_PREFIX}{self.repo}" + (f"@{self.revision}" if self.revision else "")


def is_hub_ref(name: str) -> bool:
    """Whether a task argument names a Hub task (``hf:...``)."""
    return name.startswith(HUB_PREFIX)


def parse_hub_ref(text: str) -> HubTaskRef:
    """``hf:NS/NAME[@REV]`` → :class:`HubTaskRef`; a one-line :class:`UsageError` if malformed."""
    from ..hub._repo import repo_id_problem

    match = _REF_RE.match(text[len(HUB_PREFIX):]) if is_hub_ref(text) else None
    problem = repo_id_problem(f"{match.group(1)}/{match.group(2)}") if match else None
    if match is None or problem is not None:
        raise UsageError(f"task {text!r} is not a Hub task id; write it as hf:NAMESPACE/NAME or "
                         "hf:NAMESPACE/NAME@REVISION (a branch, tag or commit)" + (f"; {problem}" if problem else ""))
    return HubTaskRef(f"{match.group(1)}/{match.group(2)}", match.group(3))


def repo_path(declared: str, location: str = "") -> str | None:
    """The repo-relative POSIX path of a declared data file, or ``None`` if it would leave the folder.

    Checked on the text alone (no file system): absolute paths, ``~``, drive letters, backslashes
    and any ``..`` that climbs above the task's folder are refused.
    """
    raw = posixpath.join(declared, location) if location else declared
    if not raw or "\\" in raw or raw.startswith(("/", "~")) or _DRIVE_RE.match(raw) or "\0" in raw:
        return None
    norm = posixpath.normpath(raw)
    if norm in (".", "..") or norm.startswith("../"):
        return None
    return norm


def split_files(spec: TaskSpec, *, where: str) -> dict[str, str]:
    """``split -> repo-relative file`` of a task whose data travels with it (jsonl/csv/tsv/parquet files).

    ``where`` names the task in messages. Raises :class:`DataError` for data that cannot live in a
    task repo: a ``datasets`` id, a ``datasets`` folder, or a path outside the task's folder.
    """
    data = spec.data
    if data.dataset is not None or data.path is None:
        raise DataError(f"{where}: field 'data' names the datasets id {data.declared!r}; a Hub task carries its "
                        "data as jsonl, csv, tsv or parquet files next to task.yaml")
    if data.format == "datasets":
        raise DataError(f"{where}: field 'data' is a datasets folder; a Hub task carries its data as jsonl, csv, "
                        "tsv or parquet files next to task.yaml")
    out: dict[str, str] = {}
    for split, location in spec.splits.items():
        path = repo_path(data.declared, location)
        if path is None:
            shown = posixpath.join(data.declared, location) if location else data.declared
            raise DataError(f"{where}: data file {shown!r} of split {split!r} is outside the task's folder; "
                            "keep the data under the folder of the task file")
        if data.format is None and posixpath.splitext(path)[1] not in FILE_SUFFIXES:
            raise DataError(f"{where}: split {split!r} is {path!r}, not a .jsonl, .csv, .tsv or .parquet file "
                            "(a datasets folder cannot be a Hub task's data)")
        out[split] = path
    return out


class HubTask(DeclaredTask):
    """A :class:`DeclaredTask` read from a Hub dataset repo at one commit.

    ``hub`` is ``{"repo", "revision" (the commit), "file"}``; it is part of :meth:`describe`, and
    :meth:`load` names the data ``hf://datasets/NS/NAME@<commit>/<file>``. How the revision was asked
    for (``ref.revision``: a branch, a tag, nothing) is deliberately not part of the description, so
    ``hf:NS/NAME`` and ``hf:NS/NAME@<that commit>`` describe the same task.
    """

    def __init__(self, spec: TaskSpec, ref: HubTaskRef, commit: str, files: Mapping[str, str]) -> None:
        super().__init__(spec)
        self.ref = ref
        self.commit = commit
        #: ``split -> repo-relative file``.
        self.files = dict(files)
        self.hub: dict[str, Any] = {"repo": ref.repo, "revision": commit, "file": TASK_FILE}

    def __repr__(self) -> str:
        return f"HubTask({self.name!r}, repo={self.ref.repo!r}, revision={self.commit!r})"

    @property
    def pinned(self) -> str:
        """The task argument that names exactly this commit: ``hf:NS/NAME@<commit>``."""
        return str(HubTaskRef(self.ref.repo, self.commit))

    def load(self, *, split: str | None = None, limit: int | None = None, seed: int = 0) -> TaskData:
        data = super().load(split=split, limit=limit, seed=seed)
        return dataclasses.replace(data, source=hub_url(self.ref.repo, self.commit, self.files[data.split]))

    def describe(self) -> Mapping[str, Any]:
        return {**super().describe(), "hub": dict(self.hub)}


def hub_url(repo: str, commit: str, path: str) -> str:
    """``hf://datasets/NS/NAME@<commit>/<path>`` (the ``huggingface_hub`` file-system URL of a file)."""
    return f"hf://datasets/{repo}@{commit}/{path.lstrip('/')}"


def load_hub_task(text: str, *, endpoint: str | None = None, token: str | None = None) -> HubTask:
    """The task of the Hub dataset repo ``hf:NS/NAME[@REV]``, downloaded (or read from the cache).

    Raises :class:`UsageError` for a malformed id, :class:`DataError` for a repo that is not a task
    or whose data leaves it, :class:`~llmos_hub.hub.HubError` when the Hub cannot be read. Only with
    ``HF_HUB_OFFLINE=1`` is the task read from the cache without asking the Hub.
    """
    from ..hub._auth import resolve_auth
    from ..hub._repo import make_api

    ref = parse_hub_ref(text)
    auth = resolve_auth(endpoint, token)
    api = make_api(auth)
    asked = _ask_the_hub(api, auth, ref)
    folder = _snapshot(api, auth, ref, ref.revision if asked is None else asked, [TASK_FILE])
    commit = folder.name
    if asked is not None:
        _remember(ref, commit)
    task_file = folder / TASK_FILE
    if not task_file.is_file():
        raise DataError(f"{ref}: the dataset repo {ref.repo} has no {TASK_FILE} at {commit[:12]}, so it is not an "
                        "llmos-hub task; publish one with `llmos-hub publish-task TASK --repo NS/NAME`")
    shown = f"{HubTaskRef(ref.repo, commit)}/{TASK_FILE}"
    try:
        spec = parse_spec(task_file)
    except DataError as exc:  # name the file by its Hub id, not by its place in the cache
        raise DataError(str(exc).replace(str(task_file), shown)) from None
    files = split_files(spec, where=shown)
    _snapshot(api, auth, ref, commit, sorted({glob.escape(p) for p in files.values()}))  # names, not patterns
    missing = [path for path in files.values() if not (folder / path).is_file()]
    if missing:
        raise DataError(f"{ref}: {TASK_FILE} names {missing[0]!r}, which is not in the repo at {commit[:12]}; "
                        "publish the task again with its data")
    return HubTask(spec, ref, commit, files)


def _ask_the_hub(api: Any, auth: Any, ref: HubTaskRef) -> str | None:
    """The commit ``ref`` names on the Hub now; ``None`` offline (``HF_HUB_OFFLINE=1``: the cache decides).

    ``snapshot_download`` falls back to its cache, without a word, when the Hub cannot be reached or
    refuses the token: a task changed since (or one cached from another Hub, since the cache does not
    record which Hub filled it) ran in place of the one asked for. So the Hub is asked first: a refused
    token, a missing repo or revision is an error whatever the cache holds, and a Hub that cannot be
    reached is an error that names the cached commit and ``HF_HUB_OFFLINE=1``, the explicit way to run it.
    """
    from huggingface_hub import constants

    from ..hub._errors import HubError, hub_call

    if constants.is_offline_mode():
        return None
    try:
        info = hub_call(auth, ref.repo, "dataset", "read the task",
                        lambda: api.repo_info(ref.repo, repo_type="dataset", revision=ref.revision))
    except HubError as exc:
        cached = _cached_commit(ref)
        if cached is None or exc.kind in ("auth", "forbidden", "missing"):
            raise
        raise type(exc)(f"{exc}; {ref} was read before (commit {cached[:12]} is in the local cache): set "
                        "HF_HUB_OFFLINE=1 to run that copy", exc.kind) from None
    return str(info.sha)


def _storage(ref: HubTaskRef) -> Path:
    """The ``huggingface_hub`` cache folder of the task's repo."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    return Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=ref.repo, repo_type="dataset")


def _cached_commit(ref: HubTaskRef) -> str | None:
    """The commit the cache holds for ``ref`` (what an offline run would read), or ``None``."""
    revision = ref.revision or "main"
    try:
        ref_file = _storage(ref) / "refs" / revision
        commit = ref_file.read_text().strip() if ref_file.is_file() else revision
        return commit if (_storage(ref) / "snapshots" / commit).is_dir() else None
    except (OSError, ValueError):
        return None


def _remember(ref: HubTaskRef, commit: str) -> None:
    """Note in the cache that ``ref``'s revision is ``commit`` (``refs/<revision>``), for later offline runs.

    ``snapshot_download`` writes it when given a branch or tag; it is given the commit the Hub named
    instead, so that what is read is what the Hub answered.
    """
    revision = ref.revision or "main"
    if revision == commit:
        return
    ref_file = _storage(ref) / "refs" / revision
    try:
        if ref_file.is_file() and ref_file.read_text().strip() == commit:
            return
        ref_file.parent.mkdir(parents=True, exist_ok=True)
        partial = ref_file.with_name(f".{ref_file.name}.{os.getpid()}.tmp")
        partial.write_text(commit)
        os.replace(partial, ref_file)
    except OSError:
        pass  # only an offline run needs it, and it says so when the task is not cached


def _snapshot(api: Any, auth: Any, ref: HubTaskRef, revision: str | None, patterns: list[str]) -> Path:
    """The cache folder of ``revision`` holding (at least) ``patterns``; its name is the commit id."""
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    from ..hub._errors import hub_call

    def download() -> str:
        return str(api.snapshot_download(ref.repo, repo_type="dataset", revision=revision,
                                         allow_patterns=patterns))

    try:
        return Path(hub_call(auth, ref.repo, "dataset", "read the task", download))
    except Exception as exc:
        offline = constants.is_offline_mode()
        if offline and (isinstance(exc, LocalEntryNotFoundError) or type(exc).__name__ == "IncompleteSnapshotError"
                        or getattr(exc, "kind", None) == "unreachable"):
            raise UsageError(f"task {ref} is not in the local cache and HF_HUB_OFFLINE=1 forbids downloading it; "
                             "run once without HF_HUB_OFFLINE to cache it") from None
        if type(exc).__name__ == "IncompleteSnapshotError":
            raise UsageError(f"task {ref} is only partly in the local cache and the Hub at {auth.endpoint} cannot "
                             "be reached; run again once it can") from None
        raise
