"""Self-attention over the cache as ONNX Runtime's ``GroupQueryAttention`` (CPU), written in place.

A decoding module traced for export attends over its preallocated cache through
:func:`llmos_hub.attention.cache_attention`. Decomposed, that is ~40 nodes per layer (reshapes,
transposes, two score blocks over the whole capacity, a softmax, slices) and a graph output of the
new keys/values that the runner then writes into the cache. Exported inside
:func:`llmos_hub.attention.lowered_cache_attention` it is one operator, which this module translates
to ONNX Runtime's contrib ``GroupQueryAttention``: it attends over the filled slots only (the capacity
holds up to 64 reserved slots more) and, when its ``present_key``/``present_value`` outputs are bound
to the same buffers as its ``past_key``/``past_value`` inputs, writes the new tokens' keys and values
into that buffer itself. :func:`expose_cache_writes` makes those outputs graph outputs named
``present.<layer>.<0|1>`` after the cache inputs they share (``cache.<layer>.<0|1>``), and the
runner binds each to its input's memory (:class:`~.runner.OrtGraph`).

Slots: the engine left-pads a batch, so every row's new tokens go to the same slots
``cache_position`` (consecutive). ``seqlens_k`` is then the last slot for every row and the padding is
hidden by ``attention_bias`` (the module's mask over the filled slots); the operator adds its own
causal mask, which agrees with the module's. CPU only: ONNX Runtime's CUDA kernel takes half precision
only, so CUDA exports keep the decomposed attention.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

__all__ = ["accepts", "expose_cache_writes", "runtime_has_gqa", "translation_table"]

_INT32 = 6  # onnx.TensorProto.INT32
_INT64_MAX = 2**63 - 1


@functools.cache
def _schema() -> Any:
    """The signature of ``com.microsoft::GroupQueryAttention`` v1 as far as this translation uses it
    (ONNX knows no contrib schemas; the exporter builds a node from one)."""
    from onnx import defs

    param, option = defs.OpSchema.FormalParameter, defs.OpSchema.FormalParameterOption
    attribute, kind = defs.OpSchema.Attribute, defs.OpSchema.AttrType

    def optional(name: str, type_str: str = "T") -> Any:
        return param(name, type_str, param_option=option.Optional)

    return defs.OpSchema(
        "GroupQueryAttention", "com.microsoft", 1,
        inputs=[param("query", "T"), optional("key"), optional("value"), optional("past_key"), optional("past_value"),
                param("seqlens_k", "M"), param("total_sequence_length", "M"), optional("cos_cache"),
                optional("sin_cache"), optional("position_ids", "P"), optional("attention_bias")],
        outputs=[param("output", "T"), param("present_key", "T"), param("present_value", "T")],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)"], ""), ("M", ["tensor(int32)"], ""),
                          ("P", ["tensor(int64)"], "")],
        attributes=[attribute("num_heads", kind.INT, ""), attribute("kv_num_heads", kind.INT, ""),
                    attribute("scale", kind.FLOAT, "")],
    )


def _translate(q: Any, k: Any, v: Any, keys: Any, values: Any, cache_position: Any, bias: Any, scale: float) -> Any:
    """``torch.ops.llmos_hub.cache_attention`` as ONNX nodes around one ``GroupQueryAttention``."""
    from onnxscript import opset18 as op
    from onnxscript.values import Op, Opset

    group_query_attention = Op(Opset("com.microsoft", 1), "GroupQueryAttention", _schema())
    heads, kv_heads = int(q.shape[1]), int(k.shape[1])
    to_tokens = [0, 2, 1, 3]  # [batch, heads, new, d] <-> [batch, new, heads, d]
    flat = op.Constant(value_ints=[0, 0, -1])
    last = op.Slice(cache_position, op.Constant(value_ints=[-1]), op.Constant(value_ints=[_INT64_MAX]))
    filled = op.Add(last, op.Constant(value_ints=[1]))  # slots the new tokens attend over
    out, _, _ = group_query_attention(
        op.Reshape(op.Transpose(q, perm=to_tokens), flat),
        op.Reshape(op.Transpose(k, perm=to_tokens), flat),
        op.Reshape(op.Transpose(v, perm=to_tokens), flat),
        keys,
        values,
        op.Expand(op.Cast(last, to=_INT32), op.Shape(q, start=0, end=1)),
        op.Cast(op.Squeeze(filled), to=_INT32),
        None, None, None,
        op.Slice(bias, op.Constant(value_ints=[0]), filled, op.Constant(value_ints=[3])),
        num_heads=heads, kv_num_heads=kv_heads, scale=float(scale),
    )
    heads_shape = op.Concat(op.Constant(value_ints=[0, 0, heads]), op.Shape(q, start=3), axis=0)
    return op.Transpose(op.Reshape(out, heads_shape), perm=to_tokens)


def accepts(q: Any, k: Any) -> bool:
    """The calls ONNX Runtime's CPU kernel takes: float32, head size a multiple of 8, query heads a
    multiple of the key/value heads."""
    import torch

    dim, heads, kv_heads = int(q.shape[-1]), int(q.shape[1]), int(k.shape[1])
    return q.dtype == torch.float32 and dim % 8 == 0 and heads % kv_heads == 0


def translation_table() -> dict[Any, Any]:
    """The exporter's ``custom_translation_table`` for :func:`llmos_hub.attention.cache_attention`."""
    import torch

    import llmos_hub.attention  # noqa: F401  (defines the operator)

    return {torch.ops.llmos_hub.cache_attention.default: _translate}


def expose_cache_writes(path: Path) -> int:
    """Make each ``GroupQueryAttention``'s present keys/values a graph output named after the cache
    input it reads (``cache.3.0`` -> ``present.3.0``), so a runner can bind both to one buffer; rewrites
    the graph at ``path`` in place and returns how many nodes it exposed."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    inputs = {i.name: i for i in graph.input}
    exposed = 0
    for node in graph.node:
        if node.op_type != "GroupQueryAttention" or node.domain != "com.microsoft":
            continue
        for slot in (1, 2):
            past = node.input[slot + 2]
            if past not in inputs or not past.startswith("cache.") or len(node.output) <= slot:
                raise ValueError(f"GroupQueryAttention reads {past!r}, not a per-layer cache input")
            name = "present." + past.removeprefix("cache.")
            node.output[slot] = name  # the translation reads only the attention output: nothing else names it
            value = onnx.ValueInfoProto()
            value.CopyFrom(inputs[past])
            value.name = name
            graph.output.append(value)
        exposed += 1
    if exposed:
        onnx.save(model, str(path))
    return exposed


@functools.cache
def runtime_has_gqa() -> bool:
    """Whether the installed ONNX Runtime runs ``GroupQueryAttention`` on the CPU as exports call it
    (separate query/key/value, an ``attention_bias``) and writes the new keys/values into the cache
    shared between its past inputs and present outputs (probed once per process on a one-node graph)."""
    try:
        import numpy as np
        from onnx import TensorProto, helper

        from ._attention import one_node_session

        batch, heads, capacity, dim = 2, 2, 4, 8
        cache_type = [batch, heads, capacity, dim]

        def tensor(name: str, kind: int, shape: list[int]) -> Any:
            return helper.make_tensor_value_info(name, kind, shape)

        session = one_node_session(
            helper.make_node("GroupQueryAttention", ["q", "k", "v", "pk", "pv", "seqlens", "total", "", "", "", "bias"],
                             ["y", "present_k", "present_v"], domain="com.microsoft", num_heads=heads, kv_num_heads=heads),
            [*(tensor(n, TensorProto.FLOAT, [batch, 1, heads * dim]) for n in ("q", "k", "v")),
             tensor("pk", TensorProto.FLOAT, cache_type), tensor("pv", TensorProto.FLOAT, cache_type),
             tensor("seqlens", TensorProto.INT32, [batch]), tensor("total", TensorProto.INT32, []),
             tensor("bias", TensorProto.FLOAT, [batch, 1, 1, 2])],
            [tensor("y", TensorProto.FLOAT, [batch, 1, heads * dim]), tensor("present_k", TensorProto.FLOAT, cache_type),
             tensor("present_v", TensorProto.FLOAT, cache_type)],
            {"": 18, "com.microsoft": 1},
        )
        keys, values = np.zeros(cache_type, np.float32), np.zeros(cache_type, np.float32)
        binding = session.io_binding()
        for name in ("q", "k", "v"):
            binding.bind_cpu_input(name, np.ones((batch, 1, heads * dim), np.float32))
        binding.bind_cpu_input("seqlens", np.full(batch, 1, np.int32))
        binding.bind_cpu_input("total", np.array(2, np.int32))
        binding.bind_cpu_input("bias", np.zeros((batch, 1, 1, 2), np.float32))
        for name, out, buffer in (("pk", "present_k", keys), ("pv", "present_v", values)):
            binding.bind_cpu_input(name, buffer)
            binding.bind_output(out, "cpu", 0, np.float32, cache_type, buffer.ctypes.data)
        binding.bind_output("y", "cpu")
        session.run_with_iobinding(binding)
        return bool(keys[:, :, 1].all() and not keys[:, :, 0].any() and not keys[:, :, 2:].any())
    except Exception:  # noqa: BLE001 - any failure means: not available, decompose instead
        return False
