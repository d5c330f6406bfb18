"""The ONNX side of the fixed module calling conventions: names, example inputs, dynamic axes.

:class:`llmos_hub.LoadedModel` fixes, for each role (``causal_lm``, ``encoder``, ``cross_kv``,
``decoder``, ``classifier``), what a module takes and returns. This module turns that into what an
exporter needs: the graph's input and output names, a set of example inputs, and which axes stay
dynamic (batch and every sequence axis), so one exported graph serves every batch size, prompt length
and cache capacity.

The causal LM and the decoder are exported as **one** graph each that takes the preallocated cache
and the slots of the new tokens and returns the logits and the new tokens' keys/values
(``new_kv``); prefill and decode share one session and one set of weights in memory. An exported
graph cannot write into its input, so the runner writes ``new_kv`` into its cache buffer itself
(except where ONNX Runtime's ``GroupQueryAttention`` writes it in place, :mod:`._gqa`). A
module that lists ``cache``/``cross_kv`` in ``per_layer_inputs`` is exported with one input per
layer's keys and values (``cache.0.0``, ``cache.0.1``, ...; :func:`.export.per_layer_inputs`).

Example sizes are distinct small numbers (batch 2, new 5, kept logits 4, capacity 11, source 7):
``torch.export`` merges dynamic axes whose example sizes are equal, and specialises sizes 0 and 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmos_hub import LoadedModel, UsageError

__all__ = ["ROLES", "RoleSpec", "cache_geometry", "example_inputs"]

_BATCH, _NEW, _KEPT, _CAPACITY, _SRC = 2, 5, 4, 11, 7
_START = 3  # the first new slot in the examples: slots 3..7 of 11


@dataclass(frozen=True)
class RoleSpec:
    """Input and output names of one role's graph, and the dynamic axes of each (axis -> name)."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    axes: Mapping[str, Mapping[int, str]]


ROLES: dict[str, RoleSpec] = {
    "causal_lm": RoleSpec(
        inputs=("input_ids", "attention_mask", "cache", "cache_position", "logits_index"),
        outputs=("logits", "new_kv"),
        axes={
            "input_ids": {0: "batch", 1: "new"},
            "attention_mask": {0: "batch", 1: "capacity"},
            "cache": {2: "batch", 4: "capacity"},
            "cache_position": {0: "new"},
            "logits_index": {0: "kept"},
            "logits": {0: "batch", 1: "kept"},
            "new_kv": {2: "batch", 4: "new"},
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
    "cross_kv": RoleSpec(
        inputs=("encoder_states",),
        outputs=("cross_kv",),
        axes={"encoder_states": {0: "batch", 1: "src"}, "cross_kv": {2: "batch", 4: "src"}},
    ),
    "decoder": RoleSpec(
        inputs=("decoder_input_ids", "encoder_states", "encoder_mask", "cross_kv", "cache", "cache_position"),
        outputs=("logits", "new_kv"),
        axes={
            "decoder_input_ids": {0: "batch", 1: "new"},
            "encoder_states": {0: "batch", 1: "src"},
            "encoder_mask": {0: "batch", 1: "src"},
            "cross_kv": {2: "batch", 4: "src"},
            "cache": {2: "batch", 4: "capacity"},
            "cache_position": {0: "new"},
            "logits": {0: "batch", 1: "new"},
            "new_kv": {2: "batch", 4: "new"},
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


def example_inputs(
    model: LoadedModel, role: str, encoder_width: int | None = None, cross_kv: Any = None
) -> tuple[Any, ...]:
    """Example tensors in the order of ``ROLES[role].inputs`` (all positions unmasked but one pad).

    The decoder's example needs the encoder's output width and the ``cross_kv`` module's output.
    """
    import torch

    vocab = _vocab_size(model)
    generator = torch.Generator().manual_seed(0)

    def ids(batch: int, length: int) -> torch.Tensor:
        return torch.randint(0, vocab, (batch, length), generator=generator, dtype=torch.int64)

    def mask(batch: int, length: int) -> torch.Tensor:
        out = torch.ones(batch, length, dtype=torch.int64)
        out[0, 0] = 0  # one left pad, so the masking path is traced
        return out

    def cache(layers: int, heads: int, head_dim: int) -> torch.Tensor:
        return torch.randn(layers, 2, _BATCH, heads, _CAPACITY, head_dim, generator=generator)

    slots = torch.arange(_START, _START + _NEW, dtype=torch.int64)
    if role == "causal_lm":
        kept = torch.arange(_NEW - _KEPT, _NEW, dtype=torch.int64)
        return ids(_BATCH, _NEW), mask(_BATCH, _CAPACITY), cache(*cache_geometry(model, role)), slots, kept
    if role in ("encoder", "classifier"):
        return ids(_BATCH, _SRC), mask(_BATCH, _SRC)
    if role in ("cross_kv", "decoder"):
        if encoder_width is None:
            raise ValueError(f"the {role}'s example needs the encoder's output width")
        states = torch.randn(_BATCH, _SRC, encoder_width, generator=generator)
        if role == "cross_kv":
            return (states,)
        if cross_kv is None:
            raise ValueError("the decoder's example needs the cross_kv module's output")
        return ids(_BATCH, _NEW), states, mask(_BATCH, _SRC), cross_kv, cache(*cache_geometry(model, role)), slots
    raise UsageError(f"cannot export {model.name}: unknown module role {role!r} (known: {', '.join(ROLES)})")


def _vocab_size(model: LoadedModel) -> int:
    config = model.config
    for key in ("vocab_size", "n_vocab"):
        if isinstance(config.get(key), int):
            return int(config[key])
    return 2  # any id below the true vocabulary size traces the same graph
