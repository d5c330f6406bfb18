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

from dataclasses import dataclass

from .._task import Task, TaskData

__all__ = ["PlannedData", "load_planned"]


@dataclass(frozen=True)
class PlannedData:
    data: TaskData
    #: ``None`` when the limit keeps every example of the split.
    limit: int | None
    #: ``None`` when the split is the task's default one.
    split: str | None


def load_planned(task: Task, *, split: str | None, limit: int | None, seed: int) -> PlannedData:
    """Load ``task``'s examples for a plan and normalise ``split`` and ``limit`` (see the module docstring)."""
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
