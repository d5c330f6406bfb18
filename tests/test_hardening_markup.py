"""Class 6 of issue 13: user text is never rich markup or emoji."""

from __future__ import annotations

from ._hardening import error_lines, fake_cli


def test_markup_in_a_task_path_is_printed_not_parsed(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = fake_cli(monkeypatch, ["bench", "--task", "a[/]b.yaml", "--backend", "fake"])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == ["error: task file a[/]b.yaml does not exist"]
    assert list(tmp_path.iterdir()) == []


def test_emoji_codes_in_user_text_stay_as_typed(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = fake_cli(monkeypatch, ["bench", "--task", "dir/:x:[bold].yaml", "--backend", "fake"])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == ["error: task file dir/:x:[bold].yaml does not exist"]
    assert "\u274c" not in result.stderr


def test_a_registered_description_with_markup_lists_verbatim(monkeypatch):
    import llmos_hub._plugins as plugins

    from llmos_hub import hookimpl

    class Plugin:
        @hookimpl
        def register_suites(self, register):
            register("odd-suite", lambda: [], description="[/] closes :x: nothing [red]")

    real = plugins.load_plugins
    monkeypatch.setattr(plugins, "load_plugins", lambda **k: real(autoload=False, extra=[("odd", Plugin())]))
    monkeypatch.setenv("COLUMNS", "200")
    from click.testing import CliRunner

    from llmos_hub.cli import main

    result = CliRunner().invoke(main, ["list", "suites"])
    assert result.exit_code == 0, result.output
    assert "[/] closes :x: nothing [red]" in result.stdout
