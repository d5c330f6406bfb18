"""Consoles shared by the commands: results on stdout, messages on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console


def console() -> Console:
    """stdout; made per call (cheap) so it follows the current streams and COLUMNS."""
    return Console(soft_wrap=False)


def err_console() -> Console:
    return Console(stderr=True)


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping), for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
