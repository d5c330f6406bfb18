"""``llmos-hub leaderboard``: boards from local records or a Hub results repo."""

from __future__ import annotations

from pathlib import Path

import click

from ._output import console, err_console


@click.command()
@click.argument("folders", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv", "json", "html"]), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write to a file (html default: leaderboard.html).")
@click.option("--from-hub", "hub_repo", metavar="NAMESPACE/NAME[@REVISION]", default=None, help="Read the records of a Hub results repo instead of folders.")
@click.option("--endpoint", default=None, help="Hub endpoint (default: HF_ENDPOINT or huggingface.co).")
@click.option("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login).")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Significance level of the rank bands (Holm-corrected per board).")
def leaderboard(folders: tuple[Path, ...], fmt: str, output: Path | None, hub_repo: str | None, endpoint: str | None, token: str | None, alpha: float) -> None:
    """Rank result records per task (table, markdown, csv, json, html).

    Rows whose primary scores are not significantly different share a rank band (paired tests where
    the records keep per-example data); baseline rows are marked.
    """
    from rich.text import Text

    from ..errors import UsageError

    if not 0 < alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1 (exclusive), not {alpha}; 0.05 is usual")

    from .._fileio import atomic_write
    from .._result import iter_records
    from ..leaderboard import build_boards, render, rich_tables

    errors: list[str] = []
    if hub_repo:
        from ..hub import fetch_records

        repo, _, revision = hub_repo.partition("@")
        records, errors = fetch_records(repo, revision=revision or None, endpoint=endpoint, token=token)
    else:
        records = [r for _, r in iter_records(folders or [Path("results")], errors=errors)]
    for message in errors:
        err_console().print(Text(f"skipped invalid record: {message}", style="yellow"), soft_wrap=True)
    if fmt == "table" and output is None:
        tables = rich_tables(build_boards(records, alpha=alpha))
        if not tables:
            console().print("No result records found.")
        for table in tables:
            console().print(table)
        return
    text = render(records, "markdown" if fmt == "table" else fmt, alpha=alpha)
    if fmt == "html" and output is None:
        output = Path("leaderboard.html")
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            atomic_write(output, text)
        except OSError as exc:
            from ..errors import UsageError

            raise UsageError(f"cannot write {output} ({exc.strerror or exc}); choose a writable path with -o") from None
        err_console().print(Text(f"wrote {output}"))
