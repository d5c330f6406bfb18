"""Tiny transformers checkpoints shared by the ctranslate2 tests, and one conversion cache per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ct2_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ct2-cache")


def save_bart(folder: Path, seed: int = 0) -> Path:
    """A tiny BART with as many encoder as decoder heads (CTranslate2's BART spec has one head count)."""
    import torch
    import transformers as tf

    from llmos_hub_transformers.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    config = tf.BartConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
        decoder_start_token_id=1, init_std=0.2, forced_eos_token_id=None, forced_bos_token_id=None,
        pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )
    tf.BartForConditionalGeneration(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from llmos_hub_transformers.tiny import save_tiny

    root = tmp_path_factory.mktemp("ct2-tiny")
    folders = {kind: save_tiny(kind, root / kind) for kind in ("gpt2", "llama", "t5", "bert")}
    folders["bart"] = save_bart(root / "bart")
    return folders
