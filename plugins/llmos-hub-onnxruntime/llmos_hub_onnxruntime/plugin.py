"""Hook implementations of the onnxruntime plugin: registers the ``onnxruntime`` backend lazily.

Nothing heavy is imported here; the factory imports the backend (and with it numpy) only when the
backend is used, and torch/onnx/onnxruntime are imported only inside ``prepare``.
"""

from __future__ import annotations

from llmos_hub import hookimpl
from llmos_hub.hookspecs import Register

#: The plugin API this module is written against (llmos_hub.hookspecs.API_VERSION).
LLMOS_HUB_API_VERSION = "2.0"


@hookimpl
def register_backends(register: Register) -> None:
    def make():  # type: ignore[no-untyped-def]
        from .backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend()

    register(
        "onnxruntime",
        make,
        description="exports models to ONNX (cached by content hash) and runs them with ONNX Runtime (CPU, CUDA; int8)",
    )
