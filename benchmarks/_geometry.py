"""GPT-2-small and T5-small *geometry* checkpoints with random weights, built offline for benchmarks.

Speed depends on the shapes (layers, width, heads, feed-forward size, vocabulary), not on the values,
so a random model with the published geometry measures what the real one would. The tokenizer is
the tiny byte-level BPE of :mod:`llmos_hub_transformers.tiny` (trained on the GPL-3 text), padded with
placeholder tokens to the published vocabulary size, so the embedding and LM-head matrices have
their real sizes and every backend's vocabulary matches the model's.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["GEOMETRIES", "save_geometry"]

#: name -> (transformers config class, its arguments): the published shapes of gpt2 and t5-small.
GEOMETRIES = {
    "gpt2-small": ("GPT2Config", {"vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024}),
    "t5-small": ("T5Config", {"vocab_size": 32128, "d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6,
                              "num_decoder_layers": 6, "num_heads": 8, "decoder_start_token_id": 0}),
}


def save_geometry(name: str, folder: Path, seed: int = 0) -> Path:
    """Build ``name`` (see :data:`GEOMETRIES`) with random weights into ``folder``, unless it is there."""
    import torch
    import transformers as tf

    from llmos_hub_transformers.tiny import tiny_tokenizer

    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        return folder
    config_class, kwargs = GEOMETRIES[name]
    tokenizer = tiny_tokenizer()
    tokenizer.add_tokens([f"<unused_{i}>" for i in range(kwargs["vocab_size"] - len(tokenizer))])
    torch.manual_seed(seed)
    config = getattr(tf, config_class)(pad_token_id=0, eos_token_id=1, bos_token_id=2, **kwargs)
    model = (tf.GPT2LMHeadModel if name.startswith("gpt2") else tf.T5ForConditionalGeneration)(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
