"""``llmos-hub list KIND``: the names the installed plugins register."""

from __future__ import annotations

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
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title=kind, title_justify="left")
    for column in ("name", "description", "from"):
        table.add_column(column)
    for row in rows:
        name = plain(f"{row['name']} (conflict)", "red") if row["conflict"] else plain(row["name"])
        table.add_row(name, plain(row["description"]), plain(f"{row['distribution']} {row['version']}"))
    console().print(table)
