"""Tiny randomly initialised nano checkpoints, for tests and for backends under development.

A seeded random model exercises every code path of a real one (padding, cache, beams, windows) in
milliseconds, so tests of backends and of the engine do not need trained weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .config import NanoConfig

__all__ = ["SAMPLE_TEXT", "random_checkpoint"]

#: A few hundred characters of English to train the random models' tokenizer on.
SAMPLE_TEXT = (
    "The quick brown fox jumps over the lazy dog. A tokenizer splits text into pieces; a model "
    "predicts the next piece. Packages provide libraries, tools and documentation for the system. "
    "Translate the message into German. Summarise the description in one line. Error: file not found. "
    "Usage: program [OPTION]... FILE. The archive contains 3 files and 2 folders."
)


def random_checkpoint(
    folder: str | Path,
    architecture: str = "causal-lm",
    *,
    seed: int = 0,
    vocab_size: int = 300,
    d_model: int = 32,
    n_layers: int = 2,
    n_heads: int = 4,
    d_ff: int = 64,
    max_length: int = 64,
    labels: Sequence[str] | None = None,
    texts: Sequence[str] = (SAMPLE_TEXT,),
    copy: bool = False,
) -> Path:
    """Write a seeded random checkpoint of ``architecture`` to ``folder`` and return the folder."""
    import torch

    from .checkpoint import save_checkpoint
    from .modeling import build_model
    from .tokenizer import train_tokenizer

    tokenizer = train_tokenizer(list(texts), vocab_size)
    config = NanoConfig(
        architecture=architecture,
        vocab_size=tokenizer.vocab_size,
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        d_ff=d_ff,
        max_length=max_length,
        pad_id=tokenizer.pad_id,
        eos_id=tokenizer.eos_id,
        bos_id=tokenizer.bos_id,
        labels=list(labels) if labels else (["negative", "positive", "neutral"] if architecture == "classifier" else None),
        copy=copy,
        training={"note": f"random weights, seed {seed}; not trained"},
    )
    torch.manual_seed(seed)
    model = build_model(config)
    # Spread the output distribution so greedy/beam choices are not near-ties.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3)
    return save_checkpoint(Path(folder), config, model, tokenizer, card="# random nano model (tests only)\n")
