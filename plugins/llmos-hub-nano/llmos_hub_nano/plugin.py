"""Hook implementations of the nano plugin: registers the ``nano`` model family, lazily.

Importing this module imports no torch: the factory does, when a nano model is first used.
"""

from __future__ import annotations

from llmos_hub import hookimpl
from llmos_hub.hookspecs import Register


def _family():
    from .family import NanoFamily

    return NanoFamily()


@hookimpl
def register_models(register: Register) -> None:
    register(
        "nano",
        _family,
        description="compact reference architectures (decoder LM, encoder-decoder, classifier) with tiny checkpoints",
    )
