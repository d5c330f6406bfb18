"""Class 3 of issue 13: no plugin can take the host down, corrupt stdout, hang silently or trace back.

Faults that end or hang a process are injected in a fake installed distribution and observed on a
real ``llmos-hub`` subprocess, exactly as a user would see them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from llmos_hub import Capability, ModelFamily, Task, hookimpl

from ._fakedist import GOOD_PLUGIN, make_dist
from ._hardening import error_lines, fake_cli, run_cli

ENV = {"LLMOS_HUB_DISABLE_PLUGINS": "llmos-hub-onnxruntime,llmos-hub-transformers,llmos-hub-pytorch,llmos-hub-nano"}

EXITING = {
    "sys.exit at import": ("import sys\nsys.exit(3)\n", "SystemExit(3) raised while loading"),
    "SystemExit(0) at import": ("raise SystemExit(0)\n", "SystemExit(0) raised while loading"),
    "KeyboardInterrupt at import": ("raise KeyboardInterrupt\n", "KeyboardInterrupt() raised while loading"),
    "sys.exit in a hook": (
        "import sys\nfrom llmos_hub import hookimpl\n@hookimpl\ndef register_tasks(register):\n    sys.exit(0)\n",
        "SystemExit(0) raised while loading"),
    "KeyboardInterrupt in a hook": (
        "from llmos_hub import hookimpl\n@hookimpl\ndef register_metrics(register):\n    raise KeyboardInterrupt('x')\n",
        "KeyboardInterrupt(x) raised while loading"),
}


@pytest.mark.parametrize("case", sorted(EXITING))
def test_a_plugin_that_ends_the_process_is_a_plugin_failure(tmp_path, case):
    source, reason = EXITING[case]
    root = make_dist(tmp_path / "dists", "fake-exiter", "fake_exiter", source, ep_name="exiter")
    make_dist(root, "fake-echo", "fake_echo", GOOD_PLUGIN, ep_name="echo")
    result = run_cli(["plugins", "--json"], extra_path=[root], env=ENV)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert plugins["exiter"]["status"] == "error"
    assert plugins["exiter"]["error"] == f"{reason}; a plugin must not end the process"
    assert plugins["echo"]["status"] == "ok"  # the others still load
    listed = run_cli(["list", "backends", "--json"], extra_path=[root], env=ENV)
    assert listed.returncode == 0 and "echo" in [r["name"] for r in json.loads(listed.stdout)]


def test_a_plugin_that_prints_at_import_never_reaches_stdout(tmp_path):
    source = ("import os, sys\nprint('hello from a chatty plugin')\nsys.stdout.write('more chatter\\n')\n"
              "os.write(1, b'fd-level chatter\\n')\n" + textwrap.dedent(GOOD_PLUGIN))
    root = make_dist(tmp_path / "dists", "fake-chatty", "fake_chatty", source, ep_name="chatty")
    result = run_cli(["list", "backends", "--json"], extra_path=[root], env=ENV)
    assert result.returncode == 0, result.stderr
    rows = [r for r in json.loads(result.stdout) if r["plugin"] == "chatty"]
    assert rows == [{"name": "echo", "description": "answers nothing, for tests", "plugin": "chatty",
                     "distribution": "fake-chatty", "version": "1.0", "conflict": False}]
    for text in ("hello from a chatty plugin", "more chatter", "fd-level chatter"):
        assert text in result.stderr


def test_a_slow_plugin_import_is_named_with_how_to_disable_it(tmp_path):
    root = make_dist(tmp_path / "dists", "fake-slow", "fake_slow", "import time\ntime.sleep(3)\n" + textwrap.dedent(GOOD_PLUGIN),
                     ep_name="slow")
    result = run_cli(["list", "backends", "--json"], extra_path=[root],
                     env={**ENV, "LLMOS_HUB_PLUGIN_SLOW_SECONDS": "0.3"})
    assert result.returncode == 0, result.stderr
    assert error_lines(result.stderr) == [
        "warning: plugin slow (fake-slow) is still loading after 0.3 s; if it hangs, disable it with "
        "--disable-plugin slow or LLMOS_HUB_DISABLE_PLUGINS=slow"]
    assert "echo" in [r["name"] for r in json.loads(result.stdout)]


def test_a_users_ctrl_c_during_a_hanging_import_still_stops_the_command(tmp_path):
    root = make_dist(tmp_path / "dists", "fake-hang", "fake_hang", "import time\ntime.sleep(300)\n", ep_name="hang")
    env = dict(os.environ, **ENV, LLMOS_HUB_PLUGIN_SLOW_SECONDS="0.2")
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-P", "-m", "llmos_hub", "list", "backends", "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()  # the watchdog's warning: the plugin is now inside its import
        assert first.startswith("warning: plugin hang (fake-hang) is still loading")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert out == ""
    assert error_lines(err)[-1].startswith("error: interrupted")


class _RaisingFamily(ModelFamily):
    name = "raising"

    def load(self, ref, *, revision=None):  # pragma: no cover - never reached: the plan refuses first
        raise AssertionError("loaded")

    def capabilities(self, ref):
        raise RuntimeError("config parser exploded\nsecond line")


class _RaisingTask(Task):
    name = "raising-task"
    version = "1"
    capability = Capability.CAUSAL_LM
    primary_metric = "x"

    def load(self, *, split=None, limit=None, seed=0):
        raise KeyError("no column 'text'")

    def formulations(self):  # pragma: no cover
        raise AssertionError

    def requests(self, example, formulation):  # pragma: no cover
        raise AssertionError

    def score(self, examples, outputs, *, labels=None, seed=0):  # pragma: no cover
        raise AssertionError


class _RaisingPlugin:
    @hookimpl
    def register_models(self, register):
        register("raising", _RaisingFamily)

    @hookimpl
    def register_tasks(self, register):
        register("raising-task", _RaisingTask)


def _cli_with(monkeypatch, args):
    import llmos_hub._plugins as plugins

    from ._fakes import FakePlugin

    real = plugins.load_plugins
    monkeypatch.setattr(plugins, "load_plugins", lambda **k: real(
        autoload=False, extra=[("fake-plugin", FakePlugin()), ("raising-plugin", _RaisingPlugin())]))
    from click.testing import CliRunner

    from llmos_hub.cli import main

    return CliRunner().invoke(main, args)


def test_capabilities_raising_at_plan_time_is_one_line_naming_the_plugin(monkeypatch, tmp_path):
    result = _cli_with(monkeypatch, ["bench", "--model", "raising:x", "--task", "text", "--backend", "fake",
                                     "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert error_lines(result.stderr) == [
        "error: plugin raising-plugin (raising-plugin): inspect() of model family 'raising' raised "
        "RuntimeError: config parser exploded second line; report it to raising-plugin or disable it with "
        "--disable-plugin raising-plugin"]
    assert not (tmp_path / "out").exists()


def test_task_load_raising_at_plan_time_is_one_line_naming_the_plugin(monkeypatch, tmp_path):
    result = _cli_with(monkeypatch, ["bench", "--model", "fake:lm", "--task", "raising-task", "--backend", "fake",
                                     "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    [line] = error_lines(result.stderr)
    assert line.startswith("error: plugin raising-plugin (raising-plugin): load() of task 'raising-task' raised "
                           "KeyError: \"no column 'text'\"")
    assert not (tmp_path / "out").exists()
