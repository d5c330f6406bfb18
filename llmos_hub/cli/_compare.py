"""``llmos-hub compare A B``: two records, or two backends over a folder of records."""

from __future__ import annotations

from pathlib import Path

import click

from . import get_host
from ._output import console, print_json


@click.command()
@click.argument("a")
@click.argument("b")
@click.option("--dir", "folders", multiple=True, type=click.Path(path_type=Path), help="Folders of records when A and B are backend names (default: results).")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Significance level of the tests (and 1 - confidence of the intervals).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the bootstrap and permutation resamples.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def compare(a: str, b: str, folders: tuple[Path, ...], alpha: float, seed: int, as_json: bool) -> None:
    """Compare two record files, or two backends (e.g. pytorch onnxruntime) over the records in --dir.

    Scores of runs on the same examples are tested pair by pair (exact McNemar, paired permutation,
    paired bootstrap); otherwise by the unpaired z-test on standard errors, which the output says.
    """
    get_host(click.get_current_context())  # --disable-plugin reaches the metrics records are read with
    import functools

    from .. import compare as _compare
    from .._result import iter_records, load_record
    from ..compare import pair_by_backend
    from ..errors import UsageError

    from ..stats._paired import DEFAULT_RESAMPLES

    if not 0 < alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1 (exclusive), not {alpha}; 0.05 is usual")
    floor = 1 / (DEFAULT_RESAMPLES + 1)
    if alpha <= floor:
        raise UsageError(f"--alpha {alpha:g} is at or below {floor:.6f} (1/{DEFAULT_RESAMPLES + 1}), the smallest "
                         f"p-value {DEFAULT_RESAMPLES:,} bootstrap resamples can give, so no bootstrap difference "
                         f"could be significant; use --alpha 0.001 or more")
    compare_records = functools.partial(_compare.compare_records, alpha=alpha, seed=seed)

    if Path(a).is_file() and Path(b).is_file():
        if Path(a).resolve() == Path(b).resolve():
            raise UsageError(f"A and B are the same record file ({a}); compare two different runs")
        comparisons = [compare_records(load_record(a), load_record(b))]
    elif Path(a).suffix == ".json" or Path(b).suffix == ".json":
        missing = a if not Path(a).is_file() else b
        if Path(missing).is_dir():
            raise UsageError(f"{missing} is a folder, not a record file; pass two record files (e.g. "
                             f"{missing}/NAME.json), or two backend names with --dir {missing}")
        raise UsageError(f"record file {missing} does not exist")
    else:
        folder = next((x for x in (a, b) if Path(x).is_dir()), None)
        if folder is not None:
            raise UsageError(f"{folder} is a folder; compare takes two record files, or two backend names with "
                             f"the folders of records in --dir (e.g. compare pytorch onnxruntime --dir {folder})")
        if a == b:
            raise UsageError(f"A and B are both {a}; name two different backends (e.g. pytorch onnxruntime) "
                             "or two record files")
        if not folders and not Path("results").exists():
            raise UsageError(f"{a} and {b} are read as backend names, whose records are looked for in ./results, "
                             "which does not exist; name the folders of records with --dir, or give two record files")
        skipped: list[str] = []
        found = list(iter_records(folders or [Path("results")], errors=skipped))
        records = [r for _, r in found]
        from rich.text import Text

        from ._output import err_console

        for message in skipped:
            err_console().print(Text(f"skipped invalid record: {message}", style="yellow"), soft_wrap=True)
        pairs = pair_by_backend(records, a, b, paths={id(r): str(p) for p, r in found})
        if not pairs:
            backends = sorted({r.backend for r in records})
            raise UsageError(
                f"no pair of records differs only in backend {a} vs {b}; backends found: {', '.join(backends) or 'none'}"
            )
        comparisons = [compare_records(x, y) for x, y in pairs]
    if as_json:
        print_json([c.to_dict() for c in comparisons])
        return
    _print(comparisons)


def _print(comparisons: list) -> None:
    from rich.table import Table
    from rich.text import Text

    from ..leaderboard._text import fmt_number

    for c in comparisons:
        title = f"{c.a.task}: {c.a.model} [{c.a.backend}] (A) vs {c.b.model} [{c.b.backend}] (B) — {c.note}"
        level = f"{100 * (1 - c.alpha):g}%"
        table = Table(title=Text(title), title_justify="left")
        for col in ("metric", "A", "B", "B − A", f"{level} CI", "p", "test", "verdict (B vs A)"):
            table.add_column(col)
        notes = []
        for s in c.scores:
            a_txt = fmt_number(s.a) + (f" ± {fmt_number(s.stderr_a)}" if s.stderr_a is not None else "")
            b_txt = fmt_number(s.b) + (f" ± {fmt_number(s.stderr_b)}" if s.stderr_b is not None else "")
            ci = "-" if s.ci is None else f"[{fmt_number(s.ci[0])}, {fmt_number(s.ci[1])}]"
            p = "-" if s.p_value is None else f"{s.p_value:.3g}"
            test = s.method + (" *" if s.note else "")
            table.add_row(Text(s.metric), a_txt, b_txt, fmt_number(s.delta), ci, p, test, s.verdict)
            if s.note:
                notes.append(f"{s.metric}: {s.note}")
        for key, va, vb in c.speed:
            ratio = f"×{vb / va:.2f}" if va and vb else "-"
            table.add_row(Text(key), fmt_number(va), fmt_number(vb), ratio, "", "", "", "")
        console().print(table)
        for note in dict.fromkeys(notes):
            console().print(Text(f"  * {note}"))
        if c.parity is not None:
            console().print(Text(f"  {c.parity.summary()}"))
