"""An HF tokenizer behind the :class:`llmos_hub.Tokenizer` protocol.

The engine adds no special tokens of its own choosing: it asks for plain ids (``encode`` without
special tokens), decodes skipping them, and needs an ``eos_id`` to stop on and a ``pad_id`` to pad
with. HF tokenizers leave some of these unset (GPT-2 has no pad token, BERT no EOS), so each falls
back: ``eos`` to the model config's ``eos_token_id`` then ``sep``; ``pad`` to ``eos``.

Seq2seq checkpoints may encode the two sides differently, and the engine asks for each side by name
(:meth:`HFTokenizer.encode_source`, :meth:`HFTokenizer.encode_target`): Marian splits sources with
``source.spm`` and targets with ``target.spm`` (and decodes with the target model); T5 checkpoints
that name one task prefix in ``task_specific_params`` get it in front of every source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmos_hub import DataError

__all__ = ["HFTokenizer"]


def _first_int(*values: Any) -> int | None:
    for value in values:
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


class HFTokenizer:
    """Implements :class:`llmos_hub.Tokenizer` over a ``transformers`` tokenizer.

    ``config`` is the model's ``PretrainedConfig`` (or ``None``), the second source of special ids.
    """

    def __init__(
        self, tokenizer: Any, config: Any = None, *, where: str = "the model", source_prefix: str | None = None
    ) -> None:
        self.backend = tokenizer
        # The engine cuts every prompt to the model's window itself (and says so); transformers' warning
        # that a text is longer than model_max_length would only leak to stderr mid-run. It warns once per
        # tokenizer, keyed in this dict: marked as given, it never prints.
        warned = getattr(tokenizer, "deprecation_warnings", None)
        if isinstance(warned, dict):
            warned["sequence-length-is-longer-than-the-specified-maximum"] = True
        self.source_prefix = source_prefix or ""
        # Marian decodes with its source model unless told otherwise; generated text is target text.
        self._decode_kwargs = {"use_source_tokenizer": False} if hasattr(tokenizer, "spm_target") else {}
        eos = _first_int(tokenizer.eos_token_id, getattr(config, "eos_token_id", None), tokenizer.sep_token_id)
        pad = _first_int(tokenizer.pad_token_id, getattr(config, "pad_token_id", None), eos)
        if eos is None and pad is None:
            raise DataError(f"{where}: the tokenizer has neither an EOS nor a PAD token; add one to tokenizer_config.json")
        self.eos_id: int = eos if eos is not None else int(pad)  # type: ignore[arg-type]
        self.pad_id: int = pad if pad is not None else self.eos_id
        self.bos_id: int | None = _first_int(tokenizer.bos_token_id, getattr(config, "bos_token_id", None))

    @property
    def vocab_size(self) -> int:
        return len(self.backend)

    def encode(self, text: str) -> list[int]:
        return list(self.backend.encode(text, add_special_tokens=False))

    def encode_source(self, text: str) -> list[int]:
        """A seq2seq source: the task prefix (if any) and the text, split by the source model."""
        return self.encode(self.source_prefix + text)

    def encode_target(self, text: str) -> list[int]:
        """A seq2seq target, split by the target model (Marian's ``target.spm``; the same model elsewhere)."""
        return list(self.backend(text_target=text, add_special_tokens=False)["input_ids"])

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(ids) for ids in self.backend(list(texts), add_special_tokens=False)["input_ids"]]

    def decode(self, ids: Sequence[int]) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=True, **self._decode_kwargs)
