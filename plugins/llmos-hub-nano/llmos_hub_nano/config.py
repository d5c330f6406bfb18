"""The architecture hyper-parameters of a nano checkpoint, as stored in its ``config.json``.

The config is read without torch (``ModelFamily.capabilities`` answers from it alone), so it lives in
its own module with no heavy imports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmos_hub import Capability, DataError

__all__ = ["ARCHITECTURES", "COPY_BASE", "NanoConfig", "read_config"]

#: A copy encoder appends the source token ids to its states as digits of this base: every digit is
#: an integer below 64, exact in float16 and bfloat16 as well as float32.
COPY_BASE = 64

#: The three architectures and the capability each provides.
ARCHITECTURES: Mapping[str, Capability] = {
    "causal-lm": Capability.CAUSAL_LM,
    "seq2seq": Capability.SEQ2SEQ,
    "classifier": Capability.CLASSIFIER,
}


@dataclass
class NanoConfig:
    """Hyper-parameters of one nano model; ``training`` records how its weights were made."""

    architecture: str
    vocab_size: int
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 256
    max_length: int = 256
    dropout: float = 0.0
    pad_id: int = 0
    eos_id: int = 1
    bos_id: int = 2
    decoder_start_id: int | None = None
    n_decoder_layers: int | None = None
    labels: list[str] | None = None
    #: seq2seq only: a pointer-generator decoder that can copy source tokens (see ``modeling``).
    copy: bool = False
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise DataError(
                f"nano config: unknown architecture {self.architecture!r}; "
                f"use one of {', '.join(ARCHITECTURES)}"
            )
        if self.d_model % self.n_heads:
            raise DataError(f"nano config: d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.architecture == "classifier" and not self.labels:
            raise DataError("nano config: a classifier needs 'labels'")
        if self.copy and self.architecture != "seq2seq":
            raise DataError("nano config: 'copy' is for a seq2seq model only")
        if self.architecture == "seq2seq" and self.decoder_start_id is None:
            self.decoder_start_id = self.bos_id

    @property
    def capability(self) -> Capability:
        return ARCHITECTURES[self.architecture]

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def decoder_layers(self) -> int:
        return self.n_decoder_layers or self.n_layers

    @property
    def copy_digits(self) -> int:
        """How many base-:data:`COPY_BASE` digits carry a source token id to a copy decoder."""
        digits, reach = 1, COPY_BASE
        while reach < self.vocab_size:
            digits, reach = digits + 1, reach * COPY_BASE
        return digits

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "config.json") -> NanoConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"{where}: unknown field(s) {', '.join(unknown)}")
        _check_fields(data, where)
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise DataError(f"{where}: {exc}") from exc


_POSITIVE = ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_length")
_TOKEN_IDS = ("pad_id", "eos_id", "bos_id", "decoder_start_id")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(data: Mapping[str, Any], where: str) -> None:
    """Each field's type and range, so a bad config is one line naming the field, not a crash in torch."""

    def fail(name: str, problem: str) -> DataError:
        return DataError(f"{where}: field {name!r}: {problem}; fix it in config.json")

    if "architecture" not in data or "vocab_size" not in data:
        missing = "architecture" if "architecture" not in data else "vocab_size"
        raise DataError(f"{where}: missing field {missing!r}")
    if not isinstance(data["architecture"], str):
        raise fail("architecture", f"must be one of {', '.join(ARCHITECTURES)}")
    for name in _POSITIVE:
        if name in data and (not _is_int(data[name]) or data[name] < 1):
            raise fail(name, f"must be a positive integer, not {data[name]!r}")
    if "n_decoder_layers" in data and data["n_decoder_layers"] is not None and (
            not _is_int(data["n_decoder_layers"]) or data["n_decoder_layers"] < 1):
        raise fail("n_decoder_layers", f"must be a positive integer or null, not {data['n_decoder_layers']!r}")
    vocab = data["vocab_size"]
    for name in _TOKEN_IDS:
        value = data.get(name)
        if value is not None and (not _is_int(value) or not 0 <= value < vocab):
            raise fail(name, f"must be a token id from 0 to {vocab - 1}, not {value!r}")
    dropout = data.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise fail("dropout", f"must be a number from 0 up to (not including) 1, not {dropout!r}")
    if "copy" in data and not isinstance(data["copy"], bool):
        raise fail("copy", f"must be true or false, not {data['copy']!r}")
    labels = data.get("labels")
    if labels is not None and (not isinstance(labels, list) or not all(isinstance(v, str) and v for v in labels)
                               or len(set(labels)) != len(labels)):
        raise fail("labels", "must be a list of distinct non-empty strings")
    if "training" in data and not isinstance(data["training"], dict):
        raise fail("training", "must be a mapping")


def read_config(folder: Path) -> NanoConfig:
    """The :class:`NanoConfig` in ``folder/config.json`` (a one-line :class:`DataError` if unusable)."""
    path = folder / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{folder}: no config.json; a nano checkpoint folder holds config.json, "
                        "model.safetensors and tokenizer.json") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: must be a JSON object")
    return NanoConfig.from_dict(data, where=str(path))
