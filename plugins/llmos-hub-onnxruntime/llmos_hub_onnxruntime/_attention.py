"""Make exported ``Attention`` nodes acceptable to ONNX Runtime's kernel.

From opset 23 the dynamo exporter writes ``scaled_dot_product_attention`` as one ONNX ``Attention``
node. The ONNX spec lets its ``attn_mask`` broadcast over the query axis (an encoder's padding mask
is ``[batch, 1, 1, keys]``), but ONNX Runtime 1.32's CPU kernel insists that the mask's
second-to-last axis equals the query length ("inconsistent q_sequence_length (between attn_mask
and Q)"). This pass feeds every such mask through an ``Expand`` to ``[..., queries, keys]``; where
the mask already has the query axis the ``Expand`` changes nothing.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

__all__ = ["expand_attention_masks", "one_node_session", "runtime_has_attention_op"]


def expand_attention_masks(path: Path) -> int:
    """Rewrite the graph at ``path`` in place; returns how many masks were expanded."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    nodes = []
    changed = 0
    for node in graph.node:
        if node.op_type == "Attention" and node.domain in ("", "ai.onnx") and len(node.input) > 3 and node.input[3]:
            query, mask = node.input[0], node.input[3]
            tag = f"{node.name or 'attention'}_{changed}_mask"
            nodes += [
                helper.make_node("Shape", [mask], [f"{tag}_lead"], end=-2, name=f"{tag}_lead"),
                helper.make_node("Shape", [query], [f"{tag}_queries"], start=-2, end=-1, name=f"{tag}_queries"),
                helper.make_node("Shape", [mask], [f"{tag}_keys"], start=-1, name=f"{tag}_keys"),
                helper.make_node(
                    "Concat", [f"{tag}_lead", f"{tag}_queries", f"{tag}_keys"], [f"{tag}_shape"], axis=0, name=f"{tag}_shape"
                ),
                helper.make_node("Expand", [mask, f"{tag}_shape"], [f"{tag}_full"], name=f"{tag}_full"),
            ]
            node.input[3] = f"{tag}_full"
            changed += 1
        nodes.append(node)
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
        onnx.save(model, str(path))
    return changed


@functools.cache
def runtime_has_attention_op() -> bool:
    """Whether the installed onnx and ONNX Runtime build and run an opset-23 ``Attention`` node.

    Probed once per process on a one-node graph (a few milliseconds), so older ONNX Runtime builds
    fall back to the decomposed opset-18 attention instead of failing every export.
    """
    try:
        import numpy as np
        from onnx import TensorProto, helper

        inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 3, 4]) for n in ("q", "k", "v")]
        mask = helper.make_tensor_value_info("mask", TensorProto.BOOL, [1, 1, 3, 3])
        session = one_node_session(
            helper.make_node("Attention", ["q", "k", "v", "mask"], ["y"]),
            [*inputs, mask],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 4])],
            {"": 23},
        )
        x = np.ones((1, 2, 3, 4), dtype=np.float32)
        session.run(None, {"q": x, "k": x, "v": x, "mask": np.ones((1, 1, 3, 3), dtype=bool)})
        return True
    except Exception:
        return False


def one_node_session(node: Any, inputs: list[Any], outputs: list[Any], opsets: dict[str, int]) -> Any:
    """A CPU ``InferenceSession`` over a graph of one ``node`` (a probe of what the runtime supports)."""
    import onnx
    import onnxruntime
    from onnx import helper

    graph = helper.make_graph([node], "probe", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, version) for domain, version in opsets.items()])
    model.ir_version = min(model.ir_version, 10)
    if all(domain in ("", "ai.onnx") for domain in opsets):
        onnx.checker.check_model(model)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
