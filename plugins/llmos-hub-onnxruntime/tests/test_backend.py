"""The backend's settings: devices, dtypes, options, threads, int8 quantization, registration."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from ort_tiny_models import tiny_causal_lm, tiny_classifier

from llmos_hub import GenerationConfig, UsageError
from llmos_hub._plugins import default_host
from llmos_hub_onnxruntime.backend import OnnxRuntimeBackend

FAST = {"exporter": "torchscript"}


@pytest.fixture(scope="module")
def classifier():
    return tiny_classifier()


def test_the_plugin_registers_the_backend():
    backend = default_host().get("backends", "onnxruntime")
    assert isinstance(backend, OnnxRuntimeBackend)
    assert set(backend.versions()) == {"onnxruntime", "onnx"}


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA provider present")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_the_cuda_provider_is_a_one_line_usage_error(classifier, device, ort_cache):
    with pytest.raises(UsageError) as info:
        OnnxRuntimeBackend().prepare(classifier, device=device, options={"cache_dir": str(ort_cache)})
    message = str(info.value)
    assert "\n" not in message and "CUDA execution provider" in message and "onnxruntime-gpu" in message


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"device": "tpu"}, "cannot run on device 'tpu'"),
        ({"dtype": "float16"}, "float32 or int8"),
        ({"options": {"thread": 2}}, "has no option thread"),
        ({"options": {"exporter": "jit"}}, "unknown ONNX exporter"),
        ({"options": {"optimization": "max", **FAST}}, "unknown graph optimization level"),
    ],
)
def test_bad_settings_are_one_line_usage_errors(classifier, kwargs, match, ort_cache):
    options = {"cache_dir": str(ort_cache), **kwargs.pop("options", {})}
    with pytest.raises(UsageError, match=match) as info:
        OnnxRuntimeBackend().prepare(classifier, options=options, **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA provider present")
def test_auto_device_is_the_cpu_without_cuda(classifier, ort_cache):
    runner = OnnxRuntimeBackend().prepare(classifier, device="auto", options={**FAST, "cache_dir": str(ort_cache)})
    assert runner.device == "cpu" and runner.describe()["execution_provider"] == "CPUExecutionProvider"


def test_threads_and_optimization_reach_the_session(classifier, ort_cache):
    config = {"session.intra_op.allow_spinning": "0"}
    options = {**FAST, "cache_dir": str(ort_cache), "threads": 1, "session_config": config}
    runner = OnnxRuntimeBackend().prepare(classifier, options=options)
    session = runner.graphs["classifier"].session
    assert session.get_session_options().intra_op_num_threads == 1
    assert session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session.get_session_options().graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    facts = runner.describe()
    assert facts["threads"] == 1 and facts["execution_provider"] == "CPUExecutionProvider"
    assert facts["quantization"] is None and facts["device"] == "cpu"


def test_int8_quantizes_the_weights_and_says_so(classifier, ort_cache):
    backend = OnnxRuntimeBackend()
    full = backend.prepare(classifier, options={**FAST, "cache_dir": str(ort_cache)})
    int8 = backend.prepare(classifier, dtype="int8", options={**FAST, "cache_dir": str(ort_cache)})
    assert int8.describe()["quantization"] == "dynamic-int8" and int8.dtype == "int8"
    graph = onnx.load(str(int8.export_path / "classifier.onnx")).graph
    ops = {node.op_type for node in graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    texts = ["a short one", "the quick brown fox jumps over the lazy dog", "zz"]
    a, b = np.array(full.classify(texts)), np.array(int8.classify(texts))
    assert not np.array_equal(a, b)  # the quantized graph is what runs
    assert np.abs(a - b).max() < 0.1 * np.abs(a).max() + 0.05  # and it is close to float


def test_int8_works_with_the_default_exporter(nano_classifier, ort_cache):
    model, _, runner = nano_classifier[0]
    assert runner.describe()["opset"] == 23  # graphs with standard Attention nodes
    int8 = OnnxRuntimeBackend().prepare(model, dtype="int8", options={"cache_dir": str(ort_cache)})
    ops = {node.op_type for node in onnx.load(str(int8.export_path / "classifier.onnx")).graph.node}
    assert {"MatMulInteger", "Attention"} <= ops
    texts = ["a package of tools for the command line", "a font family", "a game with tiles"]
    a, b = np.array(runner.classify(texts)), np.array(int8.classify(texts))
    assert not np.array_equal(a, b)
    assert (a.argmax(-1) == b.argmax(-1)).all()  # int8 noise does not change these easy predictions


def test_int8_on_cuda_is_refused(classifier):
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(UsageError):
            OnnxRuntimeBackend().prepare(classifier, device="cuda", dtype="int8")
    else:
        with pytest.raises(UsageError, match="CPU only"):
            OnnxRuntimeBackend().prepare(classifier, device="cuda", dtype="int8")


def test_io_binding_gives_the_same_tokens_as_plain_run(ort_cache):
    model = tiny_causal_lm()
    backend = OnnxRuntimeBackend()
    prompts = ["hello", "a much longer prompt here", "x"]
    config = GenerationConfig(max_new_tokens=6, num_beams=2)
    plain = backend.prepare(model, options={**FAST, "cache_dir": str(ort_cache), "io_binding": False})
    bound = backend.prepare(model, options={**FAST, "cache_dir": str(ort_cache), "io_binding": True})
    assert bound.describe()["io_binding"] is True
    assert [g.token_ids for g in plain.generate(prompts, config)] == [g.token_ids for g in bound.generate(prompts, config)]
    assert plain.loglikelihood([("ab", "cd")])[0].logprob == pytest.approx(bound.loglikelihood([("ab", "cd")])[0].logprob, abs=1e-6)


def test_bound_outputs_take_one_buffer_each_whatever_the_prompt_widths(ort_cache):
    """A bench feeds batches of ever new prompt widths; output buffers must not pile up per shape."""
    model = tiny_causal_lm()
    runner = OnnxRuntimeBackend().prepare(model, options={**FAST, "cache_dir": str(ort_cache)})
    config = GenerationConfig(max_new_tokens=4)
    expected = [g.token_ids for g in runner.generate(["x", "two words", "three more words"], config)]
    runner.generate(["a prompt of quite a few more words than the others"], config)  # the widest
    graph = runner.graphs["causal_lm"]
    held = {name: buffer.nbytes for name, buffer in graph._out_buffers.items()}
    assert set(held) == {"logits", "new_kv"}
    for width in range(1, 12):  # eleven new widths, each its own prefill shape
        runner.generate(["w " * width], config)
    assert {name: buffer.nbytes for name, buffer in graph._out_buffers.items()} == held
    # Reusing one buffer across shapes changes no answer.
    assert [g.token_ids for g in runner.generate(["x", "two words", "three more words"], config)] == expected


def test_peak_memory_is_reported(classifier, ort_cache):
    runner = OnnxRuntimeBackend().prepare(classifier, options={**FAST, "cache_dir": str(ort_cache)})
    runner.reset_peak_memory()
    runner.classify(["some text"] * 4)
    peak = runner.peak_memory_bytes()
    assert peak is not None and peak > 10 * 2**20  # the Python process alone is tens of MB


@pytest.mark.parametrize(("options", "said"), [
    ({"opset": 99}, "the dynamo exporter writes opsets 18 to "),
    ({"opset": 7}, "the dynamo exporter writes opsets 18 to "),  # it wrote 18 and the record said 7
    ({"exporter": "torchscript", "opset": 99}, "the torchscript exporter writes opsets 7 to "),
])
def test_an_opset_the_exporter_cannot_write_is_refused_while_planning(options, said):
    with pytest.raises(UsageError, match=f"option opset of backend onnxruntime: {said}"):
        OnnxRuntimeBackend().check("cpu", "float32", options)
    OnnxRuntimeBackend().check("cpu", "float32", {"opset": 18})


def test_a_cache_dir_that_is_a_file_is_refused_while_planning(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(UsageError, match="afile is a file, not a folder"):
        OnnxRuntimeBackend().check("cpu", "float32", {"cache_dir": str(tmp_path / "afile")})
    OnnxRuntimeBackend().check("cpu", "float32", {"cache_dir": str(tmp_path / "new-folder")})
