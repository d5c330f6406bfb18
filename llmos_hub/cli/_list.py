"""``llmos-hub list KIND``: the names the installed plugins register."""

from __future__ import annotations

from typing import Any

import click

from .._registry import KINDS
from . import get_host
from ._output import console, plain, print_json


@click.command("list")
@click.argument("kind", metavar="{" + "|".join(sorted(KINDS)) + "}")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_command(ctx: click.Context, kind: str, as_json: bool) -> None:
    """List installed models, tasks, backends, metrics or suites."""
    if kind not in KINDS:
        from ..errors import UnknownNameError

        raise UnknownNameError("kind of thing to list", kind, KINDS)
    host = get_host(ctx)
    rows = [
        {
            "name": e.name,
            "description": e.description,
            "plugin": e.owner.plugin,
            "distribution": e.owner.distribution,
            "version": e.owner.version,
        }
        for e in host.registry.entries(kind)
    ]
    conflicted = {c[0].name for c in host.registry.conflicts() if c[0].kind == kind}
    for row in rows:
        row["conflict"] = row["name"] in conflicted
        if kind == "models":
            row["runnable"] = [] if row["conflict"] else _runnable(host, row["name"])
        if kind == "task_kinds":
            row["formulations"] = [] if row["conflict"] else _formulations(host, row["name"])
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title=kind, title_justify="left")
    extra = {"models": ("ready to run", "runnable"), "task_kinds": ("formulations", "formulations")}.get(kind)
    columns = ("name", "description", *(extra[:1] if extra else ()), "from")
    for column in columns:
        table.add_column(column)
    for row in rows:
        name = plain(f"{row['name']} (conflict)", "red") if row["conflict"] else plain(row["name"])
        cells = [name, plain(row["description"]), plain(f"{row['distribution']} {row['version']}")]
        if extra:
            cells.insert(2, plain("\n".join(row[extra[1]]) or "-"))
        table.add_row(*cells)
    console().print(table)
    if kind == "models":
        console().print("Run one with `llmos-hub bench --model FAMILY:REF`; families also load local folders (FAMILY:/path).")


def _formulations(host: Any, kind_name: str) -> list[str]:
    """``name: description`` of each formulation a task kind declares (what ``--formulation`` may pick)."""
    from .._guard import plugin_call

    kind = host.get("task_kinds", kind_name)
    return [f"{f.name}: {f.description}" if f.description else f.name
            for f in plugin_call(host, "task_kinds", kind_name, "formulations", kind.formulations)]


def _runnable(host: Any, family_name: str) -> list[str]:
    from ..bench._checks import shipped_models

    return shipped_models(host, family_name)
