"""Dynamic int8 quantization of exported graphs (``dtype="int8"``), with ONNX Runtime's own tool.

``onnxruntime.quantization.quantize_dynamic`` stores the weights of MatMul and Gather (embedding)
nodes as int8 and quantizes activations on the fly at run time, so no calibration data is needed.
``Attention`` is left out of the quantized operators on purpose: the tool maps it to Microsoft's
``QAttention``, which is meant for the contrib ``Attention`` op and cannot take the standard
opset-23 ``Attention`` node's attributes (the graph would not load). Every graph of an entry is
quantized the same way, loaded once to prove ONNX Runtime accepts it, and written to a new cache
entry (derived from the float one), so a quantized model is made once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from llmos_hub import LlmosHubError

__all__ = ["QUANTIZATION", "quantize_folder"]

#: The name the record shows for this scheme (``Runner.describe()["quantization"]``).
QUANTIZATION = "dynamic-int8"
#: Operators whose weights become int8 (see the module docstring for why not ``Attention``).
QUANTIZED_OPS = ("MatMul", "Gather")


def quantize_folder(source: Path, target: Path, graphs: dict[str, Any]) -> dict[str, Any]:
    """Quantize each graph file named in ``graphs`` from ``source`` into ``target``."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the tool logs a pre-processing hint per graph on the root logger
    try:
        for info in graphs.values():
            quantize_dynamic(
                Path(source) / info["file"],
                Path(target) / info["file"],
                op_types_to_quantize=list(QUANTIZED_OPS),
                weight_type=QuantType.QInt8,
                per_channel=False,
                reduce_range=False,
            )
    finally:
        root.setLevel(level)
    for role, info in graphs.items():
        try:
            onnxruntime.InferenceSession(str(Path(target) / info["file"]), providers=["CPUExecutionProvider"])
        except Exception as exc:
            first = " ".join(str(exc).split())[:300]
            raise LlmosHubError(
                f"dynamic int8 quantization of module {role!r} made a graph ONNX Runtime cannot load ({first}); "
                "use dtype float32"
            ) from exc
    return {"quantization": QUANTIZATION, "onnxruntime": onnxruntime.__version__}
