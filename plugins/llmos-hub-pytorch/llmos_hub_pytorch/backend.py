"""The ``pytorch`` backend: the forward functions of :class:`llmos_hub.decoding.StepRunner` in PyTorch.

Everything above the forward pass (tokenizing, padding, windows, greedy and beam search) is the
shared engine; this module only runs the model's modules through their calling conventions and does
the per-step reductions (argmax, top-k log-probs) on the device, so a CUDA run copies ``B`` ints per
greedy step to the host and nothing else. All work runs under ``torch.inference_mode()``.

Options: ``use_cache`` (default true; false recomputes the whole sequence at every step, the
baseline the KV cache is measured against), ``threads`` (CPU intra-op threads).
"""

from __future__ import annotations

import copy
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from llmos_hub import Backend, Capability, Generation, GenerationConfig, LoadedModel, Loglikelihood, UsageError
from llmos_hub.decoding import Batch, StepRunner

from .device import DTYPES, resolve_device, resolve_dtype

__all__ = ["TorchBackend", "TorchRunner"]


@dataclass
class _State:
    """What decoding carries between steps; every tensor has the batch in ``batch_dims``' axis."""

    past: torch.Tensor | None  # [layers, 2, batch, heads, past_len, head_dim] (None without cache)
    mask: torch.Tensor  # causal LM: the attention mask so far; seq2seq: the encoder mask
    ids: torch.Tensor | None = None  # the whole sequence so far, when recomputing without cache
    encoder_states: torch.Tensor | None = None


class TorchRunner(StepRunner[_State, torch.Tensor]):
    """A :class:`~llmos_hub.decoding.StepRunner` over torch modules on one device and dtype."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        device: torch.device,
        dtype: torch.dtype,
        use_cache: bool = True,
        threads: int | None = None,
    ) -> None:
        super().__init__(model)
        self.torch_device = device
        self.torch_dtype = dtype
        self.device = str(device)
        self.dtype = next(k for k, v in DTYPES.items() if v == dtype)
        self.use_cache = use_cache
        if threads:
            torch.set_num_threads(int(threads))
        modules = dict(model.modules)
        if device.type != "cpu" or dtype != torch.float32:
            modules = copy.deepcopy(modules)  # leave the caller's float32 CPU modules untouched
        self.modules = {role: m.to(device=device, dtype=dtype).eval() for role, m in modules.items()}
        self._seq2seq = model.supports(Capability.SEQ2SEQ)
        role = "decoder" if self._seq2seq else "causal_lm"
        self._cache_dims = model.cache_geometry(role) if role in self.modules else None

    # -- Runner API: the engine's work, under inference mode -------------------------------------
    def generate(self, prompts: Sequence[str], config: GenerationConfig) -> list[Generation]:
        with torch.inference_mode():
            return super().generate(prompts, config)

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[Loglikelihood]:
        with torch.inference_mode():
            return super().loglikelihood(requests)

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[Loglikelihood]:
        with torch.inference_mode():
            return super().loglikelihood_rolling(texts)

    def classify(self, texts: Sequence[str]) -> list[list[float]]:
        with torch.inference_mode():
            return super().classify(texts)

    # -- tensors ----------------------------------------------------------------------------------
    def _tensors(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.tensor(batch.input_ids, dtype=torch.long, device=self.torch_device)
        mask = torch.tensor(batch.attention_mask, dtype=torch.long, device=self.torch_device)
        return ids, mask

    def _empty_past(self, batch: int) -> torch.Tensor:
        assert self._cache_dims is not None
        layers, heads, head_dim = self._cache_dims
        return torch.zeros(
            layers, 2, batch, heads, 0, head_dim, device=self.torch_device, dtype=self.torch_dtype
        )

    def _ones(self, rows: int) -> torch.Tensor:
        return torch.ones(rows, 1, dtype=torch.long, device=self.torch_device)

    # -- the Stepper functions --------------------------------------------------------------------
    def prefill(self, batch: Batch) -> tuple[_State, torch.Tensor]:
        ids, mask = self._tensors(batch)
        rows = ids.shape[0]
        if self._seq2seq:
            states = self.modules["encoder"](ids, mask)
            start = torch.full((rows, 1), int(self.model.decoder_start_id), dtype=torch.long, device=self.torch_device)
            logits, present = self.modules["decoder"](start, states, mask, self._empty_past(rows))
            if self.use_cache:
                return _State(past=present, mask=mask, encoder_states=states), logits[:, -1]
            return _State(past=None, mask=mask, ids=start, encoder_states=states), logits[:, -1]
        logits, present = self.modules["causal_lm"](ids, mask, self._empty_past(rows))
        if self.use_cache:
            return _State(past=present, mask=mask), logits[:, -1]
        return _State(past=None, mask=mask, ids=ids), logits[:, -1]

    def step(self, state: _State, next_ids: list[int]) -> tuple[_State, torch.Tensor]:
        new = torch.tensor(next_ids, dtype=torch.long, device=self.torch_device)[:, None]
        rows = new.shape[0]
        if self._seq2seq:
            decoder = self.modules["decoder"]
            if self.use_cache:
                logits, state.past = decoder(new, state.encoder_states, state.mask, state.past)
            else:
                state.ids = torch.cat([state.ids, new], dim=1)
                logits, _ = decoder(state.ids, state.encoder_states, state.mask, self._empty_past(rows))
            return state, logits[:, -1]
        state.mask = torch.cat([state.mask, self._ones(rows)], dim=1)
        lm = self.modules["causal_lm"]
        if self.use_cache:
            logits, state.past = lm(new, state.mask, state.past)
        else:
            state.ids = torch.cat([state.ids, new], dim=1)
            logits, _ = lm(state.ids, state.mask, self._empty_past(rows))
        return state, logits[:, -1]

    def reorder(self, state: _State, indices: list[int]) -> _State:
        index = torch.tensor(indices, dtype=torch.long, device=self.torch_device)
        return _State(
            past=None if state.past is None else state.past.index_select(2, index),
            mask=state.mask.index_select(0, index),
            ids=None if state.ids is None else state.ids.index_select(0, index),
            encoder_states=None if state.encoder_states is None else state.encoder_states.index_select(0, index),
        )

    def argmax(self, out: torch.Tensor) -> list[int]:
        return out.argmax(-1).tolist()

    def topk_logprobs(self, out: torch.Tensor, k: int) -> tuple[list[list[float]], list[list[int]]]:
        logprobs = F.log_softmax(out.float(), dim=-1)
        values, indices = logprobs.topk(min(k, logprobs.shape[-1]), dim=-1)
        return values.tolist(), indices.tolist()

    # -- whole-sequence functions -----------------------------------------------------------------
    def sequence_logprobs(self, batch: Batch, targets: list[list[int]]) -> list[tuple[float, bool]]:
        width = max((len(t) for t in targets), default=0)
        if width == 0:
            return [(0.0, True)] * len(targets)
        ids, mask = self._tensors(batch)
        rows = ids.shape[0]
        if self._seq2seq:
            states = self.modules["encoder"](ids, mask)
            start = int(self.model.decoder_start_id)
            pad = self.model.tokenizer.pad_id
            decoder_in = [[start] + t[:-1] + [pad] * (width - len(t)) for t in targets]
            target_rows = [t + [-1] * (width - len(t)) for t in targets]  # left-aligned
            dec = torch.tensor(decoder_in, dtype=torch.long, device=self.torch_device)
            logits, _ = self.modules["decoder"](dec, states, mask, self._empty_past(rows))
        else:
            logits, _ = self.modules["causal_lm"](ids, mask, self._empty_past(rows))
            logits = logits[:, -width:]
            target_rows = [[-1] * (width - len(t)) + t for t in targets]  # right-aligned, like the input
        wanted = torch.tensor(target_rows, dtype=torch.long, device=self.torch_device)
        valid = wanted >= 0
        logprobs = F.log_softmax(logits.float(), dim=-1)
        picked = logprobs.gather(-1, wanted.clamp(min=0)[..., None])[..., 0]
        totals = (picked.double() * valid).sum(-1)
        greedy = ((logprobs.argmax(-1) == wanted) | ~valid).all(-1)
        return list(zip(totals.tolist(), greedy.tolist()))

    def classifier_logits(self, batch: Batch) -> list[list[float]]:
        ids, mask = self._tensors(batch)
        return self.modules["classifier"](ids, mask).float().tolist()

    # -- facts for the record -----------------------------------------------------------------------
    def peak_memory_kind(self) -> str:
        return "cuda-allocated" if self.torch_device.type == "cuda" else "process-rss"

    def peak_memory_bytes(self) -> int | None:
        """CUDA: peak allocated by torch since the last reset. CPU: the process's resident peak
        (the core's measurement, the same for every backend)."""
        if self.torch_device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.torch_device))
        return super().peak_memory_bytes()

    def reset_peak_memory(self) -> None:
        if self.torch_device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.torch_device)
        else:
            super().reset_peak_memory()

    def describe(self) -> Mapping[str, Any]:
        facts: dict[str, Any] = {
            "device": self.device,
            "dtype": self.dtype,
            "threads": torch.get_num_threads(),
            "kv_cache": self.use_cache,
        }
        if self.torch_device.type == "cuda":
            facts["device_name"] = torch.cuda.get_device_name(self.torch_device)
        else:
            facts["device_name"] = _cpu_name()
        return facts

    def close(self) -> None:
        self.modules = {}
        if self.torch_device.type == "cuda":
            torch.cuda.empty_cache()


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class TorchBackend(Backend):
    """``prepare(model, device=, dtype=, options=)`` -> :class:`TorchRunner`."""

    name = "pytorch"
    priority = 100  # the reference backend: the default when a user names none
    devices = ("cpu", "cuda", "auto")
    dtypes = tuple(DTYPES)
    cuda_only_dtypes = ("float16",)
    option_schema = {
        "use_cache": {"type": ["boolean", "string", "integer"]},
        "threads": {"type": "integer", "minimum": 1},
    }

    def prepare(
        self,
        model: LoadedModel,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        options: Mapping[str, Any] | None = None,
    ) -> TorchRunner:
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        options = dict(options or {})
        unknown = sorted(set(options) - {"use_cache", "threads"})
        if unknown:
            raise UsageError(f"unknown option(s) {', '.join(unknown)} for backend pytorch; known: use_cache, threads")
        if not model.modules:
            raise UsageError(f"model {model.name} has no torch modules for backend pytorch to run")
        return TorchRunner(
            model,
            device=torch_device,
            dtype=torch_dtype,
            use_cache=_as_bool(options.get("use_cache", True)),
            threads=int(options["threads"]) if options.get("threads") else None,
        )

    def versions(self) -> Mapping[str, str]:
        return {"torch": torch.__version__}


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in {"0", "false", "no", "off"}
    return bool(value)
