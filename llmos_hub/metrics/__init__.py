"""Built-in metrics (placeholder until the metrics module lands)."""

from __future__ import annotations

from typing import Any

BUILTIN_METRICS: dict[str, str] = {}


def load_metric(name: str) -> Any:
    raise NotImplementedError
