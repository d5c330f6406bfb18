"""The nano architectures, written from scratch: decoder-only LM, encoder-decoder, encoder classifier.

Pre-LN transformer blocks with ``scaled_dot_product_attention`` and learned absolute positions. Each
model exposes exactly the calling conventions of :class:`llmos_hub.LoadedModel` (``causal_lm``,
``encoder``, ``decoder``, ``classifier``): the KV cache is one tensor
``[layers, 2, batch, heads, past_len, head_dim]`` and positions are derived from the attention mask, so
left padding gives the same numbers as no padding. Forward passes have no data-dependent Python
control flow (shapes only), so ``torch.onnx.export`` traces them with dynamic batch and length axes.

A seq2seq config with ``"copy": true`` builds a pointer-generator (See et al., 2017): the decoder mixes
its vocabulary distribution with an attention distribution over the source tokens, so it can copy
words it has rarely seen (package names, technical terms) from the input. The calling convention
stays the same: the encoder appends the source token ids to its states (as a few small-integer
channels, see :class:`_SourceIds`), and the decoder's ``logits`` are the log-probabilities of the
mixed distribution, which ``log_softmax`` leaves unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import COPY_BASE, NanoConfig

__all__ = [
    "NanoCausalLM",
    "NanoClassifier",
    "NanoCrossKV",
    "NanoDecoder",
    "NanoEncoder",
    "NanoSeq2Seq",
    "build_model",
    "roles",
]


class _Attention(nn.Module):
    """Multi-head attention; keys/values come from ``memory`` or ``cross_kv`` (cross) or from ``x`` plus the cache."""

    def __init__(self, config: NanoConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.q = nn.Linear(config.d_model, config.d_model)
        self.kv = nn.Linear(config.d_model, 2 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)

    def _split(self, x: Tensor) -> Tensor:
        """``[batch, n, 2 * d]`` -> ``[2, batch, heads, n, head_dim]``."""
        b, n, _ = x.shape
        return x.view(b, n, 2, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)

    def keys_values(self, source: Tensor) -> Tensor:
        """The keys and values of ``source`` ``[batch, n, d]`` as ``[2, batch, heads, n, head_dim]``."""
        return self._split(self.kv(source))

    def forward(
        self,
        x: Tensor,
        allowed: Tensor,
        cache: Tensor | None = None,
        cache_position: Tensor | None = None,
        memory: Tensor | None = None,
        cross_kv: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Returns the output and the new keys/values of ``x`` (``None`` for cross-attention).

        With a ``cache`` ``[2, batch, heads, capacity, head_dim]`` the new keys/values are written into
        its slots ``cache_position`` and the queries attend over all the slots (``allowed`` masks the
        ones not to see), so the cache is never copied.
        """
        b, n, d = x.shape
        q = self.q(x).view(b, n, self.n_heads, self.head_dim).transpose(1, 2)
        new = None
        if cross_kv is not None:
            kv = cross_kv
        elif memory is not None:
            kv = self.keys_values(memory)
        else:
            kv = new = self.keys_values(x)
            if cache is not None and cache_position is not None:
                kv = write_slots(cache, cache_position, new)
        y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=allowed)
        return self.out(y.transpose(1, 2).reshape(b, n, d)), new


def write_slots(cache: Tensor, cache_position: Tensor, new: Tensor) -> Tensor:
    """``cache`` ``[..., capacity, head_dim]`` with ``new`` ``[..., n, head_dim]`` in slots ``cache_position``.

    Eager PyTorch writes in place (no copy of the cache); under ``torch.export`` / tracing the write
    is functional, so the exported graph has no input mutation.
    """
    axis = cache.dim() - 2
    if torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing():
        return cache.index_copy(axis, cache_position, new.to(cache.dtype))
    return cache.index_copy_(axis, cache_position, new.to(cache.dtype))


class _Block(nn.Module):
    """Pre-LN block: self-attention, optional cross-attention, feed-forward, each with a residual."""

    def __init__(self, config: NanoConfig, *, cross: bool = False) -> None:
        super().__init__()
        self.ln_self = nn.LayerNorm(config.d_model)
        self.self_attn = _Attention(config)
        self.ln_cross = nn.LayerNorm(config.d_model) if cross else None
        self.cross_attn = _Attention(config) if cross else None
        self.ln_ff = nn.LayerNorm(config.d_model)
        self.ff = nn.Sequential(
            nn.Linear(config.d_model, config.d_ff), nn.GELU(), nn.Linear(config.d_ff, config.d_model)
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(
        self,
        x: Tensor,
        allowed: Tensor,
        cache: Tensor | None = None,
        cache_position: Tensor | None = None,
        memory: Tensor | None = None,
        memory_allowed: Tensor | None = None,
        cross_kv: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        h, new = self.self_attn(self.ln_self(x), allowed, cache, cache_position)
        x = x + self.drop(h)
        if self.cross_attn is not None and self.ln_cross is not None:
            h, _ = self.cross_attn(self.ln_cross(x), memory_allowed, memory=memory, cross_kv=cross_kv)
            x = x + self.drop(h)
        x = x + self.drop(self.ff(self.ln_ff(x)))
        return x, new


class _Embedding(nn.Module):
    """Token plus learned absolute position embeddings (positions clamped to the context)."""

    def __init__(self, config: NanoConfig) -> None:
        super().__init__()
        self.max_length = config.max_length
        self.tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.positions = nn.Embedding(config.max_length, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        nn.init.normal_(self.tokens.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)

    def forward(self, input_ids: Tensor, positions: Tensor) -> Tensor:
        positions = positions.clamp(0, self.max_length - 1)
        return self.drop(self.tokens(input_ids) + self.positions(positions))


def _slots(new: int, cache: Tensor | None, cache_position: Tensor | None, device: torch.device) -> tuple[int, Tensor]:
    """The number of key slots and the slot of each new token (``0..new-1`` without a cache)."""
    if cache is None or cache_position is None:
        return new, torch.arange(new, device=device)
    return cache.shape[4], cache_position


def _causal_allowed(query: Tensor, total: int) -> Tensor:
    """``[new, total]``: the query in slot ``query[i]`` sees the slots up to its own."""
    key = torch.arange(total, device=query.device)
    return key[None, :] <= query[:, None]


def _self_allowed(query: Tensor, total: int) -> Tensor:
    key = torch.arange(total, device=query.device)
    return key[None, :] == query[:, None]


class _Stack(nn.Module):
    """Embedding, blocks and final norm shared by every architecture."""

    def __init__(self, config: NanoConfig, n_layers: int, *, cross: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_Block(config, cross=cross) for _ in range(n_layers))
        self.ln_final = nn.LayerNorm(config.d_model)

    def run(
        self,
        x: Tensor,
        allowed: Tensor,
        cache: Tensor | None = None,
        cache_position: Tensor | None = None,
        memory: Tensor | None = None,
        memory_allowed: Tensor | None = None,
        cross_kv: Tensor | None = None,
    ) -> tuple[Tensor, list[Tensor | None]]:
        news = []
        for i, block in enumerate(self.blocks):
            x, new = block(
                x,
                allowed,
                None if cache is None else cache[i],
                cache_position,
                memory,
                memory_allowed,
                None if cross_kv is None else cross_kv[i],
            )
            news.append(new)
        return self.ln_final(x), news


class NanoCausalLM(nn.Module):
    """Decoder-only LM with a tied output head, in the ``causal_lm`` calling convention:
    ``(input_ids, attention_mask, cache, cache_position, logits_index) -> (logits, new_kv)``.

    Without a cache (training) the call is over the whole sequence: slots are ``0..n-1``.
    """

    def __init__(self, config: NanoConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = _Embedding(config)
        self.stack = _Stack(config, config.n_layers)
        self.cache_geometry = (config.n_layers, config.n_heads, config.head_dim)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        cache: Tensor | None = None,
        cache_position: Tensor | None = None,
        logits_index: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        new = input_ids.shape[1]
        total, query = _slots(new, cache, cache_position, input_ids.device)
        # A token's position is the number of real tokens before it; slots after the newest token
        # are unwritten, and causality keeps them out of both the count and the attention.
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0).index_select(1, query)
        x = self.embed(input_ids, positions)
        # Padding is masked out; each query always sees itself, so a padding row never attends to
        # nothing (which would make NaNs that the next layer's keys would carry into real rows).
        allowed = _causal_allowed(query, total)[None] & attention_mask[:, None, :].bool()
        allowed = (allowed | _self_allowed(query, total)[None])[:, None]
        h, news = self.stack.run(x, allowed, cache, query)
        if logits_index is not None:
            h = h.index_select(1, logits_index)
        logits = h @ self.embed.tokens.weight.t()
        return logits, torch.stack(news)  # type: ignore[arg-type]


class _SourceIds(nn.Module):
    """Carries source token ids through ``encoder_states`` to a copy decoder, in any float dtype.

    The ids travel as ``digits`` base-64 digits (each an integer below 64, exact in float16 and
    bfloat16, where an id like 2047 would not be), appended after the ``d_model`` state channels.
    Reading them back rounds and clamps, so any float input (an exporter's random example) still
    gives ids inside the vocabulary.
    """

    def __init__(self, config: NanoConfig) -> None:
        super().__init__()
        self.vocab_size = config.vocab_size
        self.register_buffer(
            "scale", torch.tensor([COPY_BASE**i for i in range(config.copy_digits)]), persistent=False
        )

    def write(self, input_ids: Tensor, dtype: torch.dtype) -> Tensor:
        """``[batch, src]`` ids -> ``[batch, src, digits]`` channels of ``dtype``."""
        return torch.remainder(torch.div(input_ids[..., None], self.scale, rounding_mode="floor"), COPY_BASE).to(dtype)

    def read(self, channels: Tensor) -> Tensor:
        """``[batch, src, digits]`` channels -> ``[batch, src]`` int64 ids."""
        digits = channels.float().round().clamp(0, COPY_BASE - 1).long()
        return (digits * self.scale).sum(-1).clamp(0, self.vocab_size - 1)


class NanoEncoder(nn.Module):
    """Bidirectional encoder: ``(input_ids, attention_mask) -> encoder_states [batch, src, d_model]``.

    A copy model's states are ``[batch, src, d_model + digits]``: the source ids ride along.
    """

    def __init__(self, config: NanoConfig, embed: _Embedding | None = None) -> None:
        super().__init__()
        self.embed = embed if embed is not None else _Embedding(config)
        self.stack = _Stack(config, config.n_layers)
        self.source_ids = _SourceIds(config) if config.copy else None

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        x = self.embed(input_ids, (attention_mask.cumsum(-1) - 1).clamp(min=0))
        allowed = attention_mask[:, None, None, :].bool()
        h, _ = self.stack.run(x, allowed)
        if self.source_ids is not None:
            h = torch.cat([h, self.source_ids.write(input_ids, h.dtype)], dim=-1)
        return h


class _Copy(nn.Module):
    """The pointer-generator head: mixes the vocabulary distribution with a copy distribution.

    ``p_gen = sigmoid(w . [h, context])`` weighs generating against copying; the copy distribution is
    a single-head attention over the (unpadded) source positions, scattered onto their token ids.
    Two learned, per-step biases need only the current decoder input id (so they work the same with
    the KV cache): one for the source positions that *follow* an occurrence of that token, so a
    copied span (a word cut into several BPE pieces, a phrase) can go on piece by piece, and one for
    the positions holding that same token, so the model can learn not to stutter ("DNS DNS DNS").
    The mixture is computed in float32 and returned as log-probabilities.
    """

    #: Floor of a probability before its log, so a token neither generated nor copied stays finite.
    FLOOR = 1e-12

    def __init__(self, config: NanoConfig) -> None:
        super().__init__()
        self.d_model = config.d_model
        self.query = nn.Linear(config.d_model, config.d_model)
        self.key = nn.Linear(config.d_model, config.d_model)
        self.gate = nn.Linear(2 * config.d_model, 1)
        self.follow = nn.Linear(config.d_model, 1)
        self.repeat = nn.Linear(config.d_model, 1)

    def forward(
        self, h: Tensor, logits: Tensor, memory: Tensor, memory_mask: Tensor, source_ids: Tensor, input_ids: Tensor
    ) -> Tensor:
        batch, new, _ = h.shape
        scores = self.query(h) @ self.key(memory).transpose(1, 2) / math.sqrt(self.d_model)
        # [batch, new, src]: 1 where the source token is the current input, or just before it.
        same = (source_ids[:, None, :] == input_ids[:, :, None]).float()
        follows = F.pad(same[..., :-1], (1, 0))
        scores = scores.float() + self.follow(h).float() * follows + self.repeat(h).float() * same
        scores = scores.masked_fill(~memory_mask[:, None, :], -1e9)
        attention = scores.softmax(-1)  # [batch, new, src]
        context = attention.to(memory.dtype) @ memory
        p_gen = torch.sigmoid(self.gate(torch.cat([h, context], dim=-1)).float())
        index = source_ids[:, None, :].expand(batch, new, source_ids.shape[1])
        copied = torch.zeros_like(logits, dtype=torch.float32).scatter_add(-1, index, attention)
        probs = p_gen * logits.float().softmax(-1) + (1.0 - p_gen) * copied
        return probs.clamp_min(self.FLOOR).log().to(logits.dtype)


class NanoDecoder(nn.Module):
    """Decoder with cross-attention, in the ``decoder`` calling convention:
    ``(decoder_input_ids, encoder_states, encoder_mask, cross_kv, cache, cache_position) -> (logits, new_kv)``.

    ``cross_kv`` are the cross-attention keys/values from :class:`NanoCrossKV`, computed once per
    source; without them (training) they are computed from ``encoder_states``. With a copy head,
    ``logits`` are the log-probabilities of the pointer-generator mixture.
    """

    def __init__(self, config: NanoConfig, embed: _Embedding, source_ids: _SourceIds | None = None) -> None:
        super().__init__()
        self.d_model = config.d_model
        self.embed = embed
        self.stack = _Stack(config, config.decoder_layers, cross=True)
        self.source_ids = source_ids
        self.copy = _Copy(config) if source_ids is not None else None
        self.cache_geometry = (config.decoder_layers, config.n_heads, config.head_dim)

    def forward(
        self,
        decoder_input_ids: Tensor,
        encoder_states: Tensor,
        encoder_mask: Tensor,
        cross_kv: Tensor | None = None,
        cache: Tensor | None = None,
        cache_position: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        batch, new = decoder_input_ids.shape
        total, query = _slots(new, cache, cache_position, decoder_input_ids.device)
        x = self.embed(decoder_input_ids, query[None].expand(batch, new))
        allowed = _causal_allowed(query, total)[None, None]
        memory = encoder_states if self.copy is None else encoder_states[..., : self.d_model]
        memory_allowed = encoder_mask[:, None, None, :].bool()
        h, news = self.stack.run(x, allowed, cache, query, memory, memory_allowed, cross_kv)
        logits = h @ self.embed.tokens.weight.t()
        if self.copy is not None and self.source_ids is not None:
            source_ids = self.source_ids.read(encoder_states[..., self.d_model :])
            logits = self.copy(h, logits, memory, encoder_mask.bool(), source_ids, decoder_input_ids)
        return logits, torch.stack(news)  # type: ignore[arg-type]


class NanoCrossKV(nn.Module):
    """The ``cross_kv`` role: ``encoder_states -> cross_kv [layers, 2, batch, heads, src, head_dim]``.

    The keys and values every decoder layer's cross-attention reads, computed once per source
    instead of at every decoding step. Holds no weights of its own (it reads the decoder's).
    """

    def __init__(self, decoder: NanoDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, encoder_states: Tensor) -> Tensor:
        memory = encoder_states[..., : self.decoder.d_model]
        return torch.stack([block.cross_attn.keys_values(memory) for block in self.decoder.stack.blocks])


class NanoSeq2Seq(nn.Module):
    """Encoder-decoder sharing one embedding table (also the output head)."""

    def __init__(self, config: NanoConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = NanoEncoder(config)
        self.decoder = NanoDecoder(config, self.encoder.embed, self.encoder.source_ids)


class NanoClassifier(nn.Module):
    """Encoder, masked mean pooling, linear head: ``(input_ids, attention_mask) -> logits``."""

    def __init__(self, config: NanoConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = NanoEncoder(config)
        self.head = nn.Linear(config.d_model, len(config.labels or ()))

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        h = self.encoder(input_ids, attention_mask)
        weights = attention_mask.to(h.dtype)[:, :, None]
        pooled = (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(pooled)


def build_model(config: NanoConfig) -> nn.Module:
    """The module that owns every weight of ``config``'s architecture (what the checkpoint stores)."""
    if config.architecture == "causal-lm":
        return NanoCausalLM(config)
    if config.architecture == "seq2seq":
        return NanoSeq2Seq(config)
    return NanoClassifier(config)


def roles(model: nn.Module) -> dict[str, nn.Module]:
    """The modules a backend runs, by the role names of :class:`llmos_hub.LoadedModel`."""
    if isinstance(model, NanoCausalLM):
        return {"causal_lm": model}
    if isinstance(model, NanoSeq2Seq):
        return {"encoder": model.encoder, "cross_kv": NanoCrossKV(model.decoder), "decoder": model.decoder}
    if isinstance(model, NanoClassifier):
        return {"classifier": model}
    raise TypeError(f"not a nano model: {type(model).__name__}")


def empty_cache(config: NanoConfig, batch: int, capacity: int, *, decoder: bool = False, device=None, dtype=None) -> Tensor:
    """A zeroed self-attention cache with ``capacity`` slots, ``[layers, 2, batch, heads, capacity, head_dim]``."""
    layers = config.decoder_layers if decoder else config.n_layers
    return torch.zeros(layers, 2, batch, config.n_heads, capacity, config.head_dim, device=device, dtype=dtype)
