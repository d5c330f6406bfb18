"""``llmos-hub publish-task``: put a task on the Hub (a thin layer over :func:`llmos_hub.hub.publish_task`)."""

from __future__ import annotations

import click

from . import get_host
from ._output import print_json


@click.command("publish-task")
@click.argument("task", metavar="TASK")
@click.option("--repo", required=True, metavar="NAMESPACE/NAME", help="The task's dataset repo (created if missing).")
@click.option("--create-pr", is_flag=True, help="Open a pull request instead of committing to main.")
@click.option("--endpoint", default=None, help="Hub endpoint (default: HF_ENDPOINT or huggingface.co).")
@click.option("--token", default=None, help="Hub token (default: HF_TOKEN, then the saved `hf auth login`).")
@click.option("--json", "as_json", is_flag=True, help="Print what was committed as JSON.")
@click.pass_context
def publish_task(
    ctx: click.Context,
    task: str,
    repo: str,
    create_pr: bool,
    endpoint: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Publish TASK (a task name or a task YAML file) to a dataset repo on the Hugging Face Hub.

    One commit holds task.yaml, its data splits and a dataset card that datasets.load_dataset
    reads; afterwards anyone runs it with `llmos-hub bench --task hf:NAMESPACE/NAME`.
    """
    from ..hub import publish_task as publish

    host = None if task.endswith((".yaml", ".yml")) or task.startswith("hf:") else get_host(ctx)
    result = publish(task, repo=repo, endpoint=endpoint, token=token, create_pr=create_pr, host=host)
    result.endpoint_flag = endpoint  # the printed command reads the task from the Hub it was published to
    if as_json:
        print_json(result.to_dict())
        return
    if not result.published:
        click.echo(f"nothing to publish: task {result.task} is already in {repo} at {result.revision}")
    else:
        what = "opened pull request" if result.pr_url else "committed"
        click.echo(f"{what} {result.pr_url or result.commit_url}")
        for name in result.files:
            click.echo(f"  {name}")
    click.echo(f"run it with: {result.command}")
