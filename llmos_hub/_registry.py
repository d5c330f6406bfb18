"""Name → factory tables for models, tasks, backends, metrics and suites, with the owning plugin.

The registry keeps every registration, so a name claimed by two plugins is reported with both
distributions instead of one silently winning. Factories run on first use and their product is
checked against the interface it must implement; the product is cached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union, overload

from ._backend import Backend
from ._metric import Metric
from ._model import ModelFamily
from ._task import Task, TaskKind
from .errors import PluginError, UnknownNameError, UsageError

#: A suite: task names (or ``{"task": NAME, "model": REF}`` entries), or ``{"tasks": [...], "backend": NAME}``.
Suite = Union[Sequence[Union[str, Mapping[str, str]]], Mapping[str, Any]]

KINDS: dict[str, str] = {
    "models": "model family",
    "tasks": "task",
    "backends": "backend",
    "metrics": "metric",
    "suites": "suite",
    "task_kinds": "task kind",
}


def _is_suite(value: Any) -> bool:
    """A suite is a list of task names, or of ``{"task": NAME, "model": REF}`` entries (the model a
    task runs on when the user names none), or a mapping ``{"tasks": [...], "backend": NAME}``."""
    if isinstance(value, Mapping):
        return set(value) <= {"tasks", "backend"} and _is_suite(value.get("tasks", []))
    return isinstance(value, (list, tuple)) and all(
        isinstance(v, str) or (isinstance(v, Mapping) and isinstance(v.get("task"), str)
                               and set(v) <= {"task", "model"}) for v in value
    )


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "models": (lambda v: isinstance(v, ModelFamily), "a llmos_hub.ModelFamily"),
    "tasks": (lambda v: isinstance(v, Task), "a llmos_hub.Task"),
    "backends": (lambda v: isinstance(v, Backend), "a llmos_hub.Backend"),
    "metrics": (lambda v: isinstance(v, Metric), "a llmos_hub.Metric"),
    "suites": (_is_suite, "a list of task names"),
    "task_kinds": (lambda v: isinstance(v, TaskKind), "a llmos_hub.TaskKind"),
}


class NameConflictError(PluginError, UsageError):
    """A name two installed plugins register: the user fixes it (uninstall or disable one), so exit 2.

    Still a :class:`PluginError` (callers catching plugin trouble keep catching it); the exit status
    comes from :class:`UsageError` through the method resolution order.
    """


@dataclass(frozen=True)
class Owner:
    """The plugin that registered an entry: its name and its distribution's name and version."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"{self.distribution} {self.version}"


@dataclass
class Entry:
    """One registration: ``kind``/``name`` made by ``factory``, owned by ``owner``."""

    kind: str
    name: str
    factory: Callable[[], Any]
    owner: Owner
    description: str = ""
    _instance: Any = field(default=None, repr=False)


class Registry:
    """What the installed plugins provide, by kind and name."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, list[Entry]]] = {kind: {} for kind in KINDS}

    def add(self, entry: Entry) -> None:
        self._entries[entry.kind].setdefault(entry.name, []).append(entry)

    def names(self, kind: str) -> list[str]:
        """Sorted names of ``kind``, including names in conflict."""
        return sorted(self._entries[kind])

    def entries(self, kind: str) -> Iterator[Entry]:
        for name in self.names(kind):
            yield from self._entries[kind][name]

    def conflicts(self) -> list[list[Entry]]:
        """Every name registered by more than one plugin."""
        return [e for by_name in self._entries.values() for e in by_name.values() if len(e) > 1]

    def entry(self, kind: str, name: str) -> Entry:
        """The single entry for ``name``; raises if unknown or claimed by several plugins."""
        candidates = self._entries[kind].get(name)
        if not candidates:
            raise UnknownNameError(KINDS[kind], name, self._entries[kind])
        if len(candidates) > 1:
            raise NameConflictError(conflict_message(candidates))
        return candidates[0]

    @overload
    def get(self, kind: Literal["models"], name: str) -> ModelFamily: ...
    @overload
    def get(self, kind: Literal["tasks"], name: str) -> Task: ...
    @overload
    def get(self, kind: Literal["backends"], name: str) -> Backend: ...
    @overload
    def get(self, kind: Literal["metrics"], name: str) -> Metric: ...
    @overload
    def get(self, kind: Literal["suites"], name: str) -> Suite: ...
    @overload
    def get(self, kind: Literal["task_kinds"], name: str) -> TaskKind: ...
    @overload
    def get(self, kind: str, name: str) -> object: ...
    def get(self, kind: str, name: str) -> object:
        """Build (once) and return the ``kind`` called ``name``, checked against its interface.

        The return type follows ``kind`` (``get("backends", ...)`` is a :class:`~llmos_hub.Backend`),
        since the product was checked against that interface before it is returned.
        """
        entry = self.entry(kind, name)
        if entry._instance is None:
            try:
                value = entry.factory()
            except (Exception, SystemExit) as exc:  # a plugin's factory failing is the plugin's fault, not ours
                raise PluginError(
                    f"{KINDS[kind]} {name!r} from {entry.owner} failed to load: "
                    f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                ) from exc
            check, wanted = _CHECKS[kind]
            if not check(value):
                raise PluginError(
                    f"{KINDS[kind]} {name!r} from {entry.owner} is {type(value).__name__}, not {wanted}; "
                    f"disable the plugin with LLMOS_HUB_DISABLE_PLUGINS={entry.owner.plugin}"
                )
            entry._instance = value
        return entry._instance


def conflict_message(entries: list[Entry]) -> str:
    """One line naming every distribution that claims the same name, and how to disable one."""
    first = entries[0]
    owners = " and ".join(str(e.owner) for e in entries)
    later = entries[1:]  # built-ins load first, so these are installed distributions a user can remove
    plugins = ",".join(e.owner.plugin for e in later)
    removable = [e.owner.distribution for e in later if e.owner.distribution != "llmos-hub"]
    uninstall = f"uninstall one (pip uninstall {' '.join(dict.fromkeys(removable))}) or " if removable else ""
    return (
        f"{KINDS[first.kind]} {first.name!r} is registered by both {owners}; "
        f"{uninstall}disable one, e.g. llmos-hub --disable-plugin {later[0].owner.plugin} ... or LLMOS_HUB_DISABLE_PLUGINS={plugins}"
    )
