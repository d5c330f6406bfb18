"""Plain-text renderings of boards: markdown, CSV, JSON and a rich table."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from ._boards import Board, Row

SPEED_COLUMNS = (
    ("examples_per_second", "ex/s"),
    ("generated_tokens_per_second", "gen tok/s"),
    ("prompt_tokens_per_second", "prompt tok/s"),
)

#: The legend under every table: what ± means and how the two token rates differ.
LEGEND = (
    "± one standard error of the score (bootstrap for corpus metrics); ↑ higher is better, ↓ lower is better. "
    "prompt tok/s: input tokens processed per second; gen tok/s: new tokens generated per second."
)



def fmt_number(value: float | None, digits: int = 4) -> str:
    """A number for humans: ``-`` for missing, up to ``digits`` significant decimals.

    From ten million up, the exponent form (``8.372e+12``): an untrained model's perplexity runs to
    fifteen digits, which grouped in thousands fill a table's column without saying more."""
    if value is None:
        return "-"
    if value != value:  # NaN
        return "nan"
    if abs(value) >= 1e7:
        return f"{value:.{digits}g}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.2f}"


def fmt_score(row: Row) -> str:
    text = fmt_number(row.primary)
    if row.primary_stderr is not None:
        text += f" ± {fmt_number(row.primary_stderr)}"
    return text


def _backend_label(row: Row) -> str:
    b = row.data["backend"]
    quant = b.get("details", {}).get("quantization")
    label = f"{b['name']} ({b['device']}, {b['dtype']})"
    return f"{label} [{quant}]" if quant else label


def model_label(row: Row) -> str:
    """The model's reference, marked when the row is a baseline."""
    ref = str(row.data["model"]["ref"])
    return f"{ref} (baseline)" if row.baseline else ref


def band_text(row: Row) -> str:
    return "-" if row.band is None else str(row.band)


def bands_note(board: Board) -> str:
    """One sentence saying what the band column means on this board."""
    how = {"paired": "paired tests on the same examples", "unpaired": "unpaired tests on standard errors",
           "mixed": "paired tests where both records keep per-example data, unpaired otherwise"}.get(board.band_method)
    if how is None:
        return ("Band: no pair of rows could be tested (no per-example data or standard errors), so none is shown "
                "different: the rows share a band.")
    return (f"Band: rows sharing a band are not significantly different from the band's best row "
            f"({how}, Holm-corrected across the board, alpha {board.alpha:g}).")


def _other_scores(row: Row) -> str:
    return ", ".join(
        f"{k}={fmt_number(v['value'])}" for k, v in sorted(row.data["scores"].items()) if k != row.data["task"]["primary_metric"]
    )


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(boards: Sequence[Board]) -> str:
    """One markdown table per board, with speed columns, config hash and the reproducing command."""
    if not boards:
        return "_No results yet._\n"
    parts: list[str] = []
    for board in boards:
        arrow = "higher is better" if board.higher_is_better else "lower is better"
        parts.append(f"### {_md_cell(board.title)}\n")
        parts.append(f"Ranked by `{board.primary_metric}` ({arrow}); dataset fingerprint `{board.dataset_fingerprint[:16]}`. "
                     f"{bands_note(board)} {LEGEND}\n")
        header = ["#", "band", "model", "backend", board.primary_metric, "other scores"] + [h for _, h in SPEED_COLUMNS] + ["config", "reproduce"]
        parts.append("| " + " | ".join(header) + " |")
        parts.append("|" + "---|" * len(header))
        for row in board.rows:
            cells = [
                str(row.rank),
                band_text(row),
                _md_cell(row.data["model"]["ref"]) + (" *(baseline)*" if row.baseline else ""),
                _md_cell(_backend_label(row)),
                fmt_score(row),
                _md_cell(_other_scores(row)),
                *[fmt_number(row.speed(k)) for k, _ in SPEED_COLUMNS],
                f"`{row.data['config']['hash'][:12]}`",
                f"`{_md_cell(row.to_dict()['command'])}`",
            ]
            parts.append("| " + " | ".join(cells) + " |")
        parts.append("")
        parts.extend(f"- Note: {_md_cell(note)}" for note in board.notes)
        if board.notes:
            parts.append("")
    return "\n".join(parts) + "\n"


def render_csv(boards: Sequence[Board]) -> str:
    """One CSV row per board row, scores flattened into ``score:NAME`` columns."""
    rows = [(board, row.to_dict()) for board in boards for row in board.rows]
    score_names = sorted({k for _, r in rows for k in r["scores"]})
    out = io.StringIO()
    fields = [
        "task", "task_version", "dataset_fingerprint", "rank", "band", "band_method", "baseline", "baseline_kind", "model", "backend", "device", "dtype",
        "quantization", "primary_metric", "primary", "primary_stderr",
        *[f"score:{n}" for n in score_names],
        "examples_per_second", "generated_tokens_per_second", "prompt_tokens_per_second",
        "latency_p50_ms", "peak_memory_bytes", "num_examples", "config_hash", "command",
    ]
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for board, r in rows:
        flat: dict[str, Any] = dict(r, task=board.task, task_version=board.task_version, dataset_fingerprint=board.dataset_fingerprint,
                                    band_method=board.band_method)
        for n in score_names:
            flat[f"score:{n}"] = r["scores"].get(n)
        writer.writerow(flat)
    return out.getvalue()


def render_json(boards: Sequence[Board]) -> str:
    return json.dumps({"boards": [b.to_dict() for b in boards]}, indent=2, ensure_ascii=False) + "\n"


def rich_tables(boards: Sequence[Board]) -> list[Any]:
    """Rich tables for the terminal (imported lazily: rich is only needed here)."""
    from rich.table import Table
    from rich.text import Text

    tables = []
    for board in boards:
        arrow = "↑" if board.higher_is_better else "↓"
        table = Table(title=Text(f"{board.title} — {board.primary_metric} {arrow}"), title_justify="left",
                      caption=Text(f"{bands_note(board)} {LEGEND}"), caption_justify="left")
        for col in ("#", "band", "model", "backend", board.primary_metric, "other scores", *[h for _, h in SPEED_COLUMNS], "config"):
            table.add_column(col, overflow="fold")
        for row in board.rows:
            cells = (
                str(row.rank), band_text(row), model_label(row), _backend_label(row), fmt_score(row), _other_scores(row),
                *[fmt_number(row.speed(k)) for k, _ in SPEED_COLUMNS], row.data["config"]["hash"][:12],
            )
            table.add_row(*(Text(c) for c in cells))  # Text: record values are never read as markup
        if board.notes:
            table.caption = Text("\n".join(f"note: {n}" for n in board.notes))
            table.caption_justify = "left"
        tables.append(table)
    return tables


def direction(higher_is_better: bool | None) -> str:
    """``↑`` or ``↓`` for a metric's direction (``""`` when a record does not say)."""
    return "" if higher_is_better is None else ("↑" if higher_is_better else "↓")


def summary_table(records: Sequence[Any]) -> Any:
    """One compact table for the records of a bench run: what ran, its main score, its speed.

    ``prepare s`` is the backend's own start (an ONNX export, packed weights) after ``load s``, the
    model's. The score names its metric and direction (``accuracy ↑`` over ``0.81 ± 0.03``); prompt and generated token
    rates have their own columns, since a classification run reads tokens and generates none. The
    caption says what ± and the arrows mean.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    # Two spaces between columns, none at the edges: the default suite's nine columns fit a 120-column pipe whole.
    table = Table(title="llmos-hub bench", title_justify="left", caption=LEGEND, caption_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    rows = [_bench_row(record) for record in sorted(records, key=lambda r: (r.task, r.model, r.backend))]
    # Scores and numbers are never broken; where the table is too wide for the terminal (a model given by
    # a long path), the names fold instead: a score squeezed to "acc / ura / cy" cannot be read.
    table.add_column("task", overflow="fold")
    table.add_column("model", overflow="fold")
    table.add_column("backend", no_wrap=True)
    widest = max((len(line) for row in rows for line in row[3].splitlines()), default=5)
    table.add_column("metric\nscore", no_wrap=True, min_width=widest)
    for col in ("ex/s", "prompt\ntok/s", "gen\ntok/s", "load s", "prepare s"):
        table.add_column(col, justify="right", no_wrap=True)
    for cells in rows:
        table.add_row(*(Text(c) for c in cells))
    return table


def _bench_row(record: Any) -> tuple[str, ...]:
    """The cells of one record's row in the bench table."""
    d = record.data
    metric = d["task"]["primary_metric"]
    score = d["scores"].get(metric, {})
    text = fmt_number(score.get("value"))
    if score.get("stderr") is not None:
        text += f" ± {fmt_number(score['stderr'])}"
    speed = d["speed"]
    backend = d["backend"]["name"] + ("" if d["backend"]["dtype"] == "float32" else f" {d['backend']['dtype']}")
    return (
        d["task"]["name"], d["model"]["ref"], backend,
        f"{metric} {direction(score.get('higher_is_better'))}".strip() + "\n" + text,
        fmt_number(speed["examples_per_second"]), fmt_number(speed.get("prompt_tokens_per_second")),
        fmt_number(speed.get("generated_tokens_per_second")), f"{speed['load_seconds']:.2f}",
        f"{speed['prepare_seconds']:.2f}" if speed.get("prepare_seconds") is not None else "-",
    )
