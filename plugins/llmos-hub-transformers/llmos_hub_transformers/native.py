"""Lean ``causal_lm`` modules for the architectures people decode most, over ``transformers``' own weights.

:class:`~.modules.HFCausalLM` runs any causal LM through ``transformers``' forward, which per decoding
step rebuilds attention masks, cache objects and output records in Python: on GPT-2-small at one row
that is about a third of the step on top of the weight products (``benchmarks/generate.py`` prints
the floor). For an architecture whose whole forward is a handful of operations, this module runs the
same layers (the same parameter tensors, the same activation module, the same
``scaled_dot_product_attention``) with nothing else in between, in the calling convention of
:class:`llmos_hub.LoadedModel` (cache preallocated and written in place, ``cache_position`` slots,
``logits_index``).

Only configurations it reproduces exactly are taken (:func:`native_causal_lm` returns ``None``
otherwise, and the family falls back to :class:`~.modules.HFCausalLM`); tests compare its logits and
greedy tokens with ``transformers``' on tiny models of each option.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["NativeGPT2", "native_causal_lm"]


def _write(cache: Tensor, cache_position: Tensor, new: Tensor) -> Tensor:
    """``cache [..., capacity, head_dim]`` with ``new`` in slots ``cache_position``: in place when eager,
    functional under export or tracing (an exported graph mutates no input)."""
    axis = cache.dim() - 2
    if torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing():
        return cache.index_copy(axis, cache_position, new.to(cache.dtype))
    return cache.index_copy_(axis, cache_position, new.to(cache.dtype))


def _gpt2_supported(config: Any) -> bool:
    """GPT-2 configurations whose forward is exactly: pre-LN blocks, fused QKV, 1/sqrt(d) attention."""
    return (
        getattr(config, "model_type", None) == "gpt2"
        and not getattr(config, "add_cross_attention", False)
        and getattr(config, "scale_attn_weights", True)
        and not getattr(config, "scale_attn_by_inverse_layer_idx", False)
        and not getattr(config, "reorder_and_upcast_attn", False)
    )


class NativeGPT2(nn.Module):
    """``(input_ids, attention_mask, cache, cache_position, logits_index) -> (logits, new_kv)`` over the
    modules of a ``GPT2LMHeadModel`` (shared, not copied)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model  # kept whole: the export cache hashes the module tree, and tied weights stay tied
        config = model.config
        self.n_embd = int(config.n_embd)
        self.n_head = int(config.n_head)
        self.head_dim = self.n_embd // self.n_head
        self.cache_geometry = (int(config.n_layer), self.n_head, self.head_dim)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        cache: Tensor | None = None,
        cache_position: Tensor | None = None,
        logits_index: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        transformer = self.model.transformer
        batch, new = input_ids.shape
        if cache is None or cache_position is None:  # a call over the whole sequence
            layers, heads, head_dim = self.cache_geometry
            cache = torch.zeros(layers, 2, batch, heads, new, head_dim, dtype=transformer.wte.weight.dtype,
                                device=input_ids.device)
            cache_position = torch.arange(new, device=input_ids.device)
        total = cache.shape[4]
        # A token's position counts the real tokens before it, so a left-padded row sees the positions
        # it would alone; slots after the newest token are unwritten and causality hides them.
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0).index_select(1, cache_position)
        x = transformer.wte(input_ids) + transformer.wpe(positions)
        key = torch.arange(total, device=input_ids.device)
        allowed = (key[None, :] <= cache_position[:, None])[None] & attention_mask[:, None, :total].bool()
        # Each query also sees itself, so a padding row never attends to nothing (NaNs would follow).
        allowed = (allowed | (key[None, :] == cache_position[:, None])[None])[:, None]
        news = []
        for i, block in enumerate(transformer.h):
            attn = block.attn
            q, k, v = attn.c_attn(block.ln_1(x)).split(self.n_embd, dim=2)
            q = q.view(batch, new, self.n_head, self.head_dim).transpose(1, 2)
            k = k.view(batch, new, self.n_head, self.head_dim).transpose(1, 2)
            v = v.view(batch, new, self.n_head, self.head_dim).transpose(1, 2)
            keys = _write(cache[i, 0], cache_position, k)
            values = _write(cache[i, 1], cache_position, v)
            y = torch.nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=allowed)
            x = x + attn.c_proj(y.transpose(1, 2).reshape(batch, new, self.n_embd))
            mlp = block.mlp
            x = x + mlp.c_proj(mlp.act(mlp.c_fc(block.ln_2(x))))
            news.append(torch.stack((k, v)))
        x = transformer.ln_f(x)
        if logits_index is not None:
            x = x.index_select(1, logits_index)
        return self.model.lm_head(x), torch.stack(news)


def native_causal_lm(model: nn.Module) -> nn.Module | None:
    """The lean module for ``model`` when its architecture and options are covered, else ``None``."""
    if _gpt2_supported(getattr(model, "config", None)) and type(model).__name__ == "GPT2LMHeadModel":
        return NativeGPT2(model)
    return None
