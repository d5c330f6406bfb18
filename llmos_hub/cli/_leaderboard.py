"""``llmos-hub leaderboard``: boards from local records or a Hub results repo."""

from __future__ import annotations

from pathlib import Path

import click

from . import get_host
from ..errors import UsageError
from ._output import console, err_console


#: file extension -> the format ``-o FILE`` writes when ``--format`` is not given.
_EXTENSIONS = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".csv": "csv", ".json": "json"}


def _output_format(fmt: str | None, output: Path | None) -> str:
    """The format to write: ``--format`` if given, else the one ``-o``'s extension names, else a table.

    Writing markdown into ``board.html`` (the old default) gave a file no browser shows as a board, so an
    extension is honoured, one it cannot write is refused, and a ``--format`` that contradicts it too.
    """
    if output is None:
        return fmt or "table"
    implied = _EXTENSIONS.get(output.suffix.lower())
    if fmt is None:
        if implied is None:
            raise UsageError(f"cannot tell which format to write to {output.name} from its extension; name it "
                             f"{', '.join(_EXTENSIONS)}, or pass --format")
        return implied
    written = "markdown" if fmt == "table" else fmt  # a table written to a file is markdown
    if implied is not None and implied != written:
        raise UsageError(f"--format {fmt} contradicts {output.name}, whose extension means {implied}; drop --format "
                         f"or name the file with a {written} extension")
    return fmt


def _no_records(sources: str, skipped: int) -> UsageError:
    """The error for a board with nothing on it: an empty page is never what the user asked for."""
    why = f" ({skipped} invalid file{'s' if skipped != 1 else ''} skipped, see above)" if skipped else ""
    return UsageError(f"no result records found in {sources}{why}; run `llmos-hub bench` first or point to "
                      "the folders that hold the records")


@click.command()
@click.argument("folders", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv", "json", "html"]), default=None,
              help="Output format [default: table; with -o, the one its extension names (.md, .html, .csv, .json)].")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write to a file (html default: leaderboard.html).")
@click.option("--from-hub", "hub_repo", metavar="NAMESPACE/NAME[@REVISION]", default=None, help="Read the records of a Hub results repo instead of folders.")
@click.option("--endpoint", default=None, help="Hub endpoint (default: HF_ENDPOINT or huggingface.co).")
@click.option("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login).")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Significance level of the rank bands (Holm-corrected per board).")
def leaderboard(folders: tuple[Path, ...], fmt: str | None, output: Path | None, hub_repo: str | None, endpoint: str | None, token: str | None, alpha: float) -> None:
    """Rank result records per task (table, markdown, csv, json, html) from FOLDERS (default: results).

    Rows whose primary scores are not significantly different share a rank band (paired tests where
    the records keep per-example data); baseline rows are marked.
    """
    get_host(click.get_current_context())  # --disable-plugin reaches the metrics records are read with
    from rich.text import Text

    if not 0 < alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1 (exclusive), not {alpha}; 0.05 is usual")
    if hub_repo and folders:
        raise UsageError(f"--from-hub reads the records of {hub_repo} instead of folders; drop "
                         f"{' '.join(map(str, folders))} or --from-hub")
    fmt = _output_format(fmt, output)

    from .._fileio import atomic_write
    from .._result import iter_records
    from ..leaderboard import build_boards, render, rich_tables

    errors: list[str] = []
    if hub_repo:
        from ..hub import fetch_records
        from ..hub._repo import check_repo_id

        repo, _, revision = hub_repo.partition("@")
        check_repo_id(repo, "--from-hub")
        records, errors = fetch_records(repo, revision=revision or None, endpoint=endpoint, token=token)
    else:
        if not folders and not Path("results").exists():  # the default folder bench writes to
            raise UsageError("no results folder here (the default); run `llmos-hub bench` first, or name the "
                             "folders that hold the records: llmos-hub leaderboard FOLDER...")
        records = [r for _, r in iter_records(folders or [Path("results")], errors=errors)]
    for message in errors:
        err_console().print(Text(f"skipped invalid record: {message}", style="yellow"), soft_wrap=True)
    if not records:
        raise _no_records(hub_repo or " ".join(str(f) for f in folders or [Path("results")]), len(errors))
    if fmt == "table" and output is None:
        tables = rich_tables(build_boards(records, alpha=alpha))
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
            raise UsageError(f"cannot write {output} ({exc.strerror or exc}); choose a writable path with -o") from None
        err_console().print(Text(f"wrote {output}"))
