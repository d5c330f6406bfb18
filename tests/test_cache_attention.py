"""``llmos_hub.attention``: the traced attention over a cache it does not write, and its lowering."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")  # llmos_hub.attention is for torch modules; the core SDK runs without it

from llmos_hub.attention import cache_attention, cache_attention_lowered, lowered_cache_attention  # noqa: E402

BATCH, HEADS, DIM, CAPACITY = 2, 4, 8, 12


def _case(kv_heads: int, start: int, new: int, *, boolean: bool):
    """Query/new keys/a filled cache, and a causal mask over the slots with row 0 left padded by 2."""
    g = torch.Generator().manual_seed(start * 10 + new + kv_heads)
    q = torch.randn(BATCH, HEADS, new, DIM, generator=g)
    k, v = (torch.randn(BATCH, kv_heads, new, DIM, generator=g) for _ in range(2))
    keys, values = (torch.randn(BATCH, kv_heads, CAPACITY, DIM, generator=g) for _ in range(2))
    slots = torch.arange(start, start + new)
    slot = torch.arange(CAPACITY)
    allowed = (slot[None, :] <= slots[:, None])[None, None].repeat(BATCH, 1, 1, 1)
    allowed[0, :, :, :2] = False
    allowed[0, :, torch.arange(new), slots] = True  # each query sees itself
    mask = allowed if boolean else torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    return q, k, v, keys, values, slots, mask


def _over_written_cache(q, k, v, keys, values, slots, mask, scale):
    """The reference: write the new keys/values into a copy of the cache, then attend over it (SDPA)."""
    keys, values = keys.clone(), values.clone()
    keys[:, :, slots], values[:, :, slots] = k, v
    groups = q.shape[1] // keys.shape[1]
    keys, values = keys.repeat_interleave(groups, 1), values.repeat_interleave(groups, 1)
    return torch.nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=scale)


@pytest.mark.parametrize("kv_heads", [4, 2])
@pytest.mark.parametrize(("start", "new"), [(0, 5), (6, 1), (6, 3)])
@pytest.mark.parametrize("boolean", [True, False])
def test_the_decomposed_attention_equals_attention_over_the_written_cache(kv_heads, start, new, boolean):
    q, k, v, keys, values, slots, mask = _case(kv_heads, start, new, boolean=boolean)
    before = keys.clone()
    got = cache_attention(q, (keys, values), k, v, slots, mask, 0.3)
    torch.testing.assert_close(got, _over_written_cache(q, k, v, keys, values, slots, mask, 0.3), atol=1e-5, rtol=1e-5)
    assert torch.equal(keys, before)  # read, never written
    default = cache_attention(q, (keys, values), k, v, slots, mask)  # scale None: 1/sqrt(d)
    torch.testing.assert_close(default, _over_written_cache(q, k, v, keys, values, slots, mask, DIM**-0.5),
                               atol=1e-5, rtol=1e-5)


class _Layer(torch.nn.Module):
    def forward(self, q, k, v, keys, values, slots, mask):
        return cache_attention(q, (keys, values), k, v, slots, mask, None)


def _traced_targets(module, args) -> set[str]:
    program = torch.export.export(module, args)
    return {str(node.target) for node in program.graph.nodes if node.op == "call_function"}


def test_lowered_calls_trace_as_one_operator_and_only_those_the_backend_accepts():
    args = _case(2, 6, 1, boolean=True)
    op = "llmos_hub.cache_attention.default"
    assert op not in _traced_targets(_Layer(), args)
    assert not cache_attention_lowered(args[0], args[1])
    with lowered_cache_attention():
        assert cache_attention_lowered(args[0], args[1])
        assert op in _traced_targets(_Layer(), args)
    with lowered_cache_attention(lambda q, k: q.shape[-1] % 16 == 0):  # head size 8: refused, decomposed
        assert op not in _traced_targets(_Layer(), args)
    assert not cache_attention_lowered(args[0], args[1])  # the block's end restores the default


def test_the_operator_run_as_is_computes_the_decomposed_attention():
    q, k, v, keys, values, slots, mask = _case(2, 6, 3, boolean=False)
    with lowered_cache_attention():
        got = cache_attention(q, (keys, values), k, v, slots, mask, 0.3)
    torch.testing.assert_close(got, _over_written_cache(q, k, v, keys, values, slots, mask, 0.3), atol=1e-5, rtol=1e-5)
