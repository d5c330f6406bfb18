"""The data a planned run scores: the split asked for, and the limit that actually applies.

Two things a newcomer trips over are settled here, before any model loads:

* ``--limit`` larger than the data (``--limit 1000`` on 150 examples) scores every example, so it is
  the same configuration as no limit: the effective limit is ``None`` and the configuration hash, the
  record and ``--resume`` treat it as such.
* ``--split`` names a split of each task's data; asking for the task's default split by name is the
  same configuration as not asking, so only a split other than the default is kept in the run spec
  (and in the command that reproduces it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._task import Task, TaskData
from ..errors import DataError

__all__ = ["PlannedData", "explain_missing_field", "load_planned"]

#: The data reader's message for a row (or header) that lacks a field the task file names.
_MISSING_RE = re.compile(r"^(?P<where>.+?): missing field '(?P<name>[^']*)'(?: \(columns: (?P<columns>.*)\))?$")


@dataclass(frozen=True)
class PlannedData:
    data: TaskData
    #: ``None`` when the limit keeps every example of the split.
    limit: int | None
    #: ``None`` when the split is the task's default one.
    split: str | None


def load_planned(task: Task, *, split: str | None, limit: int | None, seed: int) -> PlannedData:
    """Load ``task``'s examples for a plan and normalise ``split`` and ``limit`` (see the module docstring).

    A data file that lacks a field the task file names fails with the setting to fix and the fields the
    data has (:func:`explain_missing_field`).
    """
    try:
        return _load_planned(task, split=split, limit=limit, seed=seed)
    except DataError as exc:
        raise explain_missing_field(task, exc) from None


def _load_planned(task: Task, *, split: str | None, limit: int | None, seed: int) -> PlannedData:
    data = task.load(split=split, limit=limit, seed=seed)
    effective = limit
    if limit is not None and len(data.examples) <= limit:
        if len(data.examples) < limit:
            effective = None
        else:  # exactly ``limit`` examples: a subsample of a larger split, or all of it?
            full = task.load(split=split, limit=None, seed=seed)
            if full.fingerprint == data.fingerprint:
                data, effective = full, None
    named = split
    if split is not None and task.load(split=None, limit=1, seed=seed).split == data.split:
        named = None
    return PlannedData(data, effective, named)


def explain_missing_field(task: Task, exc: DataError) -> DataError:
    """``exc`` as a fix for a task file: which setting names the missing field, and what the data has.

    The reader says only ``data/test.jsonl:1: missing field 'english'``; the user has to find that
    ``english`` is ``fields.input`` of the task file, and what the data calls it. Any other error (or a
    task not declared in a local file) is returned as it is.
    """
    match = _MISSING_RE.match(str(exc))
    spec = getattr(task, "spec", None)
    if match is None or spec is None or getattr(task, "hub", None) is not None or not hasattr(spec, "file"):
        return exc
    name = match.group("name")
    setting = _setting_of(spec, name)
    if setting is None:
        return exc
    where = match.group("where")
    columns = match.group("columns") or _row_fields(spec, where)
    has = f"; the data has fields {columns}" if columns else ""
    fix = (f"set fields.{setting} to the data's name for it" if not setting.startswith("{")
           else f"rename the placeholder {setting} to a field the data has")
    shown = f"fields.{setting}: {name!r}" if not setting.startswith("{") else f"placeholder {setting} in the prompt"
    return DataError(f"{where}: missing field {name!r} ({shown} in {_shown_path(Path(spec.file))}){has}; {fix}")


def _setting_of(spec: Any, name: str) -> str | None:
    """The task file's setting that names data field ``name``: ``input``, ``target``, ``id``, ``choices``,
    or ``{name}`` for a prompt placeholder; ``None`` when none does."""
    for role in ("input", "target", "id", "choices"):
        if getattr(spec, f"{role}_field", None) == name:
            return role
    if name in tuple(getattr(spec, "prompt_fields", ()) or ()):
        return "{" + name + "}"
    return None


def _row_fields(spec: Any, where: str) -> str | None:
    """The field names of the row at ``where`` (``file:line`` or ``file row N``), read again; ``None`` if
    it cannot be found (the message then just lacks them)."""
    from ..tasks._sources import open_split

    try:
        for split in spec.splits:
            source = open_split(spec, split)
            if not where.startswith(source.label):
                continue
            _, rows = source.read()
            for row in rows:
                if row.where == where:
                    return ", ".join(map(str, row.values)) or "none"
    except Exception:  # the message is the point; a second read failing must not replace it
        return None
    return None


def _shown_path(path: Path) -> str:
    """``path`` as a user finds it from here: relative to the current folder, else absolute."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path.resolve())
    return relative if not relative.startswith("..") else str(path.resolve())
