"""The array operations decoding needs, done where the cache lives: numpy on the CPU, ONNX Runtime on a GPU.

An exported ``causal_lm``/``decoder`` graph returns the new tokens' keys and values; the runner
writes them into its preallocated cache, reorders cache rows for beam search, and reduces the
logits to the next tokens. On the CPU the cache is a numpy buffer that ONNX Runtime reads without a
copy, so all of this is numpy on views (:class:`HostOps`). On CUDA the cache is an ``OrtValue`` on
the device, and each operation is a one-node ONNX Runtime graph run through IO binding on the same
device (:class:`CudaOps`): only the ``B`` next-token ids (greedy) or ``B x k`` top-k pairs (beam)
cross to the host.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["CudaOps", "HostOps", "HostPool", "log_softmax"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis in float32, as ``torch.log_softmax`` computes it."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class HostPool:
    """Two flat zero-initialised float32 buffers reused across batches (see ``llmos_hub_pytorch.kvcache``).

    One holds the cache in use, the other receives a reorder; they start zeroed and only ever hold
    finite values, so masked-out slots never inject NaN into attention.
    """

    def __init__(self) -> None:
        self._buffers: list[np.ndarray | None] = [None, None]

    def take(self, shape: tuple[int, ...], *, avoid: np.ndarray | None = None) -> np.ndarray:
        size = math.prod(shape)
        for i, buffer in enumerate(self._buffers):
            if buffer is not None and avoid is not None and np.shares_memory(buffer, avoid):
                continue
            if buffer is None or buffer.size < size:
                grown = size if buffer is None else max(size, buffer.size + buffer.size // 2)
                self._buffers[i] = None
                buffer = np.zeros(grown, dtype=np.float32)
                self._buffers[i] = buffer
            return buffer[:size].reshape(shape)
        raise RuntimeError("both cache buffers are in use")  # pragma: no cover

    def clear(self) -> None:
        self._buffers = [None, None]


class HostOps:
    """The decoding operations on numpy arrays (the CPU execution provider reads them in place)."""

    def __init__(self) -> None:
        self.pool = HostPool()

    def new_cache(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.pool.take(shape)

    def write(self, cache: np.ndarray, new_kv: Any, start: int) -> np.ndarray:
        new = _array(new_kv)
        cache[:, :, :, :, start : start + new.shape[4]] = new
        return cache

    def grow(self, cache: np.ndarray, capacity: int) -> np.ndarray:
        shape = list(cache.shape)
        shape[4] = capacity
        grown = self.pool.take(tuple(shape), avoid=cache)
        grown[:, :, :, :, : cache.shape[4]] = cache
        return grown

    def reorder_cache(self, cache: np.ndarray, rows: np.ndarray) -> np.ndarray:
        shape = list(cache.shape)
        shape[2] = len(rows)
        out = self.pool.take(tuple(shape), avoid=cache)
        np.take(cache, rows, axis=2, out=out)
        return out

    def take(self, value: Any, rows: np.ndarray, axis: int) -> np.ndarray:
        return np.ascontiguousarray(np.take(_array(value), rows, axis=axis))

    def argmax(self, logits: Any) -> list[int]:
        return _array(logits)[:, -1].argmax(axis=-1).tolist()

    def topk_logprobs(self, logits: Any, k: int) -> tuple[list[list[float]], list[list[int]]]:
        logprobs = log_softmax(_array(logits)[:, -1].astype(np.float32, copy=False))
        k = min(k, logprobs.shape[-1])
        top = np.argpartition(-logprobs, k - 1, axis=-1)[:, :k]
        values = np.take_along_axis(logprobs, top, axis=-1)
        order = np.argsort(-values, axis=-1, kind="stable")
        return np.take_along_axis(values, order, -1).tolist(), np.take_along_axis(top, order, -1).tolist()

    def to_host(self, value: Any) -> np.ndarray:
        return _array(value)

    def clear(self) -> None:
        self.pool.clear()


def _array(value: Any) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else value.numpy()


class CudaOps:
    """The decoding operations as one-node ONNX Runtime graphs on a CUDA device, through IO binding."""

    def __init__(self, device_id: int = 0) -> None:
        import onnxruntime as ort

        self.ort = ort
        self.device_id = device_id
        providers = [("CUDAExecutionProvider", {"device_id": device_id})]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._sessions = {name: ort.InferenceSession(graph, options, providers=providers) for name, graph in _graphs().items()}

    def _run(self, name: str, feeds: dict[str, Any], host_outputs: tuple[str, ...] = ()) -> list[Any]:
        session = self._sessions[name]
        binding = session.io_binding()
        for key, value in feeds.items():
            if isinstance(value, self.ort.OrtValue):
                binding.bind_ortvalue_input(key, value)
            else:
                binding.bind_cpu_input(key, np.ascontiguousarray(value))
        for output in session.get_outputs():
            device = "cpu" if output.name in host_outputs else "cuda"
            binding.bind_output(output.name, device, 0 if device == "cpu" else self.device_id)
        session.run_with_iobinding(binding)
        return binding.get_outputs()

    def new_cache(self, shape: tuple[int, ...]) -> Any:
        return self.ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, dtype=np.float32), "cuda", self.device_id)

    def write(self, cache: Any, new_kv: Any, start: int) -> Any:
        n = new_kv.shape()[4]
        slots = np.arange(start, start + n, dtype=np.int64)
        return self._run("write", {"cache": cache, "new_kv": new_kv, "slots": slots})[0]

    def grow(self, cache: Any, capacity: int) -> Any:
        host = cache.numpy()
        shape = list(host.shape)
        shape[4] = capacity
        grown = np.zeros(shape, dtype=np.float32)
        grown[:, :, :, :, : host.shape[4]] = host
        return self.ort.OrtValue.ortvalue_from_numpy(grown, "cuda", self.device_id)

    def reorder_cache(self, cache: Any, rows: np.ndarray) -> Any:
        return self.take(cache, rows, 2)

    def take(self, value: Any, rows: np.ndarray, axis: int) -> Any:
        return self._run(f"gather{axis}", {"data": value, "rows": rows})[0]

    def argmax(self, logits: Any) -> list[int]:
        return self._run("argmax", {"logits": logits}, ("ids",))[0].numpy().tolist()

    def topk_logprobs(self, logits: Any, k: int) -> tuple[list[list[float]], list[list[int]]]:
        k = min(k, logits.shape()[-1])
        values, indices = self._run("topk", {"logits": logits, "k": np.array([k], dtype=np.int64)}, ("values", "indices"))
        return values.numpy().tolist(), indices.numpy().tolist()

    def to_host(self, value: Any) -> np.ndarray:
        return value.numpy() if hasattr(value, "numpy") else np.asarray(value)

    def clear(self) -> None:
        pass


def _graphs() -> dict[str, bytes]:
    """The one-node graphs :class:`CudaOps` runs (float32 caches and logits, int64 indices)."""
    from onnx import TensorProto, helper

    def model(nodes, inputs, outputs, inits=()):
        graph = helper.make_graph(nodes, "op", inputs, outputs, initializer=list(inits))
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()

    f, i = TensorProto.FLOAT, TensorProto.INT64
    graphs = {
        # cache[..., slots, :] = new_kv: ScatterElements on the slot axis with indices broadcast to new_kv.
        "write": model(
            [
                helper.make_node("Reshape", ["slots", "slot_shape"], ["slots6"]),
                helper.make_node("Shape", ["new_kv"], ["new_shape"]),
                helper.make_node("Expand", ["slots6", "new_shape"], ["index"]),
                helper.make_node("ScatterElements", ["cache", "index", "new_kv"], ["out"], axis=4),
            ],
            [
                helper.make_tensor_value_info("cache", f, None),
                helper.make_tensor_value_info("new_kv", f, None),
                helper.make_tensor_value_info("slots", i, ["n"]),
            ],
            [helper.make_tensor_value_info("out", f, None)],
            [helper.make_tensor("slot_shape", i, [6], [1, 1, 1, 1, -1, 1])],
        ),
        # logits [rows, kept, vocab] -> the last position's argmax [rows].
        "argmax": model(
            [
                helper.make_node("Gather", ["logits", "last"], ["final"], axis=1),
                helper.make_node("ArgMax", ["final"], ["ids"], axis=-1, keepdims=0),
            ],
            [helper.make_tensor_value_info("logits", f, None)],
            [helper.make_tensor_value_info("ids", i, None)],
            [helper.make_tensor("last", i, [], [-1])],
        ),
        "topk": model(
            [
                helper.make_node("Gather", ["logits", "last"], ["final"], axis=1),
                helper.make_node("LogSoftmax", ["final"], ["logprobs"], axis=-1),
                helper.make_node("TopK", ["logprobs", "k"], ["values", "indices"], axis=-1, largest=1, sorted=1),
            ],
            [helper.make_tensor_value_info("logits", f, None), helper.make_tensor_value_info("k", i, [1])],
            [helper.make_tensor_value_info("values", f, None), helper.make_tensor_value_info("indices", i, None)],
            [helper.make_tensor("last", i, [], [-1])],
        ),
    }
    for axis in (0, 2):
        graphs[f"gather{axis}"] = model(
            [helper.make_node("Gather", ["data", "rows"], ["out"], axis=axis)],
            [helper.make_tensor_value_info("data", f, None), helper.make_tensor_value_info("rows", i, ["n"])],
            [helper.make_tensor_value_info("out", f, None)],
        )
    return graphs
