"""Torch modules that give a ``transformers`` model the calling conventions of :class:`llmos_hub.LoadedModel`.

Backends know nothing of ``transformers``: they call ``causal_lm``, ``encoder``, ``decoder`` and
``classifier`` modules with plain tensors. These wrappers translate, with no data-dependent Python
control flow (shapes only), so ``torch.onnx.export`` can trace them as it traces the nano modules:

- the KV cache crosses the boundary as ONE tensor ``[layers, 2, batch, heads, past_len, head_dim]``
  (``past_len`` may be 0) and is turned into a ``DynamicCache`` (``EncoderDecoderCache`` for a
  seq2seq decoder, whose cross-attention keys are recomputed from ``encoder_states`` at each call:
  the convention carries only the self-attention cache);
- a causal LM gets ``position_ids`` computed from the attention mask, so a left-padded row sees the
  same positions as the row alone;
- an encoder or classifier gets its rows *rolled* from left to right padding, the layout every
  encoder family handles natively (BERT's absolute positions, RoBERTa's pad-derived ones, GPT-2
  classifiers' "last non-pad token"); encoder states are rolled back so they line up with the
  caller's (left-padded) mask.

Each module states ``cache_geometry = (layers, heads, head_dim)`` (``heads`` being the key/value
heads), which the ONNX export reads to build example inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["HFCausalLM", "HFClassifier", "HFDecoder", "HFEncoder", "roll_left_padding"]


def _dynamic_cache(past: Tensor):
    """A ``DynamicCache`` holding ``past`` ``[layers, 2, batch, heads, past_len, head_dim]``."""
    from transformers import DynamicCache

    return DynamicCache([(past[i, 0], past[i, 1]) for i in range(past.shape[0])])


def _stack_cache(cache) -> Tensor:
    """The self-attention cache of ``cache`` as one tensor, the layout of ``past``."""
    return torch.stack([torch.stack([layer.keys, layer.values]) for layer in cache.layers])


def roll_left_padding(x: Tensor, mask: Tensor, *, back: bool = False) -> Tensor:
    """Move each row's left padding to the right (``back=True``: from the right to the left).

    ``x`` is ``[batch, seq, ...]`` and ``mask`` ``[batch, seq]`` with the padding on one side only;
    a row with ``p`` pads is rotated by ``p`` places, so its tokens start (or end) at column 0 (-1).
    """
    # Tensor arithmetic only (no Python ints of the sequence length, no modulo), so the ONNX
    # exporters trace it with a dynamic length.
    ones = torch.ones_like(mask)
    length = ones.sum(-1, keepdim=True)
    columns = ones.cumsum(-1) - 1
    pads = length - mask.sum(-1, keepdim=True)
    if back:
        index = columns - pads
        index = torch.where(index < 0, index + length, index)
    else:
        index = columns + pads
        index = torch.where(index >= length, index - length, index)
    if x.dim() > 2:
        index = index[..., None].expand(*index.shape, *x.shape[2:])
    return x.gather(1, index)


class _Wrapper(nn.Module):
    def __init__(self, model: nn.Module, cache_geometry: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        self.model = model
        self.cache_geometry = cache_geometry


class HFCausalLM(_Wrapper):
    """``(input_ids, attention_mask, past) -> (logits, present)`` over an ``AutoModelForCausalLM``."""

    def forward(self, input_ids: Tensor, attention_mask: Tensor, past: Tensor) -> tuple[Tensor, Tensor]:
        new = input_ids.shape[1]
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, attention_mask.shape[1] - new:]
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            past_key_values=_dynamic_cache(past),
            use_cache=True,
            return_dict=True,
        )
        return out.logits, _stack_cache(out.past_key_values)


class HFEncoder(_Wrapper):
    """``(input_ids, attention_mask) -> encoder_states`` over a seq2seq model's encoder."""

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        ids = roll_left_padding(input_ids, attention_mask)
        mask = roll_left_padding(attention_mask, attention_mask)
        states = self.model.get_encoder()(input_ids=ids, attention_mask=mask, return_dict=True).last_hidden_state
        return roll_left_padding(states, attention_mask, back=True)


class HFDecoder(_Wrapper):
    """``(decoder_input_ids, encoder_states, encoder_mask, past) -> (logits, present)`` over a seq2seq LM."""

    def forward(
        self, decoder_input_ids: Tensor, encoder_states: Tensor, encoder_mask: Tensor, past: Tensor
    ) -> tuple[Tensor, Tensor]:
        from transformers import DynamicCache, EncoderDecoderCache
        from transformers.modeling_outputs import BaseModelOutput

        # Cross-attention is blind to key order, so the caller's left-padded layout needs no roll.
        cache = EncoderDecoderCache(_dynamic_cache(past), DynamicCache())
        out = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoder_states),
            attention_mask=encoder_mask,
            decoder_input_ids=decoder_input_ids,
            past_key_values=cache,
            use_cache=True,
            return_dict=True,
        )
        return out.logits, _stack_cache(out.past_key_values.self_attention_cache)


class HFClassifier(_Wrapper):
    """``(input_ids, attention_mask) -> logits`` over an ``AutoModelForSequenceClassification``."""

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        ids = roll_left_padding(input_ids, attention_mask)
        mask = roll_left_padding(attention_mask, attention_mask)
        return self.model(input_ids=ids, attention_mask=mask, return_dict=True).logits
