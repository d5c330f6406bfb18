"""Hook implementations of the ctranslate2 plugin: registers the ``ctranslate2`` backend lazily.

Nothing heavy is imported here; ctranslate2 is imported when a model is prepared, and torch and
transformers only when a checkpoint is converted (once per content hash).
"""

from __future__ import annotations

from llmos_hub import hookimpl
from llmos_hub.hookspecs import Register

#: The plugin API this module is written against (llmos_hub.hookspecs.API_VERSION).
LLMOS_HUB_API_VERSION = "2.0"


@hookimpl
def register_backends(register: Register) -> None:
    def make():  # type: ignore[no-untyped-def]
        from .backend import CTranslate2Backend

        return CTranslate2Backend()

    register(
        "ctranslate2",
        make,
        description="runs transformers checkpoints with CTranslate2 (converted once, cached by content hash; CPU, CUDA; float32, int8)",
    )
