"""Dynamic int8 quantization of exported graphs (``dtype="int8"``), with ONNX Runtime's own tool.

``onnxruntime.quantization.quantize_dynamic`` stores the weights of MatMul/Gemm/Attention nodes as
int8 and quantizes activations on the fly at run time, so no calibration data is needed. Every
graph of an entry is quantized the same way and written to a new cache entry (derived from the
float one), so a quantized model is made once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

__all__ = ["QUANTIZATION", "quantize_folder"]

#: The name the record shows for this scheme (``Runner.describe()["quantization"]``).
QUANTIZATION = "dynamic-int8"


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
                weight_type=QuantType.QInt8,
                per_channel=False,
                reduce_range=False,
            )
    finally:
        root.setLevel(level)
    return {"quantization": QUANTIZATION, "onnxruntime": onnxruntime.__version__}
