"""Task files read only their own folder: a ``data`` path, or a split's file, that leaves it is refused.

A task file is something a user downloads and runs; ``data: ../../../etc/passwd`` must not make
``llmos-hub bench`` read (and quote in an error) a file the user never meant to hand over. A data path
is accepted when, with symlinks resolved, it lies inside the task file's folder, or inside a path the
user named themselves: ``bench --allow-path DIR`` on the command line, or
:func:`allow_data_paths` for library callers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path

from ..errors import DataError

__all__ = ["allow_data_paths", "check_data_path"]

_ALLOWED: ContextVar[tuple[Path, ...]] = ContextVar("llmos_hub_allowed_data_paths", default=())


@contextlib.contextmanager
def allow_data_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[None]:
    """While active, task data under any of ``paths`` is accepted wherever the task file is."""
    token = _ALLOWED.set((*_ALLOWED.get(), *(Path(p).expanduser().resolve() for p in paths)))
    try:
        yield
    finally:
        _ALLOWED.reset(token)


def check_data_path(task_file: Path, path: Path, declared: str, *, field: str = "data") -> None:
    """Raise a one-line :class:`DataError` if ``path`` leaves ``task_file``'s folder and is not allowed.

    ``field`` names where the task file declared it (``data``, or ``splits.test`` for a split's file
    inside a data folder: ``../`` there leaves the folder as surely)."""
    # The task file's own folder, resolved as a folder: a task file that is itself a link (a Hub cache
    # snapshot links every file into the repo's blobs/) still reads the folder it is listed in.
    listed = Path(os.path.abspath(task_file)).parent
    folder = listed.resolve()
    real = path.resolve()
    if real.is_relative_to(folder) or any(real.is_relative_to(root) for root in _ALLOWED.get()):
        return
    lexical = Path(os.path.abspath(path))
    if listed.parent.name == "snapshots" and lexical.is_relative_to(listed) and real.is_relative_to(listed.parent.parent / "blobs"):
        return  # a file of the same Hub snapshot, stored in its repo's blobs folder
    if listed.parent.name == "snapshots":  # a task from the Hub: its data can only come from its own repo
        fix = "a task from the Hub reads only the files of its own repo; its author must put the data in the repo"
    else:  # publish-task has no --allow-path: a published task must hold its data
        fix = "move the data next to the task file (or, for bench, allow its folder with --allow-path DIR)"
    raise DataError(
        f"{task_file}: field '{field}': {declared!r} is outside the task file's folder, and task files read only "
        f"their own folder; {fix}"
    )
