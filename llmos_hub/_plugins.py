"""The plugin host: built-ins first, then every entry point in the ``llmos_hub`` group.

pluggy's own ``load_setuptools_entrypoints`` lets one broken plugin take the host down, so this
module walks the entry points itself and isolates each plugin: an import error, a hook that raises,
a hook that registers nonsense or returns a value, all leave that plugin skipped with its reason kept
for ``llmos-hub plugins``, and the rest load. Registrations are staged per plugin and committed only
if every hook of that plugin succeeded, so a half-registered plugin never leaks into the registry.
"""

from __future__ import annotations

import importlib
import importlib.metadata as importlib_metadata
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any, Literal, overload

import pluggy

from . import hookspecs
from ._api_version import declared_api_version
from ._backend import Backend
from ._metric import Metric
from ._model import ModelFamily
from ._registry import KINDS, Entry, Owner, Registry, Suite
from ._task import Task, TaskKind
from ._version import __version__
from .errors import PluginError, UsageError, close_matches

__all__ = ["BUILTIN_PLUGINS", "PluginHost", "PluginInfo", "check_disabled_names", "load_plugins"]

#: Modules of the core that register through the same hooks as external plugins.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "llmos_hub.builtins.tasks",
    "llmos_hub.builtins.metrics",
)

DISABLE_ENV = "LLMOS_HUB_DISABLE_PLUGINS"
AUTOLOAD_ENV = "LLMOS_HUB_DISABLE_PLUGIN_AUTOLOAD"
STRICT_ENV = "LLMOS_HUB_STRICT_PLUGINS"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HOOKS = tuple(f"register_{kind}" for kind in KINDS)


@dataclass
class PluginInfo:
    """What ``llmos-hub plugins`` shows for one plugin."""

    name: str
    distribution: str
    version: str
    builtin: bool
    status: str = "ok"  # "ok", "error" or "disabled"
    error: str | None = None
    #: The plugin API version the plugin declares (``LLMOS_HUB_API_VERSION``); ``None`` if it declares none.
    api_version: str | None = None
    hooks: list[str] = field(default_factory=list)
    registers: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """What ``llmos-hub plugins --json`` prints for this plugin."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "status": self.status,
            "error": self.error,
            "api_version": self.api_version,
            "hooks": self.hooks,
            "registers": self.registers,
        }


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PluginHost:
    """A pluggy manager plus the registry it fills, with per-plugin isolation.

    ``disabled`` names plugins to skip (entry-point names or distribution names); ``strict`` re-raises
    the first plugin error instead of skipping (for plugin authors' CI); ``autoload=False`` loads only
    the built-ins and ``extra`` (modules or objects registered as plugins, for tests and embedding).
    """

    def __init__(
        self,
        *,
        disabled: Iterable[str] = (),
        autoload: bool = True,
        strict: bool = False,
        extra: Iterable[tuple[str, object]] = (),
    ) -> None:
        self.disabled = {_normalize(n) for n in disabled if n}
        self.autoload = autoload
        self.strict = strict
        self.plugins: list[PluginInfo] = []
        self.registry = Registry()
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self._extra = list(extra)
        self._loaded = False

    # -- loading ---------------------------------------------------------------------------
    def load(self) -> PluginHost:
        """Load built-ins, then entry points, then ``extra``; safe to call more than once."""
        if self._loaded:
            return self
        self._loaded = True
        for module_name in BUILTIN_PLUGINS:
            info = PluginInfo(module_name, "llmos-hub", __version__, builtin=True)
            self._add(info, partial(importlib.import_module, module_name))
        if self.autoload:
            for ep in _entry_points():
                dist = ep.dist.name if ep.dist is not None else ep.value.split(":")[0]
                version = ep.dist.version if ep.dist is not None else "unknown"
                info = PluginInfo(ep.name, dist, version, builtin=False)
                self._add(info, ep.load)
        for name, obj in self._extra:
            info = PluginInfo(name, name, "unknown", builtin=False)
            self._add(info, partial(_same, obj))
        return self

    def _is_disabled(self, info: PluginInfo) -> bool:
        return _normalize(info.name) in self.disabled or _normalize(info.distribution) in self.disabled

    def _add(self, info: PluginInfo, load: Callable[[], Any]) -> None:
        from ._guard import _UserInterrupt, guarded_load

        self.plugins.append(info)
        if self._is_disabled(info):
            info.status = "disabled"
            return
        try:
            with guarded_load(info.name, info.distribution, builtin=info.builtin):
                plugin = load()
                self._register(info, plugin)
        except (Exception, SystemExit, KeyboardInterrupt) as exc:
            if isinstance(exc, _UserInterrupt):  # the user pressed Ctrl-C: stop, as always
                raise
            info.status = "error"
            info.error = " ".join(str(exc).split()) if isinstance(exc, PluginError) else _one_line(exc)
            if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                info.error = f"{type(exc).__name__}({' '.join(str(exc).split())}) raised while loading; " \
                    "a plugin must not end the process"
            if self.strict:
                raise PluginError(f"plugin {info.name} ({info.distribution}): {info.error}") from exc

    def _register(self, info: PluginInfo, plugin: object) -> None:
        info.api_version = declared_api_version(plugin)  # refuses an unsupported version, naming both
        try:
            self.pm.register(plugin, name=info.name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"does not match the hook specification: {exc}") from exc
        except ValueError as exc:  # already registered under this name (a duplicate entry point)
            raise PluginError(str(exc)) from exc
        try:
            for caller in self.pm.get_hookcallers(plugin) or []:
                if not caller.has_spec():
                    raise PluginError(
                        f"implements unknown hook {caller.name!r}; known hooks: {', '.join(_HOOKS)}"
                    )
            staged = self._call_hooks(info, plugin)
        except BaseException:
            self.pm.unregister(plugin)
            raise
        for entry in staged:
            self.registry.add(entry)
            info.registers.setdefault(entry.kind, []).append(entry.name)

    def _call_hooks(self, info: PluginInfo, plugin: object) -> list[Entry]:
        owner = Owner(info.name, info.distribution, info.version)
        staged: list[Entry] = []
        for kind in KINDS:
            hook_name = f"register_{kind}"
            impls = [i for i in getattr(self.pm.hook, hook_name).get_hookimpls() if i.plugin is plugin]
            for impl in impls:
                info.hooks.append(hook_name)
                register = _make_register(kind, owner, staged)
                kwargs = {"register": register}
                try:
                    result = impl.function(**{a: kwargs[a] for a in impl.argnames})
                except PluginError:
                    raise
                except Exception as exc:
                    raise PluginError(f"hook {hook_name} raised {_one_line(exc)}") from exc
                if result is not None:
                    raise PluginError(
                        f"hook {hook_name} returned {type(result).__name__}; "
                        "hooks register through the callback and return None"
                    )
        return staged

    # -- queries ---------------------------------------------------------------------------
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
        """The model family, task, backend, metric, suite or task kind called ``name``, typed by ``kind``."""
        return self.registry.get(kind, name)

    def known_names(self) -> list[str]:
        """Every name ``disabled`` can match: entry-point and distribution names, loaded or not.

        Entry points are listed even when autoload is off, so naming an installed plugin is never
        mistaken for a typo.
        """
        names = [n for p in self.plugins for n in (p.name, p.distribution)]
        for ep in _entry_points():
            names.append(ep.name)
            if ep.dist is not None:
                names.append(ep.dist.name)
        return sorted(dict.fromkeys(names))

    def plugin_versions(self) -> dict[str, str]:
        """Every loaded distribution and its version, for a result's provenance."""
        return {p.distribution: p.version for p in self.plugins if p.status == "ok"}


def _same(value: object) -> object:
    return value


def _make_register(kind: str, owner: Owner, staged: list[Entry]) -> Callable[..., None]:
    def register(name: str, factory: Callable[[], Any], *, description: str = "") -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PluginError(f"register_{kind} got an invalid name {name!r}")
        if not callable(factory):
            raise PluginError(
                f"register_{kind}({name!r}, ...) got {type(factory).__name__}, not a callable factory"
            )
        staged.append(Entry(kind, name, factory, owner, str(description or "")))

    return register


def _entry_points() -> list[importlib_metadata.EntryPoint]:
    seen: set[tuple[str, str]] = set()
    found = []
    for ep in importlib_metadata.entry_points(group=hookspecs.PROJECT_NAME):
        key = (ep.name, ep.value)
        if key not in seen:
            seen.add(key)
            found.append(ep)
    return found


def _env_list(name: str) -> list[str]:
    return [p.strip() for p in os.environ.get(name, "").split(",") if p.strip()]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def load_plugins(
    *,
    disabled: Iterable[str] = (),
    strict: bool | None = None,
    autoload: bool | None = None,
    extra: Iterable[tuple[str, ModuleType | object]] = (),
) -> PluginHost:
    """Load the built-ins and installed plugins, honouring the environment.

    ``LLMOS_HUB_DISABLE_PLUGINS=a,b`` adds to ``disabled``; ``LLMOS_HUB_STRICT_PLUGINS=1`` turns on
    ``strict``; ``LLMOS_HUB_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the built-ins and ``extra``.
    """
    return PluginHost(
        disabled=[*_env_list(DISABLE_ENV), *disabled],
        strict=_env_flag(STRICT_ENV) if strict is None else strict,
        autoload=(not _env_flag(AUTOLOAD_ENV)) if autoload is None else autoload,
        extra=extra,
    ).load()


def check_disabled_names(host: PluginHost, names: Iterable[str], option: str = "--disable-plugin") -> None:
    """Refuse a name in ``names`` that matches no installed plugin (a typo disables nothing, silently).

    Only for names the user just typed (the CLI option); ``LLMOS_HUB_DISABLE_PLUGINS`` may list plugins
    installed in other environments, so it is not checked.
    """
    known = host.known_names()
    normalized = {_normalize(k) for k in known}
    for name in names:
        if name and _normalize(name) not in normalized:
            matches = close_matches(name, known)
            hint = f"did you mean {' or '.join(repr(m) for m in matches)}?" if matches else \
                "`llmos-hub plugins` lists the installed ones"
            raise UsageError(f"{option} {name}: no installed plugin or distribution is called {name!r}; {hint}")


_DEFAULT_HOST: PluginHost | None = None


def default_host() -> PluginHost:
    """A process-wide host loaded from the environment, for library code that needs a lookup.

    The CLI builds its own host (with ``--disable-plugin``) and installs it here with
    :func:`set_default_host`, so tasks resolving their metrics see the same plugins as the command.
    """
    global _DEFAULT_HOST
    if _DEFAULT_HOST is None:
        _DEFAULT_HOST = load_plugins()
    return _DEFAULT_HOST


def set_default_host(host: PluginHost | None) -> None:
    """Install ``host`` as the process-wide host (``None`` to reload from the environment next time)."""
    global _DEFAULT_HOST
    _DEFAULT_HOST = host
