"""Self-attention over the cache as ONNX Runtime's ``GroupQueryAttention``, writing the runner's cache in place."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from llmos_hub import GenerationConfig
from llmos_hub.attention import cache_attention
from llmos_hub_onnxruntime import _gqa
from llmos_hub_onnxruntime.export import _lowered, default_attention

BATCH, HEADS, CAPACITY = 2, 4, 16


class _Layer(torch.nn.Module):
    def forward(self, q, k, v, cache, slots, mask):
        return cache_attention(q, cache[0], k, v, slots, mask, None)


def _case(kv_heads: int, dim: int, start: int, new: int):
    g = torch.Generator().manual_seed(kv_heads * 100 + start * 10 + new)
    q = torch.randn(BATCH, HEADS, new, dim, generator=g)
    k, v = (torch.randn(BATCH, kv_heads, new, dim, generator=g) for _ in range(2))
    keys, values = (torch.randn(BATCH, kv_heads, CAPACITY, dim, generator=g) for _ in range(2))
    slots = torch.arange(start, start + new)
    slot = torch.arange(CAPACITY)
    mask = (slot[None, :] <= slots[:, None])[None, None].repeat(BATCH, 1, 1, 1)
    mask[0, :, :, :2] = False  # row 0 left padded by two
    mask[0, :, torch.arange(new), slots] = True
    return q, k, v, keys, values, slots, mask


def _export(tmp_path: Path, kv_heads: int, dim: int) -> Path:
    """The one-layer module exported as the backend exports a model (lowered, translated, exposed)."""
    q, k, v, keys, values, slots, mask = _case(kv_heads, dim, 5, 3)
    path = tmp_path / "layer.onnx"
    batch, new, capacity = torch.export.Dim("batch"), torch.export.Dim("new"), torch.export.Dim("capacity")
    with _lowered(True):
        program = torch.onnx.export(
            _Layer(), (q, k, v, [(keys, values)], slots, mask), None, dynamo=True, opset_version=23,
            input_names=["q", "k", "v", "cache.0.0", "cache.0.1", "slots", "mask"],
            dynamic_shapes=({0: batch, 2: new}, {0: batch, 2: new}, {0: batch, 2: new},
                            [({0: batch, 2: capacity}, {0: batch, 2: capacity})], {0: new}, {0: batch, 2: new, 3: capacity}),
            custom_translation_table=_gqa.translation_table(),
        )
    program.save(str(path))
    _gqa.expose_cache_writes(path)
    return path


def _run_sharing(path: Path, case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run with each present output bound to its cache input's memory; returns output, keys, values."""
    q, k, v, keys, values, slots, mask = case
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    keys_np, values_np = keys.numpy().copy(), values.numpy().copy()
    binding = session.io_binding()
    for name, value in (("q", q), ("k", k), ("v", v), ("slots", slots), ("mask", mask)):
        binding.bind_cpu_input(name, np.ascontiguousarray(value.numpy()))
    out = np.zeros(q.shape, np.float32)
    binding.bind_output(session.get_outputs()[0].name, "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
    outputs = {o.name for o in session.get_outputs()}
    for name, buffer in (("cache.0.0", keys_np), ("cache.0.1", values_np)):
        binding.bind_cpu_input(name, buffer)
        present = name.replace("cache.", "present.")
        if present in outputs:
            binding.bind_output(present, "cpu", 0, np.float32, list(buffer.shape), buffer.ctypes.data)
    session.run_with_iobinding(binding)
    return out, keys_np, values_np


def test_the_installed_onnxruntime_has_the_kernel():
    assert _gqa.runtime_has_gqa()
    assert default_attention("dynamo", "cpu") == "group-query"
    assert default_attention("dynamo", "cuda") == "decomposed"  # its CUDA kernel takes half precision only
    assert default_attention("torchscript", "cpu") == "decomposed"
    assert default_attention("dynamo", "cpu", io_binding=False) == "decomposed"  # presents could not share the cache


def test_the_record_says_decomposed_for_a_model_that_does_not_attend_through_cache_attention(nano_causal):
    _model, _torch_runner, ort_runner = nano_causal[0]
    assert ort_runner.describe()["attention"] == "decomposed"  # nano modules keep their own attention
    assert not ort_runner.graphs["causal_lm"].presents


@pytest.mark.parametrize("kv_heads", [4, 2])
@pytest.mark.parametrize(("start", "new"), [(0, 5), (7, 1)])  # a prefill from slot 0, a step over a filled cache
def test_the_kernel_answers_as_torch_and_writes_exactly_the_new_slots(tmp_path, kv_heads, start, new):
    path = _export(tmp_path, kv_heads, 8)
    graph = onnx.load(str(path), load_external_data=False).graph
    assert [n.op_type for n in graph.node].count("GroupQueryAttention") == 1
    assert [o.name for o in graph.output][1:] == ["present.0.0", "present.0.1"]
    case = _case(kv_heads, 8, start, new)
    q, k, v, keys, values, slots, mask = case
    out, keys_after, values_after = _run_sharing(path, case)
    expected = _Layer()(q, k, v, [(keys, values)], slots, mask)
    np.testing.assert_allclose(out, expected.numpy(), atol=1e-5, rtol=1e-5)
    written = np.zeros(CAPACITY, bool)
    written[start : start + new] = True
    np.testing.assert_array_equal(keys_after[:, :, written], k.numpy())
    np.testing.assert_array_equal(values_after[:, :, written], v.numpy())
    np.testing.assert_array_equal(keys_after[:, :, ~written], keys.numpy()[:, :, ~written])
    np.testing.assert_array_equal(values_after[:, :, ~written], values.numpy()[:, :, ~written])


def test_a_head_size_the_kernel_refuses_is_exported_decomposed(tmp_path):
    path = _export(tmp_path, 2, 4)  # ONNX Runtime's CPU kernel wants head sizes in multiples of 8
    graph = onnx.load(str(path), load_external_data=False).graph
    assert "GroupQueryAttention" not in {n.op_type for n in graph.node}
    assert [o.name for o in graph.output if o.name.startswith("present.")] == []
    case = _case(2, 4, 7, 1)
    out, keys_after, _ = _run_sharing(path, case)
    q, k, v, keys, values, slots, mask = case
    np.testing.assert_allclose(out, _Layer()(q, k, v, [(keys, values)], slots, mask).numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(keys_after, keys.numpy())  # a decomposed graph writes nothing


# -- through the backend, on the transformers family's tiny models ---------------------------------------
PROMPTS = ["This License", "The GNU General Public License is a free, copyleft license", "You can apply it"]


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    tiny = pytest.importorskip("llmos_hub_transformers.tiny")
    from llmos_hub_transformers.family import HFFamily

    root = tmp_path_factory.mktemp("hf-tiny-gqa")
    family = HFFamily()
    return {kind: family.load(str(tiny.save_tiny(kind, root / kind))) for kind in ("gpt2", "llama", "t5")}


def _prepare(model, cache: Path, attention: str | None = None, **options):
    """An onnxruntime runner of ``model``; ``attention`` forces the export's attention (else the default)."""
    from llmos_hub_onnxruntime import backend as ort_backend

    original = ort_backend._export.default_attention
    if attention is not None:
        ort_backend._export.default_attention = lambda *args, **kwargs: attention
    try:
        return ort_backend.OnnxRuntimeBackend().prepare(model, options={"cache_dir": str(cache), "threads": 1, **options})
    finally:
        ort_backend._export.default_attention = original


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gpt2", "llama", "t5"])
def test_group_query_graphs_decode_as_pytorch_and_as_decomposed_graphs(kind, hf_models, ort_cache):
    from llmos_hub_pytorch.backend import TorchBackend

    model = hf_models[kind]
    torch_runner = TorchBackend().prepare(model, options={"threads": 1})
    runners = {
        "group-query": _prepare(model, ort_cache),
        "no binding": _prepare(model, ort_cache, io_binding=False),  # the default then: decomposed
        # a group-query graph run without binding: its presents go to ORT's buffers, the runner writes
        "group-query, no binding": _prepare(model, ort_cache, "group-query", io_binding=False),
    }
    try:
        facts = {name: runner.describe() for name, runner in runners.items()}
        assert [facts[n]["attention"] for n in runners] == ["group-query", "decomposed", "group-query"]
        assert facts["no binding"]["export"]["key"] != facts["group-query"]["export"]["key"]
        for config in (GenerationConfig(max_new_tokens=8), GenerationConfig(max_new_tokens=6, num_beams=3)):
            want = [g.token_ids for g in torch_runner.generate(PROMPTS, config)]
            for name, runner in runners.items():
                assert [g.token_ids for g in runner.generate(PROMPTS, config)] == want, (name, config)
        pairs = [(p, " and more") for p in PROMPTS]
        want_ll = [r.logprob for r in torch_runner.loglikelihood(pairs)]
        for runner in runners.values():
            np.testing.assert_allclose([r.logprob for r in runner.loglikelihood(pairs)], want_ll, atol=1e-4, rtol=1e-5)
        role = "decoder" if kind == "t5" else "causal_lm"
        assert runners["group-query"].graphs[role].wrote_cache  # the kernel wrote the cache; the runner did not
        assert not runners["group-query, no binding"].graphs[role].wrote_cache  # the runner wrote new_kv
        assert not runners["no binding"].graphs[role].presents
    finally:
        for runner in runners.values():
            runner.close()


@pytest.mark.slow
def test_a_cache_that_is_not_one_buffer_is_written_by_the_runner_not_through_a_copy(hf_models, ort_cache):
    """Bound through a contiguous copy, the kernel's writes would land in the copy and be lost: such a
    cache is only read, and the graph says it did not write, so the runner writes ``new_kv``."""
    runner = _prepare(hf_models["gpt2"], ort_cache)
    try:
        graph = runner.graphs["causal_lm"]
        layers, heads, dim = graph.cache_dims
        wide = np.random.default_rng(0).standard_normal((layers, 2, 1, heads, 12, dim)).astype(np.float32)
        cache = wide[..., :8, :]  # a view of a wider buffer: not C-contiguous
        before = cache.copy()
        feeds = {"input_ids": np.array([[5]]), "attention_mask": np.ones((1, 8), np.int64), "cache": cache,
                 "cache_position": np.array([4]), "logits_index": np.zeros(1, np.int64)}
        logits, new_kv = graph.run(feeds, {"logits": (1, 1, graph.vocab), "new_kv": (layers, 2, 1, heads, 1, dim)})
        assert not graph.wrote_cache
        np.testing.assert_array_equal(cache, before)
        graph.run({**feeds, "cache": np.ascontiguousarray(cache)})  # the same call on one buffer is written
        assert graph.wrote_cache
        assert np.isfinite(logits).all() and new_kv.shape == (layers, 2, 1, heads, 1, dim)
    finally:
        runner.close()


def test_a_decode_step_reuses_the_binding_of_the_step_before(nano_causal, monkeypatch):
    """A step names the same cache, mask and output buffers as the step before (token ids and slot go
    through buffers of the graph's own), so only the prefill and the first step bind; the tokens are
    those of runs that bind every call."""
    from llmos_hub.decoding import Batch, greedy_search

    _model, _torch_runner, runner = nano_causal[0]
    graph = runner.graphs["causal_lm"]
    batch = Batch([[5, 6, 7, 8], [0, 0, 9, 10]], [[1, 1, 1, 1], [0, 0, 1, 1]])
    bindings = []
    original = graph.session.io_binding
    monkeypatch.setattr(graph.session, "io_binding", lambda: bindings.append(1) or original())
    reused = greedy_search(runner, batch, max_new_tokens=12, eos_id=None)
    assert len(bindings) == 2  # prefill, first step; the other 11 steps reuse it
    run = graph._run_host

    def unbound(feeds, shapes):  # drop the kept binding before every call: each call binds anew
        graph._bound = None
        return run(feeds, shapes)

    monkeypatch.setattr(graph, "_run_host", unbound)
    fresh = greedy_search(runner, batch, max_new_tokens=12, eos_id=None)
    assert len(bindings) == 2 + 12
    assert reused == fresh
