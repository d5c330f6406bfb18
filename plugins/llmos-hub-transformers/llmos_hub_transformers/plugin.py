"""Hook implementations of the transformers plugin: registers the ``hf`` model family, lazily.

Importing this module imports neither torch nor transformers (the CLI's start-up stays fast); the
factory imports the family, and the family imports ``transformers`` only when it loads a model.
"""

from __future__ import annotations

from llmos_hub import hookimpl
from llmos_hub.hookspecs import Register

#: The plugin API this module is written against (llmos_hub.hookspecs.API_VERSION).
LLMOS_HUB_API_VERSION = "2.0"


def _family():
    from .family import HFFamily

    return HFFamily()


@hookimpl
def register_models(register: Register) -> None:
    register(
        "hf",
        _family,
        description="Hugging Face transformers causal LMs, seq2seq LMs and sequence classifiers (hf:/folder or hf:namespace/name[@revision])",
    )
