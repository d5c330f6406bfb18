"""``llmos-hub plugins``: what is installed, what each plugin registers, and why one failed."""

from __future__ import annotations

import click

from . import get_host
from ._output import console, print_json


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (name, version, hooks, status).")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """Show installed plugins, what they register, and their status."""
    host = get_host(ctx)
    conflicts = host.registry.conflicts()
    if as_json:
        from .._registry import conflict_message

        print_json(
            {
                "plugins": [p.to_dict() for p in host.plugins],
                "conflicts": [conflict_message(c) for c in conflicts],
            }
        )
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title="llmos-hub plugins", title_justify="left")
    for column in ("plugin", "distribution", "version", "API", "registers", "status"):
        table.add_column(column)
    for p in host.plugins:
        registers = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in p.registers.items())
        if p.status == "ok":
            status = Text("ok", style="green")
        elif p.status == "disabled":
            status = Text("disabled", style="yellow")
        else:
            status = Text(f"error: {p.error}", style="red")
        table.add_row(Text(p.name), Text(p.distribution), Text(p.version), Text(p.api_version or "-"),
                      Text(registers or "-"), status)
    console().print(table)
    if conflicts:
        from .._registry import conflict_message

        for c in conflicts:
            console().print(Text(f"conflict: {conflict_message(c)}", style="red"))
