"""Turning the user's ``--device`` and ``--dtype`` into torch objects, with one-line errors."""

from __future__ import annotations

import torch

from llmos_hub import UsageError

__all__ = ["DTYPES", "resolve_device", "resolve_dtype"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when present, else CPU)."""
    name = (device or "cpu").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"device {device!r} asked for but CUDA is not available (torch {torch.__version__}); "
                "use --device cpu or install a CUDA build of torch"
            )
        index_text = name.partition(":")[2]
        if index_text:
            if not index_text.isdigit():
                raise UsageError(f"device {device!r}: write cuda:N with N a GPU number")
            count = torch.cuda.device_count()
            if int(index_text) >= count:
                raise UsageError(f"device {device!r}: only {count} CUDA device(s) (cuda:0 to cuda:{count - 1})")
            return torch.device("cuda", int(index_text))
        return torch.device("cuda", torch.cuda.current_device())
    raise UsageError(f"unknown device {device!r} for backend pytorch; use cpu, cuda, cuda:N or auto")


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``float32``, ``bfloat16`` or ``float16``; ``float16`` only on CUDA (CPU kernels are missing or slow)."""
    name = (dtype or "float32").strip().lower()
    if name not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r} for backend pytorch; use {', '.join(DTYPES)}")
    if name == "float16" and device.type == "cpu":
        raise UsageError("dtype float16 needs --device cuda; on CPU use float32 or bfloat16")
    return DTYPES[name]
