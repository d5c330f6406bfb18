"""Built-in plugin: the task files shipped in ``llmos_hub/tasks/builtin`` and the default suite."""

from __future__ import annotations

from pathlib import Path

from ..hookspecs import API_VERSION, Register, hookimpl

LLMOS_HUB_API_VERSION = API_VERSION

TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks" / "builtin"


@hookimpl
def register_tasks(register: Register) -> None:
    from ..tasks import declared_name, task_from_file

    for path in sorted(TASKS_DIR.glob("*.yaml")):
        name, description = declared_name(path)
        register(name, lambda p=path: task_from_file(p), description=description)


@hookimpl
def register_suites(register: Register) -> None:
    register(
        "default",
        lambda: ["lm-sample", "classification-sample", "translation-sample", "summarization-sample"],
        description="the bundled suite: one task of each kind, built from real text",
    )
