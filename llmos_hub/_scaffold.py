"""``llmos-hub new``: write a pip-installable plugin whose tests already pass.

Each template (``llmos_hub/templates/<kind>/``) is a complete distribution: ``pyproject.toml`` with the
``llmos_hub`` entry point, a hook implementation that registers something working and declares the
plugin API version, and tests that run the conformance kit (:mod:`llmos_hub.testing`) on it. A newcomer
edits working code instead of starting from a blank page; ``tests/test_scaffold.py`` installs every
template with pip, runs its tests and runs it inside ``llmos-hub bench``, so the templates cannot rot.

Templates are text files with ``${name}``-style placeholders (:class:`string.Template`), kept as
``*.txt`` so nothing tries to import or type-check them in place.
"""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import json
import re
from pathlib import Path
from string import Template
from typing import Any

from ._fileio import atomic_write
from .errors import UsageError
from .hookspecs import API_VERSION

__all__ = ["KINDS", "scaffold"]

KINDS = ("task", "model", "backend", "metric")
TEMPLATES = Path(__file__).resolve().parent / "templates"
_NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")

#: kind -> (template file -> path in the plugin; ``PKG`` is the package folder, ``NAME`` the plugin name).
_LAYOUT: dict[str, dict[str, str]] = {
    "task": {"plugin.py": "PKG/plugin.py", "task.yaml": "PKG/NAME.yaml", "test_plugin.py": "tests/test_plugin.py"},
    "backend": {"plugin.py": "PKG/plugin.py", "backend.py": "PKG/backend.py", "test_plugin.py": "tests/test_plugin.py"},
    "model": {"plugin.py": "PKG/plugin.py", "family.py": "PKG/family.py", "build.py": "PKG/build.py",
              "test_plugin.py": "tests/test_plugin.py"},
    "metric": {"plugin.py": "PKG/plugin.py", "metric.py": "PKG/metric.py", "example.yaml": "examples/NAME-example.yaml",
               "test_plugin.py": "tests/test_plugin.py"},
}
#: kind -> the registry table its plugin registers into (the name must be free there).
_REGISTRY_KIND = {"task": "tasks", "backend": "backends", "model": "models", "metric": "metrics"}
_DEPENDENCIES = {"task": [], "backend": ["torch"], "model": ["torch", "safetensors", "numpy"], "metric": []}
_TEST_DEPENDENCIES = {
    "task": [],
    "backend": ["llmos-hub-nano", "llmos-hub-pytorch"],  # the test runs nano models, pytorch is the reference
    "model": ["llmos-hub-pytorch"],
    "metric": [],
}
_TRY_IT = {
    "task": "llmos-hub bench --task ${name} --model nano:translation-sample --limit 20",
    "backend": "llmos-hub bench --backend ${name} --backend pytorch --limit 20   # beside the reference",
    "model": "python -m ${package}.build my-model && llmos-hub bench --model ${name}:my-model --task lm-sample",
    "metric": "llmos-hub bench --task examples/${name}-example.yaml --model nano:translation-sample --limit 20",
}


def _sample_rows(n: int = 20) -> str:
    """``n`` rows of the bundled translation sample, the templates' starter data (licence in the YAML)."""
    from .tasks import BUILTIN_DIR

    rows = (BUILTIN_DIR / "data" / "translation-sample" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    return "\n".join(rows) + "\n"


def render(kind: str, name: str) -> dict[str, str]:
    """The files of the ``kind`` plugin called ``name``: relative path -> text."""
    dist = f"llmos-hub-{name}"
    package = "llmos_hub_" + name.replace("-", "_")
    values = {
        "name": name,
        "dist": dist,
        "package": package,
        "kind": kind,
        "key": name.replace("-", "_"),
        "api_version": API_VERSION,
        "dependencies": json.dumps(["llmos-hub>=0.1,<0.2", *_DEPENDENCIES[kind]]),
        "test_dependencies": json.dumps(["pytest>=8", *_TEST_DEPENDENCIES[kind]]),
        "package_data": json.dumps(_package_data()),
    }
    values["try_it"] = Template(_TRY_IT[kind]).substitute(values)

    def text(path: Path) -> str:
        return Template(path.read_text(encoding="utf-8")).substitute(values)

    files = {
        "pyproject.toml": text(TEMPLATES / "common" / "pyproject.toml.txt"),
        "README.md": text(TEMPLATES / "common" / "README.md.txt"),
        f"{package}/__init__.py": text(TEMPLATES / "common" / "__init__.py.txt"),
    }
    for source, target in _LAYOUT[kind].items():
        files[target.replace("PKG", package).replace("NAME", name)] = text(TEMPLATES / kind / f"{source}.txt")
    if kind == "task":
        files[f"{package}/data/test.jsonl"] = _sample_rows()
    if kind == "metric":
        files["examples/data/test.jsonl"] = _sample_rows()
    return files


def _package_data() -> list[str]:
    """The files the wheel ships beside the code: task YAMLs and data in every format a task reads.

    Derived from the task loader's own suffix table, so a task whose data a newcomer converts to CSV,
    TSV or Parquet (as CONTRIBUTING.md allows) is still in the installed wheel, in subfolders too.
    """
    from .tasks._spec import FILE_SUFFIXES

    return ["*.yaml", *(f"data/**/*{suffix}" for suffix in FILE_SUFFIXES)]


def _refuse_taken_name(kind: str, name: str, host: Any = None) -> None:
    """Refuse a name an installed plugin already uses, before any file is written.

    A second registration of the same name makes every use of it ambiguous ("registered by both"),
    and a distribution named like an installed one (``llmos-hub-nano``) would replace it on
    ``pip install -e .``. Every installed plugin counts, disabled ones included: disabling is temporary.
    """
    from ._registry import KINDS as LABELS

    if host is None:
        from ._plugins import PluginHost

        host = PluginHost().load()  # no --disable-plugin, no autoload switch: everything installed
    table = _REGISTRY_KIND[kind]
    owners = sorted({e.owner.distribution for e in host.registry.entries(table) if e.name == name})
    if owners:
        raise UsageError(f"a {LABELS[table]} named {name!r} is already registered by {' and '.join(owners)}; "
                         "choose another name")
    dist = f"llmos-hub-{name}"
    try:
        version = importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return
    raise UsageError(f"a distribution named {dist} is already installed ({version}); choose another name "
                     "(installing yours would replace it)")


def _name_problem(name: str) -> str:
    """What is wrong with a name ``_NAME`` refuses, so the message does not restate a rule it meets."""
    if not re.fullmatch(r"[a-z0-9-]*", name):
        return "may hold only lowercase letters, digits and '-'"
    if len(name) < 2:
        return "is too short"
    if not name[0].isalpha():
        return "must start with a letter"
    return "must end with a letter or digit"


def scaffold(kind: str, name: str, dest: str | Path = ".", *, host: Any = None) -> list[Path]:
    """Write the ``kind`` plugin called ``name`` under ``dest/llmos-hub-<name>``; returns the files.

    ``host`` is the plugin host whose registrations the name must not collide with (default: every
    installed plugin).
    """
    if kind not in KINDS:
        raise UsageError(f"cannot scaffold {kind!r}; choose one of {', '.join(KINDS)}")
    if not _NAME.match(name):
        raise UsageError(f"plugin name {name!r} {_name_problem(name)}; a name has at least 2 characters, "
                         "lowercase letters, digits and '-', starts with a letter and ends with a letter or "
                         "digit (e.g. my-task)")
    _refuse_taken_name(kind, name, host)
    root = Path(dest) / f"llmos-hub-{name}"
    if root.exists():
        raise UsageError(f"{root} already exists; choose another name or remove it")
    return [atomic_write(root / rel, content) for rel, content in sorted(render(kind, name).items())]
