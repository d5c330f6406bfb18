"""``llmos-hub new``: every template installs with pip, passes its own tests and runs in ``llmos-hub bench``.

Done as a newcomer would, in a temporary folder: generate, ``pip install`` (into a ``--target`` folder put
on ``PYTHONPATH``, offline: ``--no-deps --no-build-isolation --no-index``), run the plugin's tests with
pytest in its own folder, then benchmark what it registers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmos_hub.cli import main

#: kind -> (plugin name, bench arguments run after installing; ``{root}`` is the plugin's folder).
BENCH = {
    "task": ("my-task", ["--task", "my-task", "--model", "nano:translation-sample"]),
    "backend": ("my-backend", ["--backend", "my-backend", "--task", "classification-sample"]),
    "model": ("my-model", ["--model", "my-model:{root}/bigram", "--task", "lm-sample"]),
    "metric": ("my-metric", ["--task", "{root}/examples/my-metric-example.yaml", "--model", "nano:translation-sample"]),
}


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(BENCH))
def test_template_installs_passes_its_tests_and_runs_in_bench(kind, tmp_path):
    name, bench_args = BENCH[kind]
    result = CliRunner().invoke(main, ["new", kind, name, "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / f"llmos-hub-{name}"
    assert f'{name} = "llmos_hub_{name.replace("-", "_")}.plugin"' in (root / "pyproject.toml").read_text()

    site = tmp_path / "site"
    pip = _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                "--target", str(site), str(root)], dict(os.environ), tmp_path)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
               LLMOS_HUB_CACHE=str(tmp_path / "cache"))

    plugins = _run([sys.executable, "-m", "llmos_hub", "plugins", "--json"], env, tmp_path)
    info = next(p for p in json.loads(plugins.stdout)["plugins"] if p["name"] == name)
    assert info["status"] == "ok" and info["distribution"] == f"llmos-hub-{name}", info

    tests = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], env, root)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert " passed" in tests.stdout and "failed" not in tests.stdout

    if kind == "model":
        built = _run([sys.executable, "-m", f"llmos_hub_{name.replace('-', '_')}.build", str(root / "bigram")], env, root)
        assert built.returncode == 0, built.stderr
    args = [a.format(root=root) for a in bench_args]
    bench = _run([sys.executable, "-m", "llmos_hub", "bench", *args, "--limit", "4", "--json", "--quiet",
                  "--output-dir", str(tmp_path / "results")], env, root)
    assert bench.returncode == 0, bench.stdout[-2000:] + bench.stderr[-2000:]
    (record,) = json.loads(bench.stdout)
    assert record["task"]["num_examples"] == 4
    used = {"task": record["task"]["name"], "backend": record["backend"]["name"], "model": record["model"]["family"],
            "metric": record["task"]["primary_metric"]}
    assert used[kind] == {"task": name, "backend": name, "model": name, "metric": "my_metric"}[kind]
    value = record["scores"][record["task"]["primary_metric"]]["value"]
    assert value == value  # a number, not NaN


def test_new_writes_each_kind_with_its_api_version_and_no_heavy_import(tmp_path):
    from llmos_hub.hookspecs import API_VERSION

    for kind, (name, _) in BENCH.items():
        result = CliRunner().invoke(main, ["new", kind, name, "--output", str(tmp_path)])
        assert result.exit_code == 0, result.output
        plugin = (tmp_path / f"llmos-hub-{name}" / f"llmos_hub_{name.replace('-', '_')}" / "plugin.py").read_text()
        assert f'LLMOS_HUB_API_VERSION = "{API_VERSION}"' in plugin
        top_level = [line for line in plugin.splitlines() if line.startswith(("import ", "from "))]
        assert all("torch" not in line for line in top_level), top_level


def test_new_refuses_bad_names_and_existing_folders(tmp_path):
    bad = CliRunner().invoke(main, ["new", "task", "My Task", "--output", str(tmp_path)])
    assert bad.exit_code == 2 and "lowercase" in bad.output
    assert CliRunner().invoke(main, ["new", "task", "ok-name", "--output", str(tmp_path)]).exit_code == 0
    again = CliRunner().invoke(main, ["new", "task", "ok-name", "--output", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
    unknown = CliRunner().invoke(main, ["new", "widget", "x-y", "--output", str(tmp_path)])
    assert unknown.exit_code == 2
