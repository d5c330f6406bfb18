"""Publish a task to a Hub dataset repo: ``llmos-hub publish-task TASK --repo NS/NAME``.

One commit holds everything a user elsewhere needs to run the task and read its data:

* ``task.yaml``: the task file, byte for byte as it was written (comments included);
* its split files, at the same paths relative to ``task.yaml`` as on disk, so the YAML needs no
  rewriting, plus the provenance files next to them (``SOURCE.md``, ``LICENSE*``, ``COPYING*``);
* ``README.md``: a dataset card whose ``configs`` front matter lists each split's file (so
  ``datasets.load_dataset("NS/NAME", split="test")`` reads the data), which carries the task's
  ``source`` text and licence over, and gives the command that runs it
  (``llmos-hub bench --task hf:NS/NAME``).

Only tasks declared in YAML whose data are jsonl/csv/tsv/parquet files under the task's folder
can be published (a task written in Python is code, which a task repo never carries). Every split is
read and validated before anything is sent. Files already in the repo byte for byte are not sent
again, and a publish that changes nothing makes no commit.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError
from ._auth import resolve_auth
from ._errors import HubError, hub_call
from ._repo import check_repo_id, make_api

__all__ = ["TaskPublishResult", "publish_task", "task_card", "task_repo_files"]

#: Provenance files carried along with the data (matched case-insensitively on the name's start).
_PROVENANCE = ("source", "license", "licence", "copying", "notice", "readme")
_TASK_CATEGORIES = {
    "translation": "translation",
    "summarization": "summarization",
    "classification": "text-classification",
    "language-modelling": "text-generation",
    "multiple-choice": "multiple-choice",
}


@dataclass
class TaskPublishResult:
    """What a task publish did. ``revision`` is the commit that holds the task (new or existing)."""

    repo: str
    endpoint: str
    task: str
    revision: str
    commit_url: str | None = None
    pr_url: str | None = None
    files: list[str] = field(default_factory=list)
    attempts: int = 1
    #: The ``--endpoint`` the command line gave (``publish-task`` sets it): :attr:`command` passes it on,
    #: or the printed command would read the task from another Hub.
    endpoint_flag: str | None = None

    @property
    def published(self) -> bool:
        return self.commit_url is not None

    @property
    def task_id(self) -> str:
        """The argument that runs exactly this commit of the task: ``hf:NS/NAME@<commit>``."""
        return f"hf:{self.repo}@{self.revision}"

    @property
    def command(self) -> str:
        """The ``llmos-hub bench`` line that runs this commit of the task (with the ``--endpoint`` given)."""
        args = ["llmos-hub", "bench", "--task", self.task_id]
        if self.endpoint_flag:
            args += ["--endpoint", self.endpoint_flag]
        return shlex.join(args)

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "endpoint": self.endpoint,
            "task": self.task,
            "published": self.published,
            "revision": self.revision,
            "task_id": self.task_id,
            "command": self.command,
            "commit_url": self.commit_url,
            "pr_url": self.pr_url,
            "files": self.files,
            "attempts": self.attempts,
        }


def _declared_task(task: Any, host: Any) -> Any:
    """A task name, task file or task object → the :class:`DeclaredTask` to publish."""
    from ..tasks import DeclaredTask, task_from_file

    if isinstance(task, DeclaredTask):
        return task
    text = str(task)
    path = Path(text)
    if text.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise UsageError(f"task file {text} does not exist")
        return task_from_file(path)
    if text.startswith("hf:"):
        from ..tasks._hub_source import load_hub_task

        return load_hub_task(text)
    if host is None:
        from .._plugins import default_host

        host = default_host()
    if text not in host.registry.names("tasks"):
        from ..errors import UnknownNameError

        raise UnknownNameError("task", text, host.registry.names("tasks"))
    found = host.get("tasks", text)
    if not isinstance(found, DeclaredTask):
        raise UsageError(f"task {text!r} is written in Python ({type(found).__name__}); only tasks declared in a "
                         "YAML file can be published, since a task repo never carries code")
    return found


def task_repo_files(task: Any, *, repo: str) -> dict[str, bytes]:
    """``repo path -> bytes`` of the task repo for a :class:`DeclaredTask` (validates every split first)."""
    from ..tasks._hub_source import TASK_FILE, split_files

    spec = task.spec
    folder = spec.file.parent
    files = split_files(spec, where=str(spec.file))
    counts: dict[str, int] = {}
    for split in spec.splits:
        counts[split] = len(task.load(split=split).examples)  # every row checked before anything is sent
    out: dict[str, bytes] = {TASK_FILE: spec.file.read_bytes()}
    for path in files.values():
        out[path] = (folder / path).read_bytes()
    for extra in _provenance_files(folder, files.values()):
        out.setdefault(extra, (folder / extra).read_bytes())
    out["README.md"] = task_card(task, repo=repo, files=files, counts=counts,
                                 provenance=sorted(p for p in out if p not in files.values() and p != TASK_FILE)
                                 ).encode("utf-8")
    return out


def _provenance_files(folder: Path, data_files: Any) -> list[str]:
    """Provenance files in the folders that hold the data files (not the task's root, whose README is ours)."""
    import posixpath

    dirs = {posixpath.dirname(p) for p in data_files} - {""}
    out: list[str] = []
    for d in sorted(dirs):
        local = folder / d
        if not local.is_dir():
            continue
        for entry in sorted(local.iterdir()):
            if entry.is_file() and not entry.is_symlink() and entry.name.lower().startswith(_PROVENANCE) \
                    and entry.suffix.lower() in ("", ".md", ".txt", ".rst"):
                out.append(f"{d}/{entry.name}")
    return out


def task_card(task: Any, *, repo: str, files: dict[str, str], counts: dict[str, int],
              provenance: list[str]) -> str:
    """The dataset card of a task repo: loadable ``configs`` per split, licence, source, how to run it."""
    from ..tasks import read_yaml

    spec = task.spec
    raw = read_yaml(spec.file)
    licence = raw.get("license") if isinstance(raw.get("license"), str) else None
    source_file = next((p for p in provenance if Path(p).name.lower().startswith(("source", "licen", "copying"))), None)
    front: dict[str, Any] = {
        "pretty_name": spec.name,
        "license": licence or "other",
    }
    if not licence:
        front["license_name"] = "per-source"
        if source_file:
            front["license_link"] = source_file
    front.update({
        "size_categories": [_size_category(sum(counts.values()))],
        "task_categories": [_TASK_CATEGORIES.get(spec.kind.name, "other")],
        "tags": ["llmos-hub", "llmos-hub-task", spec.kind.name],
        "configs": [{
            "config_name": "default",
            "data_files": [{"split": split, "path": path} for split, path in files.items()],
        }],
    })
    lines = [
        f"# {spec.name}",
        "",
        spec.description or f"An llmos-hub {spec.kind.name} task.",
        "",
        f"An llmos-hub task: kind `{spec.kind.name}`, version `{spec.version}`, "
        f"primary metric `{spec.primary_metric}`. `task.yaml` declares it; it is plain YAML, read with a safe "
        "loader, and a task repo never holds code that runs.",
        "",
        "## Run it",
        "",
        "```console",
        f"$ llmos-hub bench --task hf:{repo}                  # the latest commit",
        f"$ llmos-hub bench --task hf:{repo}@COMMIT           # exactly one commit (any id of the history)",
        "```",
        "",
        "A record of the run keeps the commit it read (`hf://datasets/...@<commit>/...` as its data source); "
        "once read, the task runs offline (`HF_HUB_OFFLINE=1`) from the cache.",
        "",
        "## Read the data",
        "",
        "```python",
        "from datasets import load_dataset",
        f'test = load_dataset("{repo}", split="{spec.default_split}")',
        "```",
        "",
        "| split | file | examples |",
        "| --- | --- | --- |",
        *(f"| {split}{' (default)' if split == spec.default_split else ''} | `{path}` | {counts.get(split, 0)} |"
          for split, path in files.items()),
        "",
        "## Task",
        "",
        f"- fields: input `{spec.input_field}`"
        + (f", target `{spec.target_field}`" if spec.target_field else "")
        + (f", id `{spec.id_field}`" if spec.id_field else ""),
        f"- prompt: `{spec.prompt}`",
        f"- metrics: {', '.join(f'`{m}`' for m in spec.metrics)} (primary `{spec.primary_metric}`)",
    ]
    if spec.labels:
        lines.append(f"- labels: {', '.join(f'`{label}`' for label in spec.labels)}")
    if spec.generation is not None:
        gen = spec.generation.to_dict()
        lines.append("- generation: " + ", ".join(f"{k} `{json.dumps(v, ensure_ascii=False)}`" for k, v in gen.items()))
    lines += ["", "## Source and licence", "", spec.source.strip() or "_The task file names no source._", ""]
    if provenance:
        lines += ["Provenance files: " + ", ".join(f"[`{p}`]({p})" for p in provenance) + ".", ""]
    if not licence:
        lines += ["The task file declares no single licence: each part is under the licence its source "
                  "gives (above).", ""]
    return "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n" + "\n".join(lines)


def _size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket of ``n`` examples (``n<1K``, ``1K<n<10K``, ...)."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M")]
    return next((label for bound, label in bounds if n < bound), "n>10M")


def publish_task(
    task: Any,
    *,
    repo: str,
    endpoint: str | None = None,
    token: str | None = None,
    create_pr: bool = False,
    host: Any = None,
    max_attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> TaskPublishResult:
    """Publish a task (registered name, YAML file, ``hf:`` id or :class:`DeclaredTask`) to dataset repo ``repo``.

    The repo is created if missing; one commit (or one pull request with ``create_pr``) holds the
    task file, its data and its card. Conflicts and 5xx are retried like :func:`~llmos_hub.hub.publish`.
    """
    from ._publish import _with_retries

    check_repo_id(repo, "--repo")
    declared = _declared_task(task, host)
    files = task_repo_files(declared, repo=repo)  # all validation happens before any request
    auth = resolve_auth(endpoint, token)
    api = make_api(auth)
    result = TaskPublishResult(repo=repo, endpoint=auth.endpoint, task=declared.name, revision="")

    def attempt() -> None:
        _commit_task(api, auth, repo, files, create_pr, result)

    result.attempts = _with_retries(attempt, max_attempts, sleep)
    return result


def _commit_task(api: Any, auth: Any, repo: str, files: dict[str, bytes], create_pr: bool,
                 result: TaskPublishResult) -> None:
    from huggingface_hub import CommitOperationAdd

    from ._publish import _ensure_dataset_repo

    state = _ensure_dataset_repo(api, auth, repo)
    changed = {p: b for p, b in files.items() if not state.unchanged(p, b)}
    if not changed:
        result.revision, result.files, result.commit_url = state.head, [], None
        return
    operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=b) for p, b in sorted(changed.items())]
    info = hub_call(auth, repo, "dataset", "commit to", lambda: api.create_commit(
        repo, operations, commit_message=f"llmos-hub: publish task {result.task}",
        commit_description="\n".join(f"- {p}" for p in sorted(changed)), repo_type="dataset",
        parent_commit=state.head, create_pr=create_pr,
    ))
    if not info.oid:
        raise HubError(f"the Hub at {auth.endpoint} did not say which commit it made in {repo}")
    result.revision = str(info.oid)
    result.files = sorted(changed)
    result.commit_url, result.pr_url = str(info.commit_url), info.pr_url
