"""Hook implementations of the pytorch plugin: registers the ``pytorch`` backend, lazily.

Importing this module imports no torch: the factory does, when the backend is first used.
"""

from __future__ import annotations

from llmos_hub import hookimpl
from llmos_hub.hookspecs import Register

#: The plugin API this module is written against (llmos_hub.hookspecs.API_VERSION).
LLMOS_HUB_API_VERSION = "2.0"


def _backend():
    from .backend import TorchBackend

    return TorchBackend()


@hookimpl
def register_backends(register: Register) -> None:
    register("pytorch", _backend, description="PyTorch eager on CPU or CUDA (float32, bfloat16, float16)")
