"""The new tokens' attention over a preallocated self-attention cache, as traced graphs need it.

Eager, a decoding module writes each step's keys and values into its preallocated cache in place and
attends over the written slots. A traced graph (``torch.export``, ``torch.compile``) cannot write its
input in place: the write would become a copy of the whole layer cache at every step. So under
tracing a module calls :func:`cache_attention` instead: it reads the cache as it is (the slots before
the first new token; the new tokens' own slots still hold stale values) and the new tokens' keys and
values separately, two score blocks joined by one softmax, which is the same attention as over the
written cache. The module returns the new keys/values and its runner writes them afterwards.

A backend can do better than that decomposition: inside :func:`lowered_cache_attention`, the call is
traced as one operator, ``torch.ops.llmos_hub.cache_attention``, which the backend's exporter
translates to its runtime's own kernel. The onnxruntime backend makes it ONNX Runtime's
``GroupQueryAttention``, which attends over the filled slots only and writes the new keys and values
into the runner's buffer itself (docs/decisions.md, "Decoding at real sizes, seventh round").

Example, in a module's forward (``q [batch, heads, new, d]``, ``layer`` the layer's
``(keys, values)`` of ``[batch, kv_heads, capacity, d]``, ``k``/``v`` the new tokens')::

    if torch.compiler.is_exporting():
        y = cache_attention(q, layer, k, v, cache_position, mask, scale)

This module imports torch (the rest of the core SDK does not): import it from torch modules only.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

__all__ = ["cache_attention", "cache_attention_lowered", "lowered_cache_attention"]

#: Which calls to trace as the one operator, or None: not lowered (see :func:`lowered_cache_attention`).
_LOWERED: contextvars.ContextVar[Callable[[Tensor, Tensor], bool] | None] = contextvars.ContextVar(
    "llmos_hub_cache_attention_lowered", default=None
)


@contextlib.contextmanager
def lowered_cache_attention(accepts: Callable[[Tensor, Tensor], bool] | None = None) -> Iterator[None]:
    """Trace :func:`cache_attention` as the single operator ``torch.ops.llmos_hub.cache_attention``
    within this block: a backend's exporter that translates that operator sets it around the export.
    ``accepts(q, k)`` says which calls its kernel takes (head sizes, dtypes); the others are traced
    decomposed."""
    token = _LOWERED.set(accepts or (lambda q, k: True))
    try:
        yield
    finally:
        _LOWERED.reset(token)


def cache_attention_lowered(q: Tensor, k: Tensor) -> bool:
    """Whether a :func:`cache_attention` call on ``q``/``k`` is traced as one operator here."""
    accepts = _LOWERED.get()
    return accepts is not None and bool(accepts(q, k))


def cache_attention(
    q: Tensor, layer: Sequence[Tensor], k: Tensor, v: Tensor, cache_position: Tensor, mask: Tensor,
    scale: float | None = None,
) -> Tensor:
    """``[batch, heads, new, d]``: the new tokens' attention over a cache they are not written into.

    ``q [batch, heads, new, d]``; ``layer``: keys and values ``[batch, kv_heads, capacity, d]``
    (grouped-query heads: query head ``h`` reads kv head ``h // (heads / kv_heads)``); ``k``/``v
    [batch, kv_heads, new, d]``, to be written into slots ``cache_position`` (consecutive, the last
    one the newest) by the caller; ``mask [batch or 1, heads or 1, new, capacity]``, boolean (True =
    may attend) or additive. ``scale=None``: ``d ** -0.5``. Slots from the first new token's on are read
    from ``k``/``v``, never from the cache.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    if mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(~mask, torch.finfo(q.dtype).min)
    if cache_attention_lowered(q, k):
        return torch.ops.llmos_hub.cache_attention(q, k, v, layer[0], layer[1], cache_position, mask, scale)
    return _split(q, k, v, layer[0], layer[1], cache_position, mask, scale)


def _split(q: Tensor, k: Tensor, v: Tensor, keys: Tensor, values: Tensor, cache_position: Tensor, bias: Tensor,
           scale: float) -> Tensor:
    """The decomposed attention: the cache's written slots and the new tokens as two score blocks."""
    batch, heads, new, dim = q.shape
    kv_heads, capacity = keys.shape[1], keys.shape[2]
    groups = heads // kv_heads
    lowest = torch.finfo(q.dtype).min
    key = torch.arange(capacity, device=q.device)
    before = (key < cache_position[:1])[None, None, None, :]  # slots written before this call
    bias_cached = torch.where(before, bias, lowest)
    bias_new = bias.index_select(3, cache_position)
    if groups > 1 or bias.shape[1] > 1:  # one query block per kv head: [batch, kv_heads, groups * new, ...]
        bias_cached = bias_cached.expand(-1, heads, -1, -1).reshape(bias_cached.shape[0], kv_heads, groups * new, capacity)
        bias_new = bias_new.expand(-1, heads, -1, -1).reshape(bias_new.shape[0], kv_heads, groups * new, new)
    q = q.reshape(batch, kv_heads, groups * new, dim)
    scores = torch.cat(
        (torch.matmul(q, keys.transpose(-1, -2)) * scale + bias_cached,
         torch.matmul(q, k.transpose(-1, -2)) * scale + bias_new),
        dim=-1,
    )
    weights = torch.softmax(scores, dim=-1)
    out = torch.matmul(weights[..., :capacity], values) + torch.matmul(weights[..., capacity:], v)
    return out.reshape(batch, heads, new, dim)


@torch.library.custom_op("llmos_hub::cache_attention", mutates_args=())
def _cache_attention_op(
    q: Tensor, k: Tensor, v: Tensor, keys: Tensor, values: Tensor, cache_position: Tensor, bias: Tensor, scale: float
) -> Tensor:
    """The operator a lowering exporter translates; run as is, it computes :func:`_split` (``bias``
    additive)."""
    return _split(q, k, v, keys, values, cache_position, bias, scale)


@_cache_attention_op.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, keys: Tensor, values: Tensor, cache_position: Tensor, bias: Tensor,
      scale: float) -> Tensor:
    return q.new_empty(q.shape)
