"""Fake installed distributions: a module plus a dist-info folder with ``entry_points.txt``.

Putting the folder on ``sys.path`` (or ``PYTHONPATH`` for a subprocess) makes
``importlib.metadata.entry_points(group="llmos_hub")`` discover the plugin exactly as it would a
pip-installed one, without installing anything.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path


def make_dist(root: Path, dist: str, module: str, source: str, *, ep_name: str | None = None, version: str = "1.0") -> Path:
    """Write ``module.py`` and ``dist-version.dist-info`` under ``root``; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[llmos_hub]\n{ep_name or module} = {module}\n", encoding="utf-8")
    return root


GOOD_PLUGIN = """
    from llmos_hub import hookimpl, Backend, Runner

    class _EchoRunner(Runner):
        def __init__(self, model):
            self.model = model

    class EchoBackend(Backend):
        name = "echo"
        def prepare(self, model, *, device="cpu", dtype="float32", options=None):
            return _EchoRunner(model)

    @hookimpl
    def register_backends(register):
        register("echo", EchoBackend, description="answers nothing, for tests")
"""


def add_to_path(monkeypatch, root: Path) -> None:
    monkeypatch.syspath_prepend(str(root))
    # Forget modules of an earlier test that used the same module name.
    for name in list(sys.modules):
        if name.startswith("fake_"):
            del sys.modules[name]
