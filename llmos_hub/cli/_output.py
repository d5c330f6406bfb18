"""Consoles shared by the commands: results on stdout, messages on stderr."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console


def console() -> Console:
    """stdout; made per call (cheap) so it follows the current streams and COLUMNS.

    Piped output (a log, CI) gets 120 columns instead of rich's 80, so tables stay readable.
    """
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        return Console(soft_wrap=False, width=120)
    return Console(soft_wrap=False)


def err_console() -> Console:
    return Console(stderr=True)


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping), for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
