"""Tiny random models that follow the fixed calling conventions, independent of the nano family.

They let the export, cache and session code be tested without trained checkpoints, and give the
failure tests a module of our own to break (an unsupported operator). Bytes are the tokens.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from llmos_hub import Capability, LoadedModel, Provenance

VOCAB, WIDTH, HEADS, LAYERS, MAX_LEN = 259, 32, 4, 2, 64


class ByteTokenizer:
    """Token = byte + 3; 0 pad, 1 eos, 2 bos."""

    pad_id, eos_id, bos_id = 0, 1, 2

    def encode(self, text: str) -> list[int]:
        return [b + 3 for b in text.encode("utf-8")]

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i - 3 for i in ids if i >= 3).decode("utf-8", errors="replace")


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q, self.kv, self.o = nn.Linear(WIDTH, WIDTH), nn.Linear(WIDTH, 2 * WIDTH), nn.Linear(WIDTH, WIDTH)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], HEADS, WIDTH // HEADS).transpose(1, 2)

    def keys_values(self, source: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._heads(t) for t in self.kv(source).split(WIDTH, dim=-1)])

    def forward(self, x, source, mask, cache=None, slots=None, cross=None):
        """Self-attention writes its keys/values into ``cache`` slots (functionally, unlike nano)."""
        q = self._heads(self.q(x))
        new = None
        if cross is not None:
            kv = cross
        else:
            kv = new = self.keys_values(source)
            if cache is not None:
                kv = cache.index_copy(3, slots, new)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mask)
        return self.o(out.transpose(1, 2).reshape(x.shape)), new


class _Block(nn.Module):
    def __init__(self, cross: bool = False) -> None:
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(WIDTH), _Attention()
        self.cross = _Attention() if cross else None
        self.ln_cross = nn.LayerNorm(WIDTH) if cross else None
        self.ln2 = nn.LayerNorm(WIDTH)
        self.ff = nn.Sequential(nn.Linear(WIDTH, 4 * WIDTH), nn.GELU(), nn.Linear(4 * WIDTH, WIDTH))

    def forward(self, x, mask, cache=None, slots=None, memory=None, memory_mask=None, cross=None):
        h = self.ln1(x)
        a, new = self.attn(h, h, mask, cache, slots)
        x = x + a
        if self.cross is not None:
            x = x + self.cross(self.ln_cross(x), memory, memory_mask, cross=cross)[0]
        return x + self.ff(self.ln2(x)), new


def _slots(new: int, cache, slots, device) -> tuple[int, torch.Tensor]:
    if cache is None or slots is None:
        return new, torch.arange(new, device=device)
    return cache.shape[4], slots


def _self_mask(attention_mask: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    total = attention_mask.shape[1]
    k = torch.arange(total, device=attention_mask.device)
    mask = (k[None, :] <= slots[:, None])[None, None] & attention_mask.bool()[:, None, None, :]
    return mask | ~mask.any(-1, keepdim=True)  # a pad query attends somewhere (its output is unused)


class TinyCausalLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.pos = nn.Embedding(VOCAB, WIDTH), nn.Embedding(MAX_LEN, WIDTH)
        self.blocks = nn.ModuleList(_Block() for _ in range(LAYERS))
        self.ln, self.head = nn.LayerNorm(WIDTH), nn.Linear(WIDTH, VOCAB)

    def forward(self, input_ids, attention_mask, cache=None, cache_position=None, logits_index=None):
        total, slots = _slots(input_ids.shape[1], cache, cache_position, input_ids.device)
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0).index_select(1, slots)
        x = self.emb(input_ids) + self.pos(positions)
        mask = _self_mask(attention_mask, slots)
        news = []
        for i, block in enumerate(self.blocks):
            x, new = block(x, mask, None if cache is None else cache[i], slots)
            news.append(new)
        if logits_index is not None:
            x = x.index_select(1, logits_index)
        return self.head(self.ln(x)), torch.stack(news)


class TinyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.pos = nn.Embedding(VOCAB, WIDTH), nn.Embedding(MAX_LEN, WIDTH)
        self.block, self.ln = _Block(), nn.LayerNorm(WIDTH)

    def forward(self, input_ids, attention_mask):
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        x = self.emb(input_ids) + self.pos(positions)
        mask = attention_mask.bool()[:, None, None, :]
        return self.ln(self.block(x, mask)[0])


class TinyDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.pos = nn.Embedding(VOCAB, WIDTH), nn.Embedding(MAX_LEN, WIDTH)
        self.blocks = nn.ModuleList(_Block(cross=True) for _ in range(LAYERS))
        self.ln, self.head = nn.LayerNorm(WIDTH), nn.Linear(WIDTH, VOCAB)

    def forward(self, decoder_input_ids, encoder_states, encoder_mask, cross_kv=None, cache=None, cache_position=None):
        batch, new = decoder_input_ids.shape
        total, slots = _slots(new, cache, cache_position, decoder_input_ids.device)
        x = self.emb(decoder_input_ids) + self.pos(slots)[None]
        self_mask = (torch.arange(total, device=x.device)[None, :] <= slots[:, None])[None, None]
        memory_mask = encoder_mask.bool()[:, None, None, :]
        news = []
        for i, block in enumerate(self.blocks):
            cross = None if cross_kv is None else cross_kv[i]
            x, kv = block(x, self_mask, None if cache is None else cache[i], slots, encoder_states, memory_mask, cross)
            news.append(kv)
        return self.head(self.ln(x)), torch.stack(news)


class TinyCrossKV(nn.Module):
    """The ``cross_kv`` role: every decoder layer's cross-attention keys/values of the source."""

    def __init__(self, decoder: TinyDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, encoder_states):
        return torch.stack([block.cross.keys_values(encoder_states) for block in self.decoder.blocks])


class TinyClassifier(nn.Module):
    def __init__(self, labels: int = 3) -> None:
        super().__init__()
        self.encoder, self.head = TinyEncoder(), nn.Linear(WIDTH, labels)

    def forward(self, input_ids, attention_mask):
        states = self.encoder(input_ids, attention_mask)
        weights = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(pooled)


def _loaded(kind: str, modules: dict[str, nn.Module], capability: Capability, **extra) -> LoadedModel:
    for module in modules.values():
        module.eval()
    h = hashlib.sha256()
    for role, module in sorted(modules.items()):
        for name, tensor in sorted(module.state_dict().items()):
            h.update(f"{role}.{name}".encode() + tensor.numpy().tobytes())
    return LoadedModel(
        family="ort-tiny",
        ref=kind,
        capabilities=frozenset({capability}),
        tokenizer=ByteTokenizer(),
        modules=modules,
        provenance=Provenance("random", None, h.hexdigest(), sum(p.numel() for m in modules.values() for p in m.parameters())),
        max_length=MAX_LEN,
        config={"vocab_size": VOCAB, "d_model": WIDTH, "n_head": HEADS, "n_layer": LAYERS, "seed": extra.pop("seed")},
        **extra,
    )


def tiny_causal_lm(seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    return _loaded("lm", {"causal_lm": TinyCausalLM()}, Capability.CAUSAL_LM, seed=seed)


def tiny_seq2seq(seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    decoder = TinyDecoder()
    modules = {"encoder": TinyEncoder(), "cross_kv": TinyCrossKV(decoder), "decoder": decoder}
    return _loaded("seq2seq", modules, Capability.SEQ2SEQ, seed=seed, decoder_start_id=2)


def tiny_classifier(seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    modules = {"classifier": TinyClassifier()}
    return _loaded("classifier", modules, Capability.CLASSIFIER, seed=seed, labels=("a", "b", "c"))
