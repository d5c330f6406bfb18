"""The ``hf`` family loads the four everyday Hub layouts by id, as published, and answers as transformers does.

Each checkpoint (``tests/hf_layouts.py``) has the files its real counterparts ship and no
``tokenizer.json``: BERT's WordPiece ``vocab.txt``, Marian's ``source.spm``/``target.spm``/``vocab.json``,
GPT-2's ``vocab.json``/``merges.txt``, T5's ``spiece.model`` with a task prefix. They are served by the
loopback Hub and loaded as ``hf:team/NAME``; greedy search equals ``model.generate``, beam search equals
``generate(num_beams=4)`` at the same length penalty, the classifier's logits equal the model's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")
pytest.importorskip("llmos_hub_transformers")

sys.path.insert(0, str(Path(__file__).resolve().parent))  # hf_layouts sits beside the tests (importlib mode)

import hf_layouts  # noqa: E402

from llmos_hub import Capability, GenerationConfig  # noqa: E402

SOURCES = hf_layouts.texts("translation-sample", "en", 400)[-4:]  # real English sentences


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-layouts")
    return {name: save(root / name) for name, save in hf_layouts.SAVERS.items()}


@pytest.fixture(scope="module")
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _serve(hub, folder, repo_id):
    hub.create_repo(repo_id, repo_type="model", files={p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()})


def _generate_reference(hf, ids, beams, new_tokens, tok, seq2seq):
    import torch

    inputs = torch.tensor([ids])
    # "never": beam search's exact stopping bound, the engine's (True stops at num_beams finished hypotheses)
    out = hf.generate(
        input_ids=inputs, attention_mask=torch.ones_like(inputs), do_sample=False, num_beams=beams, length_penalty=1.0,
        early_stopping="never", max_new_tokens=new_tokens, min_new_tokens=0, eos_token_id=tok.eos_id,
        pad_token_id=tok.pad_id,
        # Marian's generation config forces EOS at the length limit and bans <pad>; the engine does neither.
        forced_eos_token_id=None, bad_words_ids=None,
    )
    expected = out[0, 1 if seq2seq else len(ids):].tolist()
    return tuple(expected[: expected.index(tok.eos_id)] if tok.eos_id in expected else expected)


@pytest.mark.slow
@pytest.mark.parametrize("layout,files", [
    ("marian", {"source.spm", "target.spm", "vocab.json"}),
    ("gpt2", {"vocab.json", "merges.txt"}),
    ("t5", {"spiece.model"}),
])
def test_generators_loaded_by_id_search_as_transformers_generate(layout, files, folders, hub, _one_thread):
    import transformers

    from llmos_hub_pytorch.backend import TorchBackend
    from llmos_hub_transformers.family import HFFamily

    folder = folders[layout]
    assert not (folder / "tokenizer.json").exists() and files <= {p.name for p in folder.iterdir()}
    _serve(hub, folder, f"team/tiny-{layout}")
    model = HFFamily().load(f"team/tiny-{layout}")
    fetched = {path.rsplit("/", 1)[-1] for method, path in hub.requests if "/resolve/" in path and method == "GET"}
    assert files <= fetched and "model.safetensors" in fetched
    seq2seq = layout != "gpt2"
    assert model.capabilities == {Capability.SEQ2SEQ if seq2seq else Capability.CAUSAL_LM}
    tok = model.tokenizer
    auto = transformers.AutoModelForSeq2SeqLM if seq2seq else transformers.AutoModelForCausalLM
    hf = auto.from_pretrained(folder).eval()
    runner = TorchBackend().prepare(model, options={"threads": 1})
    for beams in (1, 4):
        config = GenerationConfig(max_new_tokens=10, num_beams=beams, length_penalty=1.0)
        for prompt, generation in zip(SOURCES, runner.generate(SOURCES, config)):
            ids = tok.encode_source(prompt) if seq2seq else tok.encode(prompt)
            expected = _generate_reference(hf, ids, beams, 10, tok, seq2seq)
            assert generation.token_ids == expected, (beams, prompt)
            assert generation.text == tok.decode(expected)


@pytest.mark.slow
def test_marian_encodes_sources_and_targets_with_their_own_sentencepiece_models(folders, _one_thread):
    import sentencepiece as spm

    from llmos_hub_transformers.family import HFFamily

    folder = folders["marian"]
    tok = HFFamily().load(str(folder)).tokenizer
    german = hf_layouts.texts("translation-sample", "de", 1)[0]
    source = spm.SentencePieceProcessor(model_file=str(folder / "source.spm"))
    target = spm.SentencePieceProcessor(model_file=str(folder / "target.spm"))
    vocab = tok.backend.get_vocab()
    unk = vocab["<unk>"]
    assert tok.encode_target(german) == [vocab.get(p, unk) for p in target.encode(german, out_type=str)]
    assert tok.encode_source(german) == [vocab.get(p, unk) for p in source.encode(german, out_type=str)]
    assert tok.encode_target(german) != tok.encode_source(german)  # two models split German differently
    assert tok.decode(tok.encode_target(german)) == german  # decoded with the target model


@pytest.mark.slow
def test_t5_sources_carry_the_task_prefix_from_task_specific_params(folders):
    from llmos_hub_transformers.family import HFFamily

    model = HFFamily().load(str(folders["t5"]))
    tok = model.tokenizer
    assert model.config["source_prefix"] == hf_layouts.T5_PREFIX == model.provenance.extra["source_prefix"]
    assert tok.encode_source("A game.") == tok.encode(hf_layouts.T5_PREFIX + "A game.")
    assert tok.encode_target("A game.") == tok.encode("A game.")  # targets get no prefix


@pytest.mark.slow
def test_bert_with_vocab_txt_classifies_as_the_model_and_names_its_labels(folders, hub, _one_thread):
    import json

    import torch
    import transformers

    from llmos_hub_pytorch.backend import TorchBackend
    from llmos_hub_transformers.family import HFFamily

    folder = folders["bert"]
    _serve(hub, folder, "team/tiny-bert")
    family = HFFamily()
    info = family.inspect("team/tiny-bert")
    model = family.load("team/tiny-bert")
    config = json.loads((folder / "config.json").read_text())
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    assert list(info.labels) == labels == model.labels
    assert {p.name for p in info.artifacts.tokenizer_files} == {"vocab.txt", "tokenizer_config.json"}
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    texts = hf_layouts.texts("classification-sample", "text", 400)[-5:]
    got = torch.tensor(TorchBackend().prepare(model, options={"threads": 1}).classify(texts))
    with torch.inference_mode():
        expected = torch.cat([hf(input_ids=torch.tensor([model.tokenizer.encode(t)[: model.max_length]])).logits for t in texts])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["marian", "t5", "gpt2", "bert"])
def test_ctranslate2_runs_the_published_layouts_as_pytorch_does(layout, folders, tmp_path, _one_thread):
    pytest.importorskip("llmos_hub_ctranslate2")
    import math

    from llmos_hub_ctranslate2.backend import CTranslate2Backend
    from llmos_hub_pytorch.backend import TorchBackend
    from llmos_hub_transformers.family import HFFamily

    model = HFFamily().load(str(folders[layout]))
    ct2 = CTranslate2Backend().prepare(model, options={"cache_dir": str(tmp_path), "threads": 1})
    assert not model.modules_built
    pt = TorchBackend().prepare(model, options={"threads": 1})
    if layout == "bert":
        for a, b in zip(ct2.classify(SOURCES), pt.classify(SOURCES)):
            assert all(abs(x - y) <= 1e-4 for x, y in zip(a, b))
        return
    config = GenerationConfig(max_new_tokens=10)
    assert [g.token_ids for g in ct2.generate(SOURCES, config)] == [g.token_ids for g in pt.generate(SOURCES, config)]
    german = hf_layouts.texts("translation-sample", "de", 400)[-4:]
    pairs = list(zip(SOURCES, german))
    got = ct2.loglikelihood(pairs)
    if layout == "marian":
        # CTranslate2's Marian drops <pad> from the target vocabulary (opus-mt bans generating it), so
        # its log-probabilities are normalised without <pad>: the reference masks that logit too.
        expected = [_marian_reference(model, folders["marian"], source, target) for source, target in pairs]
    else:
        expected = [r.logprob for r in pt.loglikelihood(pairs)]
    for a, b in zip(got, expected):
        # These random models put ~-47 nats on a token, so float32 rounding is relative.
        assert a.num_tokens > 0 and math.isclose(a.logprob, b, rel_tol=1e-5, abs_tol=1e-4), (a, b)


def _marian_reference(model, folder, source, target):
    import torch
    import transformers

    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    tok = model.tokenizer
    src, tgt = tok.encode_source(source), tok.encode_target(target)
    with torch.inference_mode():
        logits = hf(input_ids=torch.tensor([src]), decoder_input_ids=torch.tensor([[model.decoder_start_id, *tgt[:-1]]])).logits[0]
        logits[:, tok.pad_id] = float("-inf")
        logprobs = logits.log_softmax(-1)
    return float(sum(logprobs[i, t] for i, t in enumerate(tgt)))
