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


#: The bundled tasks and the nano checkpoint trained (or, for multiple choice, reused) for each.
DEFAULT_SUITE = (
    {"task": "lm-sample", "model": "nano:lm-sample"},
    {"task": "classification-sample", "model": "nano:classification-sample"},
    {"task": "translation-sample", "model": "nano:translation-sample"},
    {"task": "summarization-sample", "model": "nano:summarization-sample"},
    {"task": "multiple-choice-sample", "model": "nano:lm-sample"},
)


@hookimpl
def register_suites(register: Register) -> None:
    register(
        "default",
        lambda: [dict(e) for e in DEFAULT_SUITE],
        description="the bundled suite: one task of each kind, built from real text, each on its nano model",
    )
