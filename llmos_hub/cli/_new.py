"""``llmos-hub new {task,model,backend,metric} NAME``: scaffold a plugin whose tests pass."""

from __future__ import annotations

from pathlib import Path

import click

from ._output import console, plain


@click.command()
@click.argument("kind", type=click.Choice(["task", "model", "backend", "metric"]))
@click.argument("name")
@click.option("--output", "-o", "dest", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True, help="Folder to create the plugin in.")
def new(kind: str, name: str, dest: Path) -> None:
    """Scaffold a new plugin (task, model, backend or metric) whose conformance tests pass."""
    from .._scaffold import scaffold

    files = scaffold(kind, name, dest)
    root = files[0].parents[len(files[0].relative_to(dest).parts) - 2]
    console().print(plain(f"created {root} ({len(files)} files). Next:\n  cd {root} && pip install -e '.[test]' && pytest"))
