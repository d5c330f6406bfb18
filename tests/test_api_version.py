"""Hook specs carry a plugin API version; a plugin declaring one the host does not support is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmos_hub import PluginError, load_plugins
from llmos_hub.cli import main
from llmos_hub.hookspecs import API_VERSION, API_VERSION_ATTRIBUTE

from ._fakedist import GOOD_PLUGIN, add_to_path, make_dist

MAJOR, MINOR = (int(p) for p in API_VERSION.split("."))


def _echo_declaring(version: str | None) -> str:
    line = "" if version is None else f"\n    {API_VERSION_ATTRIBUTE} = {version!r}\n"  # GOOD_PLUGIN is indented
    return GOOD_PLUGIN + line


def _info(tmp_path, monkeypatch, version):
    add_to_path(monkeypatch, make_dist(tmp_path, "fake-echo", "fake_echo", _echo_declaring(version), ep_name="echo"))
    host = load_plugins()
    return host, next(p for p in host.plugins if p.name == "echo")


@pytest.mark.parametrize("version", [None, API_VERSION, f"{MAJOR}.0"])
def test_a_supported_or_undeclared_version_loads(version, tmp_path, monkeypatch):
    host, info = _info(tmp_path, monkeypatch, version)
    assert info.status == "ok", info.error
    assert info.api_version == version
    assert host.get("backends", "echo").name == "echo"


@pytest.mark.parametrize(
    "version, fix",
    [
        (f"{MAJOR - 1}.9", f"update the plugin to API {MAJOR}.x"),
        (f"{MAJOR + 1}.0", "upgrade llmos-hub"),
        (f"{MAJOR}.{MINOR + 1}", "upgrade llmos-hub"),
    ],
)
def test_an_unsupported_version_is_refused_naming_both(version, fix, tmp_path, monkeypatch):
    host, info = _info(tmp_path, monkeypatch, version)
    assert info.status == "error"
    assert f"plugin API {version}" in info.error and f"supports API {API_VERSION}" in info.error
    assert fix in info.error and "\n" not in info.error
    assert "echo" not in host.registry.names("backends")  # refused before any hook ran
    assert "default" in host.registry.names("suites")  # the others are unaffected


@pytest.mark.parametrize("version", ["2", "two", "2.0.1", 2.0])
def test_a_malformed_version_is_refused(version, tmp_path, monkeypatch):
    _, info = _info(tmp_path, monkeypatch, version)
    assert info.status == "error" and "is not a 'MAJOR.MINOR' version" in info.error


def test_strict_mode_and_the_plugins_command_name_both_versions(tmp_path, monkeypatch):
    add_to_path(monkeypatch, make_dist(tmp_path, "fake-echo", "fake_echo", _echo_declaring("1.0"), ep_name="echo"))
    with pytest.raises(PluginError, match=rf"plugin echo \(fake-echo\): written for plugin API 1.0, but this llmos-hub supports API {API_VERSION}"):
        load_plugins(strict=True)
    result = CliRunner().invoke(main, ["plugins", "--json"])
    echo = next(p for p in json.loads(result.stdout)["plugins"] if p["name"] == "echo")
    assert echo["status"] == "error" and "API 1.0" in echo["error"]


def test_the_bundled_plugins_declare_the_current_version():
    shipped = {"llmos-hub", *(p.name for p in (Path(__file__).resolve().parents[1] / "plugins").iterdir() if p.is_dir())}
    host = load_plugins()
    bundled = {p.distribution: p.api_version for p in host.plugins if p.distribution in shipped}
    assert bundled and set(bundled.values()) == {API_VERSION}, bundled
