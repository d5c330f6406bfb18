"""The nano tokenizer: a small byte-level BPE in HF ``tokenizers`` format (``tokenizer.json``).

Byte-level BPE never meets an unknown character, so any text round-trips; the three special tokens
(``<pad>``, ``<eos>``, ``<bos>``) take ids 0, 1 and 2 and are never produced from text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from llmos_hub import DataError

__all__ = ["SPECIAL_TOKENS", "NanoTokenizer", "train_tokenizer"]

SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>")


class NanoTokenizer:
    """Implements :class:`llmos_hub.Tokenizer` over a ``tokenizers.Tokenizer``."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.backend = tokenizer
        ids = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        if any(i is None for i in ids):
            raise DataError(f"tokenizer lacks the special tokens {', '.join(SPECIAL_TOKENS)}")
        self.pad_id, self.eos_id, self.bos_id = ids

    @classmethod
    def from_file(cls, path: Path) -> NanoTokenizer:
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as exc:  # tokenizers raises a plain Exception on a bad file
            raise DataError(f"{path}: not a tokenizers JSON file: {' '.join(str(exc).split())}") from exc

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=True)

    def save(self, path: Path) -> None:
        self.backend.save(str(path))


def train_tokenizer(texts: Iterable[str], vocab_size: int, *, prefix_space: bool = False) -> NanoTokenizer:
    """Train a byte-level BPE of at most ``vocab_size`` tokens on ``texts`` (deterministic).

    ``prefix_space`` encodes a text's first word as if a space preceded it, so it is the same token
    as that word inside a sentence (what a copy decoder needs to copy it); decoding then drops that
    one leading space again.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix_space)
    tok.decoder = (
        decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", left=1, right=0)])
        if prefix_space
        else decoders.ByteLevel()
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return NanoTokenizer(tok)
