"""A self-contained HTML leaderboard: sortable tables and a quality-vs-speed plot per task.

The page needs no network to view: styles, the sorting script and the plots (inline SVG) are all in the
one file. Every value that comes from a record goes through :func:`html.escape`, so a model called
``<script>…`` shows as text; numbers used for sorting sit in ``data-sort`` attributes, escaped too.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from ._boards import Board, Row
from ._text import SPEED_COLUMNS, band_text, bands_note, fmt_number, fmt_score

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1b1f24;background:#fff}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2.5rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.3rem .55rem;text-align:left;vertical-align:top}
th{background:#f6f8fa;cursor:pointer;user-select:none}th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
td.num{text-align:right;font-variant-numeric:tabular-nums}code{font-size:.8rem;word-break:break-all}
.meta{color:#57606a;font-size:.85rem}svg{border:1px solid #d0d7de;background:#fcfcfd}
tr.baseline td{background:#f6f8fa;color:#57606a;font-style:italic}.tag{font-size:.75rem;border:1px solid #8c959f;border-radius:.6rem;padding:0 .35rem;margin-left:.3rem;font-style:normal}
.pt{fill:#0969da;opacity:.85}.pt.base{fill:#8c959f}.axis{stroke:#57606a}.lbl{font-size:11px;fill:#1b1f24}.ax{font-size:11px;fill:#57606a}
"""

_JS = """
document.querySelectorAll('table.board').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var asc = !th.classList.contains('sorted-asc');
      table.querySelectorAll('th').forEach(function(h){h.classList.remove('sorted-asc','sorted-desc');});
      th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function(a, b){
        var x = a.cells[col].getAttribute('data-sort'), y = b.cells[col].getAttribute('data-sort');
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cell(text: str, sort: object | None = None, *, num: bool = False) -> str:
    key = text if sort is None else sort
    cls = ' class="num"' if num else ""
    return f'<td{cls} data-sort="{_e(key)}">{_e(text)}</td>'


def _speed_value(row: Row) -> float | None:
    """Tokens/s for the plot: generated tokens for generation tasks, prompt tokens otherwise."""
    for key in ("generated_tokens_per_second", "prompt_tokens_per_second", "examples_per_second"):
        value = row.speed(key)
        if value:
            return value
    return None


def _speed_label(rows: Sequence[Row]) -> str:
    for key, label in (("generated_tokens_per_second", "generated tokens/s"), ("prompt_tokens_per_second", "prompt tokens/s")):
        if any(r.speed(key) for r in rows):
            return label
    return "examples/s"


def _padded_range(lo: float, hi: float) -> tuple[float, float]:
    """An axis range with a 10% margin, widened around a single value (equal within float rounding)."""
    span = hi - lo
    if span <= 1e-9 * max(abs(lo), abs(hi), 1.0):
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    return lo - 0.1 * span, hi + 0.1 * span


def plot_svg(board: Board, width: int = 760, height: int = 340) -> str:
    """Quality (primary metric) against speed, log-scaled speed axis, one labelled point per row."""
    points = [(r, _speed_value(r)) for r in board.rows]
    points = [(r, s) for r, s in points if s and s > 0 and not math.isnan(r.primary)]
    if not points:
        return '<p class="meta">No speed figures to plot.</p>'
    left, right, top, bottom = 60, 20, 20, 45
    xs = [math.log10(s) for _, s in points]
    ys = [r.primary for r, _ in points]
    x0, x1 = _padded_range(min(xs), max(xs))
    y0, y1 = _padded_range(min(ys), max(ys))
    sx = lambda x: left + (x - x0) / (x1 - x0) * (width - left - right)  # noqa: E731
    sy = lambda y: height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)  # noqa: E731
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" role="img" '
        f'aria-label="{_e(board.primary_metric)} against speed for {_e(board.title)}">',
        f'<line class="axis" x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}"/>',
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}"/>',
        f'<text class="ax" x="{(left + width - right) / 2:.0f}" y="{height - 8}" text-anchor="middle">{_e(_speed_label(board.rows))} (log scale)</text>',
        f'<text class="ax" x="14" y="{(top + height - bottom) / 2:.0f}" transform="rotate(-90 14 {(top + height - bottom) / 2:.0f})" text-anchor="middle">{_e(board.primary_metric)}</text>',
    ]
    for value, anchor in ((y0, "end"), (y1, "end")):
        parts.append(f'<text class="ax" x="{left - 6}" y="{sy(value) + 4:.1f}" text-anchor="{anchor}">{_e(fmt_number(value))}</text>')
    for value, anchor in ((x0, "start"), (x1, "end")):
        parts.append(f'<text class="ax" x="{sx(value):.1f}" y="{height - bottom + 16}" text-anchor="{anchor}">{_e(fmt_number(10 ** value))}</text>')
    for (row, speed), x, y in zip(points, xs, ys):
        label = f"{row.data['model']['ref']} / {row.data['backend']['name']}"
        parts.append(
            f'<circle class="pt{" base" if row.baseline else ""}" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5"><title>{_e(label)}: '
            f'{_e(fmt_number(row.primary))} at {_e(fmt_number(speed))}/s</title></circle>'
        )
        right_half = sx(x) > (left + width - right) / 2
        anchor, dx = ("end", -7) if right_half else ("start", 7)
        parts.append(f'<text class="lbl" x="{sx(x) + dx:.1f}" y="{sy(y) - 7:.1f}" text-anchor="{anchor}">{_e(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(boards: Sequence[Board], *, title: str = "llmos-hub leaderboard") -> str:
    """The whole page as one string."""
    body: list[str] = [f"<h1>{_e(title)}</h1>"]
    if not boards:
        body.append('<p class="meta">No results yet.</p>')
    for board in boards:
        arrow = "higher is better" if board.higher_is_better else "lower is better"
        body.append(f'<section class="task"><h2>{_e(board.title)}</h2>')
        body.append(
            f'<p class="meta">Ranked by <b>{_e(board.primary_metric)}</b> ({arrow}); '
            f"dataset fingerprint <code>{_e(board.dataset_fingerprint[:16])}</code>. Click a header to sort.</p>"
        )
        body.append(f'<p class="meta">{_e(bands_note(board))} Baseline rows are greyed.</p>')
        headers = ["#", "band", "model", "backend", "device", "dtype", board.primary_metric, *[h for _, h in SPEED_COLUMNS], "config", "reproduce"]
        body.append('<table class="board"><thead><tr>' + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr></thead><tbody>")
        for row in board.rows:
            d = row.to_dict()
            model_cell = _cell(d["model"])
            if row.baseline:
                model_cell = (f'<td data-sort="{_e(d["model"])}">{_e(d["model"])}'
                              f'<span class="tag" title="{_e(row.baseline)}">baseline</span></td>')
            cells = [
                _cell(str(row.rank), row.rank, num=True),
                _cell(band_text(row), row.band if row.band is not None else 1e9, num=True),
                model_cell,
                _cell(d["backend"] + (f" [{d['quantization']}]" if d["quantization"] else "")),
                _cell(d["device"]),
                _cell(d["dtype"]),
                _cell(fmt_score(row), row.primary, num=True),
                *[_cell(fmt_number(row.speed(k)), row.speed(k) if row.speed(k) is not None else -1, num=True) for k, _ in SPEED_COLUMNS],
                f'<td data-sort="{_e(d["config_hash"])}"><code>{_e(d["config_hash"][:12])}</code></td>',
                f'<td data-sort="{_e(d["command"])}"><code>{_e(d["command"])}</code></td>',
            ]
            body.append(('<tr class="baseline">' if row.baseline else "<tr>") + "".join(cells) + "</tr>")
        body.append("</tbody></table>")
        body.append(plot_svg(board))
        body.append("</section>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}<script>{_JS}</script></body></html>\n"
    )
