"""The ``pytorch`` backend: the forward functions of :class:`llmos_hub.decoding.StepRunner` in PyTorch.

Everything above the forward pass (tokenizing, padding, windows, greedy and beam search) is the
shared engine; this module only runs the model's modules through their calling conventions and does
the per-step reductions (argmax, top-k log-probs) on the device, so a CUDA run copies ``B`` ints per
greedy step to the host and nothing else. All work runs under ``torch.inference_mode()``.

Decoding state: the self-attention cache is preallocated for the whole generation from a
:class:`~.kvcache.CachePool` (reused across batches) and the modules write into it in place; the
attention mask is sized to the cache once at prefill (slots not yet written are hidden by
causality, so it never grows); a seq2seq source's cross-attention keys/values come from the
``cross_kv`` module once per batch; a reorder is one ``index_select`` per tensor on the device.

Options: ``use_cache`` (default true; false recomputes the whole sequence at every step, the
baseline the KV cache is measured against), ``threads`` (CPU intra-op threads; default
:func:`llmos_hub.decoding.default_threads`: ``$LLMOS_HUB_THREADS``, else ``$OMP_NUM_THREADS`` as Ray
sets it, else one core left free so a shared machine does not stall),
``prepack`` (``auto``, the default: on the CPU in float32 with 2 threads or more for models that
generate, of >= 10 M parameters; ``true`` / ``false`` to choose: linear weights packed once by oneDNN, faster
decoding, see :mod:`.prepack`; the record's ``prepack_source`` says which; where ``auto`` does not
pack a model of that size, on one thread, the output layer alone still runs on oneDNN's kernel, on its
weight as stored: ``shared_weight_linears`` in the record), ``compile`` (default false: the decoding step through ``torch.compile``,
see :mod:`.compiled`).

Modules: on CPU in float32 without packing the runner runs the model's shared modules as they
are; any transformation (device, dtype, packing, the output layer's kernel) happens on the runner's
own copy (:meth:`LoadedModel.own_modules`), so other backends in the process keep the originals. The
output layer alone is changed only while the model's modules are unbuilt (the runner's own then cost
no second copy); once another user has built them, the runner shares them as they are.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from llmos_hub import Backend, Capability, Generation, GenerationConfig, LoadedModel, Loglikelihood, UsageError
from llmos_hub.decoding import Batch, StepRunner, cache_capacity, default_threads, threads_source

from .device import DTYPES, resolve_device, resolve_dtype
from .compiled import CompiledStep, check_compile
from .kvcache import CachePool
from .prepack import available as prepack_available
from .prepack import (SharedWeightLinear, fuse_projections, pack_modules, plan_output_layer, plan_prepack,
                      unpacked_output_layers)

__all__ = ["TorchBackend", "TorchRunner"]


@dataclass
class _State:
    """What decoding carries between steps; every tensor has the rows in its batch axis."""

    cache: torch.Tensor | None  # [layers, 2, rows, heads, capacity, head_dim] (None without cache)
    mask: torch.Tensor  # causal LM: [rows, capacity] attention mask; seq2seq: the encoder mask
    length: int  # slots written so far
    ids: torch.Tensor | None = None  # the whole sequence so far, when recomputing without cache
    encoder_states: torch.Tensor | None = None
    cross_kv: torch.Tensor | None = None


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
        prepack: bool | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__(model)
        self.torch_device = device
        self.torch_dtype = dtype
        self.device = str(device)
        self.dtype = next(k for k, v in DTYPES.items() if v == dtype)
        self.use_cache = use_cache
        self.threads_source = threads_source(threads)
        self.threads = int(threads) if threads else default_threads()
        if device.type == "cpu":
            torch.set_num_threads(self.threads)
        self.prepacked = 0
        option = prepack
        facts = {"device": device, "dtype": dtype, "num_parameters": int(model.provenance.num_parameters),
                 "compile": compile and use_cache,
                 "generates": model.supports(Capability.CAUSAL_LM) or model.supports(Capability.SEQ2SEQ)}
        prepack, self.prepack_source = plan_prepack(option, threads=self.threads if device.type == "cpu" else 0, **facts)
        # Only on modules of the runner's own, and only where owning them costs no copy: the model's
        # modules not built yet, so the family builds the runner's and nobody else holds a second set.
        output_layer = plan_output_layer(option, packs=prepack, **facts)
        if output_layer and model.modules_built:  # said in the record: the same run spec, another kernel
            output_layer = False
            self.prepack_source += "; output layer dense: the model's modules were built before this runner"
        elif output_layer:
            self.prepack_source += "; output layer on oneDNN"
        if device.type != "cpu" or dtype != torch.float32 or prepack or output_layer:
            modules = model.own_modules()  # leave the shared float32 CPU modules untouched
        else:
            modules = dict(model.modules)
        if not modules:
            raise UsageError(f"model {model.name} has no torch modules for backend pytorch to run")
        self.modules = {role: m.to(device=device, dtype=dtype).eval() for role, m in modules.items()}
        self.fused = self.shared_linears = 0
        own = [m for m in self.modules.values() if isinstance(m, torch.nn.Module)]
        if prepack:
            self.fused = fuse_projections(own)
            self.prepacked = pack_modules(own)
            self.shared_linears = len({id(m) for root in own for m in root.modules() if isinstance(m, SharedWeightLinear)})
        elif output_layer:
            self.shared_linears = unpacked_output_layers(own)
        self._seq2seq = model.supports(Capability.SEQ2SEQ)
        role = "decoder" if self._seq2seq else "causal_lm"
        self._cache_dims = model.cache_geometry(role, self.modules[role]) if role in self.modules else None
        self._compiled = CompiledStep(self.modules[role]) if compile and use_cache and role in self.modules else None
        self._pool = CachePool(device, dtype)
        self._slots = torch.arange(max(int(model.max_length), 1) + 1, dtype=torch.long, device=device)
        self._first = torch.zeros(1, dtype=torch.long, device=device)
        if self._compiled is not None:
            self._compile_now()

    def _compile_now(self) -> None:
        """Compile the step's two graphs (several rows, one row) on a throwaway two-token batch, so the
        compile counts in the prepare time and not in the first batch's speed (as an export does)."""
        if int(self.model.max_length) < 4:
            return  # no room for a prompt and a step; the first real batch compiles instead
        with torch.inference_mode():
            for rows in (2, 1):
                state, _ = self.prefill(Batch([[0, 0]] * rows, [[1, 1]] * rows))
                self.step(state, [0] * rows)

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

    def _positions(self, start: int, count: int) -> torch.Tensor:
        if start + count > self._slots.numel():  # past the model's context (the engine caps it)
            self._slots = torch.arange(2 * (start + count), dtype=torch.long, device=self.torch_device)
        return self._slots[start : start + count]

    def _new_cache(self, rows: int, capacity: int) -> torch.Tensor:
        assert self._cache_dims is not None
        layers, heads, head_dim = self._cache_dims
        return self._pool.take((layers, 2, rows, heads, capacity, head_dim))

    def _capacity(self, width: int) -> int:
        new = self.reserved_new_tokens if self.reserved_new_tokens is not None else 64
        return cache_capacity(width, new, seq2seq=self._seq2seq)

    def _room(self, state: _State) -> None:
        """Grow the cache (and the causal mask) if the next token has no slot: only without ``reserve``."""
        assert state.cache is not None
        capacity = state.cache.shape[4]
        if state.length < capacity:
            return
        shape = list(state.cache.shape)
        shape[4] = 2 * capacity
        grown = self._pool.take(tuple(shape), avoid=state.cache)
        grown[:, :, :, :, :capacity].copy_(state.cache)
        state.cache = grown
        if not self._seq2seq:
            ones = torch.ones_like(state.mask)
            state.mask = torch.cat([state.mask, ones], dim=1)

    # -- the Stepper functions --------------------------------------------------------------------
    def prefill(self, batch: Batch) -> tuple[_State, torch.Tensor]:
        ids, mask = self._tensors(batch)
        rows, width = ids.shape
        if self._seq2seq:
            states = self.modules["encoder"](ids, mask)
            cross = self.modules["cross_kv"](states)
            start = torch.full((rows, 1), int(self.model.decoder_start_id), dtype=torch.long, device=self.torch_device)
            if not self.use_cache:
                logits, _ = self.modules["decoder"](start, states, mask, cross)
                return _State(None, mask, 1, ids=start, encoder_states=states, cross_kv=cross), logits[:, -1]
            cache = self._new_cache(rows, self._capacity(width))
            logits, _ = self.modules["decoder"](start, states, mask, cross, cache, self._positions(0, 1))
            return _State(cache, mask, 1, encoder_states=states, cross_kv=cross), logits[:, -1]
        last = self._positions(width - 1, 1)
        if not self.use_cache:
            logits, _ = self.modules["causal_lm"](ids, mask, None, None, last)
            return _State(None, mask, width, ids=ids), logits[:, -1]
        capacity = self._capacity(width)
        cache = self._new_cache(rows, capacity)
        # The mask covers every slot of the generation: the prompt's padding, then ones. Slots not
        # written yet lie after every query, so causality hides them and the mask never changes.
        grown = torch.ones(rows, capacity, dtype=torch.long, device=self.torch_device)
        grown[:, :width] = mask
        logits, _ = self.modules["causal_lm"](ids, grown, cache, self._positions(0, width), last)
        return _State(cache, grown, width), logits[:, -1]

    def step(self, state: _State, next_ids: list[int]) -> tuple[_State, torch.Tensor]:
        new = torch.tensor(next_ids, dtype=torch.long, device=self.torch_device)[:, None]
        if not self.use_cache:
            return self._step_uncached(state, new)
        self._room(state)
        slot = self._positions(state.length, 1)
        if self._compiled is not None:
            logits = self._compiled.step(new, state, slot, self._first)
        elif self._seq2seq:
            logits, _ = self.modules["decoder"](new, state.encoder_states, state.mask, state.cross_kv, state.cache, slot)
        else:
            logits, _ = self.modules["causal_lm"](new, state.mask, state.cache, slot, self._first)
        state.length += 1
        return state, logits[:, -1]

    def _step_uncached(self, state: _State, new: torch.Tensor) -> tuple[_State, torch.Tensor]:
        assert state.ids is not None
        state.ids = torch.cat([state.ids, new], dim=1)
        state.length += 1
        if self._seq2seq:
            logits, _ = self.modules["decoder"](state.ids, state.encoder_states, state.mask, state.cross_kv)
            return state, logits[:, -1]
        rows = new.shape[0]
        state.mask = torch.cat([state.mask, torch.ones(rows, 1, dtype=torch.long, device=self.torch_device)], dim=1)
        last = self._positions(state.ids.shape[1] - 1, 1)
        logits, _ = self.modules["causal_lm"](state.ids, state.mask, None, None, last)
        return state, logits[:, -1]

    def reorder(self, state: _State, indices: list[int]) -> _State:
        index = torch.tensor(indices, dtype=torch.long, device=self.torch_device)

        def pick(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.index_select(0, index)

        cache = None
        if state.cache is not None:
            shape = list(state.cache.shape)
            shape[2] = len(indices)
            cache = self._pool.take(tuple(shape), avoid=state.cache)
            torch.index_select(state.cache, 2, index, out=cache)
        return _State(
            cache=cache,
            mask=state.mask.index_select(0, index),
            length=state.length,
            ids=pick(state.ids),
            encoder_states=pick(state.encoder_states),
            cross_kv=None if state.cross_kv is None else state.cross_kv.index_select(2, index),
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
        if self._seq2seq:
            states = self.modules["encoder"](ids, mask)
            cross = self.modules["cross_kv"](states)
            start = int(self.model.decoder_start_id)
            pad = self.model.tokenizer.pad_id
            # [start] + t[:-1] is len(t) tokens, one (start alone) for an empty target in a wider batch
            decoder_in = [([start] + t[:-1])[:width] + [pad] * (width - max(len(t), 1)) for t in targets]
            target_rows = [t + [-1] * (width - len(t)) for t in targets]  # left-aligned
            dec = torch.tensor(decoder_in, dtype=torch.long, device=self.torch_device)
            logits, _ = self.modules["decoder"](dec, states, mask, cross)
        else:
            # The whole sequence in one call (no cache); logits only where there are targets.
            logits, _ = self.modules["causal_lm"](ids, mask, None, None, self._positions(ids.shape[1] - width, width))
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
            "threads_source": self.threads_source,
            "kv_cache": self.use_cache,
            "prepacked_linears": self.prepacked,
            "prepack_source": self.prepack_source,
            "fused_projection_tensors": self.fused,
            "shared_weight_linears": self.shared_linears,
            "compiled_step": self._compiled is not None,
        }
        if self.torch_device.type == "cuda":
            facts["device_name"] = torch.cuda.get_device_name(self.torch_device)
        else:
            facts["device_name"] = _cpu_name()
        return facts

    def close(self) -> None:
        self.modules = {}
        self._pool.clear()
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
        "prepack": {"type": ["boolean", "string", "integer"]},
        "compile": {"type": ["boolean", "string", "integer"]},
    }

    def check(self, device: str, dtype: str, options: Mapping[str, Any]) -> None:
        super().check(device, dtype, options)
        target = torch.device("cpu" if device == "auto" and not torch.cuda.is_available() else
                              ("cuda" if device == "auto" else device))
        prepack = _prepack_option(options)
        if prepack is True:
            _check_prepack(target, DTYPES.get(dtype, torch.float32))
        use_cache = _as_bool(options.get("use_cache", True), "use_cache")
        if _as_bool(options.get("compile", False), "compile"):
            check_compile(target, prepack=prepack is True, use_cache=use_cache)

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
        unknown = sorted(set(options) - {"use_cache", "threads", "prepack", "compile"})
        if unknown:
            raise UsageError(
                f"unknown option(s) {', '.join(unknown)} for backend pytorch; known: use_cache, threads, prepack, compile"
            )
        prepack = _prepack_option(options)
        if prepack is True:
            _check_prepack(torch_device, torch_dtype)
        use_cache = _as_bool(options.get("use_cache", True), "use_cache")
        compile_step = _as_bool(options.get("compile", False), "compile")
        if compile_step:
            check_compile(torch_device, prepack=prepack is True, use_cache=use_cache)
        return TorchRunner(
            model,
            device=torch_device,
            dtype=torch_dtype,
            use_cache=use_cache,
            threads=int(options["threads"]) if options.get("threads") else None,
            prepack=prepack,
            compile=compile_step,
        )

    def versions(self) -> Mapping[str, str]:
        return {"torch": torch.__version__}


def _check_prepack(device: torch.device, dtype: torch.dtype) -> None:
    """``prepack`` packs float32 weights for oneDNN's CPU kernels: refuse it anywhere else, in one line."""
    if device.type != "cpu" or dtype != torch.float32:
        raise UsageError(
            f"option prepack of backend pytorch works on the CPU in float32, not on {device.type} in "
            f"{str(dtype).removeprefix('torch.')}; drop the option or use --device cpu --dtype float32"
        )
    if not prepack_available():
        raise UsageError("option prepack of backend pytorch needs a torch build with oneDNN; drop the option")


def _prepack_option(options: Mapping[str, Any]) -> bool | None:
    """The ``prepack`` option: ``None`` for the default (absent or ``auto``), else a boolean."""
    value = options.get("prepack")
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    return _as_bool(value, "prepack")


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _as_bool(value: Any, name: str = "option") -> bool:
    """A boolean option's value: true/false, 1/0, or their spellings yes/no and on/off. Anything else is a
    one-line UsageError (a typo such as ``compile=nope`` had switched the option on)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    auto = " or auto" if name == "prepack" else ""
    raise UsageError(f"option {name} of backend pytorch takes true or false{auto}, not {value!r}")
