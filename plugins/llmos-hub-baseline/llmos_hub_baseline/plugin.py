"""Hook implementations: the ``baseline`` model family and the ``baseline`` backend that answers for it.

Importing this module imports nothing beyond the SDK; the factories import the family and backend.
"""

from __future__ import annotations

from llmos_hub import hookimpl
from llmos_hub.hookspecs import Register

#: The plugin API this module is written against (llmos_hub.hookspecs.API_VERSION).
LLMOS_HUB_API_VERSION = "2.0"


def _family():
    from .family import BaselineFamily

    return BaselineFamily()


def _backend():
    from .backend import BaselineBackend

    return BaselineBackend()


@hookimpl
def register_models(register: Register) -> None:
    register(
        "baseline",
        _family,
        description="each task's trivial floor (majority class, copy source, first sentence, unigram LM, choice position): baseline:TASK",
    )


@hookimpl
def register_backends(register: Register) -> None:
    register("baseline", _backend, description="answers for baseline:TASK models (no torch, no weights)")
