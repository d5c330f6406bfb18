"""``bench --push-to-hub``: records land locally first; a failed publish keeps them and prints the retry."""

from __future__ import annotations

import json
import shlex

from click.testing import CliRunner

from llmos_hub.cli import main

from ._fakes import FakePlugin


def _fake_host(monkeypatch):
    import llmos_hub._plugins as plugins

    real = plugins.load_plugins
    monkeypatch.setattr(
        plugins, "load_plugins",
        lambda **kw: real(autoload=False, extra=[("fake-plugin", FakePlugin())], **{k: v for k, v in kw.items() if k not in {"autoload", "extra"}}),
    )


def test_bench_pushes_to_hub_after_writing_records(hub, tmp_path, monkeypatch):
    _fake_host(monkeypatch)
    out = tmp_path / "out"
    args = ["bench", "--model", "fake:upper", "--task", "upper", "--backend", "fake", "--output-dir", str(out),
            "--push-to-hub", "me/results", "--endpoint", hub.url, "--token", "hf_secret_token_123"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    local = list(out.glob("*.json"))
    assert len(local) == 1
    files = hub.files("me/results")
    assert files[f"records/{local[0].name}"] == local[0].read_bytes()
    assert "README.md" in files
    # The token never reaches the record (its command line is redacted).
    assert "hf_secret_token_123" not in local[0].read_text()
    command = shlex.split(json.loads(local[0].read_text())["command"])
    assert command[:2] == ["llmos-hub", "bench"] and command[-2:] == ["--token", "***"]


def test_failed_publish_keeps_records_and_prints_retry(hub, tmp_path, monkeypatch):
    _fake_host(monkeypatch)
    hub.inject(403, times=100, message="no write access")
    out = tmp_path / "out"
    args = ["bench", "--model", "fake:upper", "--task", "upper", "--backend", "fake", "--output-dir", str(out),
            "--push-to-hub", "me/results", "--endpoint", hub.url, "--token", "hf_secret_token_123"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "publish failed" in result.output
    assert "hf_secret_token_123" not in result.output
    local = list(out.glob("*.json"))
    assert len(local) == 1  # nothing computed was lost
    retry = next(line for line in result.output.splitlines() if "retry with:" in line).split("retry with: ", 1)[1]
    argv = shlex.split(retry)
    assert argv[:2] == ["llmos-hub", "publish"] and str(local[0]) in argv and "me/results" in argv
    # The printed command works once the Hub accepts the upload again.
    hub.injections.clear()
    again = CliRunner().invoke(main, argv[1:] + ["--token", "hf_secret_token_123"])
    assert again.exit_code == 0, again.output
    assert f"records/{local[0].name}" in hub.files("me/results")
