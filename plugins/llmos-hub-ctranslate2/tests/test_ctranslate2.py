"""The ``ctranslate2`` backend against the ``pytorch`` backend on the same tiny transformers checkpoints.

Both backends see the same token ids (the runner tokenizes as the shared engine does); CTranslate2
then decodes and scores on its own. In float32 they must choose the same tokens (greedy and beam
search) and give log-likelihoods within 1e-4; the classifier's logits agree within 1e-4. The torch
model is never built for a ctranslate2 run.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest

pytest.importorskip("ctranslate2")
torch = pytest.importorskip("torch")

from llmos_hub import Capability, GenerationConfig, ModelInfo, UsageError  # noqa: E402
from llmos_hub.testing import check_backend, check_plugin  # noqa: E402
from llmos_hub_pytorch.backend import TorchBackend  # noqa: E402
from llmos_hub_transformers.family import HFFamily  # noqa: E402
from llmos_hub_transformers.tiny import corpus  # noqa: E402

import llmos_hub_ctranslate2.plugin  # noqa: E402
from llmos_hub_ctranslate2.backend import CTranslate2Backend  # noqa: E402
from llmos_hub_ctranslate2.support import KINDS  # noqa: E402

PROMPTS = ["This License", "The GNU General Public License is a free, copyleft license", "You can apply it"]
PAIRS = [("This License", " is free"), ("You can apply it", " to your programs, too."), ("", "Preamble")]
ATOL = 1e-4


@pytest.fixture(scope="module")
def pairs_of(tiny_folders, ct2_cache):
    """``(model, ctranslate2 runner, pytorch runner)`` per kind, built once per module."""
    made = {}

    def get(kind):
        if kind not in made:
            model = HFFamily().load(str(tiny_folders[kind]))
            ct2 = CTranslate2Backend().prepare(model, options={"cache_dir": str(ct2_cache), "threads": 1})
            made[kind] = (model, ct2, None)
        model, ct2, pt = made[kind]
        if pt is None:
            pt = TorchBackend().prepare(model, options={"threads": 1})
            made[kind] = (model, ct2, pt)
        return made[kind]

    yield get
    for _, ct2, _ in made.values():
        ct2.close()


def test_plugin_registers_the_backend():
    host = check_plugin(llmos_hub_ctranslate2.plugin)
    backend = host.get("backends", "ctranslate2")
    assert isinstance(backend, CTranslate2Backend) and backend.consumes == ("files:transformers",)


def test_the_model_table_matches_the_installed_converter():
    from ctranslate2.converters import transformers as converter
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    for model_type, kind in KINDS.items():
        loader = converter._MODEL_LOADERS[CONFIG_MAPPING_NAMES[model_type]]
        architecture = loader.architecture_name
        expected = {"generator": ("ForCausalLM", "LMHeadModel"), "translator": ("ForConditionalGeneration", "MTModel"),
                    "encoder": ("Model", "ForSequenceClassification")}[kind]
        assert architecture.endswith(expected) or (kind == "generator" and architecture == "AutoModelForCausalLM"), model_type


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gpt2", "llama", "t5", "t5-untied", "bart"])
def test_greedy_and_beam_tokens_equal_pytorch_in_float32(kind, pairs_of):
    model, ct2, pt = pairs_of(kind)
    for beams in (1, 4):
        config = GenerationConfig(max_new_tokens=12, num_beams=beams)
        got = ct2.generate(PROMPTS, config)
        expected = pt.generate(PROMPTS, config)
        assert [g.token_ids for g in got] == [g.token_ids for g in expected], beams
        assert [g.text for g in got] == [g.text for g in expected]
        assert [g.prompt_tokens for g in got] == [g.prompt_tokens for g in expected]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_a_batch_mixing_one_token_and_longer_prompts_gives_pytorchs_tokens(kind, pairs_of):
    # CTranslate2 answers such a batch (prompt left out of the result) with the longer prompts' own tokens.
    model, ct2, pt = pairs_of(kind)
    prompts = ["This License", "you", "You can apply it", "a"]
    lengths = [len(model.tokenizer.encode(p)) for p in prompts]
    assert lengths[1] == lengths[3] == 1 and min(lengths[0], lengths[2]) > 1
    for beams in (1, 4):
        config = GenerationConfig(max_new_tokens=6, num_beams=beams)
        got = ct2.generate(prompts, config)
        assert [g.token_ids for g in got] == [g.token_ids for g in pt.generate(prompts, config)], beams
    ids = [model.tokenizer.encode(p) for p in prompts]
    greedy = [list(g.token_ids) for g in pt.generate(prompts, GenerationConfig(max_new_tokens=5))]
    assert ct2.greedy_ids(ids, 5, eos_id=model.tokenizer.eos_id) == greedy


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gpt2", "llama", "t5", "t5-untied", "bart"])
def test_loglikelihoods_equal_pytorch_within_1e_4(kind, pairs_of):
    model, ct2, pt = pairs_of(kind)
    got, expected = ct2.loglikelihood(PAIRS), pt.loglikelihood(PAIRS)
    for g, e in zip(got, expected):
        assert g.num_tokens == e.num_tokens and g.num_tokens > 0
        assert math.isclose(g.logprob, e.logprob, abs_tol=ATOL), (g, e)
        assert g.is_greedy is None  # CTranslate2's scoring does not tell
    if model.supports(Capability.CAUSAL_LM):
        texts = corpus()[:4]
        for g, e in zip(ct2.loglikelihood_rolling(texts), pt.loglikelihood_rolling(texts)):
            assert g.num_tokens == e.num_tokens and math.isclose(g.logprob, e.logprob, abs_tol=ATOL), (g, e)


@pytest.mark.slow
def test_classifier_logits_equal_pytorch_within_1e_4(pairs_of):
    _, ct2, pt = pairs_of("bert")
    texts = corpus()[3:9]
    torch.testing.assert_close(torch.tensor(ct2.classify(texts)), torch.tensor(pt.classify(texts)), atol=ATOL, rtol=0)


@pytest.mark.slow
def test_a_ctranslate2_run_never_builds_the_torch_model(tiny_folders, ct2_cache):
    for kind in ("gpt2", "t5", "bert"):
        model = HFFamily().load(str(tiny_folders[kind]))
        runner = CTranslate2Backend().prepare(model, options={"cache_dir": str(ct2_cache), "threads": 1})
        if kind == "bert":
            runner.classify(PROMPTS)
        else:
            runner.generate(PROMPTS, GenerationConfig(max_new_tokens=4))
            runner.loglikelihood(PAIRS[:2])
        assert model.modules_built is False, kind


def test_threads_come_from_the_option_then_the_environment_then_ctranslate2(tiny_folders, ct2_cache, monkeypatch):
    model = HFFamily().load(str(tiny_folders["gpt2"]))
    for name in ("LLMOS_HUB_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)

    import ctranslate2

    given = []
    real = ctranslate2.Generator

    def generator(*args, **kwargs):  # what the engine is built with
        given.append(kwargs["intra_threads"])
        return real(*args, **kwargs)

    monkeypatch.setattr(ctranslate2, "Generator", generator)

    def facts(**options):
        described = CTranslate2Backend().prepare(model, options={"cache_dir": str(ct2_cache), **options}).describe()
        return described["threads"], described["threads_source"], given[-1]

    assert facts() == (None, "ctranslate2 default", 0)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Ray sets in a run granted one CPU
    assert facts() == (1, "$OMP_NUM_THREADS", 1)
    assert facts(threads=2) == (2, "option", 2)


@pytest.mark.slow
def test_conversions_are_cached_by_content(tiny_folders, tmp_path):
    folder = tmp_path / "gpt2"
    shutil.copytree(tiny_folders["gpt2"], folder)
    cache = tmp_path / "cache"
    first = CTranslate2Backend().prepare(HFFamily().load(str(folder)), options={"cache_dir": str(cache)})
    again = CTranslate2Backend().prepare(HFFamily().load(str(folder)), options={"cache_dir": str(cache)})
    assert first.describe()["conversion"]["cache_hit"] is False and again.describe()["conversion"]["cache_hit"] is True
    assert first.describe()["conversion"]["key"] == again.describe()["conversion"]["key"]
    # A changed tokenizer file is a different model to convert (its vocabulary is part of the result).
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["model_max_length"] = 77
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    changed = CTranslate2Backend().prepare(HFFamily().load(str(folder)), options={"cache_dir": str(cache)})
    assert changed.describe()["conversion"]["key"] != first.describe()["conversion"]["key"]
    entries = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 2 and all((p / "model.bin").is_file() for p in entries)


def _rehash(entry, name):
    """Make the manifest of ``entry`` vouch for ``name`` as it is now (damage the cache's checks cannot see)."""
    import hashlib

    manifest = json.loads((entry / "manifest.json").read_text())
    manifest.setdefault("file_sha256", {})[name] = hashlib.sha256((entry / name).read_bytes()).hexdigest()
    (entry / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.slow
def test_a_damaged_cache_entry_of_unchanged_size_is_converted_again(tiny_folders, tmp_path, capsys):
    model = HFFamily().load(str(tiny_folders["gpt2"]))
    options = {"cache_dir": str(tmp_path / "cache"), "threads": 1}
    first = CTranslate2Backend().prepare(model, options=options)
    expected = [r.logprob for r in first.loglikelihood(PAIRS)]
    binary = first.converted_path / "model.bin"
    data = bytearray(binary.read_bytes())
    data[-6000:-2000] = bytes(4000)  # tensor data, same size
    binary.write_bytes(bytes(data))
    again = CTranslate2Backend().prepare(model, options=options)
    assert again.describe()["conversion"]["cache_hit"] is False
    assert "model.bin does not have the sha256 it was written with" in capsys.readouterr().err
    assert [r.logprob for r in again.loglikelihood(PAIRS)] == expected


@pytest.mark.slow
def test_a_cache_entry_ctranslate2_cannot_load_is_converted_once_more(tiny_folders, tmp_path, capsys, monkeypatch):
    model = HFFamily().load(str(tiny_folders["gpt2"]))
    options = {"cache_dir": str(tmp_path / "cache"), "threads": 1}
    first = CTranslate2Backend().prepare(model, options=options)
    expected = [r.logprob for r in first.loglikelihood(PAIRS)]
    entry = first.converted_path
    data = bytearray((entry / "model.bin").read_bytes())
    data[16:80] = b"\xff" * 64  # the names at the start of model.bin: CTranslate2 cannot decode them
    (entry / "model.bin").write_bytes(bytes(data))
    _rehash(entry, "model.bin")
    again = CTranslate2Backend().prepare(model, options=options)
    assert again.describe()["conversion"]["cache_hit"] is False
    assert "CTranslate2 cannot load it: 'utf-8' codec can't decode" in capsys.readouterr().err
    assert [r.logprob for r in again.loglikelihood(PAIRS)] == expected
    assert CTranslate2Backend().prepare(model, options=options).describe()["conversion"]["cache_hit"] is True

    import ctranslate2

    def broken(*args, **kwargs):
        raise RuntimeError("Unsupported model binary version")

    monkeypatch.setattr(ctranslate2, "Generator", broken)  # fails on the cached entry and on a fresh one
    with pytest.raises(UsageError) as failed:
        CTranslate2Backend().prepare(model, options=options)
    message = str(failed.value)
    assert "\n" not in message and str(entry) in message and "Unsupported model binary version" in message


@pytest.mark.slow
def test_int8_runs_and_stays_close_to_float32(tiny_folders, ct2_cache, pairs_of):
    _, ct2, _ = pairs_of("gpt2")
    model = HFFamily().load(str(tiny_folders["gpt2"]))
    int8 = CTranslate2Backend().prepare(model, dtype="int8", options={"cache_dir": str(ct2_cache), "threads": 1})
    assert int8.describe()["compute_type"] == "int8" and int8.describe()["conversion"]["cache_hit"] is True
    config = GenerationConfig(max_new_tokens=8)
    assert all(len(g.token_ids) == 8 for g in int8.generate(PROMPTS, config))
    for q, f in zip(int8.loglikelihood(PAIRS), ct2.loglikelihood(PAIRS)):
        assert q.num_tokens == f.num_tokens and abs(q.logprob - f.logprob) < 0.05 * abs(f.logprob) + 0.5


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gpt2", "t5", "bert"])
def test_a_batch_answers_as_its_requests_one_by_one(kind, tiny_folders, ct2_cache, monkeypatch):
    monkeypatch.setenv("LLMOS_HUB_CACHE", str(ct2_cache.parent / "ct2-env-cache"))
    check_backend(CTranslate2Backend(), HFFamily().load(str(tiny_folders[kind])), texts=PROMPTS, atol=ATOL)


def test_stop_strings_cut_text_and_tokens_as_the_engine_does(pairs_of):
    model, ct2, pt = pairs_of("gpt2")
    free = ct2.generate(PROMPTS[:1], GenerationConfig(max_new_tokens=12))[0]
    stop = model.tokenizer.decode(free.token_ids[3:5])
    assert stop
    config = GenerationConfig(max_new_tokens=12, stop=(stop,))
    got, expected = ct2.generate(PROMPTS[:1], config)[0], pt.generate(PROMPTS[:1], config)[0]
    assert got.token_ids == expected.token_ids and got.text == expected.text and stop not in got.text


# -- refused before loading, in one line -------------------------------------------------------------
def _info(tmp_path, config, capability):
    from llmos_hub import Artifacts

    folder = tmp_path / config["architectures"][0]
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    artifacts = Artifacts(folder=folder, layout="transformers", weights=(folder / "model.safetensors",),
                          config_file=folder / "config.json")
    return ModelInfo(capabilities=frozenset({capability}), artifacts=artifacts)


def test_unsupported_models_are_refused_in_one_line(tmp_path):
    backend = CTranslate2Backend()
    cases = [
        ({"architectures": ["XLNetLMHeadModel"], "model_type": "xlnet"}, Capability.CAUSAL_LM, "no loader for model_type 'xlnet'"),
        ({"architectures": ["GPT2ForSequenceClassification"], "model_type": "gpt2"}, Capability.CLASSIFIER,
         "to a generator, which cannot run GPT2ForSequenceClassification as a classifier"),
        ({"architectures": ["BertForTokenClassification"], "model_type": "bert"}, Capability.CLASSIFIER,
         "not BertForTokenClassification"),
        ({"architectures": ["BartForConditionalGeneration"], "model_type": "bart", "encoder_attention_heads": 2,
          "decoder_attention_heads": 4}, Capability.SEQ2SEQ, "2 encoder and 4 decoder attention heads"),
    ]
    for config, capability, message in cases:
        reason = backend.check_model(_info(tmp_path, config, capability))
        assert reason is not None and message in reason and "\n" not in reason, reason
    ok = _info(tmp_path, {"architectures": ["MarianMTModel"], "model_type": "marian"}, Capability.SEQ2SEQ)
    assert backend.check_model(ok) is None


def test_nano_checkpoints_are_refused_with_the_reason():
    from llmos_hub_nano.family import NanoFamily

    family = NanoFamily()
    if "lm-sample" not in family.available():
        pytest.skip("no shipped nano checkpoint")
    info = family.inspect("lm-sample")
    reason = CTranslate2Backend().check_model(info)
    assert reason is not None and "nano checkpoint" in reason and "pytorch or onnxruntime" in reason
    with pytest.raises(UsageError, match="nano checkpoint"):
        CTranslate2Backend().prepare(family.load("lm-sample"))


def test_a_model_without_files_is_refused_naming_the_backend_that_runs_it():
    from llmos_hub import load_plugins

    host = load_plugins()
    info = host.get("models", "baseline").inspect("translation-sample")
    reason = CTranslate2Backend().check_model(info)
    assert reason is not None and "\n" not in reason
    assert reason.endswith("runs only on backend baseline; use --backend baseline"), reason
    reason = CTranslate2Backend().check_model(ModelInfo(capabilities=frozenset({Capability.CAUSAL_LM})))
    assert reason is not None and "hands out no files to convert; use --backend pytorch" in reason, reason


def test_unknown_options_devices_and_dtypes_are_one_line_errors(tiny_folders):
    model = HFFamily().load(str(tiny_folders["gpt2"]))
    with pytest.raises(UsageError, match="has no option fast"):
        CTranslate2Backend().prepare(model, options={"fast": True})
    with pytest.raises(UsageError, match="runs float32 or int8"):
        CTranslate2Backend().prepare(model, dtype="float16")
    with pytest.raises(UsageError, match="cannot run on device 'tpu'"):
        CTranslate2Backend().prepare(model, device="tpu")


def test_backend_options_are_checked_while_planning_before_any_model_loads(tiny_folders, monkeypatch):
    from llmos_hub import load_plugins
    from llmos_hub.bench import make_plan

    host = load_plugins()
    model = f"hf:{tiny_folders['gpt2']}"
    loads = []
    monkeypatch.setattr(HFFamily, "load", lambda *a, **k: loads.append(a) or pytest.fail("a model loaded"))

    def plan(*backends, **options):
        return make_plan(host, models=[model], tasks=["lm-sample"], backends=list(backends), backend_options=options)

    # An unscoped option goes to the backends that know it: use_cache to pytorch only.
    runs = {r.spec.backend: r.spec.backend_options for r in plan("pytorch", "ctranslate2", use_cache=True).runs}
    assert runs == {"pytorch": {"use_cache": True}, "ctranslate2": None}  # None: no options
    assert {r.spec.backend: r.spec.backend_options for r in plan("pytorch", "ctranslate2", threads=2).runs} == {
        "pytorch": {"threads": 2}, "ctranslate2": {"threads": 2}}
    for options, message in [({"threads": "abc"}, "ctranslate2.threads='abc': 'abc' is not of type 'integer'"),
                             ({"threads": -1}, "ctranslate2.threads=-1: -1 is less than the minimum of 1"),
                             ({"compute_type": "int8"}, "compute_type: no backend in this bench knows it"),
                             ({"use_cache": True}, "use_cache: no backend in this bench knows it")]:
        with pytest.raises(UsageError, match=message.replace("[", r"\[")):
            plan("ctranslate2", **options)
    assert loads == []


def test_a_bad_threads_option_is_a_one_line_error_in_prepare_too(tiny_folders):
    model = HFFamily().load(str(tiny_folders["gpt2"]))
    for value in ("abc", -1, 0, True):
        with pytest.raises(UsageError, match="option threads must be a whole number of at least 1") as failed:
            CTranslate2Backend().prepare(model, options={"threads": value})
        assert "\n" not in str(failed.value)
    assert model.modules_built is False


@pytest.mark.cuda
def test_cuda_greedy_tokens_equal_the_cpu(tiny_folders, ct2_cache, pairs_of):
    import ctranslate2

    if ctranslate2.get_cuda_device_count() == 0:
        pytest.skip("CTranslate2 sees no CUDA device here")
    _, cpu, _ = pairs_of("gpt2")
    model = HFFamily().load(str(tiny_folders["gpt2"]))
    cuda = CTranslate2Backend().prepare(model, device="cuda", options={"cache_dir": str(ct2_cache)})
    config = GenerationConfig(max_new_tokens=8)
    assert [g.token_ids for g in cuda.generate(PROMPTS, config)] == [g.token_ids for g in cpu.generate(PROMPTS, config)]
    for a, b in zip(cuda.loglikelihood(PAIRS), cpu.loglikelihood(PAIRS)):
        assert math.isclose(a.logprob, b.logprob, abs_tol=1e-3)
