"""The ONNX side of the fixed module calling conventions: names, example inputs, dynamic axes.

:class:`llmos_hub.LoadedModel` fixes, for each role (``causal_lm``, ``encoder``, ``decoder``,
``classifier``), what a module takes and returns. This module turns that into what an exporter needs:
the graph's input and output names, a set of example inputs, and which axes stay dynamic (batch and
every sequence axis), so one exported graph serves every batch size, prompt length and cache length.

The causal LM and the decoder are exported as **one** graph each that takes the cache as an input and
returns the grown cache (``past_len`` may be 0 at run time: ONNX Runtime concatenates an empty cache
fine), so prefill and decode share one session and one set of weights in memory.

Example sizes are distinct small numbers (batch 2, new 3, past 5, source 7): ``torch.export`` merges
dynamic axes whose example sizes are equal, and specialises sizes 0 and 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmos_hub import LoadedModel, UsageError

__all__ = ["ROLES", "RoleSpec", "cache_geometry", "example_inputs"]

_BATCH, _NEW, _PAST, _SRC = 2, 3, 5, 7


@dataclass(frozen=True)
class RoleSpec:
    """Input and output names of one role's graph, and the dynamic axes of each (axis -> name)."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    axes: Mapping[str, Mapping[int, str]]


ROLES: dict[str, RoleSpec] = {
    "causal_lm": RoleSpec(
        inputs=("input_ids", "attention_mask", "past"),
        outputs=("logits", "present"),
        axes={
            "input_ids": {0: "batch", 1: "new"},
            "attention_mask": {0: "batch", 1: "total"},
            "past": {2: "batch", 4: "past_len"},
            "logits": {0: "batch", 1: "new"},
            "present": {2: "batch", 4: "total"},
        },
    ),
    "encoder": RoleSpec(
        inputs=("input_ids", "attention_mask"),
        outputs=("encoder_states",),
        axes={
            "input_ids": {0: "batch", 1: "src"},
            "attention_mask": {0: "batch", 1: "src"},
            "encoder_states": {0: "batch", 1: "src"},
        },
    ),
    "decoder": RoleSpec(
        inputs=("decoder_input_ids", "encoder_states", "encoder_mask", "past"),
        outputs=("logits", "present"),
        axes={
            "decoder_input_ids": {0: "batch", 1: "new"},
            "encoder_states": {0: "batch", 1: "src"},
            "encoder_mask": {0: "batch", 1: "src"},
            "past": {2: "batch", 4: "past_len"},
            "logits": {0: "batch", 1: "new"},
            "present": {2: "batch", 4: "total"},
        },
    ),
    "classifier": RoleSpec(
        inputs=("input_ids", "attention_mask"),
        outputs=("logits",),
        axes={
            "input_ids": {0: "batch", 1: "seq"},
            "attention_mask": {0: "batch", 1: "seq"},
            "logits": {0: "batch"},
        },
    ),
}

def cache_geometry(model: LoadedModel, role: str) -> tuple[int, int, int]:
    """``(layers, heads, head_dim)`` of the cache of ``role``, needed to build an example ``past``."""
    return model.cache_geometry(role)


def example_inputs(model: LoadedModel, role: str, encoder_width: int | None = None) -> tuple[Any, ...]:
    """Example tensors in the order of ``ROLES[role].inputs`` (all positions unmasked but one pad)."""
    import torch

    vocab = _vocab_size(model)
    generator = torch.Generator().manual_seed(0)

    def ids(batch: int, length: int) -> torch.Tensor:
        return torch.randint(0, vocab, (batch, length), generator=generator, dtype=torch.int64)

    def mask(batch: int, length: int) -> torch.Tensor:
        out = torch.ones(batch, length, dtype=torch.int64)
        out[0, 0] = 0  # one left pad, so the masking path is traced
        return out

    def past(layers: int, heads: int, head_dim: int) -> torch.Tensor:
        return torch.randn(layers, 2, _BATCH, heads, _PAST, head_dim, generator=generator)

    if role == "causal_lm":
        return ids(_BATCH, _NEW), mask(_BATCH, _PAST + _NEW), past(*cache_geometry(model, role))
    if role in ("encoder", "classifier"):
        return ids(_BATCH, _SRC), mask(_BATCH, _SRC)
    if role == "decoder":
        if encoder_width is None:
            raise ValueError("the decoder's example needs the encoder's output width")
        states = torch.randn(_BATCH, _SRC, encoder_width, generator=generator)
        return ids(_BATCH, _NEW), states, mask(_BATCH, _SRC), past(*cache_geometry(model, role))
    raise UsageError(f"cannot export {model.name}: unknown module role {role!r} (known: {', '.join(ROLES)})")


def _vocab_size(model: LoadedModel) -> int:
    config = model.config
    for key in ("vocab_size", "n_vocab"):
        if isinstance(config.get(key), int):
            return int(config[key])
    return 2  # any id below the true vocabulary size traces the same graph
