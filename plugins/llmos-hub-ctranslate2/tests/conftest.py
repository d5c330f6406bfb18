"""Tiny transformers checkpoints shared by the ctranslate2 tests, and one conversion cache per session."""

from __future__ import annotations

import json
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


def save_untied_t5(folder: Path, seed: int = 0) -> Path:
    """A tiny T5 as t5-v1.1, flan-t5 and mT5 are published: ``lm_head.weight`` apart from ``shared.weight``,
    ``"tie_word_embeddings": false`` in ``config.json`` (which transformers 5 reads as no output scaling)."""
    import torch
    import transformers as tf
    from safetensors.torch import load_file, save_file

    from llmos_hub_transformers.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    config = tf.T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=1, num_heads=2,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, initializer_factor=4.0,
        feed_forward_proj="gated-gelu",
    )
    tf.T5ForConditionalGeneration(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    weights = load_file(str(folder / "model.safetensors"))
    weights["lm_head.weight"] = torch.randn(len(tokenizer), 32) * 0.1
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    saved = json.loads((folder / "config.json").read_text())
    saved.pop("scale_decoder_outputs", None)
    saved["tie_word_embeddings"] = False  # the legacy flag, as the published checkpoints carry it
    (folder / "config.json").write_text(json.dumps(saved, indent=2))
    return folder


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from llmos_hub_transformers.tiny import save_tiny

    root = tmp_path_factory.mktemp("ct2-tiny")
    folders = {kind: save_tiny(kind, root / kind) for kind in ("gpt2", "llama", "t5", "bert")}
    folders["bart"] = save_bart(root / "bart")
    folders["t5-untied"] = save_untied_t5(root / "t5-untied")
    return folders
