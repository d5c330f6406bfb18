"""The hooks a plugin implements, all in one place (as pytest's ``hookspec.py``).

Every hook is a *register callback*: the host passes a ``register`` function and the plugin calls it
once per thing it provides, with a name and a zero-argument factory. Factories are called only when
the thing is used, so a plugin's module stays cheap to import (no torch at start-up) and the host can
list what is installed without loading it. A hook returns ``None``; pluggy lets an implementation
accept fewer arguments than the spec, so new arguments can be added to a hook later without breaking
plugins.

Example plugin module::

    from llmos_hub import hookimpl

    @hookimpl
    def register_backends(register):
        def make():
            from .backend import MyBackend   # heavy imports here, not at module level
            return MyBackend()
        register("mybackend", make, description="runs models on my accelerator")

and in its ``pyproject.toml``::

    [project.entry-points.llmos_hub]
    mybackend = "my_package.plugin"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pluggy

__all__ = [
    "PROJECT_NAME",
    "Register",
    "hookimpl",
    "hookspec",
    "register_backends",
    "register_metrics",
    "register_models",
    "register_suites",
    "register_task_kinds",
    "register_tasks",
]

#: The pluggy project name and the entry-point group plugins are found under.
PROJECT_NAME = "llmos_hub"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Register(Protocol):
    """The callback passed to every ``register_*`` hook."""

    def __call__(self, name: str, factory: Callable[[], Any], *, description: str = "") -> None: ...


@hookspec
def register_models(register: Register) -> None:
    """Register model families: ``register("nano", lambda: NanoFamily())``.

    The factory returns a :class:`llmos_hub.ModelFamily`; its name is what users write before the
    colon in ``--model nano:lm-small``.
    """


@hookspec
def register_tasks(register: Register) -> None:
    """Register tasks: ``register("translation-sample", factory)``; the factory returns a :class:`llmos_hub.Task`.

    Tasks declared in YAML files are registered with :func:`llmos_hub.tasks.task_from_file`.
    """


@hookspec
def register_backends(register: Register) -> None:
    """Register backends: ``register("pytorch", factory)``; the factory returns a :class:`llmos_hub.Backend`."""


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics: ``register("bleu", factory)``; the factory returns a :class:`llmos_hub.Metric`."""


@hookspec
def register_suites(register: Register) -> None:
    """Register suites, named lists of tasks: ``register("default", lambda: ["lm-sample", ...])``.

    An entry may name the model the task runs on when the user names none
    (``{"task": "lm-sample", "model": "nano:lm-sample"}``), and a suite may name its backend
    (``{"tasks": [...], "backend": "pytorch"}``): this is how a plugin that ships models for tasks makes
    them the defaults, without the core naming any plugin.
    """


@hookspec
def register_task_kinds(register: Register) -> None:
    """Register task kinds: ``register("question-answering", lambda: QAKind())``.

    The factory returns a :class:`llmos_hub.TaskKind`; its name is what a task file writes as ``kind``.
    """
