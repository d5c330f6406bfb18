"""Helpers for the hardening tests (issue 13): run the real CLI and split its streams.

``run_cli`` runs ``python -m llmos_hub`` in a subprocess, so a fault that ends the process (a plugin
calling ``sys.exit``, a hang) is seen exactly as a user sees it; ``fake_cli`` drives click in process
with the test doubles of ``_fakes.py`` registered, for the cheap cases.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
            extra_path: list[Path] = (), timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``llmos-hub ARGS`` in a fresh interpreter; ``extra_path`` goes first on PYTHONPATH."""
    environ = dict(os.environ)
    environ.update(env or {})
    paths = [str(p) for p in extra_path] + [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    environ["PYTHONPATH"] = os.pathsep.join(paths)
    environ.setdefault("COLUMNS", "200")
    return subprocess.run([sys.executable, "-P", "-m", "llmos_hub", *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=timeout)


def fake_cli(monkeypatch: Any, args: list[str], **kw: Any) -> Any:
    """``llmos-hub ARGS`` through click, with the fake model/backend/tasks plugin and no autoload."""
    import llmos_hub._plugins as plugins

    from ._fakes import FakePlugin

    real = plugins.load_plugins
    monkeypatch.setattr(plugins, "load_plugins", lambda **k: real(
        autoload=False, extra=[("fake-plugin", FakePlugin())],
        **{a: b for a, b in k.items() if a not in {"autoload", "extra"}}))
    monkeypatch.setenv("COLUMNS", "200")
    from llmos_hub.cli import main

    return CliRunner().invoke(main, args, **kw)


def error_lines(text: str) -> list[str]:
    """The non-empty lines of a stream."""
    return [line for line in text.splitlines() if line.strip()]
