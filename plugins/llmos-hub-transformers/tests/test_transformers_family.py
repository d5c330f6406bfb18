"""The ``hf`` family against transformers itself, on tiny random checkpoints built offline.

Every number compared here comes from transformers on the same weights: the wrapped modules must
give the HF model's own logits, and the shared decoding engine driven by the ``pytorch`` backend
must choose the tokens ``model.generate(do_sample=False)`` chooses.
"""

from __future__ import annotations

import hashlib
import shutil

import pytest
import torch
import transformers

from llmos_hub import Capability, DataError, GenerationConfig, UsageError
from llmos_hub.testing import check_backend, check_model_family, check_plugin
from llmos_hub_pytorch.backend import TorchBackend
from llmos_hub_pytorch.compiled import _cpp_compiler

import llmos_hub_transformers.plugin
from llmos_hub_transformers.family import HFFamily
from llmos_hub_transformers.tiny import corpus, save_tiny

PROMPTS = ["This License", "The GNU General Public License is a free, copyleft license", "You can apply it"]


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-tiny")
    return {kind: save_tiny(kind, root / kind) for kind in ("gpt2", "llama", "t5", "bart", "bert")}


@pytest.fixture(scope="session")
def family():
    return HFFamily()


@pytest.fixture(scope="session")
def loaded(folders, family):
    cache = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = family.load(str(folders[kind]))
        return cache[kind]

    return get


def _hf(folder, auto):
    return auto.from_pretrained(folder, dtype=torch.float32).eval()


def test_plugin_registers_the_hf_family():
    host = check_plugin(llmos_hub_transformers.plugin)
    assert isinstance(host.get("models", "hf"), HFFamily)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "t5", "bart", "bert"])
def test_family_conformance_and_provenance(kind, folders, family):
    model = check_model_family(family, str(folders[kind]))
    expected = {"gpt2": Capability.CAUSAL_LM, "llama": Capability.CAUSAL_LM, "t5": Capability.SEQ2SEQ, "bart": Capability.SEQ2SEQ,
                "bert": Capability.CLASSIFIER}[kind]
    assert model.capabilities == {expected}
    weights = folders[kind] / "model.safetensors"
    assert model.provenance.weights_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    hf = _hf(folders[kind], transformers.AutoModel)
    assert model.provenance.num_parameters >= sum(p.numel() for p in hf.parameters())
    assert model.provenance.source == str(folders[kind].resolve()) and model.provenance.revision is None


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_causal_lm_logits_and_cache_equal_the_hf_forward(kind, folders, loaded):
    model = loaded(kind)
    hf = _hf(folders[kind], transformers.AutoModelForCausalLM)
    tok = model.tokenizer
    rows = [tok.encode(p) for p in PROMPTS]
    width = max(map(len, rows))
    ids = torch.tensor([[tok.pad_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    lm = model.modules["causal_lm"]
    layers, heads, head_dim = lm.cache_geometry
    with torch.inference_mode():
        logits, new_kv = lm(ids, mask)
        assert new_kv.shape == (layers, 2, len(rows), heads, width, head_dim)
        # Each row alone, unpadded, through HF's own forward (its default positions 0..n-1).
        for i, row in enumerate(rows):
            expected = hf(input_ids=torch.tensor([row])).logits[0]
            torch.testing.assert_close(logits[i, width - len(row):], expected, atol=1e-5, rtol=0)
        # The prompt into a preallocated cache (logits of its last position only), then one more
        # token through the cache, equals the whole sequence recomputed; the slots hold the keys.
        nxt = torch.tensor([[5], [6], [7]])
        slots = torch.cat([mask, torch.ones(3, 3, dtype=torch.long)], 1)
        cache = torch.zeros(layers, 2, 3, heads, width + 3, head_dim)
        last, _ = lm(ids, slots, cache, torch.arange(width), torch.tensor([width - 1]))
        step, step_kv = lm(nxt, slots, cache, torch.tensor([width]), torch.tensor([0]))
        full, full_kv = lm(torch.cat([ids, nxt], 1), slots[:, : width + 1])
    torch.testing.assert_close(last[:, 0], logits[:, -1], atol=1e-5, rtol=0)
    torch.testing.assert_close(step[:, -1], full[:, -1], atol=1e-5, rtol=0)
    torch.testing.assert_close(step_kv, full_kv[..., width:, :], atol=1e-5, rtol=0)
    torch.testing.assert_close(cache[..., : width + 1, :], full_kv, atol=1e-5, rtol=0)


def _greedy_equals_generate(model, hf, prompts, new_tokens=10, options=None):
    runner = TorchBackend().prepare(model, options=options)
    got = runner.generate(prompts, GenerationConfig(max_new_tokens=new_tokens))
    for prompt, generation in zip(prompts, got):
        ids = torch.tensor([model.tokenizer.encode(prompt)])
        out = hf.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=1,
                          max_new_tokens=new_tokens, min_new_tokens=0, eos_token_id=model.tokenizer.eos_id,
                          pad_token_id=model.tokenizer.pad_id)
        expected = out[0, 0 if hf.config.is_encoder_decoder else ids.shape[1]:].tolist()
        if hf.config.is_encoder_decoder:
            assert expected[0] == model.decoder_start_id
            expected = expected[1:]
        if model.tokenizer.eos_id in expected:
            expected = expected[:expected.index(model.tokenizer.eos_id)]
        assert list(generation.token_ids) == expected, prompt
        assert generation.text == model.tokenizer.decode(expected)
    return runner


@pytest.mark.parametrize("kind,auto", [("gpt2", transformers.AutoModelForCausalLM),
                                       ("llama", transformers.AutoModelForCausalLM),
                                       ("t5", transformers.AutoModelForSeq2SeqLM),
                                       ("bart", transformers.AutoModelForSeq2SeqLM)])
def test_greedy_generation_through_pytorch_equals_hf_generate(kind, auto, folders, loaded):
    _greedy_equals_generate(loaded(kind), _hf(folders[kind], auto), PROMPTS)


@pytest.mark.parametrize("kind,auto,per_layer", [("gpt2", transformers.AutoModelForCausalLM, 0),  # c_attn: one already
                                                 ("llama", transformers.AutoModelForCausalLM, 5),  # q k v, gate up
                                                 ("t5", transformers.AutoModelForSeq2SeqLM, 3),  # q k v
                                                 ("bart", transformers.AutoModelForSeq2SeqLM, 0)])  # generic wrapper
def test_packed_runners_join_projections_and_equal_hf_generate(kind, auto, per_layer, folders, family, loaded):
    """``prepack=true``: the runner's own modules have their query/key/value (and Llama's gate/up)
    layers joined, then packed; tokens stay ``generate``'s, and the model's shared modules are untouched."""
    model = family.load(str(folders[kind]))
    shared = model.modules["causal_lm" if kind in ("gpt2", "llama") else "decoder"]  # built before the runner
    linears = [m for m in shared.modules() if isinstance(m, torch.nn.Linear)]
    runner = _greedy_equals_generate(model, _hf(folders[kind], auto), PROMPTS, options={"prepack": True})
    assert runner.describe()["fused_projection_tensors"] == per_layer * model.config["n_layers"]
    assert runner.prepacked > 0
    tied = bool(_hf(folders[kind], auto).config.tie_word_embeddings)  # the tiny Llama's head is its own
    assert runner.describe()["shared_weight_linears"] == int(tied) and tied is (kind != "llama")
    assert getattr(shared, "fused_qkv", None) is None  # the shared modules: neither joined nor packed
    assert [m for m in shared.modules() if isinstance(m, torch.nn.Linear)] == linears
    _greedy_equals_generate(model, _hf(folders[kind], auto), PROMPTS, options={"prepack": False})
    beams = GenerationConfig(max_new_tokens=6, num_beams=3)
    dense = TorchBackend().prepare(loaded(kind), options={"prepack": False})
    assert [g.token_ids for g in runner.generate(PROMPTS, beams)] == [g.token_ids for g in dense.generate(PROMPTS, beams)]


@pytest.mark.parametrize("kind,auto", [("gpt2", transformers.AutoModelForCausalLM),
                                       ("llama", transformers.AutoModelForCausalLM),  # its head is its own
                                       ("t5", transformers.AutoModelForSeq2SeqLM),
                                       ("bart", transformers.AutoModelForSeq2SeqLM)])
def test_on_one_thread_the_default_runs_the_output_layer_on_onednn(kind, auto, folders, family, monkeypatch):
    """Where ``prepack=auto`` does not pack (one thread), a model of real size still has its output
    layer run by oneDNN on its own, unbuilt-until-then modules; tokens stay ``generate``'s. A model whose
    modules another user already built keeps them shared and dense (owning would cost a second copy)."""
    monkeypatch.setattr("llmos_hub_pytorch.prepack.AUTO_MIN_PARAMETERS", 1)  # the tiny model stands in for one
    model = family.load(str(folders[kind]))
    runner = _greedy_equals_generate(model, _hf(folders[kind], auto), PROMPTS, options={"threads": 1})
    facts = runner.describe()
    assert facts["shared_weight_linears"] == 1 and facts["prepacked_linears"] == 0
    assert facts["prepack_source"].endswith("; output layer on oneDNN")
    assert not model.modules_built  # the runner's modules are the only ones built
    built = family.load(str(folders[kind]))
    assert built.modules
    shared = TorchBackend().prepare(built, options={"threads": 1})
    role = "decoder" if kind in ("t5", "bart") else "causal_lm"
    assert shared.describe()["shared_weight_linears"] == 0 and shared.modules[role] is built.modules[role]
    assert shared.describe()["prepack_source"].endswith("output layer dense: the model's modules were built before this runner")


@pytest.mark.slow
@pytest.mark.skipif(_cpp_compiler() is None, reason="no C++ compiler for torch.compile's CPU code")
@pytest.mark.parametrize("kind,auto", [("gpt2", transformers.AutoModelForCausalLM),
                                       ("llama", transformers.AutoModelForCausalLM),
                                       ("t5", transformers.AutoModelForSeq2SeqLM),
                                       ("bart", transformers.AutoModelForSeq2SeqLM)])
def test_compiled_steps_equal_hf_generate(kind, auto, folders, loaded):
    """The native modules (GPT-2, Llama, T5) and the generic wrapper (BART) traced by ``torch.compile``."""
    _greedy_equals_generate(loaded(kind), _hf(folders[kind], auto), PROMPTS, options={"compile": True})


@pytest.mark.parametrize("kind", ["gpt2", "llama", "t5", "bart", "bert"])
def test_batch_of_mixed_lengths_equals_one_by_one(kind, loaded):
    check_backend(TorchBackend(), loaded(kind), texts=PROMPTS)


def test_classifier_logits_equal_the_hf_model_and_labels_come_from_id2label(folders, loaded):
    model = loaded("bert")
    assert model.labels == ["negative", "positive"]
    hf = _hf(folders["bert"], transformers.AutoModelForSequenceClassification)
    runner = TorchBackend().prepare(model)
    texts = corpus()[3:8]
    got = torch.tensor(runner.classify(texts))
    with torch.inference_mode():
        expected = torch.cat([hf(input_ids=torch.tensor([model.tokenizer.encode(t)])).logits for t in texts])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_tokenizer_encodes_without_and_decodes_skipping_special_tokens(loaded):
    tok = loaded("gpt2").tokenizer
    ids = tok.encode("Free software")
    assert tok.eos_id not in ids and tok.bos_id not in ids
    assert tok.decode([tok.bos_id, *ids, tok.eos_id, tok.pad_id]) == "Free software"
    assert (tok.eos_id, tok.pad_id, tok.bos_id) == (1, 0, 2)


def test_sharded_weights_hash_as_sha256sum_lines(tmp_path, family, loaded):
    folder = save_tiny("gpt2", tmp_path / "sharded", max_shard_size="50KB")
    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    assert len(shards) > 1
    model = family.load(str(folder))
    lines = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in shards)
    assert model.provenance.weights_sha256 == hashlib.sha256(lines.encode()).hexdigest()
    assert sorted(model.provenance.extra["weights"]) == [p.name for p in shards]
    # Same seed, same weights: the sharded model answers as the single-file one.
    runner, single = TorchBackend().prepare(model), TorchBackend().prepare(loaded("gpt2"))
    assert runner.loglikelihood_rolling(PROMPTS) == single.loglikelihood_rolling(PROMPTS)


def test_a_folder_with_only_pickle_weights_is_refused(folders, tmp_path, family):
    folder = tmp_path / "pickled"
    shutil.copytree(folders["gpt2"], folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(DataError, match=r"only pickle weights \(pytorch_model.bin\)") as info:
        family.load(str(folder))
    assert "\n" not in str(info.value)


def test_references_that_are_neither_folder_nor_hub_id_are_one_line_errors(family, tmp_path):
    with pytest.raises(UsageError, match="neither an existing folder nor a Hub id"):
        family.load("not a/valid id")
    with pytest.raises(DataError, match="no folder"):
        family.load(str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="has no revisions"):
        family.load(str(tmp_path), revision="main")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gpt2", "llama", "t5", "bart", "bert"])
def test_onnxruntime_exports_the_modules_and_agrees_with_pytorch(kind, loaded, tmp_path):
    ort_backend = pytest.importorskip("llmos_hub_onnxruntime.backend")
    import onnx

    model = loaded(kind)
    ort = ort_backend.OnnxRuntimeBackend().prepare(model, options={"cache_dir": str(tmp_path), "threads": 1})
    torch_runner = TorchBackend().prepare(model)
    try:
        if kind == "bert":
            torch.testing.assert_close(torch.tensor(ort.classify(PROMPTS)), torch.tensor(torch_runner.classify(PROMPTS)),
                                       atol=1e-4, rtol=0)
            return
        config = GenerationConfig(max_new_tokens=8)
        assert [g.token_ids for g in ort.generate(PROMPTS, config)] == \
            [g.token_ids for g in torch_runner.generate(PROMPTS, config)]
        # The lean modules (GPT-2, Llama, T5) export the cache as per-layer keys and values, read in place
        # and never written nor copied apart by the graph; the generic wrapper (BART) keeps one input.
        role = "decoder" if kind in ("t5", "bart") else "causal_lm"
        graph = onnx.load(str(ort.export_path / f"{role}.onnx"), load_external_data=False).graph
        inputs = [i.name for i in graph.input]
        layers = model.cache_geometry(role)[0]
        if kind == "bart":
            assert "cache" in inputs
        else:
            names = [f"cache.{i}.{j}" for i in range(layers) for j in (0, 1)]
            assert names == [n for n in inputs if n.startswith("cache.")]
            readers = {node.op_type for node in graph.node if set(node.input) & set(names)}
            # read (and written in place) by ONNX Runtime's attention kernel, never copied apart
            assert ort.describe()["attention"] == "group-query"
            assert readers <= {"GroupQueryAttention", "Shape"}, readers
            assert [o.name for o in graph.output if o.name.startswith("present.")] == [n.replace("cache.", "present.") for n in names]
            assert not {"ScatterND", "ScatterElements"} & {node.op_type for node in graph.node}
        if kind == "t5":
            names = [f"cross_kv.{i}.{j}" for i in range(layers) for j in (0, 1)]
            assert names == [n for n in inputs if n.startswith("cross_kv.")]
    finally:
        ort.close()


def test_a_folder_without_tokenizer_files_is_refused(folders, tmp_path, family):
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(folders["gpt2"] / name, folder / name)
    with pytest.raises(DataError, match="has no tokenizer files"):
        family.load(str(folder))


def test_capabilities_read_config_json_alone(tmp_path, family):
    import json

    cases = {
        "LlamaForCausalLM": Capability.CAUSAL_LM,
        "MarianMTModel": Capability.SEQ2SEQ,
        "RobertaForSequenceClassification": Capability.CLASSIFIER,
    }
    for arch, capability in cases.items():
        folder = tmp_path / arch
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"architectures": [arch], "is_encoder_decoder": arch == "MarianMTModel"}))
        assert family.capabilities(str(folder)) == {capability}  # no weights there at all
    masked = tmp_path / "masked"
    masked.mkdir()
    (masked / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"], "model_type": "bert"}))
    with pytest.raises(DataError, match="BertForMaskedLM is not a causal LM, seq2seq LM or sequence classifier"):
        family.capabilities(str(masked))
