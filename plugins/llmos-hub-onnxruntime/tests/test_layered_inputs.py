"""Per-layer cache inputs: the runner's one ``[layers, 2, ...]`` buffer is fed to a graph whose inputs are
each layer's keys and values (``cache.<layer>.<0|1>``) as views, never copied apart."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from llmos_hub_onnxruntime.runner import OrtGraph

LAYERS, BATCH, HEADS, CAPACITY, DIM = 3, 2, 2, 5, 4


def _graph(tmp_path):
    """``out[i, j] = cache.i.j * (2 * i + j + 1)``: each input lands exactly once, scaled by its index."""
    names = [f"cache.{i}.{j}" for i in range(LAYERS) for j in (0, 1)]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", HEADS, "capacity", DIM]) for n in names]
    nodes, parts = [], []
    for k, name in enumerate(names):
        scale = helper.make_tensor(f"s{k}", TensorProto.FLOAT, [], [float(k + 1)])
        nodes += [helper.make_node("Constant", [], [f"s{k}"], value=scale),
                  helper.make_node("Mul", [name, f"s{k}"], [f"m{k}"]),
                  helper.make_node("Unsqueeze", [f"m{k}", "zero"], [f"u{k}"])]
        parts.append(f"u{k}")
    nodes.insert(0, helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("z", TensorProto.INT64, [1], [0])))
    nodes.append(helper.make_node("Concat", parts, ["out"], axis=0))
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [2 * LAYERS, "batch", HEADS, "capacity", DIM])
    model = helper.make_model(helper.make_graph(nodes, "layered", inputs, [out]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = tmp_path / "layered.onnx"
    path.write_bytes(model.SerializeToString())
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


# An OrtValue cache (the CUDA path) is always fed through IO binding.
@pytest.mark.parametrize(("io_binding", "as_ortvalue"), [(False, False), (True, False), (True, True)])
def test_a_layered_graph_reads_each_layers_keys_and_values_from_the_one_buffer(tmp_path, io_binding, as_ortvalue):
    graph = OrtGraph(_graph(tmp_path), io_binding=io_binding)
    assert graph.layered == {"cache": LAYERS}
    assert graph.cache_dims == (LAYERS, HEADS, DIM)
    cache = np.random.default_rng(0).standard_normal((LAYERS, 2, BATCH, HEADS, CAPACITY, DIM)).astype(np.float32)
    # Bound by address, the OrtValue path is the one a CUDA cache takes (the same offsets on the device).
    fed = ort.OrtValue.ortvalue_from_numpy(cache) if as_ortvalue else cache
    (out,) = graph.run({"cache": fed})
    expected = cache.reshape(2 * LAYERS, BATCH, HEADS, CAPACITY, DIM) * np.arange(1, 2 * LAYERS + 1, dtype=np.float32).reshape(-1, 1, 1, 1, 1)
    np.testing.assert_array_equal(out, expected)
