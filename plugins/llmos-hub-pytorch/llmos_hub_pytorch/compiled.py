"""The ``compile`` option: the cached decoding step through ``torch.compile`` (Inductor).

At real model sizes a CPU decoding step is about four fifths weight products (the same MKL kernels
``transformers``' ``generate`` runs) and one fifth everything else: attention, norms, activations,
cache writes and the Python between them, a few hundred small operations per step. Inductor fuses that
fifth into a few generated C++ (CUDA: Triton) kernels; ``benchmarks/generate.py`` measures what it
gains against the eager step (docs/results.md).

What is compiled is only the step module's call for one new token per row: prefill runs eager (one
call per batch, at a new prompt width each time). Traced, the modules take the path exported graphs
take: they attend over the whole preallocated cache and return the new tokens' keys and values without
writing them (a compiled graph that wrote into its input would have to copy it), so
:meth:`CompiledStep.step` writes ``new_kv`` into its slots afterwards, as the onnxruntime runner does.

Shapes that change between batches (rows, cache capacity, source length) are marked dynamic, so two
graphs serve a whole run: one for batches of several rows, one for a single row (its own
specialisation in ``torch.compile``). The cost is compiling them: tens of seconds per model on a small
CPU the first time, spent while the runner is prepared (a throwaway batch of two rows, then one), so it
counts in the prepare time, not in the first batch's speed; Inductor keeps what it generated in its
on-disk cache, so later processes reuse it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from typing import Any

import torch
from torch import nn

from llmos_hub import UsageError

__all__ = ["CompiledStep", "check_compile"]


def check_compile(device: torch.device, *, prepack: bool, use_cache: bool) -> None:
    """Refuse, in one line and before any model loads, a ``compile`` option that cannot work here."""
    if not use_cache:
        raise UsageError("option compile of backend pytorch compiles the cached decoding step, so it needs "
                         "use_cache=true; drop one of the two options")
    if prepack:
        raise UsageError("options compile and prepack of backend pytorch do not combine (compiled steps run "
                         "the dense weights); drop one of them")
    if not torch._dynamo.is_dynamo_supported():
        raise UsageError("option compile of backend pytorch: torch.compile does not support this Python; drop the option")
    if device.type == "cpu" and not _cpp_compiler():
        raise UsageError("option compile of backend pytorch needs a C++ compiler on the CPU (torch.compile "
                         "generates C++): install g++ (Debian/Ubuntu: apt-get install g++) or drop the option")
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        raise UsageError("option compile of backend pytorch needs triton on CUDA (pip install triton) or drop the option")


def _cpp_compiler() -> str | None:
    """The compiler Inductor would call: ``$CXX``, else the first of g++ / clang++ / c++ on ``PATH``."""
    named = os.environ.get("CXX")
    if named:
        return shutil.which(named)
    return next((found for name in ("g++", "clang++", "c++") if (found := shutil.which(name))), None)


class CompiledStep:
    """One new token per row through the compiled step module, ``new_kv`` written after the call."""

    def __init__(self, module: nn.Module) -> None:
        self.compiled: Any = torch.compile(module)

    def step(self, new: torch.Tensor, state: Any, slot: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """Logits ``[rows, 1, vocab]`` of the step; ``state.cache`` gets the new keys/values in ``slot``.

        ``state`` is the pytorch runner's decoding state (``cache``, ``mask``, and for seq2seq
        ``encoder_states`` / ``cross_kv``)."""
        try:
            logits, new_kv = self._call(new, state, slot, first)
        except _compile_failures() as failure:
            first_line = (str(failure).strip().splitlines() or [type(failure).__name__])[0]
            raise UsageError(f"torch.compile could not build the decoding step ({first_line[:300]}); fix the "
                             "compiler or run without --backend-option compile=true") from failure
        state.cache.index_copy_(4, slot, new_kv.to(state.cache.dtype))
        return logits

    def _call(self, new: torch.Tensor, state: Any, slot: torch.Tensor, first: torch.Tensor) -> tuple[Any, Any]:
        cache = state.cache
        _dynamic(new, 0)
        _dynamic(cache, 2, 4)  # rows, capacity
        if state.encoder_states is not None:  # seq2seq: the source length varies by batch
            _dynamic(state.encoder_states, 0, 1)
            _dynamic(state.mask, 0, 1)
            _dynamic(state.cross_kv, 2, 4)
            return self.compiled(new, state.encoder_states, state.mask, state.cross_kv, cache, slot)
        _dynamic(state.mask, 0, 1)
        return self.compiled(new, state.mask, cache, slot, first)


def _compile_failures() -> tuple[type[BaseException], ...]:
    """What a compiler that cannot build the graph raises (a broken or missing toolchain, an unsupported
    operation), turned into one line that names the way out rather than Inductor's advice to debug it.
    Imported only when a step fails: importing the compiler costs ~80 MiB, which runs without
    ``compile`` should not pay."""
    from torch._dynamo.exc import BackendCompilerFailed
    from torch._inductor.exc import InductorError

    return (BackendCompilerFailed, InductorError)


def _dynamic(tensor: torch.Tensor, *dims: int) -> None:
    for dim in dims:
        torch._dynamo.maybe_mark_dynamic(tensor, dim)
