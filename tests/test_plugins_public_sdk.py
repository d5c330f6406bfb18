"""Plugins use only the public SDK: no ``llmos_hub._private`` module, only names a module's ``__all__`` lists.

The bundled plugins are the examples contributors copy; if they reach into private modules, so will
every plugin written from them, and a refactoring of the core breaks them all.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for p in (ROOT / "plugins").glob("*/llmos_hub_*/**/*.py"))


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "llmos_hub":
            found.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "llmos_hub"]
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT / "plugins")))
def test_plugin_source_imports_only_public_names(path):
    problems = []
    for line, module, names in _imports(path):
        if any(part.startswith("_") for part in module.split(".")):
            problems.append(f"line {line}: private module {module}")
            continue
        public = getattr(importlib.import_module(module), "__all__", None)
        for name in names:
            if public is not None and name not in public:
                problems.append(f"line {line}: {module}.{name} is not in {module}.__all__")
    assert not problems, f"{path.relative_to(ROOT)}: " + "; ".join(problems)


def test_there_are_plugin_sources_to_check():
    assert len(SOURCES) > 20
