"""The docs point only at files a clone has: every repository path a Markdown file names exists.

A reader follows ``docs/data.md`` or ``tests/hubserver.py`` from the README; a path that exists only on
the machine the docs were written on (a shared notes folder, an absolute ``/work/...`` path) is a dead
end, so it fails here instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = ("llmos_hub/", "plugins/", "tests/", "docs/", "scripts/", "benchmarks/", ".ci/")
#: Where the docs mention files a run writes (the folder is in .gitignore), not files a clone ships.
WRITTEN = "benchmarks/out/"
_SKIP_PARTS = {".git", "build", "dist", "results", "node_modules", ".venv"}
_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
_CODE = re.compile(r"`([^`\s]+)`")


def _markdown_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.md") if not (_SKIP_PARTS & set(p.relative_to(ROOT).parts))
                  and "egg-info" not in str(p))


def _named_paths(md: Path) -> list[tuple[str, Path]]:
    text = md.read_text(encoding="utf-8")
    found: list[tuple[str, Path]] = []
    for target in _LINK.findall(text):
        if not re.match(r"^[a-z]+:", target):
            found.append((target, (md.parent / target)))
    for token in _CODE.findall(text):
        token = token.rstrip(".,:;)")
        if token.startswith(TOP) and not re.search(r"[<>*{}$]|NAME|TASK|FOLDER|\.\.\.", token):
            # Relative to the file's own distribution (a plugin README names its tests/) or to the root.
            found.append((token, md.parent / token if (md.parent / token).exists() else ROOT / token))
    return found


def _exists(path: Path) -> bool:
    """A file or folder, or a test named as ``file.py::name`` whose file defines ``name``."""
    file, _, name = str(path).partition("::")
    if not name:
        return path.exists()
    return Path(file).is_file() and re.search(rf"\b{re.escape(name.split('[')[0])}\b", Path(file).read_text()) is not None


@pytest.mark.parametrize("md", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_a_doc_names_exists_in_the_clone(md):
    text = md.read_text(encoding="utf-8")
    assert "/work/" not in text and "shared/notes" not in text and "../shared" not in text, md
    missing = [name for name, path in _named_paths(md) if not name.startswith(WRITTEN) and not _exists(path)]
    assert not missing, f"{md.relative_to(ROOT)} names files a clone lacks: {missing}"


def test_source_docstrings_name_no_machine_paths():
    offenders = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                 if not (_SKIP_PARTS & set(p.relative_to(ROOT).parts)) and p.name != "test_docs_paths.py"
                 and ("/work/shared" in p.read_text(encoding="utf-8") or "shared/notes/" in p.read_text(encoding="utf-8"))]
    assert not offenders
