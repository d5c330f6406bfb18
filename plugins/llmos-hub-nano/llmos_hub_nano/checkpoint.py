"""A nano checkpoint is a folder: ``config.json``, ``model.safetensors``, ``tokenizer.json``, ``README.md``.

Weights are read with safetensors only. A folder that offers a pickle file (``*.bin``, ``*.pt``,
``*.pkl``) instead of ``model.safetensors`` is refused, because unpickling runs arbitrary code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmos_hub import DataError, atomic_write, check_inside, check_safetensors, file_sha256

from .config import NanoConfig, read_config

__all__ = [
    "PICKLE_SUFFIXES",
    "WEIGHTS",
    "count_parameters",
    "file_sha256",
    "load_checkpoint",
    "load_tokenizer",
    "save_checkpoint",
    "weights_path",
]

WEIGHTS = "model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def count_parameters(weights: Path) -> int:
    """The number of parameters in a safetensors file, read from its header (no tensor is loaded)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="numpy") as handle:
            total = 0
            for name in handle.keys():
                count = 1
                for dim in handle.get_slice(name).get_shape():
                    count *= int(dim)
                total += count
    except (SafetensorError, OSError) as exc:
        raise DataError(f"{weights}: cannot read: {' '.join(str(exc).split())}") from exc
    return total


def load_tokenizer(folder: Path, config: NanoConfig) -> Any:
    """The checkpoint's tokenizer (``tokenizer.json``), checked against the config's vocabulary.

    The file must be the folder's own: a link to another checkpoint's tokenizer would run (and
    score) the model on ids it was not trained on, with no error.
    """
    from .tokenizer import NanoTokenizer

    tok_path = check_inside("tokenizer.json", folder=folder)
    if not tok_path.is_file():
        raise DataError(f"{folder}: no tokenizer.json")
    tokenizer = NanoTokenizer.from_file(tok_path)
    if tokenizer.vocab_size > config.vocab_size:
        raise DataError(
            f"{folder}: tokenizer has {tokenizer.vocab_size} tokens but config.json says vocab_size "
            f"{config.vocab_size}"
        )
    if config.architecture == "causal-lm":
        # A causal LM is trained on documents each opened by <eos> (GPT-2's convention; <bos> never occurs
        # in its stream), so <eos> is the token it starts from: what rolling windows and empty prompts put first.
        tokenizer.bos_id = tokenizer.eos_id
    return tokenizer


def weights_path(folder: Path) -> Path:
    path = folder / WEIGHTS
    if path.is_file() or path.is_symlink():
        return check_safetensors(WEIGHTS, folder=folder, fix="retrain it or copy the checkpoint again")
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise DataError(
            f"{folder}: refusing pickle weights {pickles[0]} (loading pickle can run code); "
            f"convert them to {WEIGHTS} with safetensors"
        )
    raise DataError(f"{folder}: no {WEIGHTS}; a nano checkpoint holds config.json, {WEIGHTS} and tokenizer.json")


def load_checkpoint(folder: Path) -> tuple[NanoConfig, Any, Any, str, Path]:
    """``(config, model, tokenizer, weights_sha256, weights_path)`` of the checkpoint in ``folder``.

    The model is in eval mode on the CPU, in float32.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from .modeling import build_model

    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; give nano:NAME of a shipped checkpoint or nano:/path/to/folder")
    config = read_config(folder)
    weights = weights_path(folder)
    tokenizer = load_tokenizer(folder, config)
    model = build_model(config)
    try:
        missing, unexpected = load_model(model, str(weights), strict=False)
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise DataError(f"{weights}: cannot load: {' '.join(str(exc).split())}") from exc
    if missing or unexpected:
        what = f"missing {sorted(missing)[:3]}" if missing else f"unexpected {sorted(unexpected)[:3]}"
        raise DataError(f"{weights}: weights do not match config.json ({what})")
    model.eval()
    return config, model, tokenizer, file_sha256(weights), weights


def save_checkpoint(folder: Path, config: NanoConfig, model: Any, tokenizer: Any, card: str = "") -> Path:
    """Write a checkpoint folder (weights, config, tokenizer, model card)."""
    from safetensors.torch import save_model

    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, str(folder / WEIGHTS))
    atomic_write(folder / "config.json", json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    tokenizer.save(folder / "tokenizer.json")
    if card:
        atomic_write(folder / "README.md", card)
    return folder
