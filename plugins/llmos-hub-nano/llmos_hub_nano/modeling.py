"""The nano architectures, written from scratch: decoder-only LM, encoder-decoder, encoder classifier.

Pre-LN transformer blocks with ``scaled_dot_product_attention`` and learned absolute positions. Each
model exposes exactly the calling conventions of :class:`llmos_hub.LoadedModel` (``causal_lm``,
``encoder``, ``decoder``, ``classifier``): the KV cache is one tensor
``[layers, 2, batch, heads, past_len, head_dim]`` and positions are derived from the attention mask, so
left padding gives the same numbers as no padding. Forward passes have no data-dependent Python
control flow (shapes only), so ``torch.onnx.export`` traces them with dynamic batch and length axes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import NanoConfig

__all__ = [
    "NanoCausalLM",
    "NanoClassifier",
    "NanoDecoder",
    "NanoEncoder",
    "NanoSeq2Seq",
    "build_model",
    "roles",
]


class _Attention(nn.Module):
    """Multi-head attention; keys/values come from ``memory`` (cross) or from ``x`` plus the cache."""

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

    def forward(
        self, x: Tensor, allowed: Tensor, past: Tensor | None = None, memory: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        b, n, d = x.shape
        q = self.q(x).view(b, n, self.n_heads, self.head_dim).transpose(1, 2)
        kv = self._split(self.kv(x if memory is None else memory))
        if past is not None:
            kv = torch.cat([past, kv], dim=3)
        y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=allowed)
        return self.out(y.transpose(1, 2).reshape(b, n, d)), kv


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
        past: Tensor | None = None,
        memory: Tensor | None = None,
        memory_allowed: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        h, present = self.self_attn(self.ln_self(x), allowed, past)
        x = x + self.drop(h)
        if self.cross_attn is not None and self.ln_cross is not None:
            h, _ = self.cross_attn(self.ln_cross(x), memory_allowed, memory=memory)
            x = x + self.drop(h)
        x = x + self.drop(self.ff(self.ln_ff(x)))
        return x, present


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


def _mask_positions(attention_mask: Tensor, new: int) -> Tensor:
    """Position of each of the last ``new`` tokens: the number of real tokens before it."""
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return positions[:, attention_mask.shape[1] - new :]


def _causal_allowed(new: int, total: int, device: torch.device) -> Tensor:
    """``[new, total]``: query ``i`` (absolute index ``total - new + i``) sees keys up to itself."""
    query = torch.arange(new, device=device) + (total - new)
    key = torch.arange(total, device=device)
    return key[None, :] <= query[:, None]


def _self_allowed(new: int, total: int, device: torch.device) -> Tensor:
    query = torch.arange(new, device=device) + (total - new)
    key = torch.arange(total, device=device)
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
        past: Tensor | None = None,
        memory: Tensor | None = None,
        memory_allowed: Tensor | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        presents = []
        for i, block in enumerate(self.blocks):
            x, present = block(x, allowed, None if past is None else past[i], memory, memory_allowed)
            presents.append(present)
        return self.ln_final(x), presents


class NanoCausalLM(nn.Module):
    """Decoder-only LM: ``(input_ids, attention_mask, past) -> (logits, present)``; tied output head."""

    def __init__(self, config: NanoConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = _Embedding(config)
        self.stack = _Stack(config, config.n_layers)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, past: Tensor) -> tuple[Tensor, Tensor]:
        new = input_ids.shape[1]
        total = attention_mask.shape[1]
        x = self.embed(input_ids, _mask_positions(attention_mask, new))
        # Padding is masked out; each query always sees itself, so a padding row never attends to
        # nothing (which would make NaNs that the next layer's keys would carry into real rows).
        allowed = _causal_allowed(new, total, input_ids.device)[None] & attention_mask[:, None, :].bool()
        allowed = (allowed | _self_allowed(new, total, input_ids.device)[None])[:, None]
        h, presents = self.stack.run(x, allowed, past)
        logits = h @ self.embed.tokens.weight.t()
        return logits, torch.stack(presents)


class NanoEncoder(nn.Module):
    """Bidirectional encoder: ``(input_ids, attention_mask) -> encoder_states [batch, src, d_model]``."""

    def __init__(self, config: NanoConfig, embed: _Embedding | None = None) -> None:
        super().__init__()
        self.embed = embed if embed is not None else _Embedding(config)
        self.stack = _Stack(config, config.n_layers)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        x = self.embed(input_ids, _mask_positions(attention_mask, input_ids.shape[1]))
        allowed = attention_mask[:, None, None, :].bool()
        h, _ = self.stack.run(x, allowed)
        return h


class NanoDecoder(nn.Module):
    """Decoder with cross-attention:
    ``(decoder_input_ids, encoder_states, encoder_mask, past) -> (logits, present)``."""

    def __init__(self, config: NanoConfig, embed: _Embedding) -> None:
        super().__init__()
        self.embed = embed
        self.stack = _Stack(config, config.decoder_layers, cross=True)

    def forward(
        self, decoder_input_ids: Tensor, encoder_states: Tensor, encoder_mask: Tensor, past: Tensor
    ) -> tuple[Tensor, Tensor]:
        batch, new = decoder_input_ids.shape
        total = past.shape[4] + new
        positions = (torch.arange(new, device=decoder_input_ids.device) + (total - new))[None].expand(batch, new)
        x = self.embed(decoder_input_ids, positions)
        allowed = _causal_allowed(new, total, decoder_input_ids.device)[None, None]
        memory_allowed = encoder_mask[:, None, None, :].bool()
        h, presents = self.stack.run(x, allowed, past, encoder_states, memory_allowed)
        logits = h @ self.embed.tokens.weight.t()
        return logits, torch.stack(presents)


class NanoSeq2Seq(nn.Module):
    """Encoder-decoder sharing one embedding table (also the output head)."""

    def __init__(self, config: NanoConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = NanoEncoder(config)
        self.decoder = NanoDecoder(config, self.encoder.embed)


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
        return {"encoder": model.encoder, "decoder": model.decoder}
    if isinstance(model, NanoClassifier):
        return {"classifier": model}
    raise TypeError(f"not a nano model: {type(model).__name__}")


def empty_past(config: NanoConfig, batch: int, *, decoder: bool = False, device=None, dtype=None) -> Tensor:
    """A cache with ``past_len`` 0, the ``past`` of a first step."""
    layers = config.decoder_layers if decoder else config.n_layers
    return torch.zeros(layers, 2, batch, config.n_heads, 0, config.head_dim, device=device, dtype=dtype)
