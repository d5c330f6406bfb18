"""Consoles shared by the commands: results on stdout, messages on stderr."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

from rich.console import Console


@functools.lru_cache(maxsize=1)
def console() -> Console:
    return Console(soft_wrap=False)


@functools.lru_cache(maxsize=1)
def err_console() -> Console:
    return Console(stderr=True)


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping), for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
