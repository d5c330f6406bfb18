"""Lean ``causal_lm`` modules for the architectures people decode most, over ``transformers``' own weights.

:class:`~.modules.HFCausalLM` runs any causal LM through ``transformers``' forward, which per decoding
step rebuilds attention masks, cache objects and output records in Python: on GPT-2-small at one row
that is about a third of the step on top of the weight products (``benchmarks/generate.py`` prints
the floor). For an architecture whose whole forward is a handful of operations, this module runs the
same layers (the same parameter tensors, the same activation module, the same
``scaled_dot_product_attention``) with nothing else in between, in the calling convention of
:class:`llmos_hub.LoadedModel` (cache preallocated and written in place, ``cache_position`` slots,
``logits_index``).

Covered: GPT-2 and the Llama family (Llama, Mistral and Qwen2 without sliding windows; ``causal_lm``)
and T5/mT5 (``decoder`` and ``cross_kv``; any feed-forward variant, run as its own
module). T5's and Llama's modules can join their query/key/value (and Llama's gate/up) layers for a
backend that owns them (``fuse_projections``). Only configurations these modules reproduce exactly are taken (:func:`native_causal_lm` returns ``None``
otherwise, and the family falls back to :class:`~.modules.HFCausalLM`); tests compare its logits and
greedy tokens with ``transformers``' on tiny models of each option.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from llmos_hub.attention import cache_attention

__all__ = ["NativeGPT2", "NativeLlama", "NativeT5CrossKV", "NativeT5Decoder", "native_causal_lm", "native_cross_kv",
           "native_decoder"]


def _exporting() -> bool:
    return bool(torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing())


def _write(cache: Tensor, cache_position: Tensor, new: Tensor) -> Tensor:
    """``cache [..., capacity, head_dim]`` with ``new`` written in place into slots ``cache_position``
    (eager only: traced, the modules take :func:`llmos_hub.attention.cache_attention` and write nothing)."""
    return cache.index_copy_(cache.dim() - 2, cache_position, new.to(cache.dtype))


def _visible(cache: Any, cache_position: Tensor) -> Any:
    """How many cache slots a call attends over: eager, the slots written so far and the new tokens';
    under export, the whole capacity (a graph keeps its shapes symbolic).

    The rest of a preallocated cache is masked out anyway, so attending over it only costs time: at
    GPT-2-small batch 8 an SDPA call over the whole 63-slot capacity took twice ``generate``'s over the
    filled slots. One host read per forward (a sync on CUDA, which the step's argmax needs anyway).
    """
    total = cache[0][0].shape[-2]  # a tensor or per-layer tensors alike; symbolic under export
    if _exporting():
        return total
    return min(int(total), int(cache_position[-1]) + 1)


def _self_attention(
    q: Tensor, layer: Any, k: Tensor, v: Tensor, cache_position: Tensor, mask: Tensor, scale: float | None,
    attend: Any = None,
) -> Tensor:
    """``[batch, heads, new, d]``: the new tokens' attention over layer ``i``'s cache ``layer`` and themselves.

    Eager, the new keys/values are written into their slots in place and the slots the mask covers
    (:func:`_visible`) are attended (``attend(keys, values)``, or one SDPA call); under export,
    :func:`llmos_hub.attention.cache_attention` reads the cache and writes nothing. ``scale=None``: SDPA's default.
    """
    if _exporting():
        return cache_attention(q, layer, k, v, cache_position, mask, scale)
    visible = mask.shape[-1]
    keys = _write(layer[0], cache_position, k)[..., :visible, :]
    values = _write(layer[1], cache_position, v)[..., :visible, :]
    if attend is not None:
        return attend(keys, values)
    return torch.nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=scale)


def _slots(
    ids: Tensor, attention_mask: Tensor, cache: Tensor | None, cache_position: Tensor | None,
    geometry: tuple[int, int, int], dtype: torch.dtype,
) -> tuple[Tensor, Tensor, Tensor]:
    """The cache and slots of a call (a fresh cache over the whole sequence when none is given), and each
    new token's position: the real tokens before it, so a left-padded row sees the positions it would
    alone (slots after the newest token are unwritten, and causality keeps them out of the count)."""
    if cache is None or cache_position is None:
        layers, heads, head_dim = geometry
        batch, new = ids.shape
        cache = torch.zeros(layers, 2, batch, heads, new, head_dim, dtype=dtype, device=ids.device)
        cache_position = torch.arange(new, device=ids.device)
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0).index_select(1, cache_position)
    return cache, cache_position, positions


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

    #: The convention inputs this module also takes as a sequence of per-layer ``(keys, values)`` pairs
    #: (``cache[i][0]`` is layer ``i``'s keys either way), so an exporter can make each its own graph
    #: input: ONNX Runtime then reads the runner's buffer in place instead of copying it apart at
    #: every step (selecting ``cache[i, 0]`` inside a graph is a ``Gather``/``Split``, a copy).
    per_layer_inputs: tuple[str, ...] = ("cache",)

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
        cache, cache_position, positions = _slots(input_ids, attention_mask, cache, cache_position,
                                                  self.cache_geometry, transformer.wte.weight.dtype)
        x = transformer.wte(input_ids) + transformer.wpe(positions)
        allowed = _causal_allowed(attention_mask, cache_position, _visible(cache, cache_position))
        news = []
        for i, block in enumerate(transformer.h):
            attn = block.attn
            q, k, v = attn.c_attn(block.ln_1(x)).split(self.n_embd, dim=2)
            q = q.view(batch, new, self.n_head, self.head_dim).transpose(1, 2)
            k = k.view(batch, new, self.n_head, self.head_dim).transpose(1, 2)
            v = v.view(batch, new, self.n_head, self.head_dim).transpose(1, 2)
            y = _self_attention(q, cache[i], k, v, cache_position, allowed, None)
            x = x + attn.c_proj(y.transpose(1, 2).reshape(batch, new, self.n_embd))
            mlp = block.mlp
            x = x + mlp.c_proj(mlp.act(mlp.c_fc(block.ln_2(x))))
            news.append(torch.stack((k, v)))
        x = transformer.ln_f(x)
        if logits_index is not None:
            x = x.index_select(1, logits_index)
        return self.model.lm_head(x), torch.stack(news)


def _joinable(layers: list[nn.Module]) -> bool:
    """Whether ``layers`` can be one ``nn.Linear`` (all ``nn.Linear`` of one input width, device and
    dtype, with biases on all or none); allocates nothing."""
    if not layers or not all(type(layer) is nn.Linear for layer in layers):
        return False
    first = layers[0].weight
    if any(layer.weight.shape[1] != first.shape[1] or layer.weight.dtype != first.dtype
           or layer.weight.device != first.device for layer in layers):
        return False
    return len({layer.bias is None for layer in layers}) == 1


def _joined(layers: list[nn.Module]) -> nn.Linear:
    """One ``nn.Linear`` whose output is ``layers``' outputs side by side (weights concatenated)."""
    weights = [layer.weight.detach() for layer in layers]
    joined = nn.Linear(weights[0].shape[1], sum(w.shape[0] for w in weights), bias=layers[0].bias is not None,
                       device="meta")
    joined.weight = nn.Parameter(torch.cat(weights), requires_grad=False)
    if layers[0].bias is not None:
        joined.bias = nn.Parameter(torch.cat([layer.bias.detach() for layer in layers]), requires_grad=False)
    return joined


Groups = list[tuple[nn.Module, tuple[str, ...]]]
Release = Callable[[Tensor], object]


def _all_joinable(groups: Groups) -> bool:
    return bool(groups) and all(_joinable([getattr(owner, name) for name in names]) for owner, names in groups)


def _fuse(groups: Groups, release: Release | None) -> tuple[nn.ModuleList, int]:
    """Join each ``(owner, names)`` group (all checked by :func:`_all_joinable`), one group at a time:
    build the joined layer, remove the named layers from their owner (set to ``None``) and hand each
    weight and bias they held to ``release`` before the next group is built, so a caller that gives
    their memory back holds one group's copy at most. Returns the joined layers and how many tensors
    were replaced."""
    joined: list[nn.Linear] = []
    count = 0
    for owner, names in groups:
        layers = [getattr(owner, name) for name in names]
        joined.append(_joined(layers))
        for name in names:
            setattr(owner, name, None)
        for layer in layers:
            for tensor in (layer.weight, layer.bias):
                if tensor is not None:
                    count += 1
                    if release is not None:
                        release(tensor)
        del layers
    return nn.ModuleList(joined), count


def _t5_supported(model: nn.Module) -> bool:
    config = getattr(model, "config", None)
    return (
        type(model).__name__ in {"T5ForConditionalGeneration", "MT5ForConditionalGeneration"}
        and getattr(config, "model_type", None) in {"t5", "mt5"}
    )


class NativeT5Decoder(nn.Module):
    """``(decoder_input_ids, encoder_states, encoder_mask, cross_kv, cache, cache_position) -> (logits, new_kv)``
    over the decoder of a ``T5ForConditionalGeneration`` (shared modules, not copies).

    The same operations as ``transformers``' T5 decoder with its SDPA attention: relative position bias
    of the first layer for every layer's self-attention (added where a key may be seen, the dtype's
    minimum elsewhere), unscaled dot products, cross-attention over ``cross_kv`` (or the keys/values of
    ``encoder_states`` when none is given), the feed-forward layers as they are, the decoder output
    scaled by ``d_model ** -0.5`` when the config says so.
    """

    #: See :attr:`NativeGPT2.per_layer_inputs`; the cross-attention keys/values too.
    per_layer_inputs: tuple[str, ...] = ("cache", "cross_kv")

    def __init__(self, model: nn.Module, cache_geometry: tuple[int, int, int]) -> None:
        super().__init__()
        self.model = model
        config = model.config
        self.n_heads = int(config.num_heads)
        self.head_dim = int(config.d_kv)
        self.scale_output = bool(getattr(config, "scale_decoder_outputs", getattr(config, "tie_word_embeddings", True)))
        self.model_dim = int(config.d_model)
        self.cache_geometry = cache_geometry
        self.inner_dim = self.n_heads * self.head_dim
        self.fused_qkv: nn.ModuleList | None = None

    def fuse_projections(self, release: Release | None = None) -> int:
        """Join each self-attention's ``q``, ``k`` and ``v`` into one linear layer: one product a step
        where there were three (at T5-small one row, ~60 us saved a layer with packed weights).

        For a backend that owns this module (:meth:`llmos_hub.LoadedModel.own_modules`): the model's
        ``q``/``k``/``v`` layers are removed (``transformers``' own forward no longer runs on it), layer
        by layer, each replaced tensor handed to ``release`` at once (to give its memory back). Returns
        how many tensors were replaced (0: nothing changed)."""
        groups: Groups = [(block.layer[0].SelfAttention, ("q", "k", "v")) for block in self.model.decoder.block]
        if self.fused_qkv is not None or not _all_joinable(groups):
            return 0
        self.fused_qkv, count = _fuse(groups, release)
        return count

    def _heads(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], x.shape[1], self.n_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        decoder_input_ids: Tensor,
        encoder_states: Tensor,
        encoder_mask: Tensor,
        cross_kv: Tensor | None = None,
        cache: Tensor | None = None,
        cache_position: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        decoder = self.model.decoder
        batch, new = decoder_input_ids.shape
        if cache is None or cache_position is None:
            layers, heads, head_dim = self.cache_geometry
            cache = torch.zeros(layers, 2, batch, heads, new, head_dim, dtype=encoder_states.dtype,
                                device=decoder_input_ids.device)
            cache_position = torch.arange(new, device=decoder_input_ids.device)
        total = _visible(cache, cache_position)
        lowest = torch.finfo(encoder_states.dtype).min
        first = decoder.block[0].layer[0].SelfAttention
        key = torch.arange(total, device=decoder_input_ids.device)
        bucket = first._relative_position_bucket(
            key[None, :] - cache_position[:, None],
            bidirectional=False,
            num_buckets=first.relative_attention_num_buckets,
            max_distance=first.relative_attention_max_distance,
        )
        bias = first.relative_attention_bias(bucket).permute(2, 0, 1).unsqueeze(0)  # [1, heads, new, total]
        self_mask = torch.where((key[None, :] <= cache_position[:, None])[None, None], bias, lowest)
        cross_mask = torch.where(encoder_mask[:, None, None, :].bool(), 0.0, lowest).to(encoder_states.dtype)
        x = decoder.embed_tokens(decoder_input_ids)
        news = []
        for i, block in enumerate(decoder.block):
            attention = block.layer[0].SelfAttention
            h = block.layer[0].layer_norm(x)
            if self.fused_qkv is not None:
                q, k, v = (self._heads(t) for t in self.fused_qkv[i](h).split(self.inner_dim, dim=-1))
            else:
                q, k, v = self._heads(attention.q(h)), self._heads(attention.k(h)), self._heads(attention.v(h))
            y = _self_attention(q, cache[i], k, v, cache_position, self_mask, 1.0)
            x = x + attention.o(y.transpose(1, 2).reshape(batch, new, -1))
            cross = block.layer[1].EncDecAttention
            h = block.layer[1].layer_norm(x)
            if cross_kv is not None:
                ck, cv = cross_kv[i][0], cross_kv[i][1]
            else:
                ck, cv = self._heads(cross.k(encoder_states)), self._heads(cross.v(encoder_states))
            y = torch.nn.functional.scaled_dot_product_attention(
                self._heads(cross.q(h)), ck, cv, attn_mask=cross_mask, scale=1.0
            )
            x = x + cross.o(y.transpose(1, 2).reshape(batch, new, -1))
            x = block.layer[2](x)
            news.append(torch.stack((k, v)))
        x = decoder.final_layer_norm(x)
        if self.scale_output:
            x = x * (self.model_dim**-0.5)
        return self.model.lm_head(x), torch.stack(news)


class NativeT5CrossKV(nn.Module):
    """``encoder_states -> cross_kv [layers, 2, batch, heads, src, head_dim]`` of a T5 decoder: each
    layer's cross-attention ``k`` and ``v`` projections of the source, as ``transformers``' T5 attention
    computes them. :class:`~.modules.HFCrossKV` gets the same by running the whole decoder once on a
    placeholder token, which costs a decoding step per batch and reads the self-attention layers
    (which :meth:`NativeT5Decoder.fuse_projections` may have joined)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.n_heads = int(model.config.num_heads)
        self.head_dim = int(model.config.d_kv)

    def forward(self, encoder_states: Tensor) -> Tensor:
        batch, src = encoder_states.shape[:2]

        def heads(x: Tensor) -> Tensor:
            return x.view(batch, src, self.n_heads, self.head_dim).transpose(1, 2)

        layers = []
        for block in self.model.decoder.block:
            cross = block.layer[1].EncDecAttention
            layers.append(torch.stack((heads(cross.k(encoder_states)), heads(cross.v(encoder_states)))))
        return torch.stack(layers)


def native_cross_kv(model: nn.Module) -> nn.Module | None:
    """The lean ``cross_kv`` module for ``model`` when covered (T5/mT5), else ``None``."""
    return NativeT5CrossKV(model) if _t5_supported(model) else None


def native_decoder(model: nn.Module, cache_geometry: tuple[int, int, int]) -> nn.Module | None:
    """The lean ``decoder`` module for ``model`` when covered, else ``None``."""
    if _t5_supported(model):
        return NativeT5Decoder(model, cache_geometry)
    return None


def _causal_allowed(attention_mask: Tensor, cache_position: Tensor, total: int) -> Tensor:
    """``[batch, 1, new, total]``: causal over the slots, padding hidden, and each query sees itself (so a
    padding row never attends to nothing, whose NaNs the next layer's keys would carry into real rows)."""
    key = torch.arange(total, device=attention_mask.device)
    allowed = (key[None, :] <= cache_position[:, None])[None] & attention_mask[:, None, :total].bool()
    return (allowed | (key[None, :] == cache_position[:, None])[None])[:, None]


_LLAMA_CLASSES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2"}


def _llama_supported(model: nn.Module) -> bool:
    config = getattr(model, "config", None)
    kind = _LLAMA_CLASSES.get(type(model).__name__)
    if kind is None or getattr(config, "model_type", None) != kind:
        return False
    if kind == "mistral" and getattr(config, "sliding_window", None) is not None:
        return False
    if kind == "qwen2" and getattr(config, "use_sliding_window", False):
        return False
    return int(getattr(config, "pretraining_tp", 1) or 1) == 1


class NativeLlama(nn.Module):
    """``causal_lm`` over a Llama-family model's own layers: RMS norms, rotary embeddings from the model's
    rotary module, grouped-query attention through ``transformers``' own SDPA function, gated MLP."""

    per_layer_inputs: tuple[str, ...] = ("cache",)  # see NativeGPT2.per_layer_inputs

    def __init__(self, model: nn.Module, cache_geometry: tuple[int, int, int]) -> None:
        super().__init__()
        import sys

        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        self.model = model
        self.cache_geometry = cache_geometry
        self._rotate = sys.modules[type(model).__module__].apply_rotary_pos_emb
        self._attend = sdpa_attention_forward
        self.fused_qkv: nn.ModuleList | None = None
        self.fused_gate_up: nn.ModuleList | None = None
        self._qkv_sizes: tuple[int, ...] = ()

    def _layers(self) -> Any:
        return self.model.model.layers[: self.model.config.num_hidden_layers]

    def fuse_projections(self, release: Release | None = None) -> int:
        """Join each layer's ``q_proj``/``k_proj``/``v_proj`` and its MLP's ``gate_proj``/``up_proj``
        into one linear layer each (see :meth:`NativeT5Decoder.fuse_projections`): two products a
        layer fewer. Only when the MLP is ``transformers``' gated one (``gate_proj``, ``up_proj``,
        ``down_proj``, ``act_fn``) and every group can be joined: both kinds or neither."""
        layers = list(self._layers())
        if self.fused_qkv is not None or not all(
            all(hasattr(layer.mlp, name) for name in ("gate_proj", "up_proj", "down_proj", "act_fn")) for layer in layers
        ):
            return 0
        attention_groups: Groups = [(layer.self_attn, ("q_proj", "k_proj", "v_proj")) for layer in layers]
        mlp_groups: Groups = [(layer.mlp, ("gate_proj", "up_proj")) for layer in layers]
        if not (_all_joinable(attention_groups) and _all_joinable(mlp_groups)):
            return 0
        first = layers[0].self_attn
        self._qkv_sizes = tuple(int(getattr(first, name).weight.shape[0]) for name in ("q_proj", "k_proj", "v_proj"))
        self.fused_qkv, count = _fuse(attention_groups, release)
        self.fused_gate_up, more = _fuse(mlp_groups, release)
        return count + more

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        cache: Tensor | None = None,
        cache_position: Tensor | None = None,
        logits_index: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        inner = self.model.model
        batch, new = input_ids.shape
        head_dim = self.cache_geometry[2]
        cache, cache_position, positions = _slots(input_ids, attention_mask, cache, cache_position,
                                                  self.cache_geometry, inner.embed_tokens.weight.dtype)
        x = inner.embed_tokens(input_ids)
        cos, sin = inner.rotary_emb(x, position_ids=positions)
        allowed = _causal_allowed(attention_mask, cache_position, _visible(cache, cache_position))
        news = []
        for i, layer in enumerate(self._layers()):
            attention = layer.self_attn
            h = layer.input_layernorm(x)
            if self.fused_qkv is not None:
                q, k, v = self.fused_qkv[i](h).split(self._qkv_sizes, dim=-1)
            else:
                q, k, v = attention.q_proj(h), attention.k_proj(h), attention.v_proj(h)
            q = q.view(batch, new, -1, head_dim).transpose(1, 2)
            k = k.view(batch, new, -1, head_dim).transpose(1, 2)
            v = v.view(batch, new, -1, head_dim).transpose(1, 2)
            q, k = self._rotate(q, k, cos, sin)
            def attend(keys: Tensor, values: Tensor, q: Tensor = q, attention: Any = attention) -> Tensor:
                return self._attend(attention, q, keys, values, allowed, dropout=0.0, scaling=attention.scaling)[0].transpose(1, 2)

            y = _self_attention(q, cache[i], k, v, cache_position, allowed, attention.scaling, attend).transpose(1, 2)
            x = x + attention.o_proj(y.reshape(batch, new, -1))
            h = layer.post_attention_layernorm(x)
            if self.fused_gate_up is not None:
                gate, up = self.fused_gate_up[i](h).chunk(2, dim=-1)
                x = x + layer.mlp.down_proj(layer.mlp.act_fn(gate) * up)
            else:
                x = x + layer.mlp(h)
            news.append(torch.stack((k, v)))
        x = inner.norm(x)
        if logits_index is not None:
            x = x.index_select(1, logits_index)
        return self.model.lm_head(x), torch.stack(news)


def native_causal_lm(model: nn.Module, cache_geometry: tuple[int, int, int] | None = None) -> nn.Module | None:
    """The lean module for ``model`` when its architecture and options are covered, else ``None``."""
    if _gpt2_supported(getattr(model, "config", None)) and type(model).__name__ == "GPT2LMHeadModel":
        return NativeGPT2(model)
    if cache_geometry is not None and _llama_supported(model):
        return NativeLlama(model, cache_geometry)
    return None
