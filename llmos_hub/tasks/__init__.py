"""Tasks declared in YAML files, and the files of the bundled default suite.

A task file (format in :mod:`llmos_hub.tasks._spec`) names a kind — ``classification``,
``translation``, ``summarization``, ``language-modelling``, ``multiple-choice`` or one a plugin
registers —, its data (a bundled sample, a local
jsonl/csv/tsv/parquet file, a ``datasets`` folder or id), which fields are input, target and id, a
prompt template, generation settings and metrics. :func:`task_from_file` turns it into a
:class:`~llmos_hub.Task`; the built-in plugin registers every file in ``llmos_hub/tasks/builtin``.

Example::

    from llmos_hub.tasks import task_from_file
    task = task_from_file("my-task.yaml")        # validated now: DataError names file and field
    data = task.load(split="test", limit=100, seed=0)
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ._declared import DeclaredTask
from ._kinds import BUILTIN_KINDS
from ._spec import TaskSpec, parse_spec, read_yaml

__all__ = ["BUILTIN_DIR", "BUILTIN_KINDS", "DeclaredTask", "TaskSpec", "declared_name", "parse_spec",
           "task_from_file"]

#: The folder of the built-in task files (their data is under ``data/<task>/``).
BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"


def declared_name(path: Path) -> tuple[str, str]:
    """The ``name`` and ``description`` a task file declares, read without building the task.

    Listing tasks (``llmos-hub list tasks``) needs only these, so it neither validates the whole file
    nor touches the data.
    """
    data = read_yaml(path)
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise DataError(f"{path}: missing field 'name'")
    return name, str(data.get("description", ""))


def task_from_file(path: str | Path) -> DeclaredTask:
    """The task a YAML file declares, validated (the data itself is read by :meth:`Task.load`)."""
    return DeclaredTask(parse_spec(path))
