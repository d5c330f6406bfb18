"""The plugin host: discovery through real entry points, isolation of broken plugins, collisions."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from llmos_hub import PluginError, UnknownNameError, load_plugins
from llmos_hub.cli import main

from ._fakedist import GOOD_PLUGIN, add_to_path, make_dist


def test_builtins_register_through_the_hooks():
    host = load_plugins(autoload=False)
    builtin = [p for p in host.plugins if p.builtin]
    assert [p.name for p in builtin] == ["llmos_hub.builtins.tasks", "llmos_hub.builtins.metrics"]
    assert all(p.status == "ok" for p in builtin), [p.error for p in builtin]
    assert "register_tasks" in builtin[0].hooks and "register_task_kinds" in builtin[0].hooks
    assert {"classification", "multiple-choice"} <= set(host.registry.names("task_kinds"))


def test_entry_point_plugin_is_discovered(tmp_path, monkeypatch):
    add_to_path(monkeypatch, make_dist(tmp_path, "fake-echo", "fake_echo", GOOD_PLUGIN, ep_name="echo"))
    host = load_plugins()
    info = next(p for p in host.plugins if p.name == "echo")
    assert (info.distribution, info.version, info.status) == ("fake-echo", "1.0", "ok")
    assert info.registers == {"backends": ["echo"]}
    backend = host.get("backends", "echo")
    assert backend.name == "echo"
    assert host.registry.entry("backends", "echo").owner.distribution == "fake-echo"


BROKEN = {
    "import error": ("import not_a_module_anywhere\n", "ModuleNotFoundError"),
    "hook raises": (
        "from llmos_hub import hookimpl\n@hookimpl\ndef register_tasks(register):\n    raise RuntimeError('boom')\n",
        "hook register_tasks raised RuntimeError: boom",
    ),
    "hook returns a value": (
        "from llmos_hub import hookimpl\n@hookimpl\ndef register_models(register):\n    return ['nano']\n",
        "hook register_models returned list",
    ),
    "factory not callable": (
        "from llmos_hub import hookimpl\n@hookimpl\ndef register_metrics(register):\n    register('m', 42)\n",
        "got int, not a callable factory",
    ),
    "unknown hook": (
        "from llmos_hub import hookimpl\n@hookimpl\ndef register_modles(register):\n    pass\n",
        "unknown hook 'register_modles'",
    ),
    "wrong hook arguments": (
        "from llmos_hub import hookimpl\n@hookimpl\ndef register_tasks(register, extra):\n    pass\n",
        "does not match the hook specification",
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_plugin_is_skipped_with_reason(kind, tmp_path, monkeypatch):
    source, reason = BROKEN[kind]
    add_to_path(monkeypatch, make_dist(tmp_path, "fake-broken", "fake_broken", source))
    add_to_path(monkeypatch, make_dist(tmp_path / "good", "fake-echo", "fake_echo", GOOD_PLUGIN))
    host = load_plugins()
    broken = next(p for p in host.plugins if p.name == "fake_broken")
    assert broken.status == "error"
    assert reason in broken.error
    assert "\n" not in broken.error
    assert broken.registers == {}
    # The other plugins are unaffected.
    assert host.get("backends", "echo").name == "echo"
    assert "default" in host.registry.names("suites")


def test_half_registered_plugin_leaks_nothing(tmp_path, monkeypatch):
    source = (
        "from llmos_hub import hookimpl\n"
        "@hookimpl\ndef register_backends(register):\n    register('half', object)\n"
        "@hookimpl\ndef register_tasks(register):\n    raise ValueError('late failure')\n"
    )
    add_to_path(monkeypatch, make_dist(tmp_path, "fake-half", "fake_half", source))
    host = load_plugins()
    assert "half" not in host.registry.names("backends")


def test_strict_mode_reraises(tmp_path, monkeypatch):
    add_to_path(monkeypatch, make_dist(tmp_path, "fake-broken", "fake_broken", "raise ImportError('nope')\n"))
    with pytest.raises(PluginError, match="fake_broken.*nope"):
        load_plugins(strict=True)


def test_factory_returning_wrong_type_is_a_clear_error(tmp_path, monkeypatch):
    source = "from llmos_hub import hookimpl\n@hookimpl\ndef register_backends(register):\n    register('bad', lambda: 'not a backend')\n"
    add_to_path(monkeypatch, make_dist(tmp_path, "fake-bad", "fake_bad", source))
    host = load_plugins()
    with pytest.raises(PluginError, match=r"backend 'bad' from fake-bad 1.0 is str, not a llmos_hub.Backend"):
        host.get("backends", "bad")


def test_name_collision_names_both_distributions(tmp_path, monkeypatch):
    add_to_path(monkeypatch, make_dist(tmp_path / "a", "fake-echo", "fake_echo", GOOD_PLUGIN))
    add_to_path(monkeypatch, make_dist(tmp_path / "b", "fake-echo-two", "fake_echo_two", GOOD_PLUGIN, version="2.0"))
    host = load_plugins()
    with pytest.raises(PluginError) as err:
        host.get("backends", "echo")
    message = str(err.value)
    assert "fake-echo 1.0" in message and "fake-echo-two 2.0" in message
    assert "LLMOS_HUB_DISABLE_PLUGINS=" in message
    assert len(host.registry.conflicts()) == 1
    # Disabling one resolves it, and the disabled plugin is reported as such.
    host = load_plugins(disabled=["fake-echo-two"])
    assert host.get("backends", "echo").name == "echo"
    assert next(p for p in host.plugins if p.distribution == "fake-echo-two").status == "disabled"


def test_disable_through_environment(tmp_path, monkeypatch):
    add_to_path(monkeypatch, make_dist(tmp_path, "fake-echo", "fake_echo", GOOD_PLUGIN, ep_name="echo"))
    monkeypatch.setenv("LLMOS_HUB_DISABLE_PLUGINS", "other, echo")
    host = load_plugins()
    assert "echo" not in host.registry.names("backends")
    assert next(p for p in host.plugins if p.name == "echo").status == "disabled"


def test_autoload_off(tmp_path, monkeypatch):
    add_to_path(monkeypatch, make_dist(tmp_path, "fake-echo", "fake_echo", GOOD_PLUGIN))
    monkeypatch.setenv("LLMOS_HUB_DISABLE_PLUGIN_AUTOLOAD", "1")
    host = load_plugins()
    assert all(p.builtin for p in host.plugins)


def test_unknown_name_suggests_close_matches():
    host = load_plugins()
    with pytest.raises(UnknownNameError, match="unknown suite 'defualt'; did you mean 'default'"):
        host.get("suites", "defualt")


# -- through the CLI ----------------------------------------------------------------------------


def test_cli_plugins_json_shows_broken_plugin_and_list_still_works(tmp_path, monkeypatch):
    add_to_path(monkeypatch, make_dist(tmp_path, "fake-broken", "fake_broken", "raise RuntimeError('cannot start')\n"))
    runner = CliRunner()
    result = runner.invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    broken = next(p for p in data["plugins"] if p["name"] == "fake_broken")
    assert broken["status"] == "error" and broken["error"] == "RuntimeError: cannot start"
    assert broken["distribution"] == "fake-broken" and broken["version"] == "1.0"
    builtin = next(p for p in data["plugins"] if p["name"] == "llmos_hub.builtins.tasks")
    assert builtin["version"] and builtin["status"] == "ok"
    listed = runner.invoke(main, ["list", "suites", "--json"])
    assert listed.exit_code == 0
    assert "default" in [row["name"] for row in json.loads(listed.output)]


def test_cli_plugins_table_shows_reason(tmp_path, monkeypatch):
    add_to_path(monkeypatch, make_dist(tmp_path, "fake-broken", "fake_broken", "raise RuntimeError('cannot start')\n"))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0
    assert "error: RuntimeError: cannot start" in result.output


def test_cli_disable_plugin_option(tmp_path, monkeypatch):
    add_to_path(monkeypatch, make_dist(tmp_path, "fake-echo", "fake_echo", GOOD_PLUGIN, ep_name="echo"))
    result = CliRunner().invoke(main, ["--disable-plugin", "fake-echo", "list", "backends", "--json"])
    assert result.exit_code == 0
    assert "echo" not in [row["name"] for row in json.loads(result.output)]


def test_cli_unknown_name_is_one_line_exit_2():
    result = CliRunner().invoke(main, ["bench", "--task", "defualt"])
    assert result.exit_code == 2
    assert "did you mean 'default'?" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_debug_shows_traceback():
    result = CliRunner().invoke(main, ["--debug", "bench", "--task", "defualt"])
    assert result.exit_code != 0
    assert isinstance(result.exception, UnknownNameError)


def test_cli_version():
    from llmos_hub import __version__

    result = CliRunner().invoke(main, ["--version"])
    assert result.output.strip() == f"llmos-hub {__version__}"


@pytest.mark.parametrize(
    ("args", "hint"),
    [(["bnech"], "unknown command 'bnech'; did you mean 'bench'?"), (["list", "modles"], "did you mean 'models'?")],
)
def test_cli_typos_in_commands_are_one_line(args, hint):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {hint}" or hint in result.output
    assert len(result.output.strip().splitlines()) == 1
