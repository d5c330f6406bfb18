"""ONNX Runtime sessions: execution provider for the device, graph optimizations, threads.

The CPU execution provider runs with every graph optimization on (ORT fuses attention, GELU and
layer norm on its own) and, unless told otherwise, ONNX Runtime's default intra-op thread count;
``threads`` pins it, as a benchmark on a shared machine should. ``device="cuda"`` (or ``cuda:N``)
needs the CUDA execution provider (the ``onnxruntime-gpu`` wheel); without it the answer is one
line that says so, never a silent fall-back to the CPU.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmos_hub import UsageError

__all__ = ["check_device", "make_session", "providers_for"]


def check_device(device: str) -> tuple[str, int]:
    """``("cpu", 0)`` or ``("cuda", N)`` for a device string; raises a one-line UsageError if unusable."""
    import onnxruntime

    name, _, index = device.partition(":")
    if name == "auto":
        name = "cuda" if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else "cpu"
    if name == "cpu" and not index:
        return "cpu", 0
    if name == "cuda" and (not index or index.isdigit()):
        available = onnxruntime.get_available_providers()
        if "CUDAExecutionProvider" not in available:
            raise UsageError(
                f"device {device!r} needs ONNX Runtime's CUDA execution provider, which this onnxruntime "
                f"{onnxruntime.__version__} lacks (it has {', '.join(available)}); "
                "install onnxruntime-gpu or use device='cpu'"
            )
        return "cuda", int(index or 0)
    raise UsageError(f"backend 'onnxruntime' cannot run on device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'")


def providers_for(kind: str, index: int) -> list[Any]:
    """The provider list for ``InferenceSession`` (CUDA first, CPU for the nodes CUDA lacks)."""
    if kind == "cuda":
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_session(
    path: Path,
    *,
    kind: str = "cpu",
    index: int = 0,
    threads: int | None = None,
    optimization: str = "all",
    extra: Mapping[str, str] | None = None,
) -> Any:
    """An ``InferenceSession`` for ``path`` with optimizations ``all``/``extended``/``basic``/``none``."""
    import onnxruntime as ort

    if os.environ.get("ORT_DISABLE_TELEMETRY", "1") != "0":
        # Also for a process that loaded onnxruntime before this plugin set ORT_DISABLE_TELEMETRY.
        ort.disable_telemetry_events()
    levels = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }
    if optimization not in levels:
        raise UsageError(f"unknown graph optimization level {optimization!r}; use one of: {', '.join(levels)}")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[optimization]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: ORT warns about every unused initializer otherwise
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    for key, value in (extra or {}).items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(str(path), sess_options=options, providers=providers_for(kind, index))
