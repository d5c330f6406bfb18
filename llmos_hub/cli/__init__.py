"""The ``llmos-hub`` command: a thin layer over the library.

Each command group lives in its own module and is imported only when invoked, and no plugin is loaded
at import time, so ``llmos-hub --help`` stays fast. Errors a user can cause (:class:`LlmosHubError`)
become one red line and the error's exit status; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any

import click

from .._version import __version__
from ..errors import LlmosHubError

__all__ = ["main"]

#: command name -> "module:attribute", imported on first use.
_COMMANDS: dict[str, str] = {
    "bench": "llmos_hub.cli._bench:bench",
    "compare": "llmos_hub.cli._compare:compare",
    "leaderboard": "llmos_hub.cli._leaderboard:leaderboard",
    "list": "llmos_hub.cli._list:list_command",
    "new": "llmos_hub.cli._new:new",
    "plugins": "llmos_hub.cli._plugins:plugins",
    "publish": "llmos_hub.cli._publish:publish",
    "publish-task": "llmos_hub.cli._publish_task:publish_task",
}

_HELP = {
    "bench": "Run tasks on models and backends; write result records.",
    "compare": "Show two records or backends side by side with deltas.",
    "leaderboard": "Rank result records per task (table, markdown, csv, json, html).",
    "list": "List installed models, tasks, backends, metrics or suites.",
    "new": "Scaffold a new plugin (task, model, backend or metric).",
    "plugins": "Show installed plugins, what they register, and their status.",
    "publish": "Publish result records to a dataset repo on the Hugging Face Hub.",
    "publish-task": "Publish a task (YAML, data, dataset card) to a dataset repo on the Hub.",
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported only when used (``--help`` lists them cheaply)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in _COMMANDS if _available(name))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None or not _available(cmd_name):
            return None
        module_name, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return _with_root_options(command)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            from ..errors import UnknownNameError

            raise UnknownNameError("command", name, self.list_commands(ctx))
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Kept for records: the command line as the user typed it (tokens redacted by the command).
        ctx.meta["llmos_hub.argv"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LlmosHubError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            _print_error(str(exc))
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            if ctx.invoked_subcommand == "bench":
                _print_error("interrupted; finished result records are kept (rerun with --resume)")
            else:
                _print_error(f"interrupted; {ctx.invoked_subcommand or 'the command'} stopped before it finished")
            ctx.exit(130)


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        root = ctx.find_root()
        root.ensure_object(dict)
        root.obj["debug"] = True
        os.environ.setdefault("LLMOS_HUB_DEBUG", "1")


def _add_disabled(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> None:
    if value:
        root = ctx.find_root()
        root.ensure_object(dict)
        root.obj["disabled"] = (*root.obj.get("disabled", ()), *value)  # read when the host first loads


def _with_root_options(command: click.Command) -> click.Command:
    """Accept ``--debug`` and ``--disable-plugin`` after the subcommand too (``llmos-hub bench --debug``), as
    users type them and as the messages that suggest them read."""
    def has(flag: str) -> bool:
        return any(isinstance(p, click.Option) and flag in p.opts for p in command.params)

    if not has("--debug"):
        command.params.append(
            click.Option(["--debug"], is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                         help="Show tracebacks instead of one-line errors (same as llmos-hub --debug).")
        )
    if not has("--disable-plugin"):
        command.params.append(
            click.Option(["--disable-plugin"], multiple=True, metavar="NAME", expose_value=False, is_eager=True,
                         callback=_add_disabled,
                         help="Skip a plugin; repeatable (same as llmos-hub --disable-plugin NAME).")
        )
    return command


def _available(name: str) -> bool:
    module_name = _COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(module_name) is not None


def _print_error(message: str) -> None:
    from ._output import err_console, esc

    err_console().print(f"[bold red]error:[/] {esc(message)}", highlight=False, markup=True, soft_wrap=True)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="llmos-hub", message="%(prog)s %(version)s")
@click.option(
    "--disable-plugin",
    "disabled",
    multiple=True,
    metavar="NAME",
    help="Skip a plugin (entry-point or distribution name); repeatable. Adds to LLMOS_HUB_DISABLE_PLUGINS.",
)
@click.option("--strict-plugins", is_flag=True, help="Fail on the first broken plugin instead of skipping it.")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, disabled: tuple[str, ...], strict_plugins: bool, debug: bool) -> None:
    """llmos-hub: benchmark models on shared tasks, compare backends, publish results."""
    ctx.ensure_object(dict)
    ctx.obj.update(disabled=disabled, strict=strict_plugins or None, debug=debug)
    if debug:
        os.environ.setdefault("LLMOS_HUB_DEBUG", "1")


def get_host(ctx: click.Context) -> Any:
    """The plugin host for this invocation, loaded once on first use."""
    root = ctx.find_root()
    root.ensure_object(dict)
    host = root.obj.get("host")
    if host is None:
        from .._plugins import check_disabled_names, load_plugins, set_default_host

        disabled = root.obj.get("disabled", ())
        host = load_plugins(disabled=disabled, strict=root.obj.get("strict"))
        check_disabled_names(host, disabled)
        set_default_host(host)
        root.obj["host"] = host
    return host

