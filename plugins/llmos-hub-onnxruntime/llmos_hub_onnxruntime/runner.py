"""The ONNX Runtime runner: the forward functions of :class:`llmos_hub.decoding.StepRunner`, in numpy.

Search, padding, windows and truncation all come from the shared engine, so this runner and the
PyTorch one differ only in arithmetic. What is here is the forward steps (prefill, one-token step,
cache reorder, whole-sequence log-probabilities, classifier logits) and the two reductions the
engine asks of a backend (argmax, top-k log-probabilities), done on numpy arrays.

Per-step cost is what decides speed on small models, so a decode step does as little as possible
in Python: the cache returned by one step is fed unchanged to the next (numpy arrays go into ONNX
Runtime without a copy), the attention mask grows by writing into a pre-sized buffer instead of
concatenating, and only the last position's logits are looked at. Scoring reduces whole logits
tensors with a small ONNX Runtime graph (:mod:`._scorer`), not numpy. :class:`OrtGraph` optionally uses
IO binding (``options={"io_binding": True}``), which keeps the cache in ONNX Runtime's own buffers;
on the CPU it measured slower than plain ``run`` (nano LM, batch 1: 1344 against 1759 tokens/s;
the runner itself was within noise of a hand-written ``session.run`` loop), so it is off by default
and on for CUDA, where it keeps the cache on the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmos_hub import LoadedModel
from llmos_hub.decoding import Batch, StepRunner

from ._scorer import TokenScorer

__all__ = ["OnnxRunner", "OrtGraph"]


class OrtGraph:
    """One ONNX Runtime session with its input/output names; ``run`` takes and returns numpy arrays."""

    def __init__(self, session: Any, *, io_binding: bool = False, device: str = "cpu", device_id: int = 0) -> None:
        self.session = session
        self.inputs = [i.name for i in session.get_inputs()]
        self.outputs = [o.name for o in session.get_outputs()]
        self.io_binding = io_binding
        self.device = device
        self.device_id = device_id
        shapes = {i.name: i.shape for i in session.get_inputs()}
        past = shapes.get("past")
        # [layers, 2, batch, heads, past_len, head_dim]: the static dims give an empty cache's shape.
        self.cache_dims = (int(past[0]), int(past[3]), int(past[5])) if past is not None else None

    def run(self, feeds: Mapping[str, Any]) -> list[Any]:
        if not self.io_binding:
            return self.session.run(self.outputs, feeds)
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name, value in feeds.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in self.outputs:
            binding.bind_output(name, self.device, self.device_id)
        self.session.run_with_iobinding(binding)
        return binding.get_outputs()

    def empty_past(self, batch: int) -> np.ndarray:
        layers, heads, head_dim = self.cache_dims or (0, 0, 0)
        return np.zeros((layers, 2, batch, heads, 0, head_dim), dtype=np.float32)


def _numpy(value: Any) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else value.numpy()


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis in float32, as ``torch.log_softmax`` computes it."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@dataclass
class _CausalState:
    past: Any  # numpy array or OrtValue [layers, 2, rows, heads, length, head_dim]
    mask: np.ndarray  # [rows, capacity] int64; columns [0, length) are in use
    length: int


@dataclass
class _Seq2SeqState:
    past: Any
    encoder_states: Any
    encoder_mask: np.ndarray


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
        self.scorer = scorer or TokenScorer(facts.get("threads"))
        self.device = device
        self.dtype = dtype
        self._facts = dict(facts)

    # -- the engine's step protocol --------------------------------------------------------------
    def prefill(self, batch: Batch) -> tuple[Any, np.ndarray]:
        ids = np.asarray(batch.input_ids, dtype=np.int64)
        mask = np.asarray(batch.attention_mask, dtype=np.int64)
        if self.is_seq2seq:
            return self._prefill_seq2seq(ids, mask)
        graph = self.graphs["causal_lm"]
        logits, present = graph.run({"input_ids": ids, "attention_mask": mask, "past": graph.empty_past(len(ids))})
        # Room for the tokens to come, so each step writes one column instead of reallocating.
        capacity = max(int(self.model.max_length), mask.shape[1] + 1)
        grown = np.ones((mask.shape[0], capacity), dtype=np.int64)
        grown[:, : mask.shape[1]] = mask
        return _CausalState(present, grown, mask.shape[1]), _numpy(logits)[:, -1]

    def _prefill_seq2seq(self, ids: np.ndarray, mask: np.ndarray) -> tuple[_Seq2SeqState, np.ndarray]:
        (states,) = self.graphs["encoder"].run({"input_ids": ids, "attention_mask": mask})
        start = self.model.decoder_start_id
        if start is None:
            start = self.model.tokenizer.bos_id if self.model.tokenizer.bos_id is not None else self.model.tokenizer.eos_id
        state = _Seq2SeqState(self.graphs["decoder"].empty_past(len(ids)), states, mask)
        return self.step(state, [int(start)] * len(ids))

    def step(self, state: Any, next_ids: list[int]) -> tuple[Any, np.ndarray]:
        ids = np.asarray(next_ids, dtype=np.int64).reshape(-1, 1)
        if isinstance(state, _Seq2SeqState):
            logits, present = self.graphs["decoder"].run(
                {"decoder_input_ids": ids, "encoder_states": state.encoder_states, "encoder_mask": state.encoder_mask, "past": state.past}
            )
            return _Seq2SeqState(present, state.encoder_states, state.encoder_mask), _numpy(logits)[:, -1]
        length = state.length + 1
        if length > state.mask.shape[1]:  # past the model's context: grow (the engine caps it)
            state.mask = np.concatenate([state.mask, np.ones_like(state.mask)], axis=1)
        logits, present = self.graphs["causal_lm"].run(
            {"input_ids": ids, "attention_mask": state.mask[:, :length], "past": state.past}
        )
        return _CausalState(present, state.mask, length), _numpy(logits)[:, -1]

    def reorder(self, state: Any, indices: list[int]) -> Any:
        rows = np.asarray(indices, dtype=np.int64)
        past = np.ascontiguousarray(_numpy(state.past)[:, :, rows])
        if isinstance(state, _Seq2SeqState):
            return _Seq2SeqState(past, np.ascontiguousarray(_numpy(state.encoder_states)[rows]), state.encoder_mask[rows])
        return _CausalState(past, state.mask[rows], state.length)

    def argmax(self, out: np.ndarray) -> list[int]:
        return out.argmax(axis=-1).tolist()

    def topk_logprobs(self, out: np.ndarray, k: int) -> tuple[list[list[float]], list[list[int]]]:
        logprobs = _log_softmax(out.astype(np.float32, copy=False))
        k = min(k, logprobs.shape[-1])
        top = np.argpartition(-logprobs, k - 1, axis=-1)[:, :k]
        values = np.take_along_axis(logprobs, top, axis=-1)
        order = np.argsort(-values, axis=-1, kind="stable")
        return np.take_along_axis(values, order, -1).tolist(), np.take_along_axis(top, order, -1).tolist()

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
            graph = self.graphs["causal_lm"]
            (logits, _) = graph.run({"input_ids": ids, "attention_mask": mask, "past": graph.empty_past(len(ids))})
            logits = _numpy(logits)[:, -width:]
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
        start = self.model.decoder_start_id if self.model.decoder_start_id is not None else self._start_token()
        width = max(1, max(len(t) for t in targets))
        pad = self.model.tokenizer.pad_id
        decoder_ids = np.full((len(targets), width), pad, dtype=np.int64)
        for row, target in enumerate(targets):
            sequence = [start, *target[:-1]][:width]
            decoder_ids[row, : len(sequence)] = sequence
        graph = self.graphs["decoder"]
        logits, _ = graph.run(
            {"decoder_input_ids": decoder_ids, "encoder_states": states, "encoder_mask": mask, "past": graph.empty_past(len(targets))}
        )
        return _numpy(logits)

    def classifier_logits(self, batch: Batch) -> list[list[float]]:
        ids = np.asarray(batch.input_ids, dtype=np.int64)
        mask = np.asarray(batch.attention_mask, dtype=np.int64)
        (logits,) = self.graphs["classifier"].run({"input_ids": ids, "attention_mask": mask})
        return _numpy(logits).astype(np.float64).tolist()

    # -- Runner facts ----------------------------------------------------------------------------
    def describe(self) -> Mapping[str, Any]:
        return dict(self._facts)

    def close(self) -> None:
        self.graphs.clear()


