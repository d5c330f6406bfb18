"""Tiny checkpoints in the file layouts real Hub models are published in, built offline for tests.

The ``hf`` family's other tests use checkpoints ``save_pretrained`` wrote, which always carry
``tokenizer.json``. Published models often do not (``../shared/notes``, real Hub layouts):

========== ======================================================= ===================================
layout     files                                                   tokenizer trained here on
========== ======================================================= ===================================
``bert``   ``vocab.txt`` (WordPiece), BertForSequenceClassification  classification-sample descriptions
``marian`` ``source.spm``, ``target.spm``, ``vocab.json``          translation-sample English / German
``gpt2``   ``vocab.json``, ``merges.txt`` (byte-level BPE)         lm-sample Python documentation
``t5``     ``spiece.model`` (sentencepiece unigram), a task prefix summarization-sample descriptions
           in ``task_specific_params``
========== ======================================================= ===================================

Every tokenizer is trained on real text from the repository's bundled task data (sources and
licences in each task's ``SOURCE.md``); models are random with a fixed seed and saved as safetensors.
``tokenizer.json`` is removed where transformers writes one, so loading must build the tokenizer from
the published files, as it does for the real checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "llmos_hub" / "tasks" / "builtin" / "data"
LAYOUTS = ("bert", "marian", "gpt2", "t5")


def texts(task: str, field: str, limit: int = 400) -> list[str]:
    """``field`` of the first ``limit`` training examples of a bundled task."""
    rows = (DATA / task / "train.jsonl").read_text(encoding="utf-8").splitlines()[:limit]
    return [str(json.loads(row)[field]) for row in rows if row.strip()]


def _spm(folder: Path, name: str, lines: list[str], vocab_size: int, model_type: str, **kwargs: Any) -> Path:
    import sentencepiece as spm

    corpus = folder / f"{name}.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / name), vocab_size=vocab_size, model_type=model_type,
        character_coverage=1.0, minloglevel=2, num_threads=1, **kwargs,
    )
    corpus.unlink()
    (folder / f"{name}.vocab").unlink()
    return folder / f"{name}.model"


def _drop_fast_files(folder: Path) -> None:
    (folder / "tokenizer.json").unlink(missing_ok=True)


def save_bert(folder: Path, seed: int = 0) -> Path:
    """A BERT classifier with a WordPiece ``vocab.txt`` (labels from classification-sample)."""
    import torch
    import transformers as tf
    from tokenizers import BertWordPieceTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    lines = texts("classification-sample", "text")
    labels = sorted({str(json.loads(r)["label"]) for r in (DATA / "classification-sample" / "train.jsonl").read_text().splitlines()})
    trainer = BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(lines, vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                show_progress=False)
    trainer.save_model(str(folder))  # vocab.txt
    tokenizer = tf.BertTokenizer(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(seed)
    config = tf.BertConfig(
        vocab_size=len((folder / "vocab.txt").read_text(encoding="utf-8").splitlines()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128, pad_token_id=0, initializer_range=0.2,
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    )
    tf.BertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _drop_fast_files(folder)
    return folder


def save_marian(folder: Path, seed: int = 0) -> Path:
    """A Marian en→de model: ``source.spm`` and ``target.spm`` trained on each side, one ``vocab.json``."""
    import torch
    import transformers as tf

    folder.mkdir(parents=True, exist_ok=True)
    source = _spm(folder, "source", texts("translation-sample", "en"), 200, "unigram")
    target = _spm(folder, "target", texts("translation-sample", "de"), 200, "unigram")
    import sentencepiece as spm

    # Marian's vocab.json: </s>, <unk>, then every piece of both models, then <pad> (as opus-mt has it).
    pieces: dict[str, int] = {"</s>": 0, "<unk>": 1}
    for model in (source, target):
        processor = spm.SentencePieceProcessor(model_file=str(model))
        for i in range(processor.get_piece_size()):
            piece = processor.id_to_piece(i)
            if piece not in ("<unk>", "<s>", "</s>") and piece not in pieces:
                pieces[piece] = len(pieces)
    pieces["<pad>"] = len(pieces)
    (folder / "vocab.json").write_text(json.dumps(pieces, ensure_ascii=False), encoding="utf-8")
    source.rename(folder / "source.spm")
    target.rename(folder / "target.spm")
    tokenizer = tf.MarianTokenizer(
        source_spm=str(folder / "source.spm"), target_spm=str(folder / "target.spm"), vocab=str(folder / "vocab.json"),
        source_lang="en", target_lang="de",
    )
    torch.manual_seed(seed)
    pad = pieces["<pad>"]
    config = tf.MarianConfig(
        vocab_size=len(pieces), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
        pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=0, init_std=0.2,
        share_encoder_decoder_embeddings=True,
    )
    model = tf.MarianMTModel(config).eval()
    model.generation_config.bad_words_ids = None
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _drop_fast_files(folder)
    return folder


def save_gpt2(folder: Path, seed: int = 0) -> Path:
    """A GPT-2 with a byte-level BPE ``vocab.json`` + ``merges.txt`` trained on lm-sample."""
    import torch
    import transformers as tf
    from tokenizers import ByteLevelBPETokenizer

    folder.mkdir(parents=True, exist_ok=True)
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(texts("lm-sample", "text", 200), vocab_size=400, special_tokens=["<|endoftext|>"],
                                show_progress=False)
    trainer.save_model(str(folder))  # vocab.json, merges.txt
    tokenizer = tf.GPT2Tokenizer(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"))
    torch.manual_seed(seed)
    eos = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))["<|endoftext|>"]
    config = tf.GPT2Config(vocab_size=len(json.loads((folder / "vocab.json").read_text(encoding="utf-8"))), n_embd=32, n_layer=2, n_head=4, n_positions=128,
                           initializer_range=0.2, bos_token_id=eos, eos_token_id=eos)
    tf.GPT2LMHeadModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _drop_fast_files(folder)
    return folder


T5_PREFIX = "summarize: "


def save_t5(folder: Path, seed: int = 0) -> Path:
    """A T5 with a sentencepiece ``spiece.model`` and ``task_specific_params`` naming its prefix."""
    import torch
    import transformers as tf

    folder.mkdir(parents=True, exist_ok=True)
    lines = texts("summarization-sample", "description")
    model_file = _spm(folder, "spiece", lines, 300, "unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    import sentencepiece as spm

    tokenizer = tf.T5Tokenizer(vocab_file=str(model_file), extra_ids=0)
    torch.manual_seed(seed)
    config = tf.T5Config(
        vocab_size=spm.SentencePieceProcessor(model_file=str(model_file)).get_piece_size(), d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, initializer_factor=4.0,
        task_specific_params={"summarization": {"prefix": T5_PREFIX, "max_length": 60, "num_beams": 4}},
    )
    tf.T5ForConditionalGeneration(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _drop_fast_files(folder)
    return folder


SAVERS = {"bert": save_bert, "marian": save_marian, "gpt2": save_gpt2, "t5": save_t5}
