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

import json
import re
from pathlib import Path
from string import Template

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


def scaffold(kind: str, name: str, dest: str | Path = ".") -> list[Path]:
    """Write the ``kind`` plugin called ``name`` under ``dest/llmos-hub-<name>``; returns the files."""
    if kind not in KINDS:
        raise UsageError(f"cannot scaffold {kind!r}; choose one of {', '.join(KINDS)}")
    if not _NAME.match(name):
        raise UsageError(f"plugin name {name!r} must be lowercase letters, digits and '-' (e.g. my-task)")
    root = Path(dest) / f"llmos-hub-{name}"
    if root.exists():
        raise UsageError(f"{root} already exists; choose another name or remove it")
    return [atomic_write(root / rel, content) for rel, content in sorted(render(kind, name).items())]
