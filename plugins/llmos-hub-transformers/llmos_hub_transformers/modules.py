"""Torch modules that give a ``transformers`` model the calling conventions of :class:`llmos_hub.LoadedModel`.

Backends know nothing of ``transformers``: they call ``causal_lm``, ``encoder``, ``cross_kv``,
``decoder`` and ``classifier`` modules with plain tensors. These wrappers translate, with no
data-dependent Python control flow (shapes only), so ``torch.onnx.export`` can trace them as it traces
the nano modules:

- the self-attention cache is the caller's preallocated buffer ``[layers, 2, batch, heads, capacity,
  head_dim]``; each layer sees it through a :class:`SlotLayer` (a ``transformers`` static cache layer
  whose storage is that buffer), which writes the new keys/values into slots ``cache_position`` in
  place and hands attention the whole buffer, so nothing is concatenated or stacked per step;
- a seq2seq decoder gets its cross-attention keys/values from ``cross_kv`` (computed once per
  source by :class:`HFCrossKV`) as an already-filled cross-attention cache, so they are never
  recomputed;
- a causal LM gets ``position_ids`` computed from the attention mask, so a left-padded row sees the
  same positions as the row alone, and ``logits_to_keep`` = ``logits_index``, so a prefill computes
  the vocabulary projection for the last position only;
- an encoder or classifier gets its rows *rolled* from left to right padding, the layout every
  encoder family handles natively (BERT's absolute positions, RoBERTa's pad-derived ones, GPT-2
  classifiers' "last non-pad token"); encoder states are rolled back so they line up with the
  caller's (left-padded) mask.

Each module states ``cache_geometry = (layers, heads, head_dim)`` (``heads`` being the key/value
heads), which the backends read to size the cache and the ONNX export reads to build example inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["HFCausalLM", "HFClassifier", "HFCrossKV", "HFDecoder", "HFEncoder", "SlotLayer", "roll_left_padding"]


def _in_place() -> bool:
    """Whether writes into the cache may be in place (eager), or must be functional (export, tracing)."""
    return not (torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing())


def _slot_layer_class():
    from transformers.cache_utils import StaticLayer

    class _SlotLayer(StaticLayer):
        """A static cache layer over slices of the caller's buffer, written at ``cache_position``."""

        def __init__(self, keys: Tensor, values: Tensor, cache_position: Tensor) -> None:
            super().__init__(max_cache_len=keys.shape[-2])  # a SymInt under export: capacity stays dynamic
            self.keys, self.values = keys, values
            self.dtype, self.device = keys.dtype, keys.device
            self.position = cache_position
            # What transformers reads as "tokens already seen": the first new slot.
            self.cumulative_length = cache_position[0]
            self.is_initialized = True
            self.new: tuple[Tensor, Tensor] | None = None

        def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
            self.new = (key_states, value_states)
            k, v = key_states.to(self.keys.dtype), value_states.to(self.values.dtype)
            if _in_place():
                self.keys.index_copy_(2, self.position, k)
                self.values.index_copy_(2, self.position, v)
            else:
                self.keys = self.keys.index_copy(2, self.position, k)
                self.values = self.values.index_copy(2, self.position, v)
            return self.keys, self.values

        def get_seq_length(self) -> Tensor:
            return self.cumulative_length

    return _SlotLayer


def _filled_layer_class():
    from transformers.cache_utils import DynamicLayer

    class _FilledLayer(DynamicLayer):
        """A cross-attention cache layer holding keys/values computed once per source."""

        def __init__(self, keys: Tensor, values: Tensor) -> None:
            super().__init__()
            self.keys, self.values = keys, values
            self.dtype, self.device = keys.dtype, keys.device
            self.is_initialized = True

        def get_seq_length(self) -> int:
            return self.keys.shape[-2]  # no int(): under export the source length stays dynamic

    return _FilledLayer


SlotLayer = None  # the class, built on first use (keeps ``import transformers`` lazy)
FilledLayer = None  # likewise


def _memo_key(tensor: Tensor, memo: dict | None) -> tuple | None:
    """What identifies ``tensor``'s buffer for a reused ``Cache`` object (``None``: build a new one).

    Only eager calls reuse: under export or tracing every call builds its own objects.
    """
    if memo is None or not _in_place():
        return None
    return (tensor.data_ptr(), tuple(tensor.shape), tensor.dtype, tensor.device)


def _cross_cache(cross_kv: Tensor, memo: dict | None = None):
    """A ``transformers`` ``Cache`` holding ``cross_kv`` as every layer's cross-attention keys/values.

    Eager calls with the same ``cross_kv`` tensor (every step of one generation) reuse the object of
    the previous call, so a decode step builds no Python objects per layer.
    """
    from transformers.cache_utils import Cache

    global FilledLayer
    if FilledLayer is None:
        FilledLayer = _filled_layer_class()
    key = _memo_key(cross_kv, memo)
    found = memo.get("cross") if memo is not None else None
    if key is not None and found is not None and found[0] == key:
        return found[1]
    made = Cache(layers=[FilledLayer(cross_kv[i, 0], cross_kv[i, 1]) for i in range(cross_kv.shape[0])])
    if key is not None and memo is not None:
        memo["cross"] = (key, made)
    return made


def _slot_cache(cache: Tensor, cache_position: Tensor, memo: dict | None = None):
    """A ``transformers`` ``Cache`` whose layers write into ``cache`` (one :class:`SlotLayer` per layer).

    Eager calls on the same buffer reuse the ``Cache`` object of the previous call (kept in ``memo``)
    and only move its slots, so a decode step builds no Python objects per layer.
    """
    from transformers.cache_utils import Cache

    global SlotLayer
    if SlotLayer is None:
        SlotLayer = _slot_layer_class()
    key = _memo_key(cache, memo)
    found = memo.get("slots") if memo is not None else None
    if key is not None and found is not None and found[0] == key:
        for layer in found[1].layers:
            layer.position, layer.cumulative_length, layer.new = cache_position, cache_position[0], None
        return found[1]
    made = Cache(layers=[SlotLayer(cache[i, 0], cache[i, 1], cache_position) for i in range(cache.shape[0])])
    if key is not None and memo is not None:
        memo["slots"] = (key, made)
    return made


def _new_kv(cache) -> Tensor:
    """The new keys/values every layer wrote, ``[layers, 2, batch, heads, new, head_dim]``."""
    return torch.stack([torch.stack(layer.new) for layer in cache.layers])


def _full_call(input_ids: Tensor, layers: int, heads: int, head_dim: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The cache and slots of a call over a whole sequence (no cache given)."""
    batch, new = input_ids.shape
    cache = torch.zeros(layers, 2, batch, heads, new, head_dim, dtype=dtype, device=input_ids.device)
    return cache, torch.arange(new, device=input_ids.device)


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
        self._memo: dict = {}  # the slot cache object of the last eager call (see _slot_cache)

    def _dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


class HFCausalLM(_Wrapper):
    """``(input_ids, attention_mask, cache, cache_position, logits_index) -> (logits, new_kv)`` over an
    ``AutoModelForCausalLM``."""

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        cache: Tensor | None = None,
        cache_position: Tensor | None = None,
        logits_index: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        if cache is None or cache_position is None:
            assert self.cache_geometry is not None
            cache, cache_position = _full_call(input_ids, *self.cache_geometry, self._dtype())
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0).index_select(1, cache_position)
        slots = _slot_cache(cache, cache_position, self._memo)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            past_key_values=slots,
            use_cache=True,
            return_dict=True,
            logits_to_keep=logits_index if logits_index is not None else 0,
        )
        return out.logits, _new_kv(slots)


class HFEncoder(_Wrapper):
    """``(input_ids, attention_mask) -> encoder_states`` over a seq2seq model's encoder."""

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        ids = roll_left_padding(input_ids, attention_mask)
        mask = roll_left_padding(attention_mask, attention_mask)
        states = self.model.get_encoder()(input_ids=ids, attention_mask=mask, return_dict=True).last_hidden_state
        return roll_left_padding(states, attention_mask, back=True)


class HFCrossKV(_Wrapper):
    """``encoder_states -> cross_kv [layers, 2, batch, heads, src, head_dim]`` over a seq2seq LM.

    Any architecture: one decoder call on a placeholder token with an empty cross-attention cache
    makes ``transformers`` fill that cache with every layer's keys and values of the source, which
    are what the decoder then reads at every step.
    """

    def forward(self, encoder_states: Tensor) -> Tensor:
        from transformers import DynamicCache, EncoderDecoderCache
        from transformers.modeling_outputs import BaseModelOutput

        batch = encoder_states.shape[0]
        start = torch.zeros(batch, 1, dtype=torch.long, device=encoder_states.device)
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        out = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoder_states),
            decoder_input_ids=start,
            past_key_values=cache,
            use_cache=True,
            return_dict=True,
        )
        layers = out.past_key_values.cross_attention_cache.layers
        return torch.stack([torch.stack([layer.keys, layer.values]) for layer in layers])


class HFDecoder(_Wrapper):
    """``(decoder_input_ids, encoder_states, encoder_mask, cross_kv, cache, cache_position) -> (logits, new_kv)``
    over a seq2seq LM."""

    def forward(
        self,
        decoder_input_ids: Tensor,
        encoder_states: Tensor,
        encoder_mask: Tensor,
        cross_kv: Tensor | None = None,
        cache: Tensor | None = None,
        cache_position: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        from transformers import DynamicCache, EncoderDecoderCache
        from transformers.modeling_outputs import BaseModelOutput

        if cache is None or cache_position is None:
            assert self.cache_geometry is not None
            cache, cache_position = _full_call(decoder_input_ids, *self.cache_geometry, self._dtype())
        slots = _slot_cache(cache, cache_position, self._memo)
        cross = DynamicCache() if cross_kv is None else _cross_cache(cross_kv, self._memo)
        both = EncoderDecoderCache(slots, cross)
        if cross_kv is not None:
            both.is_updated = {i: True for i in range(cross_kv.shape[0])}
        # Cross-attention is blind to key order, so the caller's left-padded layout needs no roll.
        out = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoder_states),
            attention_mask=encoder_mask,
            decoder_input_ids=decoder_input_ids,
            past_key_values=both,
            use_cache=True,
            return_dict=True,
        )
        return out.logits, _new_kv(slots)


class HFClassifier(_Wrapper):
    """``(input_ids, attention_mask) -> logits`` over an ``AutoModelForSequenceClassification``."""

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        ids = roll_left_padding(input_ids, attention_mask)
        mask = roll_left_padding(attention_mask, attention_mask)
        return self.model(input_ids=ids, attention_mask=mask, return_dict=True).logits
