"""A self-contained HTML leaderboard: sortable tables and a quality-vs-speed plot per task.

The page needs no network to view: styles, the sorting script and the plots (inline SVG) are all in the
one file. Every value that comes from a record goes through :func:`html.escape`, so a model called
``<script>…`` shows as text; numbers used for sorting sit in ``data-sort`` attributes, escaped too.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from ._boards import Board, Row
from ._plot import plot_svg
from ._text import LEGEND, SPEED_COLUMNS, band_text, bands_note, direction, fmt_number, fmt_score

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


def _other_metrics(board: Board) -> list[tuple[str, str]]:
    """Every score on the board besides the primary one, with its direction arrow: all scores are shown."""
    found: dict[str, str] = {}
    for row in board.rows:
        for name, score in row.data["scores"].items():
            if name != board.primary_metric and name not in found:
                found[name] = direction(score.get("higher_is_better"))
    return sorted(found.items())


def _score_cell(row: Row, name: str) -> str:
    score = row.data["scores"].get(name)
    if score is None:
        return _cell("-", "", num=True)
    text = fmt_number(score.get("value"))
    if score.get("stderr") is not None:
        text += f" ± {fmt_number(score['stderr'])}"
    return _cell(text, score.get("value"), num=True)


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
            f"dataset fingerprint <code>{_e(board.dataset_fingerprint[:16])}</code>. Click a header to sort. "
            f"{_e(LEGEND)}</p>"
        )
        body.append(f'<p class="meta">{_e(bands_note(board))} Baseline rows are greyed.</p>')
        others = _other_metrics(board)
        headers = ["#", "band", "model", "backend", "device", "dtype", f"{board.primary_metric} {'↑' if board.higher_is_better else '↓'}", *[f"{name} {arrow}".strip() for name, arrow in others],
                   *[h for _, h in SPEED_COLUMNS], "config", "reproduce"]
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
                *[_score_cell(row, name) for name, _ in others],
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
