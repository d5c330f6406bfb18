"""Built-in plugin: the metrics shipped in ``llmos_hub/metrics`` as local ``evaluate`` modules."""

from __future__ import annotations

from functools import partial

from ..hookspecs import API_VERSION, Register, hookimpl

LLMOS_HUB_API_VERSION = API_VERSION


@hookimpl
def register_metrics(register: Register) -> None:
    from ..metrics import BUILTIN_METRICS, load_metric

    for name, description in BUILTIN_METRICS.items():
        register(name, partial(load_metric, name), description=description)
