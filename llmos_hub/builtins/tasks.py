"""Built-in plugin: the task kinds and the task files shipped in ``llmos_hub/tasks/builtin``.

The default suite is not here: it pairs each bundled task with a model trained for it, so the plugin
that ships those models (``llmos-hub-nano``) registers it. The core names no plugin.
"""

from __future__ import annotations

from pathlib import Path

from ..hookspecs import Register, hookimpl

TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks" / "builtin"


@hookimpl
def register_task_kinds(register: Register) -> None:
    from ..tasks._kinds import BUILTIN_KINDS

    for kind in BUILTIN_KINDS:
        register(kind.name, lambda k=kind: k, description=(kind.__doc__ or "").strip().splitlines()[0])


@hookimpl
def register_tasks(register: Register) -> None:
    from ..tasks import declared_name, task_from_file

    for path in sorted(TASKS_DIR.glob("*.yaml")):
        name, description = declared_name(path)
        register(name, lambda p=path: task_from_file(p), description=description)
