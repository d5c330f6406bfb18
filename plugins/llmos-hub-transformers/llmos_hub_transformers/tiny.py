"""Tiny random ``transformers`` checkpoints built offline, for tests and examples (no download).

A byte-level BPE tokenizer is trained on a few paragraphs of the GPL-3 text that Debian ships
(``/usr/share/common-licenses/GPL-3``) and wrapped in ``PreTrainedTokenizerFast``; models are built
from small configs with a fixed seed and saved with safetensors, so a folder written here loads as
``hf:/that/folder`` exactly as a downloaded checkpoint would.

Example::

    from llmos_hub_transformers.tiny import save_tiny
    save_tiny("gpt2", "/tmp/tiny-gpt2")      # then: llmos-hub bench --model hf:/tmp/tiny-gpt2 ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["KINDS", "corpus", "save_tiny", "tiny_tokenizer"]

GPL3 = Path("/usr/share/common-licenses/GPL-3")
_FALLBACK = (
    "The GNU General Public License is a free, copyleft license for software and other kinds of works. "
    "When we speak of free software, we are referring to freedom, not price."
)

#: What :func:`save_tiny` can build, and the capability each has.
KINDS = {"gpt2": "causal-lm", "llama": "causal-lm", "t5": "seq2seq", "bart": "seq2seq", "bert": "classifier"}


def corpus(lines: int = 400) -> list[str]:
    """The first non-empty lines of the GPL-3 text (a short fallback where it is absent)."""
    if not GPL3.is_file():
        return [_FALLBACK]
    text = GPL3.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in text[:lines] if line.strip()]


def tiny_tokenizer(vocab_size: int = 300) -> Any:
    """A ``PreTrainedTokenizerFast`` (byte-level BPE, ``<pad>`` ``</s>`` ``<s>`` ``<unk>`` = ids 0-3)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<s>", "<unk>"]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", bos_token="<s>", unk_token="<unk>"
    )


def _model(kind: str, vocab: int, labels: list[str] | None) -> Any:
    import transformers as tf

    ids = {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}
    if kind == "gpt2":
        config = tf.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=128, initializer_range=0.2, **ids)
        return tf.GPT2LMHeadModel(config)
    if kind == "llama":  # grouped-query attention (2 key/value heads for 4 query heads) and rotary positions
        config = tf.LlamaConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, initializer_range=0.2, tie_word_embeddings=False, **ids,
        )
        return tf.LlamaForCausalLM(config)
    if kind == "t5":
        config = tf.T5Config(
            vocab_size=vocab, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=1, num_heads=2,
            decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, initializer_factor=4.0,
        )
        return tf.T5ForConditionalGeneration(config)
    if kind == "bart":
        config = tf.BartConfig(
            vocab_size=vocab, d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
            decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
            decoder_start_token_id=1, init_std=0.2, forced_eos_token_id=None, forced_bos_token_id=None, **ids,
        )
        return tf.BartForConditionalGeneration(config)
    if kind == "bert":
        labels = labels or ["negative", "positive"]
        config = tf.BertConfig(
            vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=128, pad_token_id=0,
            id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
        )
        return tf.BertForSequenceClassification(config)
    raise ValueError(f"unknown tiny model kind {kind!r}; known: {', '.join(KINDS)}")


def save_tiny(
    kind: str, folder: str | Path, *, seed: int = 0, labels: list[str] | None = None, max_shard_size: str | None = None
) -> Path:
    """Build a tiny random ``kind`` model (see :data:`KINDS`) and save it with its tokenizer in ``folder``.

    ``max_shard_size`` (e.g. ``"50KB"``) splits the weights into ``model-*-of-*.safetensors`` shards.
    """
    import torch

    folder = Path(folder)
    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    model = _model(kind, len(tokenizer), labels).eval()
    model.save_pretrained(folder, **({'max_shard_size': max_shard_size} if max_shard_size else {}))
    tokenizer.save_pretrained(folder)
    return folder
