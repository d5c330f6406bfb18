"""``llmos-hub publish``: put result records on the Hub (a thin layer over :func:`llmos_hub.hub.publish`)."""

from __future__ import annotations

from pathlib import Path

import click

from . import get_host
from ._output import err_console, print_json


@click.command("publish")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--repo", required=True, metavar="NAMESPACE/NAME", help="The results dataset repo (created if missing).")
@click.option("--create-pr", is_flag=True, help="Open a pull request instead of committing to main.")
@click.option("--model-card", metavar="NAMESPACE/MODEL", default=None,
              help="Also put the scores on this model repo's card (model-index and .eval_results/).")
@click.option("--with-samples", is_flag=True,
              help="Also upload the samples file each record names (bench --log-samples), in the same commit.")
@click.option("--endpoint", default=None, help="Hub endpoint (default: HF_ENDPOINT or huggingface.co).")
@click.option("--token", default=None, help="Hub token (default: HF_TOKEN, then the saved `hf auth login`).")
@click.option("--json", "as_json", is_flag=True, help="Print what was committed as JSON.")
def publish(
    paths: tuple[Path, ...],
    repo: str,
    create_pr: bool,
    model_card: str | None,
    with_samples: bool,
    endpoint: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Publish result records (files or folders) to a dataset repo on the Hugging Face Hub.

    One commit holds the new records, a regenerated leaderboard card and a flat
    data/results.jsonl; records already there byte for byte make no commit.
    """
    get_host(click.get_current_context())  # --disable-plugin reaches the metrics records are read with
    from rich.text import Text

    from ..hub import publish as publish_records

    result = publish_records(
        list(paths), repo=repo, endpoint=endpoint, token=token, create_pr=create_pr, model_card=model_card,
        with_samples=with_samples,
    )
    for problem in result.skipped:
        err_console().print(Text(f"skipped invalid record already in the repo: {problem}", style="yellow"), soft_wrap=True)
    if result.local_tasks:
        err_console().print(Text(local_task_note(result.local_tasks, repo), style="yellow"), soft_wrap=True)
    if as_json:
        print_json(result.to_dict())
        return
    if not result.published:
        click.echo(f"nothing to publish: the records are already there ({repo})")
        return
    if result.commit_url:
        what = "opened pull request" if result.pr_url else "committed"
        click.echo(f"{what} {result.pr_url or result.commit_url}")
        for name in result.files:
            click.echo(f"  {name}")
    else:
        click.echo(f"records already in {repo}; nothing to commit there")
    if result.model_commit_url:
        what = "opened pull request" if result.model_pr_url else "committed"
        click.echo(f"{what} {result.model_pr_url or result.model_commit_url} (model card of {result.model_repo})")
        for name in result.model_files:
            click.echo(f"  {name}")


def local_task_note(tasks: list[str], repo: str) -> str:
    """The one line that says what a model card names for tasks that are not on the Hub, and the fix."""
    names = ", ".join(tasks)
    first = tasks[0]
    return (f"note: {names} {'is a local task' if len(tasks) == 1 else 'are local tasks'}, so the model card's "
            f"entries name the results repo {repo} (dataset.id, task_id {first}); to name the task's own dataset, "
            f"publish it first (llmos-hub publish-task {first} --repo NS/NAME) and bench it with --task hf:NS/NAME")
