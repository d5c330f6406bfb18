"""``llmos-hub new``: the generated plugin is discovered through its entry point and its own test passes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from llmos_hub.cli import main


def _as_installed(root, dist, package, entry):
    """Make a dist-info beside the package, as pip would, so entry-point discovery finds it."""
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[llmos_hub]\n{entry} = {package}.plugin\n")


def test_new_task_plugin_is_discovered_and_its_test_passes(tmp_path):
    result = CliRunner().invoke(main, ["new", "task", "my-task", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / "llmos-hub-my-task"
    assert (root / "pyproject.toml").read_text().count('my-task = "llmos_hub_my_task.plugin"') == 1
    _as_installed(root, "llmos-hub-my-task", "llmos_hub_my_task", "my-task")
    env = dict(os.environ, PYTHONPATH=str(root))
    listed = subprocess.run([sys.executable, "-m", "llmos_hub", "list", "tasks", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert '"name": "my-task"' in listed.stdout, listed.stderr
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")], capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout


def test_new_refuses_bad_names_and_existing_folders(tmp_path):
    bad = CliRunner().invoke(main, ["new", "task", "My Task", "--output", str(tmp_path)])
    assert bad.exit_code == 2 and "lowercase" in bad.output
    assert CliRunner().invoke(main, ["new", "task", "ok-name", "--output", str(tmp_path)]).exit_code == 0
    again = CliRunner().invoke(main, ["new", "task", "ok-name", "--output", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
