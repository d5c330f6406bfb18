"""Export through the calling conventions: checked graphs, dynamic axes, exact numbers, one-line failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import pytest
import torch
from ort_tiny_models import tiny_causal_lm, tiny_classifier, tiny_seq2seq

from llmos_hub import LlmosHubError
from llmos_hub_onnxruntime import export as export_module
from llmos_hub_onnxruntime._roles import cache_geometry
from llmos_hub_onnxruntime.export import ExportError, export_model


def _dim_names(model_proto: onnx.ModelProto, name: str) -> list[str | int]:
    for value in list(model_proto.graph.input) + list(model_proto.graph.output):
        if value.name == name:
            return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
    raise KeyError(name)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, nano_causal):
    """The three tiny architectures exported with the fast exporter, plus the nano LM exported by the
    backend with the default (dynamo) exporter (shared with the parity tests)."""
    out = {}
    for make in (tiny_causal_lm, tiny_seq2seq, tiny_classifier):
        model = make()
        folder = tmp_path_factory.mktemp(f"export-{model.ref}")
        out[model.ref] = (model, folder, export_model(model, folder, exporter="torchscript"))
    model, _, runner = nano_causal[0]
    assert runner.describe()["exporter"] == "dynamo"
    folder = runner.export_path
    out["lm-dynamo"] = (model, folder, json.loads((folder / "manifest.json").read_text()))
    return out


@pytest.mark.parametrize("name", ["lm", "seq2seq", "classifier", "lm-dynamo"])
def test_every_graph_passes_the_checker_and_keeps_batch_and_lengths_dynamic(exported, name):
    model, folder, manifest = exported[name]
    assert set(manifest["graphs"]) == set(model.modules)
    for role, info in manifest["graphs"].items():
        proto = onnx.load(str(folder / info["file"]))
        onnx.checker.check_model(proto, full_check=True)
        for input_name in info["inputs"]:
            dims = _dim_names(proto, input_name)
            axis = 2 if input_name in ("cache", "cross_kv") else 0  # the batch axis
            assert isinstance(dims[axis], str), (role, input_name, dims)
        for input_name in ("cache", "cross_kv"):
            if input_name in info["inputs"]:
                dims = _dim_names(proto, input_name)
                assert isinstance(dims[4], str)  # the cache capacity / source length
                assert all(isinstance(d, int) for d in (dims[0], dims[1], dims[3], dims[5]))


def _torch_lm(model, feeds):
    with torch.no_grad():
        args = [torch.from_numpy(feeds[name]) for name in ("input_ids", "attention_mask", "cache", "cache_position", "logits_index")]
        logits, new_kv = model.modules["causal_lm"](*args)
    return logits.numpy(), new_kv.numpy()


@pytest.mark.parametrize("name", ["lm", "lm-dynamo"])
@pytest.mark.parametrize("batch,new,start,capacity", [(1, 6, 0, 6), (4, 1, 9, 16), (3, 5, 2, 7)])
def test_causal_graph_matches_torch_for_any_batch_prompt_and_cache_capacity(exported, name, batch, new, start, capacity):
    model, folder, _ = exported[name]
    session = ort.InferenceSession(str(folder / "causal_lm.onnx"), providers=["CPUExecutionProvider"])
    layers, heads, head_dim = cache_geometry(model, "causal_lm")
    vocab = model.config["vocab_size"]
    rng = np.random.default_rng(batch * 100 + new)
    ids = rng.integers(3, vocab, size=(batch, new), dtype=np.int64)
    mask = np.ones((batch, capacity), dtype=np.int64)
    mask[0, :2] = 0  # left padding on the first row
    cache = rng.standard_normal((layers, 2, batch, heads, capacity, head_dim)).astype(np.float32)
    feeds = {
        "input_ids": ids,
        "attention_mask": mask,
        "cache": cache,
        "cache_position": np.arange(start, start + new, dtype=np.int64),
        "logits_index": np.arange(new - min(new, 2), new, dtype=np.int64),  # the last two positions
    }
    logits, new_kv = session.run(None, feeds)
    ref_logits, ref_new_kv = _torch_lm(model, {k: v.copy() for k, v in feeds.items()})
    assert logits.shape == (batch, min(new, 2), vocab)
    assert new_kv.shape == (layers, 2, batch, heads, new, head_dim)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-5)
    np.testing.assert_allclose(new_kv, ref_new_kv, atol=1e-5)


def test_seq2seq_and_classifier_graphs_match_torch(exported):
    model, folder, _ = exported["seq2seq"]
    ids = np.array([[0, 0, 7, 8, 9], [4, 5, 6, 7, 8]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    encoder = ort.InferenceSession(str(folder / "encoder.onnx"), providers=["CPUExecutionProvider"])
    cross_kv = ort.InferenceSession(str(folder / "cross_kv.onnx"), providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(folder / "decoder.onnx"), providers=["CPUExecutionProvider"])
    (states,) = encoder.run(None, {"input_ids": ids, "attention_mask": mask})
    (cross,) = cross_kv.run(None, {"encoder_states": states})
    cache = np.zeros((2, 2, 2, 4, 3, 8), dtype=np.float32)
    dec_ids = np.array([[2, 40, 41], [2, 50, 51]], dtype=np.int64)
    feeds = {"decoder_input_ids": dec_ids, "encoder_states": states, "encoder_mask": mask, "cross_kv": cross,
             "cache": cache, "cache_position": np.arange(3, dtype=np.int64)}
    kept = {i.name for i in decoder.get_inputs()}  # a decoder given cross_kv may not read encoder_states
    logits, new_kv = decoder.run(None, {k: v for k, v in feeds.items() if k in kept})
    with torch.no_grad():
        ref_states = model.modules["encoder"](torch.from_numpy(ids), torch.from_numpy(mask))
        ref_cross = model.modules["cross_kv"](ref_states)
        ref_logits, _ = model.modules["decoder"](torch.from_numpy(dec_ids), ref_states, torch.from_numpy(mask))
    np.testing.assert_allclose(states, ref_states.numpy(), atol=1e-5)
    np.testing.assert_allclose(cross, ref_cross.numpy(), atol=1e-5)
    np.testing.assert_allclose(logits, ref_logits.numpy(), atol=1e-5)
    assert new_kv.shape[4] == 3

    model, folder, _ = exported["classifier"]
    session = ort.InferenceSession(str(folder / "classifier.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
    with torch.no_grad():
        ref = model.modules["classifier"](torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(logits, ref, atol=1e-5)


# -- failures name the module and the operator, on one line ---------------------------------------
@torch.library.custom_op("llmos_ort_test::mystery", mutates_args=())
def _mystery(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@_mystery.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class _UnsupportedClassifier(torch.nn.Module):
    """A classifier whose forward uses an operator no ONNX exporter knows."""

    def forward(self, input_ids, attention_mask):
        return _mystery(input_ids.float() * attention_mask)[:, :3]


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_an_unsupported_operator_fails_in_one_line_naming_module_and_operator(tmp_path, exporter):
    model = tiny_classifier()
    model.modules = {"classifier": _UnsupportedClassifier()}
    with pytest.raises(ExportError) as info:
        export_model(model, tmp_path, exporter=exporter)
    message = str(info.value)
    assert isinstance(info.value, LlmosHubError)
    assert "\n" not in message
    assert "'classifier'" in message and model.name in message
    assert "llmos_ort_test" in message and "mystery" in message
    assert info.value.role == "classifier"
    assert "mystery" in (info.value.operator or "")


def test_an_exporter_crash_is_reported_as_a_failed_export_not_a_traceback(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::scaled_dot_product_attention' to ONNX opset version 17 is not supported\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(ExportError) as info:
        export_model(tiny_causal_lm(), tmp_path, exporter="torchscript")
    message = str(info.value)
    assert "\n" not in message
    assert "'causal_lm'" in message and "aten::scaled_dot_product_attention" in message


def test_unknown_exporter_and_unknown_role_are_usage_errors(tmp_path):
    with pytest.raises(LlmosHubError, match="unknown ONNX exporter 'jit'"):
        export_model(tiny_causal_lm(), tmp_path, exporter="jit")
    model = tiny_classifier()
    model.modules = {"pooler": model.modules["classifier"]}
    with pytest.raises(LlmosHubError, match="unknown module role"):
        export_model(model, tmp_path)


def test_operator_names_are_read_from_each_exporters_messages():
    read = export_module._operator_of
    assert read("No ONNX function found for <OpOverload(op='aten.linalg_eig', overload='default')>.") == "aten.linalg_eig"
    assert read("Exporting the operator 'aten::fft_fft2' to ONNX opset version 17 is not supported") == "aten::fft_fft2"
    assert read("an operator with unrecognized namespace foo::bar. If you") == "foo::bar"
    assert read("shape mismatch in layer 3") is None


# -- opset 23 Attention and the export-time check against torch ------------------------------------
def test_attention_masks_get_their_query_axis_and_padded_batches_match_torch(tmp_path):
    """An encoder's ``[batch, 1, 1, keys]`` mask, which ONNX Runtime's Attention kernel refuses as is."""
    model = tiny_classifier()
    manifest = export_model(model, tmp_path, exporter="dynamo")
    assert manifest["opset"] == 23
    graph = onnx.load(str(tmp_path / "classifier.onnx")).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    attention = [node for node in graph.node if node.op_type == "Attention"]
    assert attention and all(producers[node.input[3]] == "Expand" for node in attention)
    ids = np.array([[0, 0, 0, 7, 8], [4, 5, 6, 7, 8], [0, 9, 9, 9, 9]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    session = ort.InferenceSession(str(tmp_path / "classifier.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
    with torch.no_grad():
        ref = model.modules["classifier"](torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(logits, ref, atol=1e-5)


def test_a_graph_that_disagrees_with_torch_is_a_failed_export(tmp_path, monkeypatch):
    real = export_module.expand_attention_masks

    def corrupt(path):  # stands in for an exporter bug: one weight comes out doubled
        real(path)
        proto = onnx.load(str(path))
        weight = next(t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2)
        array = onnx.numpy_helper.to_array(weight) * 2
        weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
        onnx.save(proto, str(path))
        return 0

    monkeypatch.setattr(export_module, "expand_attention_masks", corrupt)
    with pytest.raises(ExportError, match="the exported graph is wrong: output 'logits' differs from torch") as info:
        export_model(tiny_classifier(), tmp_path, exporter="dynamo")
    assert "\n" not in str(info.value) and "'classifier'" in str(info.value)


def test_a_graph_onnx_runtime_cannot_run_is_a_failed_export_naming_the_operator(tmp_path, monkeypatch):
    """Without the mask pass, ONNX Runtime 1.32 refuses the encoder's Attention nodes; if a later
    ONNX Runtime accepts them, this fails and ``_attention.py`` can go."""
    monkeypatch.setattr(export_module, "expand_attention_masks", lambda path: 0)  # leave the masks as exported
    with pytest.raises(ExportError, match="fails on its operator Attention") as info:
        export_model(tiny_classifier(), tmp_path, exporter="dynamo")
    assert "\n" not in str(info.value) and info.value.operator == "Attention"


def test_the_default_opset_falls_back_to_18_where_onnx_runtime_lacks_attention(monkeypatch):
    from llmos_hub_onnxruntime._attention import runtime_has_attention_op

    assert export_module.default_opset("dynamo") == (23 if runtime_has_attention_op() else 18)
    monkeypatch.setattr(export_module, "runtime_has_attention_op", lambda: False)
    assert export_module.default_opset("dynamo") == 18
    assert export_module.default_opset("torchscript") == 17
