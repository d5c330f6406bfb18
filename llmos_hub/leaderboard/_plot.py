"""The quality-against-speed plot of one board, as inline SVG (no script, no network).

What a reader must be able to trust in the picture:

* the speed axis is logarithmic (backends differ by factors, not by amounts);
* the score axis is logarithmic for perplexities (a model at 7,800 and one at 40 are both readable), and
  never extends below zero for a metric whose values are all non-negative (no "-0.05 accuracy" tick);
* every point has a label that names what makes its row different (model, backend, dtype,
  quantization, backend options, and the configuration hash if two rows would still read the same);
* labels stay inside the plot and do not sit on top of each other;
* a row that cannot be plotted (no speed figure, no score) is named under the plot, never dropped silently.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ._boards import Board, Row
from ._text import fmt_number

__all__ = ["plot_svg", "point_label", "point_labels"]

#: Approximate advance of one character of the 11px label font (for keeping labels inside the plot).
_CHAR_PX = 6.3
_LINE_PX = 13.0


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def log_scale_metric(name: str) -> bool:
    """Whether a metric is shown on a logarithmic axis: perplexities span orders of magnitude."""
    return "perplexity" in name.lower()


def point_label(row: Row) -> str:
    """``model / backend`` plus whatever else sets the row apart: dtype, quantization, backend options."""
    d = row.data
    backend = d["backend"]
    parts = [f"{d['model']['ref']} / {backend['name']}"]
    extras = []
    if backend.get("dtype") and backend["dtype"] != "float32":
        extras.append(str(backend["dtype"]))
    quant = (backend.get("details") or {}).get("quantization")
    if quant:
        extras.append(str(quant))
    if backend.get("device") and backend["device"] != "cpu":
        extras.append(str(backend["device"]))
    options = ((d.get("config") or {}).get("spec") or {}).get("backend_options") or {}
    for key, value in sorted(options.items()):
        extras.append(f"{key}={value if isinstance(value, str) else json.dumps(value)}")
    if extras:
        parts.append(f"({', '.join(extras)})")
    return " ".join(parts)


def point_labels(rows: Sequence[Row]) -> list[str]:
    """One label per row, all distinct: rows that would still read the same get their config hash."""
    labels = [point_label(r) for r in rows]
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return [
        f"{label} [{row.data['config']['hash'][:8]}]" if counts[label] > 1 else label
        for label, row in zip(labels, rows)
    ]


def _speed(row: Row) -> float | None:
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


def padded_range(lo: float, hi: float, *, min_span: float, floor: float | None = None) -> tuple[float, float]:
    """An axis range with a 10% margin and at least ``min_span`` wide; never below ``floor``.

    The minimum span keeps values equal within float rounding (two backends, 7043.01 and 7043.02)
    on one height instead of stretching a difference of 1e-6 over the whole axis.
    """
    if hi - lo < min_span:
        middle = (lo + hi) / 2
        lo, hi = middle - min_span / 2, middle + min_span / 2
    span = hi - lo
    lo, hi = lo - 0.1 * span, hi + 0.1 * span
    if floor is not None and lo < floor:
        lo = floor
    return lo, hi


@dataclass
class _Box:
    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: _Box) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1


def plot_svg(board: Board, width: int = 760, height: int = 340) -> str:
    """Quality (primary metric) against speed, one labelled point per row (see the module docstring)."""
    labels = dict(zip((id(r) for r in board.rows), point_labels(board.rows)))
    plotted: list[tuple[Row, float]] = []
    missing: list[Row] = []
    log_y = log_scale_metric(board.primary_metric)
    for row in board.rows:
        speed = _speed(row)
        ok = speed is not None and speed > 0 and not math.isnan(row.primary) and (row.primary > 0 or not log_y)
        if ok and speed is not None:
            plotted.append((row, speed))
        else:
            missing.append(row)
    note = ""
    if missing:
        names = "; ".join(f"{labels[id(r)]}: {fmt_number(r.primary)}" for r in missing)
        note = f'<p class="meta">Not plotted (no speed figure or no plottable score): {_e(names)}.</p>'
    if not plotted:
        return '<p class="meta">No speed figures to plot.</p>' + note

    left, right, top, bottom = 60, 20, 20, 45
    xs = [math.log10(s) for _, s in plotted]
    values = [r.primary for r, _ in plotted]
    ys = [math.log10(v) for v in values] if log_y else values
    x0, x1 = padded_range(min(xs), max(xs), min_span=0.2)  # at least a 1.6x range of speeds
    non_negative = not log_y and min(values) >= 0
    # At least 0.02 decades (a 5% ratio) on a log axis, 4% of the largest value on a linear one.
    y_span = 0.02 if log_y else 0.04 * max(abs(v) for v in values) or 1.0
    y0, y1 = padded_range(min(ys), max(ys), min_span=y_span, floor=0.0 if non_negative else None)
    plot_w, plot_h = width - left - right, height - top - bottom
    sx = lambda x: left + (x - x0) / (x1 - x0) * plot_w  # noqa: E731
    sy = lambda y: height - bottom - (y - y0) / (y1 - y0) * plot_h  # noqa: E731
    y_title = f"{board.primary_metric} (log scale)" if log_y else board.primary_metric
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" role="img" '
        f'aria-label="{_e(board.primary_metric)} against speed for {_e(board.title)}">',
        f'<line class="axis" x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}"/>',
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}"/>',
        f'<text class="ax" x="{(left + width - right) / 2:.0f}" y="{height - 8}" text-anchor="middle">{_e(_speed_label(board.rows))} (log scale)</text>',
        f'<text class="ax" x="14" y="{(top + height - bottom) / 2:.0f}" transform="rotate(-90 14 {(top + height - bottom) / 2:.0f})" text-anchor="middle">{_e(y_title)}</text>',
    ]
    shown = (lambda v: 10 ** v) if log_y else (lambda v: v)
    for value in (y0, y1):
        parts.append(f'<text class="ax" x="{left - 6}" y="{sy(value) + 4:.1f}" text-anchor="end">{_e(fmt_number(shown(value)))}</text>')
    for value, anchor in ((x0, "start"), (x1, "end")):
        parts.append(f'<text class="ax" x="{sx(value):.1f}" y="{height - bottom + 16}" text-anchor="{anchor}">{_e(fmt_number(10 ** value))}</text>')
    placed: list[_Box] = []
    # Place labels top to bottom so a shifted label moves into free space below.
    order = sorted(range(len(plotted)), key=lambda i: (sy(ys[i]), sx(xs[i])))
    for i in order:
        row, speed = plotted[i]
        px, py = sx(xs[i]), sy(ys[i])
        label = labels[id(row)]
        parts.append(
            f'<circle class="pt{" base" if getattr(row, "baseline", None) else ""}" cx="{px:.1f}" cy="{py:.1f}" r="5"><title>{_e(label)}: '
            f'{_e(fmt_number(row.primary))} at {_e(fmt_number(speed))}/s</title></circle>'
        )
        parts.append(_label(label, px, py, placed, left=left, right=width - right, top=top, bottom=height - bottom))
    parts.append("</svg>")
    return "".join(parts) + note


def _label(text: str, px: float, py: float, placed: list[_Box], *, left: float, right: float, top: float, bottom: float) -> str:
    """A label beside its point, inside ``[left, right] x [top, bottom]``, clear of labels already placed."""
    w = len(text) * _CHAR_PX
    if px + 7 + w <= right:
        x0 = px + 7
    elif px - 7 - w >= left:
        x0 = px - 7 - w
    else:  # wider than either side: align to whichever edge leaves more of it visible
        x0 = max(left + 2, min(px - w / 2, right - w))
    baseline = py - 7
    if baseline - _LINE_PX + 3 < top:
        baseline = py + 16
    box = _Box(x0, baseline - _LINE_PX + 3, x0 + w, baseline + 3)
    for _ in range(len(placed) + 1):
        hit = next((b for b in placed if b.overlaps(box)), None)
        if hit is None:
            break
        baseline = hit.y1 + _LINE_PX - 3 + 1
        box = _Box(x0, baseline - _LINE_PX + 3, x0 + w, baseline + 3)
    if box.y1 > bottom:  # no room below: stack upwards from the plot's bottom edge instead
        baseline = bottom - 3
        box = _Box(x0, baseline - _LINE_PX + 3, x0 + w, baseline + 3)
    placed.append(box)
    return f'<text class="lbl" x="{x0:.1f}" y="{baseline:.1f}" text-anchor="start">{_e(text)}</text>'
