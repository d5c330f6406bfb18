"""The ONNX Runtime runner: the forward functions of :class:`llmos_hub.decoding.StepRunner` over ORT sessions.

Search, padding, windows and truncation all come from the shared engine, so this runner and the
PyTorch one differ only in arithmetic. What is here is the forward steps (prefill, one-token step,
cache reorder, whole-sequence log-probabilities, classifier logits) and the two reductions the
engine asks of a backend (argmax, top-k log-probabilities).

Decoding keeps its state where the model runs. The self-attention cache is preallocated for the
whole generation (:func:`llmos_hub.decoding.cache_capacity`) and fed to every step (as one input,
or, for a graph exported with per-layer inputs, as views of each layer's keys and values). A graph whose
self-attention is ONNX Runtime's ``GroupQueryAttention`` (CPU; :mod:`._gqa`) writes the new tokens'
keys/values into those views itself: its ``present.<layer>.<0|1>`` outputs are bound to the memory of
the inputs they share. Otherwise the graph reads the cache and returns only the new tokens'
keys/values (``new_kv``), which the runner writes into their slots (:mod:`._device_ops`: numpy views on
the CPU, where ONNX Runtime reads the buffer in place; an ONNX Runtime scatter on CUDA, where the cache
is an ``OrtValue`` on the device). The attention mask
is sized to the cache once (unwritten slots are hidden by causality), a seq2seq source's
cross-attention keys/values come from the ``cross_kv`` graph once per batch, reorders are index
selects, and the next tokens are reduced where the logits are. Cache buffers are reused across
batches. With IO binding (default: on; ``options={"io_binding": False}`` turns it off) outputs go
into buffers bound once per shape instead of being allocated at each step.
Scoring reduces whole logits tensors with a small ONNX Runtime graph (:mod:`._scorer`), not numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmos_hub import LoadedModel
from llmos_hub.decoding import Batch, StepRunner, cache_capacity

from ._device_ops import CudaOps, HostOps
from ._scorer import TokenScorer

__all__ = ["OnnxRunner", "OrtGraph"]


class OrtGraph:
    """One ONNX Runtime session with its input/output names; ``run`` takes numpy arrays or OrtValues.

    Without IO binding it returns numpy arrays (``session.run``). With IO binding on the CPU, outputs
    whose shapes the caller states (``shapes``) are written into one numpy buffer per output, grown to
    the largest call, so a decode step allocates nothing and batches of new prompt widths do not pile
    up buffers (a returned array is overwritten by the next call: read it before calling again);
    on CUDA outputs stay ``OrtValue``s on the device. On the CPU the binding itself is kept while the
    memory it names stays the same (a decode step: the same cache, mask and output buffers; the new
    token ids and slot are copied into small buffers of the graph's own), so a step binds nothing anew:
    at GPT-2-small, 2 threads, building the binding was ~0.5 ms of a ~11.8 ms step.
    """

    def __init__(self, session: Any, *, io_binding: bool = False, device: str = "cpu", device_id: int = 0) -> None:
        self.session = session
        self.inputs = [i.name for i in session.get_inputs()]
        names = [o.name for o in session.get_outputs()]
        #: Cache inputs a ``GroupQueryAttention`` writes through its present output (``cache.3.0`` ->
        #: ``present.3.0``): bound to the input's own memory, the graph writes the new keys/values in place.
        self.presents = {"cache." + n.removeprefix("present."): n for n in names if n.startswith("present.")}
        self.outputs = [n for n in names if not n.startswith("present.")]
        #: Whether the last :meth:`run` wrote the new keys/values into the cache it was fed.
        self.wrote_cache = False
        self.io_binding = io_binding
        self.device = device
        self.device_id = device_id
        shapes = {i.name: i.shape for i in session.get_inputs()}
        #: Inputs exported as per-layer keys/values (``cache.0.0``, ``cache.0.1``, ...): name -> layers.
        self.layered = _layered_inputs(self.inputs)
        self._input_set = set(self.inputs) | set(self.layered)
        cache = shapes.get("cache")
        # [layers, 2, batch, heads, capacity, head_dim]: the static dims give the cache geometry.
        self.cache_dims = (int(cache[0]), int(cache[3]), int(cache[5])) if cache is not None else None
        if "cache" in self.layered:  # [batch, heads, capacity, head_dim] per layer and keys/values
            layer = shapes["cache.0.0"]
            self.cache_dims = (self.layered["cache"], int(layer[1]), int(layer[3]))
        out_shapes = {o.name: o.shape for o in session.get_outputs()}
        logits = out_shapes.get("logits")
        self.vocab = int(logits[-1]) if logits is not None and isinstance(logits[-1], int) else None
        self._out_buffers: dict[str, np.ndarray] = {}
        self._staged: dict[str, np.ndarray] = {}  # small inputs copied into buffers of stable address
        self._bound: tuple[Any, Any, bool] | None = None  # (what it names, the binding, writes the cache)

    def run(self, feeds: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]] | None = None) -> list[Any]:
        # An exporter drops an input the graph never reads (a decoder given ``cross_kv`` may not
        # read ``encoder_states``), so only the graph's own inputs are fed.
        feeds = {name: value for name, value in feeds.items() if name in self._input_set}
        self.wrote_cache = False
        if not self.io_binding:  # present outputs, if any, go to buffers of ONNX Runtime's own
            return self.session.run(self.outputs, _per_layer(feeds, self.layered))
        if (self.device == "cpu" and shapes is not None and all(name in shapes for name in self.outputs)
                and all(isinstance(value, np.ndarray) and value.flags.c_contiguous for value in feeds.values())):
            return self._run_host(feeds, shapes)
        import onnxruntime as ort

        binding = self.session.io_binding()
        shared: list[tuple[str, Any]] = []  # (present output, the cache input's memory) to bind last
        for name, value in feeds.items():
            if isinstance(value, ort.OrtValue):
                if name in self.layered:
                    shared += _bind_layers(binding, name, value, self.presents)
                else:
                    binding.bind_ortvalue_input(name, value)
            elif name in self.layered:
                in_place = value.flags.c_contiguous  # a copy would take the writes, not the caller's cache
                shared += self._bind_host_layers(binding, name, np.ascontiguousarray(value), in_place)
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        host: dict[str, np.ndarray] = {}
        for name in self.outputs:
            shape = (shapes or {}).get(name)
            if self.device == "cpu" and shape is not None:
                buffer = self._out_buffer(name, shape)
                binding.bind_output(name, "cpu", 0, np.float32, list(shape), buffer.ctypes.data)
                host[name] = buffer
            else:
                binding.bind_output(name, self.device, self.device_id)
        self.wrote_cache = _bind_shared(binding, shared, self.presents)
        self.session.run_with_iobinding(binding)
        values = binding.get_outputs()
        return [host.get(name, value) if self.device != "cpu" or name in host else value.numpy() for name, value in zip(self.outputs, values)]

    def _run_host(self, feeds: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, ...]]) -> list[Any]:
        """The CPU call with every input a C-contiguous numpy array and every output's shape known,
        through a binding kept across calls while the memory it names is the same."""
        arrays: dict[str, np.ndarray] = {}
        for name, value in feeds.items():
            if name in self.layered or value.nbytes > _STAGED_BYTES:
                arrays[name] = value  # bound where it is: the cache (written in place), masks, states
                continue
            staged = self._staged.get(name)
            if staged is None or staged.shape != value.shape or staged.dtype != value.dtype:
                staged = self._staged[name] = np.empty_like(value)
            np.copyto(staged, value)
            arrays[name] = staged
        outputs = {name: self._out_buffer(name, shapes[name]) for name in self.outputs}
        named = tuple((name, a.ctypes.data, a.shape, a.dtype.str) for name, a in (*arrays.items(), *outputs.items()))
        if self._bound is None or self._bound[0] != named:
            binding = self.session.io_binding()
            shared: list[tuple[str, Any]] = []
            for name, value in arrays.items():
                if name in self.layered:
                    shared += self._bind_host_layers(binding, name, value, True)
                else:
                    binding.bind_cpu_input(name, value)
            for name, buffer in outputs.items():
                binding.bind_output(name, "cpu", 0, buffer.dtype, list(buffer.shape), buffer.ctypes.data)
            self._bound = (named, binding, _bind_shared(binding, shared, self.presents))
        _, binding, self.wrote_cache = self._bound
        self.session.run_with_iobinding(binding)
        return [outputs[name] for name in self.outputs]

    def _out_buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Output ``name``'s buffer for ``shape``: one per output, grown to the largest call."""
        size = int(np.prod(shape))
        flat = self._out_buffers.get(name)
        if flat is None or flat.size < size:
            flat = self._out_buffers[name] = np.empty(size, dtype=np.float32)
        return flat[:size].reshape(shape)

    def _bind_host_layers(self, binding: Any, name: str, value: np.ndarray, in_place: bool) -> list[tuple[str, Any]]:
        """Bind each layer's keys and values of ``[layers, 2, ...]`` host ``value`` (no copy); returns the
        present outputs to bind to the same memory when ``in_place``."""
        shared: list[tuple[str, Any]] = []
        for i in range(self.layered[name]):
            for j in range(2):
                layer = f"{name}.{i}.{j}"
                binding.bind_cpu_input(layer, value[i, j])
                if in_place and layer in self.presents:
                    shared.append((self.presents[layer], value[i, j]))
        return shared


@dataclass
class _CausalState:
    cache: Any  # numpy array (CPU) or OrtValue (CUDA) [layers, 2, rows, heads, capacity, head_dim]
    mask: np.ndarray  # [rows, capacity] int64
    length: int  # slots written


@dataclass
class _Seq2SeqState:
    cache: Any
    encoder_states: Any
    encoder_mask: np.ndarray
    cross_kv: Any
    length: int


class OnnxRunner(StepRunner):
    """A :class:`~llmos_hub.decoding.StepRunner` whose forward functions run ONNX Runtime sessions.

    ``graphs`` maps each role of ``model`` to its :class:`OrtGraph`; ``facts`` is what
    :meth:`describe` reports (provider, threads, quantization, export cache hit); ``export_path`` is
    the cache folder holding the graphs that run.
    """

    export_path: Path | None = None

    def __init__(
        self,
        model: LoadedModel,
        graphs: Mapping[str, OrtGraph],
        *,
        device: str,
        dtype: str,
        facts: Mapping[str, Any],
        scorer: TokenScorer | None = None,
    ) -> None:
        super().__init__(model)
        self.graphs = dict(graphs)
        self.scorer = scorer or TokenScorer(facts.get("threads"), _thread_entries(facts.get("session_config")))
        self.device = device
        self.dtype = dtype
        self._facts = dict(facts)
        if device.startswith("cuda"):
            self.ops: Any = CudaOps(int(device.partition(":")[2] or 0))
        else:
            self.ops = HostOps()
        self._first = np.zeros(1, dtype=np.int64)

    # -- the engine's step protocol --------------------------------------------------------------
    def _slots(self, start: int, count: int) -> np.ndarray:
        return np.arange(start, start + count, dtype=np.int64)

    def _shapes(self, graph: OrtGraph, rows: int, new: int, kept: int) -> dict[str, tuple[int, ...]] | None:
        """Output shapes of a step, for IO binding into reused buffers (None where unknown)."""
        if graph.vocab is None or graph.cache_dims is None:
            return None
        layers, heads, head_dim = graph.cache_dims
        return {"logits": (rows, kept, graph.vocab), "new_kv": (layers, 2, rows, heads, new, head_dim)}

    def _cache(self, graph: OrtGraph, rows: int, capacity: int) -> Any:
        layers, heads, head_dim = graph.cache_dims or (0, 0, 0)
        return self.ops.new_cache((layers, 2, rows, heads, capacity, head_dim))

    def prefill(self, batch: Batch) -> tuple[Any, Any]:
        ids = np.asarray(batch.input_ids, dtype=np.int64)
        mask = np.asarray(batch.attention_mask, dtype=np.int64)
        rows, width = ids.shape
        new = self.reserved_new_tokens if self.reserved_new_tokens is not None else 64
        if self.is_seq2seq:
            return self._prefill_seq2seq(ids, mask, cache_capacity(width, new, seq2seq=True))
        graph = self.graphs["causal_lm"]
        capacity = cache_capacity(width, new)
        cache = self._cache(graph, rows, capacity)
        # The mask covers every slot of the generation: the prompt's padding, then ones. Slots not
        # written yet lie after every query, so causality hides them and the mask never changes.
        slot_mask = np.ones((rows, capacity), dtype=np.int64)
        slot_mask[:, :width] = mask
        feeds = {
            "input_ids": ids,
            "attention_mask": slot_mask,
            "cache": cache,
            "cache_position": self._slots(0, width),
            "logits_index": self._slots(width - 1, 1),
        }
        logits, new_kv = graph.run(feeds, self._shapes(graph, rows, width, 1))
        if not graph.wrote_cache:
            cache = self.ops.write(cache, new_kv, 0)
        return _CausalState(cache, slot_mask, width), logits

    def _prefill_seq2seq(self, ids: np.ndarray, mask: np.ndarray, capacity: int) -> tuple[_Seq2SeqState, Any]:
        (states,) = self.graphs["encoder"].run({"input_ids": ids, "attention_mask": mask})
        (cross,) = self.graphs["cross_kv"].run({"encoder_states": states})
        start = self.model.decoder_start_id
        if start is None:
            start = self._start_token()
        cache = self._cache(self.graphs["decoder"], len(ids), capacity)
        state = _Seq2SeqState(cache, states, mask, cross, 0)
        return self.step(state, [int(start)] * len(ids))

    def _room(self, state: Any) -> None:
        """Grow the cache if the next token has no slot (only when the engine did not ``reserve``)."""
        capacity = state.mask.shape[1] if isinstance(state, _CausalState) else _shape(state.cache)[4]
        if state.length < capacity:
            return
        state.cache = self.ops.grow(state.cache, 2 * capacity)
        if isinstance(state, _CausalState):
            state.mask = np.concatenate([state.mask, np.ones_like(state.mask)], axis=1)

    def step(self, state: Any, next_ids: list[int]) -> tuple[Any, Any]:
        ids = np.asarray(next_ids, dtype=np.int64).reshape(-1, 1)
        rows = len(next_ids)
        self._room(state)
        slot = self._slots(state.length, 1)
        if isinstance(state, _Seq2SeqState):
            graph = self.graphs["decoder"]
            feeds = {
                "decoder_input_ids": ids,
                "encoder_states": state.encoder_states,
                "encoder_mask": state.encoder_mask,
                "cross_kv": state.cross_kv,
                "cache": state.cache,
                "cache_position": slot,
            }
        else:
            graph = self.graphs["causal_lm"]
            feeds = {
                "input_ids": ids,
                "attention_mask": state.mask,
                "cache": state.cache,
                "cache_position": slot,
                "logits_index": self._first,
            }
        logits, new_kv = graph.run(feeds, self._shapes(graph, rows, 1, 1))
        if not graph.wrote_cache:
            state.cache = self.ops.write(state.cache, new_kv, state.length)
        state.length += 1
        return state, logits

    def reorder(self, state: Any, indices: list[int]) -> Any:
        rows = np.asarray(indices, dtype=np.int64)
        cache = self.ops.reorder_cache(state.cache, rows)
        if isinstance(state, _Seq2SeqState):
            return _Seq2SeqState(
                cache,
                self.ops.take(state.encoder_states, rows, 0),
                state.encoder_mask[rows],
                self.ops.take(state.cross_kv, rows, 2),
                state.length,
            )
        return _CausalState(cache, state.mask[rows], state.length)

    def argmax(self, out: Any) -> list[int]:
        return self.ops.argmax(out)

    def topk_logprobs(self, out: Any, k: int) -> tuple[list[list[float]], list[list[int]]]:
        return self.ops.topk_logprobs(out, k)

    # -- whole-sequence functions -----------------------------------------------------------------
    def sequence_logprobs(self, batch: Batch, targets: list[list[int]]) -> list[tuple[float, bool]]:
        width = max((len(t) for t in targets), default=0)
        if width == 0:
            return [(0.0, True)] * len(targets)
        ids = np.asarray(batch.input_ids, dtype=np.int64)
        mask = np.asarray(batch.attention_mask, dtype=np.int64)
        wanted = np.zeros((len(targets), width), dtype=np.int64)
        valid = np.zeros((len(targets), width), dtype=bool)
        if self.is_seq2seq:
            logits = self._teacher_forced(ids, mask, targets)[:, :width]
            for row, target in enumerate(targets):  # decoder position j predicts target j
                wanted[row, : len(target)] = target
                valid[row, : len(target)] = True
        else:
            logits = self._whole_sequence(ids, mask, self._slots(ids.shape[1] - width, width))
            for row, target in enumerate(targets):  # targets end at the last column, as the input does
                if target:
                    wanted[row, width - len(target) :] = target
                    valid[row, width - len(target) :] = True
        picked, best = self.scorer(logits, wanted)
        totals = np.where(valid, picked.astype(np.float64), 0.0).sum(axis=-1)
        greedy = ((best == wanted) | ~valid).all(axis=-1)
        return [(float(t), bool(g)) for t, g in zip(totals, greedy)]

    def _teacher_forced(self, ids: np.ndarray, mask: np.ndarray, targets: list[list[int]]) -> np.ndarray:
        """Decoder logits for ``[start] + target[:-1]`` of each row, right padded (the decoder is causal)."""
        (states,) = self.graphs["encoder"].run({"input_ids": ids, "attention_mask": mask})
        (cross,) = self.graphs["cross_kv"].run({"encoder_states": states})
        start = self.model.decoder_start_id if self.model.decoder_start_id is not None else self._start_token()
        width = max(1, max(len(t) for t in targets))
        pad = self.model.tokenizer.pad_id
        decoder_ids = np.full((len(targets), width), pad, dtype=np.int64)
        for row, target in enumerate(targets):
            sequence = [start, *target[:-1]][:width]
            decoder_ids[row, : len(sequence)] = sequence
        graph = self.graphs["decoder"]
        feeds = {
            "decoder_input_ids": decoder_ids,
            "encoder_states": states,
            "encoder_mask": mask,
            "cross_kv": cross,
            "cache": self._cache(graph, len(targets), width),
            "cache_position": self._slots(0, width),
        }
        logits, _ = graph.run(feeds)
        return self.ops.to_host(logits)

    def _whole_sequence(self, ids: np.ndarray, mask: np.ndarray, kept: np.ndarray) -> np.ndarray:
        """Causal LM logits of positions ``kept`` of the whole sequence, run at once into a fresh cache."""
        graph = self.graphs["causal_lm"]
        feeds = {
            "input_ids": ids,
            "attention_mask": mask,
            "cache": self._cache(graph, ids.shape[0], ids.shape[1]),
            "cache_position": self._slots(0, ids.shape[1]),
            "logits_index": kept,
        }
        logits, _ = graph.run(feeds)
        return self.ops.to_host(logits)

    def classifier_logits(self, batch: Batch) -> list[list[float]]:
        ids = np.asarray(batch.input_ids, dtype=np.int64)
        mask = np.asarray(batch.attention_mask, dtype=np.int64)
        (logits,) = self.graphs["classifier"].run({"input_ids": ids, "attention_mask": mask})
        return self.ops.to_host(logits).astype(np.float64).tolist()

    # -- Runner facts ----------------------------------------------------------------------------
    def describe(self) -> Mapping[str, Any]:
        return dict(self._facts)

    def close(self) -> None:
        self.graphs.clear()
        self.ops.clear()


def _layered_inputs(inputs: list[str]) -> dict[str, int]:
    """``{"cache": 12}`` for a graph whose inputs include ``cache.0.0``, ``cache.0.1`` .. ``cache.11.1``."""
    counts: dict[str, int] = {}
    for name in inputs:
        parts = name.split(".")
        if len(parts) == 3 and parts[0] and parts[1].isdigit() and parts[2] in ("0", "1"):
            counts[parts[0]] = max(counts.get(parts[0], 0), int(parts[1]) + 1)
    return counts


def _per_layer(feeds: Mapping[str, Any], layered: Mapping[str, int]) -> dict[str, Any]:
    """Feeds with each layered ``[layers, 2, ...]`` input given as its per-layer views (numpy: no copy)."""
    out: dict[str, Any] = {}
    for name, value in feeds.items():
        if name in layered:
            array = np.ascontiguousarray(value if isinstance(value, np.ndarray) else value.numpy())
            out.update({f"{name}.{i}.{j}": array[i, j] for i in range(layered[name]) for j in range(2)})
        else:
            out[name] = value
    return out


#: Inputs up to this size (token ids, slots, small masks) are copied into buffers of the graph's own, so
#: a new array each call does not make a new binding; larger ones are bound where they are.
_STAGED_BYTES = 64 * 1024


def _bind_shared(binding: Any, shared: list[tuple[str, Any]], presents: Mapping[str, str]) -> bool:
    """Bind each present output to its cache input's memory (after the outputs the caller reads, which
    keep their order first); whether every present is, i.e. the graph writes the cache itself."""
    for name, memory in shared:
        if isinstance(memory, np.ndarray):
            binding.bind_output(name, "cpu", 0, memory.dtype, list(memory.shape), memory.ctypes.data)
        else:
            binding.bind_output(name, *memory)
    return bool(shared) and len(shared) == len(presents)


def _bind_layers(binding: Any, name: str, value: Any, presents: Mapping[str, str]) -> list[tuple[str, Any]]:
    """Bind each layer's keys and values of a contiguous ``[layers, 2, ...]`` ``OrtValue`` (CPU or CUDA) as
    inputs of their own, by address: no copy. Returns ``(present output, bind_output arguments)`` for
    the layers a present output writes in place."""
    shape = list(value.shape())
    part = shape[2:]
    dtype = _ELEMENT_TYPES[value.element_type()]
    step = int(np.prod(part)) * np.dtype(dtype).itemsize
    base = value.data_ptr()
    device = value.device_name().lower()
    device_id = int(value.__dlpack_device__()[1]) if device != "cpu" else 0
    shared: list[tuple[str, Any]] = []
    for i in range(shape[0]):
        for j in range(2):
            layer, address = f"{name}.{i}.{j}", base + (2 * i + j) * step
            binding.bind_input(layer, device, device_id, dtype, part, address)
            if layer in presents:
                shared.append((presents[layer], (device, device_id, dtype, part, address)))
    return shared


_ELEMENT_TYPES = {1: np.float32, 10: np.float16}  # OrtValue.element_type(): ONNX TensorProto codes


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if isinstance(value, np.ndarray) else tuple(value.shape())




def _thread_entries(config: Mapping[str, str] | None) -> dict[str, str]:
    """The session config entries the logits scorer shares with the model's sessions: the threads'
    (``session.intra_op.*``). Others describe the model's files (``session.load_model_format``, ...) and
    do not fit the scorer's in-memory graph."""
    return {k: v for k, v in (config or {}).items() if k.startswith("session.intra_op.")}
