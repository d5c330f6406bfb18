"""Hook implementations of the nano plugin: registers the ``nano`` model family, lazily.

Importing this module imports no torch: the factory does, when a nano model is first used.
"""

from __future__ import annotations

from llmos_hub import hookimpl
from llmos_hub.hookspecs import Register

#: The plugin API this module is written against (llmos_hub.hookspecs.API_VERSION).
LLMOS_HUB_API_VERSION = "2.0"


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
