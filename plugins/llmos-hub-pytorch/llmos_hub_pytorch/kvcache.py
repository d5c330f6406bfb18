"""The self-attention cache of a generation: preallocated, written in place, reused across batches.

A generation's cache is one tensor ``[layers, 2, rows, heads, capacity, head_dim]`` sized for the
whole generation (prompt plus every token to come, :func:`llmos_hub.decoding.cache_capacity`); the
modules write each step's keys and values into their slots in place (the ``causal_lm``/``decoder``
calling convention of :class:`llmos_hub.LoadedModel`), so a step copies nothing but its own new
keys and values. Its storage comes from a :class:`CachePool`, which keeps two flat buffers for the
runner's lifetime: the one the current cache lives in and the one a reorder (beam search, finished
rows leaving) index-selects into. The next batch takes them again instead of allocating.
"""

from __future__ import annotations

import math

import torch

__all__ = ["CachePool"]


class CachePool:
    """Two flat, zero-initialised buffers on ``device``; :meth:`take` views one as a cache shape.

    Buffers only grow (by at least half their size, so a run of growing batches allocates a few
    times, not every time). They start zeroed and then only ever hold finite keys and values, which
    matters: the slots not yet written are masked out of attention, and a masked slot holding a NaN
    bit pattern would still poison the weighted sum (``0 * NaN``).
    """

    def __init__(self, device: torch.device, dtype: torch.dtype) -> None:
        self.device = device
        self.dtype = dtype
        self._buffers: list[torch.Tensor | None] = [None, None]

    def take(self, shape: tuple[int, ...], *, avoid: torch.Tensor | None = None) -> torch.Tensor:
        """A tensor of ``shape`` on a pooled buffer (not the one ``avoid`` lives in). Contents are stale."""
        size = math.prod(shape)
        busy = avoid.untyped_storage().data_ptr() if avoid is not None else None
        for i, buffer in enumerate(self._buffers):
            if buffer is not None and busy is not None and buffer.untyped_storage().data_ptr() == busy:
                continue
            if buffer is None or buffer.numel() < size:
                grown = size if buffer is None else max(size, buffer.numel() + buffer.numel() // 2)
                self._buffers[i] = None  # let the old one go before allocating the new one
                buffer = torch.zeros(grown, device=self.device, dtype=self.dtype)
                self._buffers[i] = buffer
            return buffer[:size].view(shape)
        raise RuntimeError("both cache buffers are in use")  # pragma: no cover - one cache per runner

    def bytes(self) -> int:
        """What the pool holds now."""
        return sum(b.numel() * b.element_size() for b in self._buffers if b is not None)

    def clear(self) -> None:
        self._buffers = [None, None]
