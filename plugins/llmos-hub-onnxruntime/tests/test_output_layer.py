"""The output product read in pieces (``_output_layer.split_output_product``): the same logits bit for
bit, pieces that are byte ranges of the stored matrix, and a session start that no longer holds the
whole matrix twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from llmos_hub_onnxruntime import _output_layer
from llmos_hub_onnxruntime._output_layer import split_output_product


def _lm_graph(folder: Path, rows: int, width: int, *, tied: bool = True, seed: int = 0) -> Path:
    """``logits = Gather(E, ids) @ Transpose(W)`` as the dynamo exporter writes a language model's end,
    ``W`` the embedding ``E`` itself when ``tied``; weights in ``model.onnx.data``."""
    rng = np.random.default_rng(seed)
    embedding = rng.standard_normal((rows, width), dtype=np.float32)
    initializers = [numpy_helper.from_array(embedding, "embedding")]
    head = "embedding"
    if not tied:
        initializers.append(numpy_helper.from_array(rng.standard_normal((rows, width), dtype=np.float32), "head"))
        head = "head"
    nodes = [
        helper.make_node("Gather", ["embedding", "input_ids"], ["hidden"]),
        helper.make_node("Transpose", [head], ["head_t"], perm=[1, 0]),
        helper.make_node("MatMul", ["hidden", "head_t"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "lm",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "new"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "new", rows])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=1024)
    return path


def _logits(path: Path, ids: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input_ids": ids})[0]


def _copy(path: Path, folder: Path) -> Path:
    folder.mkdir()
    for file in path.parent.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    return folder / path.name


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_the_pieces_give_the_single_products_logits_bit_for_bit(tmp_path, tied):
    whole = _lm_graph(tmp_path / "whole", rows=300, width=32, tied=tied)
    split = _copy(whole, tmp_path / "split")
    data_before = (split.parent / "model.onnx.data").read_bytes()

    pieces = split_output_product(split, piece_bytes=4096)

    # 300 rows of 128 bytes in pieces of at most 4,096 bytes: 10 pieces of 32 rows (the panel multiple)
    graph = onnx.load(str(split), load_external_data=False).graph
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    assert pieces == len(gemms) == 10
    assert all(helper.get_attribute_value(n.attribute[0]) == 1 for n in gemms)  # transB
    assert not [n for n in graph.node if n.op_type in ("Transpose", "MatMul")]
    names = {init.name for init in graph.initializer}
    assert ("embedding" in names) and (("head" in names) is False)  # a head read by the Transpose alone is dropped
    assert (split.parent / "model.onnx.data").read_bytes() == data_before  # pieces are ranges, nothing written
    onnx.checker.check_model(str(split), full_check=True)
    for ids in (np.array([[5]]), np.array([[1, 2, 3], [299, 0, 7]])):
        assert np.array_equal(_logits(split, ids), _logits(whole, ids))


def test_a_matrix_within_one_piece_or_another_pattern_is_left_alone(tmp_path):
    small = _lm_graph(tmp_path / "whole", rows=300, width=32)
    before = small.read_bytes()
    assert split_output_product(small, piece_bytes=300 * 32 * 4) == 0
    assert small.read_bytes() == before

    # the Transpose read by a second node: the product cannot be replaced alone
    model = onnx.load(str(small), load_external_data=False)
    model.graph.node.append(helper.make_node("Identity", ["head_t"], ["head_copy"]))
    model.graph.output.append(helper.make_tensor_value_info("head_copy", TensorProto.FLOAT, [32, 300]))
    onnx.save(model, str(small))
    assert split_output_product(small, piece_bytes=1024) == 0

    # no product named ``logits``
    assert split_output_product(small, piece_bytes=1024, output="scores") == 0


def test_an_exported_model_with_its_output_layer_in_pieces_generates_the_same_tokens(tmp_path, monkeypatch, nano_causal):
    """Through the backend: a nano LM exported into a fresh cache with pieces small enough to split its
    2,048-row output matrix generates the tokens the pytorch runner and the one-product graph do."""
    from llmos_hub.decoding import greedy_search, pad_left
    from llmos_hub_onnxruntime.backend import OnnxRuntimeBackend

    model, torch_runner, ort_runner = nano_causal[0]
    monkeypatch.setattr(_output_layer, "PIECE_BYTES", 128 << 10)
    split_runner = OnnxRuntimeBackend().prepare(model, options={"cache_dir": str(tmp_path), "threads": 1})
    graph_file = next(tmp_path.rglob("causal_lm.onnx"))
    gemms = [n for n in onnx.load(str(graph_file), load_external_data=False).graph.node if n.op_type == "Gemm"]
    assert len(gemms) > 1

    tok = model.tokenizer
    batch = pad_left([tok.encode(t) for t in ("The river rose", "In the morning the", "A")], tok.pad_id)
    want = greedy_search(torch_runner, batch, max_new_tokens=12, eos_id=None)
    assert greedy_search(split_runner, batch, max_new_tokens=12, eos_id=None) == want
    assert greedy_search(ort_runner, batch, max_new_tokens=12, eos_id=None) == want


_PEAK = """
import sys, onnxruntime as ort
options = ort.SessionOptions(); options.intra_op_num_threads = 1; options.log_severity_level = 3
before = int([l for l in open("/proc/self/status") if l.startswith("VmRSS:")][0].split()[1])
with open("/proc/self/clear_refs", "w") as f: f.write("5")  # resets VmHWM to the current RSS
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
status = {l.split(":")[0]: int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(("VmHWM", "VmRSS"))}
print(status["VmHWM"] - before, status["VmRSS"] - before)
"""


def _session_kib(path: Path) -> tuple[int, int]:
    """(peak, held) resident KiB above the process's start of an ONNX Runtime session on ``path``."""
    done = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, check=True)
    peak, held = done.stdout.split()
    return int(peak), int(held)


@pytest.mark.slow
def test_a_session_on_the_pieces_peaks_without_a_second_whole_matrix(tmp_path):
    """GPT-2's tied 50,257 x 768 output matrix (147 MiB): the one-product session's start holds the
    matrix's pages and its packed copy at once; in 16 MiB pieces it holds one piece's."""
    whole = _lm_graph(tmp_path / "whole", rows=50_257, width=768)
    split = _copy(whole, tmp_path / "split")
    assert split_output_product(split) == 10
    matrix_kib = 50_257 * 768 * 4 // 1024

    whole_peak, whole_held = _session_kib(whole)
    split_peak, split_held = _session_kib(split)

    assert whole_peak > whole_held + matrix_kib * 0.8  # the measurement sees the doubled matrix
    assert split_peak < whole_peak - matrix_kib * 0.6
    assert split_peak < split_held + matrix_kib * 0.3
    assert abs(split_held - whole_held) < matrix_kib * 0.1  # what the session keeps is the same
