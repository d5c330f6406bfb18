"""Consoles shared by the commands: results on stdout, messages on stderr.

User text (task names, paths, descriptions, error messages that quote them) is never markup: the
consoles have emoji codes off (``:x:`` stays ``:x:``) and :func:`esc` escapes rich markup for the few
places that mix our own styling with user text, so ``[/]`` in a path prints as ``[/]`` instead of
raising rich's ``MarkupError``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.text import Text


def esc(text: object) -> str:
    """``text`` made safe to embed in a rich markup string (``[`` escaped)."""
    from rich.markup import escape

    return escape(str(text))


def plain(text: object, style: str = "") -> Text:
    """``text`` as a rich :class:`Text`: printed exactly, never read as markup or emoji."""
    return Text(str(text), style=style)


def console() -> Console:
    """stdout; made per call (cheap) so it follows the current streams and COLUMNS.

    Piped output (a log, CI) gets 120 columns instead of rich's 80, so tables stay readable.
    """
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        return Console(soft_wrap=False, width=120, emoji=False)
    return Console(soft_wrap=False, emoji=False)


def err_console() -> Console:
    return Console(stderr=True, emoji=False)


def print_json(data: Any, *, sort_keys: bool = False) -> None:
    """Plain JSON on stdout (no colour, no wrapping), for scripts; ``sort_keys`` for records, whose files
    are written with sorted keys, so a record printed fresh and one read back print alike."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=sort_keys, ensure_ascii=False) + "\n")
