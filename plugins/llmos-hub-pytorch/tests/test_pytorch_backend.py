"""The pytorch backend on tiny random nano models: the engine's guarantees hold with real tensors
(cache = recomputation, batch = one by one, rolling windows = one forward pass), and device/dtype
requests fail in one line."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

from llmos_hub import GenerationConfig, UsageError
from llmos_hub.decoding import beam_search, greedy_search, pad_left
from llmos_hub.testing import check_backend, check_plugin
from llmos_hub_nano.family import NanoFamily
from llmos_hub_nano.config import NanoConfig
from llmos_hub_nano.tiny import random_checkpoint
from llmos_hub_pytorch import plugin
from llmos_hub_pytorch.backend import TorchBackend

PROMPTS = [
    "The quick brown fox",
    "Usage:",
    "Packages provide libraries, tools and documentation for the",
    "A tokenizer splits text into pieces; a model predicts",
]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("nano")
    family = NanoFamily()
    return {
        arch: family.load(str(random_checkpoint(root / arch, arch, seed=2, max_length=32)))
        for arch in ("causal-lm", "seq2seq", "classifier")
    }


@pytest.fixture(scope="module")
def lm(models):
    return models["causal-lm"]


def _runner(model, **options):
    return TorchBackend().prepare(model, device="cpu", dtype="float32", options=options)


# -- generation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["causal-lm", "seq2seq"])
def test_greedy_with_cache_equals_full_recomputation(models, arch):
    config = GenerationConfig(max_new_tokens=12)
    cached = _runner(models[arch]).generate(PROMPTS, config)
    recomputed = _runner(models[arch], use_cache=False).generate(PROMPTS, config)
    assert [g.token_ids for g in cached] == [g.token_ids for g in recomputed]
    assert any(g.generated_tokens >= 5 for g in cached)


@pytest.mark.parametrize("arch", ["causal-lm", "seq2seq"])
def test_one_beam_is_greedy(models, arch):
    runner = _runner(models[arch])
    tok = models[arch].tokenizer
    batch = pad_left([tok.encode(p) for p in PROMPTS], tok.pad_id)
    with torch.inference_mode():
        greedy = greedy_search(runner, batch, max_new_tokens=10, eos_id=tok.eos_id)
        beam = beam_search(runner, batch, num_beams=1, max_new_tokens=10, eos_id=tok.eos_id, length_penalty=0.0)
    assert beam == greedy


@pytest.mark.parametrize("arch", ["causal-lm", "seq2seq"])
def test_beam_search_is_batch_independent(models, arch):
    runner = _runner(models[arch])
    config = GenerationConfig(max_new_tokens=8, num_beams=4, length_penalty=0.0)
    together = runner.generate(PROMPTS, config)
    alone = [runner.generate([p], config)[0] for p in PROMPTS]
    assert [g.token_ids for g in together] == [g.token_ids for g in alone]


def test_mixed_length_batch_equals_one_by_one(lm):
    check_backend(TorchBackend(), lm, texts=PROMPTS)
    runner = _runner(lm)
    requests = [(p, " and more") for p in PROMPTS] + [("", "Usage: program FILE")]
    together = runner.loglikelihood(requests)
    alone = [runner.loglikelihood([r])[0] for r in requests]
    for a, b in zip(together, alone):
        assert a.num_tokens == b.num_tokens and a.is_greedy == b.is_greedy
        assert a.logprob == pytest.approx(b.logprob, abs=1e-5)


def test_seq2seq_and_classifier_batches_equal_one_by_one(models):
    check_backend(TorchBackend(), models["seq2seq"], texts=PROMPTS)
    check_backend(TorchBackend(), models["classifier"], texts=PROMPTS)


def test_a_seq2seq_batch_with_an_empty_continuation_scores_it_as_nothing(models):
    # An empty target beside a longer one made a decoder row one token too long (ValueError from torch.tensor).
    runner = _runner(models["seq2seq"])
    empty, word = runner.loglikelihood([("a b", ""), ("a b", " the")])
    assert (empty.logprob, empty.num_tokens) == (0.0, 0)
    [alone] = runner.loglikelihood([("a b", " the")])
    assert word.num_tokens == alone.num_tokens and word.logprob == pytest.approx(alone.logprob, abs=1e-5)


def test_boolean_options_refuse_a_value_that_is_not_true_or_false(lm):
    # A typo (compile=nope, use_cache=flase) had switched the option on; the check runs when a bench plans.
    backend = TorchBackend()
    for name, value, said in [("compile", "nope", "true or false"), ("use_cache", "flase", "true or false"),
                              ("prepack", "maybe", "true or false or auto"), ("use_cache", 2, "true or false")]:
        with pytest.raises(UsageError, match=f"option {name} of backend pytorch takes {said}, not "):
            backend.check("cpu", "float32", {name: value})
    backend.check("cpu", "float32", {"use_cache": "off", "prepack": "auto", "compile": False})
    assert _runner(lm, use_cache="no").describe()["kv_cache"] is False


def test_stop_strings_cut_the_text(lm):
    runner = _runner(lm)
    [free] = runner.generate([PROMPTS[0]], GenerationConfig(max_new_tokens=12))
    stop = lm.tokenizer.decode(free.token_ids[3:5]).strip() or lm.tokenizer.decode(free.token_ids[3:5])
    assert stop, "the random model should generate visible text"
    [cut] = runner.generate([PROMPTS[0]], GenerationConfig(max_new_tokens=12, stop=(stop,)))
    assert stop not in cut.text
    assert cut.text == free.text[: free.text.index(stop)]
    assert cut.generated_tokens <= 5


# -- scoring ------------------------------------------------------------------------------------------
def _independent_logprobs(model, ids: list[int]) -> list[float]:
    """log p(ids[i] | [EOS] + ids[:i]) from one plain forward pass of the module."""
    module = model.modules["causal_lm"]
    inputs = torch.tensor([[model.tokenizer.eos_id] + ids[:-1]])
    with torch.inference_mode():
        logits, _ = module(inputs, torch.ones_like(inputs))
    logprobs = F.log_softmax(logits[0].double(), dim=-1)
    return [logprobs[i, t].item() for i, t in enumerate(ids)]


def test_rolling_loglikelihood_equals_one_forward_pass_on_a_short_text(lm):
    text = "The archive contains 3 files."
    ids = lm.tokenizer.encode(text)
    assert len(ids) < lm.max_length
    [ll] = _runner(lm).loglikelihood_rolling([text])
    assert ll.num_tokens == len(ids)
    assert ll.logprob == pytest.approx(sum(_independent_logprobs(lm, ids)), abs=1e-4)


def _window_logprobs(model, inputs: list[int], n_targets: int, targets: list[int]) -> float:
    module = model.modules["causal_lm"]
    x = torch.tensor([inputs])
    with torch.inference_mode():
        logits, _ = module(x, torch.ones_like(x))
    logprobs = F.log_softmax(logits[0, -n_targets:].double(), dim=-1)
    return sum(logprobs[i, t].item() for i, t in enumerate(targets))


def test_rolling_loglikelihood_scores_every_token_of_a_long_text_once(lm):
    text = "The quick brown fox jumps over the lazy dog. " * 12
    ids = lm.tokenizer.encode(text)
    L = lm.max_length
    assert len(ids) > 3 * L
    # Independently: the first L tokens after [EOS]; then each next block of <= L tokens, predicted
    # from the L tokens just before each of them ends.
    expected = sum(_independent_logprobs(lm, ids[:L]))
    predicted = L
    while predicted < len(ids):
        end = min(predicted + L, len(ids))
        expected += _window_logprobs(lm, ids[end - L - 1 : end - 1], end - predicted, ids[predicted:end])
        predicted = end
    runner = _runner(lm)
    [ll] = runner.loglikelihood_rolling([text])
    assert ll.num_tokens == len(ids)
    assert ll.logprob == pytest.approx(expected, abs=1e-3)
    both = runner.loglikelihood_rolling([text, "Usage:"])
    assert both[0].logprob == pytest.approx(ll.logprob, abs=1e-4)


def test_sequence_logprobs_flags_greedy_targets(lm):
    runner = _runner(lm)
    prompt = lm.tokenizer.encode("Usage:")
    batch = pad_left([prompt], lm.tokenizer.pad_id)
    with torch.inference_mode():
        _, out = runner.prefill(batch)
        best = runner.argmax(out)[0]
        values, indices = runner.topk_logprobs(out, 2)
        [(lp_best, greedy_best)] = runner.sequence_logprobs(batch, [[best]])
        [(lp_second, greedy_second)] = runner.sequence_logprobs(batch, [[indices[0][1]]])
    assert indices[0][0] == best
    assert greedy_best is True and greedy_second is False
    assert lp_best == pytest.approx(values[0][0], abs=1e-5) and lp_second == pytest.approx(values[0][1], abs=1e-5)


# -- device and dtype ---------------------------------------------------------------------------------
def test_float16_on_cpu_is_a_usage_error(lm):
    with pytest.raises(UsageError, match="float16 needs --device cuda") as info:
        TorchBackend().prepare(lm, device="cpu", dtype="float16")
    assert "\n" not in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_without_cuda_is_a_usage_error(lm):
    for device in ("cuda", "cuda:0"):
        with pytest.raises(UsageError, match="CUDA is not available"):
            TorchBackend().prepare(lm, device=device)
    assert TorchBackend().prepare(lm, device="auto").device == "cpu"


def test_unknown_device_dtype_and_option_are_usage_errors(lm):
    with pytest.raises(UsageError, match="unknown device 'tpu'"):
        TorchBackend().prepare(lm, device="tpu")
    with pytest.raises(UsageError, match="unknown dtype 'int4'"):
        TorchBackend().prepare(lm, dtype="int4")
    with pytest.raises(UsageError, match="unknown option"):
        TorchBackend().prepare(lm, options={"beams": 3})


def test_bfloat16_on_cpu_runs_close_to_float32_and_leaves_the_model_alone(lm):
    texts = PROMPTS[:2]
    fp32 = _runner(lm).loglikelihood_rolling(texts)
    bf16 = TorchBackend().prepare(lm, device="cpu", dtype="bfloat16").loglikelihood_rolling(texts)
    for a, b in zip(fp32, bf16):
        assert abs(a.logprob - b.logprob) / a.num_tokens < 0.25
    assert next(lm.modules["causal_lm"].parameters()).dtype == torch.float32


def test_runner_facts(lm):
    runner = _runner(lm, threads=1)
    runner.loglikelihood_rolling(PROMPTS)
    assert runner.peak_memory_bytes() > 10_000_000
    facts = runner.describe()
    assert facts["device"] == "cpu" and facts["threads"] == 1 and facts["dtype"] == "float32"
    assert TorchBackend().versions() == {"torch": torch.__version__}


def test_plugin_registers_the_backend():
    host = check_plugin(plugin, name="pytorch-under-test")
    assert isinstance(host.get("backends", "pytorch"), TorchBackend)


@needs_cuda
@pytest.mark.cuda
def test_cuda_greedy_and_scores_match_cpu(lm):
    config = GenerationConfig(max_new_tokens=10)
    cpu = _runner(lm)
    gpu = TorchBackend().prepare(lm, device="cuda", dtype="float32")
    assert [g.token_ids for g in gpu.generate(PROMPTS, config)] == [g.token_ids for g in cpu.generate(PROMPTS, config)]
    for a, b in zip(gpu.loglikelihood_rolling(PROMPTS), cpu.loglikelihood_rolling(PROMPTS)):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-3)
    gpu.reset_peak_memory()
    gpu.generate(PROMPTS, config)
    assert gpu.peak_memory_bytes() > 0
    assert "device_name" in gpu.describe()


@needs_cuda
@pytest.mark.cuda
def test_cuda_half_precision_runs(lm):
    for dtype in ("float16", "bfloat16"):
        runner = TorchBackend().prepare(lm, device="cuda", dtype=dtype)
        gens = runner.generate(PROMPTS, GenerationConfig(max_new_tokens=4))
        assert all(len(g.token_ids) <= 4 for g in gens)
