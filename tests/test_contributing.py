"""CONTRIBUTING.md runs as written: its ``bash`` blocks, in order, in a temporary folder.

The one ``console`` block (clone, install the requirements, run the whole suite) is the reader's set-up
and is what this test runs inside; every other shell block is executed by one ``bash -euo pipefail``. The
guide's ``pip install -e`` goes into a throw-away virtual environment that sees this interpreter's
packages (``--system-site-packages``, offline), never into the shared one, and its publish step goes to
the loopback Hub (``tests/hubserver.py``) with a token only that server accepts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
TOKEN = "hf_contributing_guide_token"


def blocks() -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in _FENCE.findall(GUIDE.read_text(encoding="utf-8"))]


def test_every_shell_block_but_the_setup_is_executed():
    kinds = [lang for lang, _ in blocks()]
    not_run = [body for lang, body in blocks() if lang in ("console", "sh", "shell", "")]  # python blocks are code
    assert kinds.count("bash") >= 3
    assert len(not_run) == 1 and "git clone" in not_run[0] and "requirements-dev.txt" in not_run[0]


def _venv(root: Path) -> Path:
    """A virtual environment over this interpreter's packages, with ``pip``, ``pytest`` and ``llmos-hub``
    commands that run in it (the system's scripts would run the system interpreter)."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True, timeout=300)
    bin_dir = venv / "bin"
    python = bin_dir / "python"
    scripts = {
        "pip": f'exec "{sys.executable}" -m pip --python "{python}" "$@"',
        "pytest": f'exec "{python}" -m pytest -p no:cacheprovider "$@"',
        "llmos-hub": f'exec "{python}" -m llmos_hub "$@"',
    }
    for name, line in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{line}\n")
        path.chmod(0o755)
    return venv


@pytest.mark.slow
def test_the_guide_runs_as_written(hub, tmp_path):
    hub.tokens = {TOKEN}
    hub.create_repo("me/my-model", repo_type="model")  # the reader's model repo exists already
    venv = _venv(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = dict(
        os.environ,
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        VIRTUAL_ENV=str(venv),
        HF_TOKEN=TOKEN,  # HF_ENDPOINT points at the loopback Hub (the hub fixture)
        PIP_NO_INDEX="1",
        PIP_NO_BUILD_ISOLATION="0",  # pip reads "0" as: build with the installed setuptools, offline
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        LLMOS_HUB_CACHE=str(tmp_path / "cache"),
        COLUMNS="160",
    )
    script = "\n".join(body for lang, body in blocks() if lang == "bash")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env, capture_output=True,
                          text=True, timeout=3000)
    assert done.returncode == 0, f"the guide failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"

    # Section 2: the default suite and the backend comparison wrote records; the board was written.
    records = [json.loads(p.read_text()) for p in (work / "results").glob("*.json")]
    assert {r["task"]["name"] for r in records} >= {"lm-sample", "classification-sample", "translation-sample", "summarization-sample"}
    assert {r["backend"]["name"] for r in records if r["task"]["name"] == "translation-sample"} == {"pytorch", "onnxruntime"}
    assert "<svg" in (work / "leaderboard.html").read_text()
    assert "nano:lm-sample" in done.stdout  # `list models` showed the runnable references
    # Section 3: four plugins generated; the task plugin installed into the venv, its tests passed, it ran.
    assert sorted(p.name for p in work.glob("llmos-hub-*")) == [
        "llmos-hub-my-backend", "llmos-hub-my-family", "llmos-hub-my-metric", "llmos-hub-my-task"]
    assert list((venv / "lib").glob("python*/site-packages/llmos_hub_my_task-0.1.0.dist-info"))
    assert re.search(r"\d+ passed", done.stdout)
    assert any(r["task"]["name"] == "my-task" for r in (json.loads(p.read_text()) for p in (work / "results").glob("*.json")))
    # Section 4: the records are on the Hub, and one model's scores on its card.
    published = hub.files("me/llmos-results")
    assert sum(name.startswith("records/") for name in published) == len(list((work / "results").glob("*.json")))
    card = hub.files("me/my-model", repo_type="model")["README.md"].decode()
    assert "model-index" in card and "translation-sample" in card
    assert "translation-sample v1" in done.stdout  # the leaderboard read back from the Hub
