"""Leaderboards built from result records alone (local folders or a Hub results repo).

``build_boards`` groups and ranks; the renderers turn boards into markdown, CSV, JSON, a rich table or a
self-contained HTML page. ``render_markdown(records)`` is the one-call form the Hub dataset card uses.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._result import ResultRecord
from ._boards import Board, Row, build_boards, reproduce_command
from ._html import render_html
from ._text import render_csv, render_json, rich_tables
from ._text import render_markdown as _markdown_boards

__all__ = ["FORMATS", "Board", "Row", "build_boards", "render", "render_markdown", "reproduce_command", "rich_tables"]

FORMATS = ("table", "markdown", "csv", "json", "html")


def render(records: Iterable[ResultRecord], fmt: str, *, alpha: float = 0.05) -> str:
    """The leaderboard of ``records`` as text in ``fmt`` (any of :data:`FORMATS` but ``table``)."""
    boards = build_boards(records, alpha=alpha)
    if fmt == "markdown":
        return _markdown_boards(boards)
    if fmt == "csv":
        return render_csv(boards)
    if fmt == "json":
        return render_json(boards)
    if fmt == "html":
        return render_html(boards)
    raise ValueError(f"unknown leaderboard format {fmt!r}; choose one of {', '.join(FORMATS)}")


def render_markdown(records: Iterable[ResultRecord]) -> str:
    """The markdown leaderboard of ``records`` (used in the Hub dataset card)."""
    return render(records, "markdown")
