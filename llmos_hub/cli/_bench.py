"""``llmos-hub bench``: run tasks on models and backends, write records, show the scores."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from . import get_host
from ._output import console, err_console, esc, plain, print_json


def _command_line(ctx: click.Context) -> str:
    """The command as typed, with any secret-looking option value redacted."""
    args = list(ctx.meta.get("llmos_hub.argv", sys.argv[1:]))
    for i, arg in enumerate(args):
        if arg == "--token" and i + 1 < len(args):
            args[i + 1] = "***"
        elif arg.startswith("--token="):
            args[i] = "--token=***"
    return shlex.join(["llmos-hub", *args])


class _RichEvents:
    """Progress bars per run on a terminal; one line per run otherwise; nothing with --quiet."""

    def __init__(self, *, interactive: bool, quiet: bool) -> None:
        self.quiet = quiet
        self.progress: Any = None
        self.task_id: Any = None
        self.sweep_id: Any = None
        if interactive and not quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                console=err_console(),
                transient=False,
            )

    def __enter__(self) -> _RichEvents:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def _line(self, text: str, style: str = "") -> None:
        if not self.quiet:
            from rich.text import Text

            target = self.progress.console if self.progress is not None else err_console()
            target.print(Text(text, style=style), soft_wrap=True)  # one line in a CI log, whatever its width

    def started(self, run: Any, total: int) -> None:
        if self.progress is not None:
            self.task_id = self.progress.add_task(run.spec.label, total=total, rate="")

    def advanced(self, run: Any, done: int, total: int) -> None:
        if self.progress is not None and self.task_id is not None and done == 0:
            self.progress.reset(self.task_id, total=total, rate="")  # rate excludes load and warm-up
        elif self.progress is not None and self.task_id is not None:
            elapsed = self.progress.tasks[self.task_id].elapsed or 0.0
            rate = f"{done / elapsed:.1f} ex/s" if elapsed > 0 else ""
            self.progress.update(self.task_id, completed=done, rate=rate)

    def finished(self, run: Any, record: Any, path: Path) -> None:
        metric = record.primary_metric
        value = record.scores.get(metric, {}).get("value")
        ex_s = record.data["speed"]["examples_per_second"]
        self._line(f"done  {run.spec.label}: {metric}={value:.4g}, {ex_s:.1f} ex/s", "green")

    def sweep(self, runs_done: int, runs_total: int, examples_done: int, examples_per_second: float) -> None:
        """With --executor ray: one bar for the whole sweep, fed by the workers' reports."""
        if self.progress is None:
            return
        if self.sweep_id is None:
            self.sweep_id = self.progress.add_task("runs", total=runs_total, rate="")
        rate = f"{examples_done} ex, {examples_per_second:.1f} ex/s" if examples_done else ""
        self.progress.update(self.sweep_id, completed=runs_done, rate=rate)

    def skipped(self, run: Any, path: Path) -> None:
        self._line(f"skip  {run.spec.label}: record exists ({path})", "yellow")

    def rerunning(self, run: Any, path: Path, why: str) -> None:
        """--resume found ``path`` but cannot reuse it (e.g. no samples file with --log-samples)."""
        self._line(f"rerun {run.spec.label}: {why} ({path})", "yellow")

    def note(self, run: Any, message: str) -> None:
        """Something the bench decided on its own (a run retried after its Ray worker died, fewer shards than
        asked): one line, so a record saying ``attempt: 2`` or one shard is never a surprise."""
        self._line(message, "yellow")

    def failed(self, run: Any, message: str) -> None:
        if self.progress is not None and self.task_id is not None:
            self.progress.update(self.task_id, rate="failed")
        err_console().print(f"[red]failed[/] {esc(run.spec.label)}: ", end="", markup=True, highlight=False,
                            soft_wrap=True)
        from rich.text import Text

        err_console().print(Text(message), soft_wrap=True)


def _options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs → a dict; values that parse as JSON (numbers, true/false) are typed."""
    import json

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--backend-option")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def _stop_on_sigterm() -> None:
    """Treat SIGTERM (a scheduler, `kill`) like Ctrl-C: stop, keep finished records, say how to resume."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _batch_size(ctx: click.Context | None, param: click.Parameter | None, value: str) -> int | str:
    """``--batch-size``: a positive integer or ``auto``, checked by click so the error names the option."""
    if value == "auto":
        return value
    try:
        size = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a positive integer or 'auto'", ctx, param) from None
    if size < 1:
        raise click.BadParameter(f"{value!r} is not a positive integer or 'auto'", ctx, param)
    return size


@click.command()
@click.option("--model", "models", multiple=True, metavar="FAMILY:REF[@REV]", help="Model to run; repeatable. Default: the model a suite declares for each task (nano).")
@click.option("--task", "tasks", multiple=True, metavar="NAME|SUITE|FILE", help="Task, suite or task file; repeatable. Default: the 'default' suite.")
@click.option("--backend", "backends", multiple=True, metavar="NAME", help="Backend; repeatable to compare backends. Default: the installed backend of highest priority (pytorch).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--dtype", "dtypes", multiple=True, default=("float32",), show_default=True, help="float32, bfloat16, float16 (CUDA), int8 (onnxruntime, ctranslate2); repeatable (pairs a backend lacks are refused).")
@click.option("--backend-option", "backend_options", multiple=True, metavar="KEY=VALUE", help="Backend setting, e.g. threads=2 or exporter=torchscript; repeatable.")
@click.option("--allow-path", "allow_paths", multiple=True, type=click.Path(path_type=Path), metavar="DIR", help="Let task files read data under DIR, outside their own folder; repeatable.")
@click.option("--formulation", default=None, metavar="NAME", help="Force a task formulation (e.g. loglikelihood, prompt, logits); default: the first the model and backend can answer.")
@click.option("--num-fewshot", type=int, default=None, metavar="N", help="Few-shot demonstrations per example, drawn from the task's train split (overrides the task file).")
@click.option("--batch-size", default="auto", show_default=True, callback=_batch_size, help="Requests per batch, or 'auto'.")
@click.option("--split", default=None, metavar="NAME", help="Data split to score, e.g. validation. Default: each task's default split (test).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use a seeded subsample of N examples per task (all of them if N is larger).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for subsampling and bootstrap standard errors.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"), show_default=True, help="Where result records are written.")
@click.option("--log-samples", is_flag=True, help="Also write every example's input, output, reference and scores as jsonl.")
@click.option("--resume", is_flag=True, help="Skip runs whose record (same configuration hash) already exists.")
@click.option("--executor", type=click.Choice(["process", "ray"]), default="process", show_default=True, help="Run in this process, or hand the runs to a pool of Ray workers (pip install 'llmos-hub[ray]').")
@click.option("--ray-address", default=None, metavar="HOST:PORT", help="With --executor ray: join this cluster (default: start a local Ray runtime).")
@click.option("--ray-option", "ray_options", multiple=True, metavar="KEY=VALUE", help="With --executor ray: what each run asks Ray for, e.g. num_cpus=2, num_gpus=1, or max_retries=3; repeatable.")
@click.option("--shards", type=click.IntRange(min=1), default=1, show_default=True, help="Split each run's examples into N shards run as separate tasks; scores equal the unsharded run's.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON instead of a table.")
@click.option("--push-to-hub", "push_repo", metavar="NAMESPACE/NAME", default=None, help="Publish the records to this Hub dataset repo afterwards.")
@click.option("--endpoint", default=None, help="Hub endpoint for hf: tasks, Hub models and --push-to-hub (default: HF_ENDPOINT or huggingface.co).")
@click.option("--token", default=None, help="Hub token for hf: tasks, Hub models and --push-to-hub (default: HF_TOKEN or the saved login).")
@click.pass_context
def bench(
    ctx: click.Context,
    models: tuple[str, ...],
    tasks: tuple[str, ...],
    backends: tuple[str, ...],
    device: str,
    dtypes: tuple[str, ...],
    backend_options: tuple[str, ...],
    allow_paths: tuple[Path, ...],
    formulation: str | None,
    num_fewshot: int | None,
    batch_size: int | str,
    split: str | None,
    limit: int | None,
    seed: int,
    output_dir: Path,
    log_samples: bool,
    resume: bool,
    executor: str,
    ray_address: str | None,
    ray_options: tuple[str, ...],
    shards: int,
    quiet: bool,
    as_json: bool,
    push_repo: str | None,
    endpoint: str | None,
    token: str | None,
) -> None:
    """Run tasks on models and backends; write one result record per run.

    With no options it runs the bundled default suite (one task of each kind) on the models its plugin
    declares for it (the bundled nano models) with the default backend (pytorch) on CPU.
    """
    from ..bench import make_plan, run_bench
    from ..hub._auth import hub_flags
    from ..leaderboard._text import summary_table

    if push_repo:  # a wrong repo id, endpoint or token is found now, not after the compute
        from ..hub import check_push_target

        check_push_target(push_repo, endpoint=endpoint, token=token)
    host = get_host(ctx)
    ray_settings = _ray_settings(executor, ray_address, ray_options)
    from ..tasks import allow_data_paths

    # --endpoint/--token reach every Hub read of the bench (hf: tasks, Hub models), not only --push-to-hub.
    with allow_data_paths(allow_paths), hub_flags(endpoint, token):
        plan = make_plan(
            host, models=models, tasks=tasks, backends=backends, device=device, dtype=dtypes,
            batch_size=batch_size, limit=limit, seed=seed, backend_options=_options(backend_options),
            formulation=formulation, num_fewshot=num_fewshot, split=split, executor=executor,
        )
    for reason in plan.refused:
        err_console().print(f"[yellow]refused:[/] {esc(reason)}", markup=True, highlight=False, soft_wrap=True)
    interactive = sys.stderr.isatty() and not as_json
    _stop_on_sigterm()
    with _RichEvents(interactive=interactive, quiet=quiet or as_json) as events, hub_flags(endpoint, token):
        report = run_bench(
            plan, host=host, output_dir=output_dir, command=_command_line(ctx), resume=resume,
            log_samples=log_samples, events=events, debug=bool(ctx.find_root().obj.get("debug")),
            executor=executor, shards=shards, **ray_settings,
        )
    records = [record for _, record in report.records]
    if as_json:
        print_json([r.data for r in records], sort_keys=True)
    elif records:
        console().print(summary_table(records))
        console().print(plain(f"{len(report.written)} record(s) written, {len(report.reused)} reused, in {output_dir}/"))
    exit_code = 0
    if report.fallback:
        exit_code = _fell_back(report, output_dir)
    if report.failed:
        err_console().print(f"[red]{len(report.failed)} run(s) failed[/]; the other records are kept.", markup=True)
        exit_code = 1
    if push_repo and report.records:
        exit_code = _push(report, push_repo, endpoint, token, with_samples=log_samples) or exit_code
    ctx.exit(exit_code)


def _ray_settings(executor: str, address: str | None, options: tuple[str, ...]) -> dict[str, Any]:
    """Checked before any plan is made: Ray options only with ``--executor ray``, and well formed."""
    from ..errors import UsageError

    if executor != "ray":
        if address or options:
            raise UsageError("--ray-address and --ray-option need --executor ray")
        return {}
    from ..bench._ray import address_source, check_address, parse_ray_options, ray_address

    check_address(ray_address(address), address_source(address))  # malformed: before the plan loads any data
    return {"ray_address": address, "ray_options": parse_ray_options(options)}


def _fell_back(report: Any, output_dir: Path) -> int:
    """Records that could not go to --output-dir went to a fallback folder: say where and how to move them."""
    import shlex

    folder = report.fallback[0]
    count = sum(1 for p, _ in report.written if p.parent == folder)
    samples = sum(1 for p, r in report.written if p.parent == folder and r.data.get("samples_file"))
    what = f"{count} record(s)" + (f" and {samples} samples file(s)" if samples else "")
    files = f"{shlex.quote(str(folder))}/*.json" + (f" {shlex.quote(str(folder))}/*.samples.jsonl" if samples else "")
    # click.echo, not rich: one line that is never wrapped, so the command can be copied as is.
    click.echo(
        f"error: could not write {what} to {output_dir} ({report.write_problems[0]}); they are saved in "
        f"{folder}; move them back with: mkdir -p {shlex.quote(str(output_dir))} && "
        f"mv {files} {shlex.quote(str(output_dir))}/", err=True)
    return 1


def _push(report: Any, repo: str, endpoint: str | None, token: str | None, *, with_samples: bool = False) -> int:
    from ..errors import LlmosHubError
    from ..hub import publish, retry_command

    paths = [str(p) for p, _ in report.records]
    try:
        result = publish(paths, repo=repo, endpoint=endpoint, token=token, with_samples=with_samples)
    except LlmosHubError as exc:
        from rich.text import Text

        err_console().print(Text(f"publish failed: {exc}", style="red"), soft_wrap=True)
        # click.echo, not rich: the retry line must never be wrapped, so it can be copied as is.
        retry = retry_command(paths, repo, endpoint=endpoint, with_samples=with_samples)
        click.echo("the records are kept locally; retry with: " + retry, err=True)
        return 1
    console().print(plain(f"published to {repo}: {getattr(result, 'commit_url', None) or 'already up to date'}"))
    return 0
