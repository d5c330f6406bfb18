"""The architecture hyper-parameters of a nano checkpoint, as stored in its ``config.json``.

The config is read without torch (``ModelFamily.capabilities`` answers from it alone), so it lives in
its own module with no heavy imports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from llmos_hub import Capability, DataError, check_inside

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
        problem = _inconsistency(vars(self))
        if problem:
            raise DataError(f"nano config: {problem}")
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

#: What a ``config.json`` must say: the sizes fix the weights' shapes and the ids what the model reads
#: and stops on, so a default standing in for a missing one loads wrong weights or scores wrongly.
#: ``save_checkpoint`` writes them all.
_REQUIRED = ("architecture", *_POSITIVE, "pad_id", "eos_id", "bos_id")

#: The largest value of each size: a typo (``max_length: 10**12``) is refused by name here, instead
#: of torch failing to allocate terabytes. Nano models are small; these leave room for far larger ones.
_LIMITS = {"vocab_size": 1 << 20, "d_model": 1 << 13, "n_layers": 128, "n_decoder_layers": 128, "n_heads": 256,
           "d_ff": 1 << 16, "max_length": 1 << 16}

#: The most parameters a config may imply (8 GiB of float32), for sizes each within their limit.
_MAX_PARAMETERS = 1 << 31


def _inconsistency(config: Mapping[str, Any]) -> str | None:
    """What makes these (type-checked) fields contradict each other, or ``None``."""
    architecture = config["architecture"]
    if architecture not in ARCHITECTURES:
        return f"unknown architecture {architecture!r}; use one of {', '.join(ARCHITECTURES)}"
    if config["d_model"] % config["n_heads"]:
        return f"d_model {config['d_model']} is not divisible by n_heads {config['n_heads']}"
    if architecture == "classifier" and not config.get("labels"):
        return "a classifier needs 'labels'"
    if config.get("copy") and architecture != "seq2seq":
        return "'copy' is for a seq2seq model only"
    return None


def _parameters(config: Mapping[str, Any]) -> int:
    """About how many parameters a model with these sizes has (embeddings and layers), to refuse a huge one."""
    d, ff = config["d_model"], config["d_ff"]
    layers = config["n_layers"]
    if config["architecture"] == "seq2seq":
        layers += 2 * (config.get("n_decoder_layers") or config["n_layers"])  # self and cross attention
    return (config["vocab_size"] + config["max_length"]) * d + layers * (4 * d * d + 2 * d * ff)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(data: Mapping[str, Any], where: str) -> None:
    """Each field's type and range, so a bad config is one line naming the field, not a crash in torch."""

    def fail(name: str, problem: str) -> DataError:
        return DataError(f"{where}: field {name!r}: {problem}; fix it in config.json")

    missing = [name for name in _REQUIRED if name not in data]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(repr(m) for m in missing)}; add them to config.json "
                        "(the checkpoint's training wrote them; a default would not match its weights)")
    if not isinstance(data["architecture"], str):
        raise fail("architecture", f"must be one of {', '.join(ARCHITECTURES)}")
    for name in (*_POSITIVE, "n_decoder_layers"):
        value = data.get(name)
        if name == "n_decoder_layers" and value is None:
            continue
        if not _is_int(value) or not 1 <= value <= _LIMITS[name]:
            raise fail(name, f"must be an integer from 1 to {_LIMITS[name]}, not {value!r}")
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
    problem = _inconsistency(data)
    if problem:
        raise DataError(f"{where}: {problem}; fix it in config.json")
    if _parameters(data) > _MAX_PARAMETERS:
        raise DataError(f"{where}: its sizes (d_model, d_ff, n_layers, vocab_size, max_length) make a model of about "
                        f"{_parameters(data):.2e} parameters, more than the {_MAX_PARAMETERS:.2e} a nano model may have; "
                        "fix them in config.json")


def read_config(folder: Path) -> NanoConfig:
    """The :class:`NanoConfig` in ``folder/config.json`` (a one-line :class:`DataError` if unusable).

    Every field is checked here, before torch builds anything: required, of its type, within its
    limit, consistent with the others; ``config.json`` must be the folder's own file (not a link
    to another checkpoint's).
    """
    path = check_inside("config.json", folder=folder)
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
