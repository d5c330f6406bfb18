"""The lean GPT-2 and T5 modules compute what ``transformers``' forward computes, in the same calling
convention, and are taken only for the configurations they reproduce."""

from __future__ import annotations

import pytest
import torch
import transformers as tf

from llmos_hub_transformers.modules import HFCausalLM, HFCrossKV, HFDecoder, HFEncoder
from llmos_hub_transformers.native import (
    NativeGPT2,
    NativeLlama,
    NativeT5CrossKV,
    NativeT5Decoder,
    native_causal_lm,
    native_cross_kv,
    native_decoder,
)

IDS = torch.tensor([[0, 0, 5, 17, 42, 9, 33], [11, 12, 13, 14, 15, 16, 17]])
MASK = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]])


def _gpt2(**options):
    torch.manual_seed(0)
    config = tf.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=64, **options)
    return tf.GPT2LMHeadModel(config).eval()


def _t5(**options):
    torch.manual_seed(0)
    options = {"num_heads": 4, **options}
    config = tf.T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                         decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **options)
    return tf.T5ForConditionalGeneration(config).eval()


def _steps(module, first_args, next_ids, cache, width):
    """Prefill then one token at a time into ``cache``: the logits of every call."""
    out = [module(*first_args(cache, torch.arange(width)))[0][:, -1]]
    for step, token in enumerate(next_ids):
        out.append(module(*token(cache, torch.tensor([width + step])))[0][:, -1])
    return torch.stack(out)


def _decode(module, *, heads: int):
    """A causal ``module`` prefilled with IDS (left-padded) and fed two more tokens into a preallocated cache."""
    steps = [torch.tensor([[7], [8]]), torch.tensor([[21], [22]])]
    width, capacity = IDS.shape[1], IDS.shape[1] + len(steps)
    mask = torch.cat([MASK, torch.ones(2, len(steps), dtype=torch.long)], 1)
    cache = torch.zeros(2, 2, 2, heads, capacity, 8)
    first = lambda c, slots: (IDS, mask, c, slots, torch.tensor([width - 1]))  # noqa: E731
    nexts = [lambda c, slots, t=t: (t, mask, c, slots, torch.tensor([0])) for t in steps]
    return _steps(module, first, nexts, cache, width)


@pytest.mark.parametrize("options", [{}, {"activation_function": "gelu"}, {"tie_word_embeddings": False}])
def test_gpt2_native_equals_transformers_forward_with_and_without_cache(options):
    model = _gpt2(**options)
    native, wrapped = NativeGPT2(model), HFCausalLM(model, (2, 4, 8))
    with torch.inference_mode():
        full_native, kv_native = native(IDS, MASK)
        full_wrapped, kv_wrapped = wrapped(IDS, MASK)
        real = MASK.bool()
        assert torch.allclose(full_native[real], full_wrapped[real], atol=1e-5)
        assert torch.allclose(kv_native[..., 2:, :], kv_wrapped[..., 2:, :], atol=1e-5)
        assert torch.allclose(_decode(native, heads=4), _decode(wrapped, heads=4), atol=1e-5)


def _llama(kind, **options):
    torch.manual_seed(0)
    config_class, model_class = {"llama": (tf.LlamaConfig, tf.LlamaForCausalLM),
                                 "mistral": (tf.MistralConfig, tf.MistralForCausalLM),
                                 "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM)}[kind]
    extra = {"sliding_window": None} if kind == "mistral" else {}
    config = config_class(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, max_position_embeddings=64, **{**extra, **options})
    return model_class(config).eval()


@pytest.mark.parametrize(("kind", "options"), [("llama", {}), ("llama", {"attention_bias": True, "mlp_bias": True}),
                                               ("mistral", {}), ("qwen2", {})])
def test_llama_family_native_equals_transformers_forward_with_and_without_cache(kind, options):
    model = _llama(kind, **options)
    native, wrapped = NativeLlama(model, (2, 2, 8)), HFCausalLM(model, (2, 2, 8))
    with torch.inference_mode():
        real = MASK.bool()
        assert torch.allclose(native(IDS, MASK)[0][real], wrapped(IDS, MASK)[0][real], atol=1e-5)
        assert torch.allclose(_decode(native, heads=2), _decode(wrapped, heads=2), atol=1e-5)


@pytest.mark.parametrize("options", [{}, {"feed_forward_proj": "gated-gelu"}, {"tie_word_embeddings": False}])
def test_t5_native_decoder_equals_transformers_forward(options):
    model = _t5(**options)
    native, wrapped = NativeT5Decoder(model, (2, 4, 8)), HFDecoder(model, (2, 4, 8))
    with torch.inference_mode():
        states = HFEncoder(model)(IDS, MASK)
        cross = HFCrossKV(model)(states)
        decoder_ids = torch.tensor([[0, 9, 4, 30], [0, 2, 2, 5]])
        a, kv_a = native(decoder_ids, states, MASK)
        b, kv_b = wrapped(decoder_ids, states, MASK)
        c, _ = native(decoder_ids, states, MASK, cross)
        assert torch.allclose(a, b, atol=1e-5) and torch.allclose(c, b, atol=1e-5)
        assert torch.allclose(kv_a, kv_b, atol=1e-5)

        def run(module):
            cache = torch.zeros(2, 2, 2, 4, 4, 8)
            first = lambda c, slots: (decoder_ids[:, :1], states, MASK, cross, c, slots)  # noqa: E731
            nexts = [lambda c, slots, i=i: (decoder_ids[:, i : i + 1], states, MASK, cross, c, slots) for i in (1, 2, 3)]
            return _steps(module, first, nexts, cache, 1)

        assert torch.allclose(run(native), run(wrapped), atol=1e-5)
        assert torch.allclose(run(native)[-1], b[:, -1], atol=1e-5)


@pytest.mark.parametrize("options", [{}, {"feed_forward_proj": "gated-gelu"}])
def test_t5_native_cross_kv_is_transformers_cross_attention_cache(options):
    model = _t5(**options)
    with torch.inference_mode():
        states = HFEncoder(model)(IDS, MASK)
        assert torch.equal(NativeT5CrossKV(model)(states), HFCrossKV(model)(states))


def _fused_copy(build, module_for):
    """A module over a fresh model of ``build`` with its projections joined, and one without."""
    plain = module_for(build())
    fused = module_for(build())
    replaced = fused.fuse_projections()
    return plain, fused, replaced


@pytest.mark.parametrize(("options", "heads"), [({}, 4), ({"feed_forward_proj": "gated-gelu"}, 4),
                                              ({"num_heads": 2}, 2)])  # 2 x 8 = 16 wide attention in a 32 wide model
def test_t5_joined_projections_answer_as_the_separate_ones(options, heads):
    plain, fused, replaced = _fused_copy(lambda: _t5(**options), lambda m: NativeT5Decoder(m, (2, heads, 8)))
    assert replaced == 2 * 3 and fused.fuse_projections() == 0  # q, k, v of two layers; once
    assert all(block.layer[0].SelfAttention.q is None for block in fused.model.decoder.block)
    assert [tuple(layer.weight.shape) for layer in fused.fused_qkv] == [(3 * heads * 8, 32)] * 2
    with torch.inference_mode():
        states = HFEncoder(plain.model)(IDS, MASK)
        cross = NativeT5CrossKV(plain.model)(states)
        decoder_ids = torch.tensor([[0, 9, 4, 30], [0, 2, 2, 5]])

        def run(module):
            cache = torch.zeros(2, 2, 2, heads, 4, 8)
            first = lambda c, slots: (decoder_ids[:, :1], states, MASK, cross, c, slots)  # noqa: E731
            nexts = [lambda c, slots, i=i: (decoder_ids[:, i : i + 1], states, MASK, cross, c, slots) for i in (1, 2, 3)]
            return _steps(module, first, nexts, cache, 1)

        torch.testing.assert_close(run(fused), run(plain), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("kind", "options"), [("llama", {}), ("llama", {"attention_bias": True, "mlp_bias": True}),
                                               ("qwen2", {})])
def test_llama_joined_projections_answer_as_the_separate_ones(kind, options):
    plain, fused, replaced = _fused_copy(lambda: _llama(kind, **options), lambda m: NativeLlama(m, (2, 2, 8)))
    biases = {"llama": 0, "qwen2": 3}[kind] if not options else 3 + 2
    assert replaced == 2 * (5 + biases)  # q, k, v, gate, up weights (and biases) of two layers
    layer = fused.model.model.layers[0]
    assert layer.self_attn.q_proj is None and layer.mlp.gate_proj is None
    assert tuple(fused.fused_qkv[0].weight.shape) == (4 * 8 + 2 * 2 * 8, 32)  # 4 query heads, 2 kv heads
    with torch.inference_mode():
        torch.testing.assert_close(_decode(fused, heads=2), _decode(plain, heads=2), atol=1e-5, rtol=0)


def test_joined_layers_hand_back_what_they_replaced_layer_by_layer():
    """Each replaced tensor goes to ``release`` before the next layer is joined, so a caller that gives
    memory back holds one layer's copy at most (a whole model's joined copies at once would peak at
    two thirds of the weights again, for Llama)."""
    model = _llama("llama")
    layers = model.model.layers
    seen = []
    module = NativeLlama(model, (2, 2, 8))
    count = module.fuse_projections(lambda t: seen.append((t.shape, layers[1].self_attn.q_proj is not None)))
    assert count == len(seen) == 2 * 5
    assert [later for _, later in seen[:3]] == [True] * 3  # layer 0's q, k, v released while layer 1 was intact
    assert [shape for shape, _ in seen[:3]] == [(32, 32), (16, 32), (16, 32)]


def test_projections_that_cannot_be_joined_are_left_alone():
    model = _llama("llama")
    model.model.layers[1].self_attn.k_proj = torch.nn.Identity()  # not a linear layer: nothing changes anywhere
    module = NativeLlama(model, (2, 2, 8))
    assert module.fuse_projections() == 0 and module.fused_qkv is None
    assert isinstance(model.model.layers[0].self_attn.q_proj, torch.nn.Linear)


def test_only_covered_configurations_get_a_native_module():
    assert isinstance(native_causal_lm(_gpt2()), NativeGPT2)
    assert native_causal_lm(_gpt2(scale_attn_by_inverse_layer_idx=True)) is None
    assert native_causal_lm(_gpt2(reorder_and_upcast_attn=True)) is None
    assert isinstance(native_causal_lm(_llama("llama"), (2, 2, 8)), NativeLlama)
    assert native_causal_lm(_llama("mistral", sliding_window=4), (2, 2, 8)) is None
    assert native_causal_lm(_llama("qwen2", use_sliding_window=True, sliding_window=4), (2, 2, 8)) is None
    assert native_causal_lm(_llama("llama", pretraining_tp=2), (2, 2, 8)) is None
    assert isinstance(native_decoder(_t5(), (2, 4, 8)), NativeT5Decoder)
    assert isinstance(native_cross_kv(_t5()), NativeT5CrossKV)
    bart = tf.BartForConditionalGeneration(tf.BartConfig(vocab_size=64, d_model=32, encoder_layers=1, decoder_layers=1,
                                                         encoder_attention_heads=4, decoder_attention_heads=4,
                                                         encoder_ffn_dim=64, decoder_ffn_dim=64))
    assert native_decoder(bart, (1, 4, 8)) is None and native_cross_kv(bart) is None


@pytest.mark.parametrize(("kind", "role", "cls"), [("gpt2", "causal_lm", NativeGPT2), ("t5", "decoder", NativeT5Decoder),
                                                   ("llama", "causal_lm", NativeLlama), ("bart", "decoder", HFDecoder)])
def test_the_family_builds_the_native_module_where_it_applies(tmp_path, kind, role, cls):
    from llmos_hub_transformers.family import HFFamily
    from llmos_hub_transformers.tiny import save_tiny

    model = HFFamily().load(str(save_tiny(kind, tmp_path / kind)))
    assert type(model.modules[role]) is cls


def _as_exported(monkeypatch):
    """Run the modules' export path (read-only cache, split attention) eagerly, as ``torch.export`` traces it."""
    import llmos_hub_transformers.native as native

    monkeypatch.setattr(native, "_exporting", lambda: True)


def _prefilled(module, args_for, cache):
    """Fill ``cache`` eagerly (the in-place path) and return it with the slot of the next token."""
    with torch.inference_mode():
        module(*args_for(cache, torch.arange(cache.shape[4] - 1)))
    return cache


@pytest.mark.parametrize("kind", ["gpt2", "llama", "t5"])
def test_the_export_path_reads_the_cache_per_layer_and_answers_as_the_in_place_path(kind, monkeypatch):
    """Exported graphs cannot write their input, so under export the modules attend over the cache as
    read plus the new tokens' own keys (two blocks, one softmax) and take one tensor per layer: the same
    logits and new keys/values as writing in place, for a prefill and for a step over a filled cache."""
    width = IDS.shape[1]
    capacity = width + 1
    mask = torch.cat([MASK, torch.ones(2, 1, dtype=torch.long)], 1)
    if kind == "t5":
        model = _t5()
        module, heads = NativeT5Decoder(model, (2, 4, 8)), 4
        with torch.inference_mode():
            states = HFEncoder(model)(IDS, MASK)
            cross = HFCrossKV(model)(states)
        dec = torch.tensor([[0, 9, 4, 30, 7, 8, 3, 5], [0, 2, 2, 5, 6, 1, 9, 4]])

        def args_for(cache, slots):
            return dec[:, slots], states, MASK, cross, cache, slots
    else:
        model = _gpt2() if kind == "gpt2" else _llama("llama")
        module = NativeGPT2(model) if kind == "gpt2" else NativeLlama(model, (2, 2, 8))
        heads = 4 if kind == "gpt2" else 2  # llama: 4 query heads over 2 kv heads
        ids = torch.cat([IDS, torch.tensor([[7], [8]])], 1)

        def args_for(cache, slots):
            return ids[:, slots], mask, cache, slots, torch.arange(len(slots))

    for slots in (torch.arange(width), torch.tensor([width])):  # a prefill; one step after it
        cache = torch.zeros(2, 2, 2, heads, capacity, 8)
        if len(slots) == 1:
            cache = _prefilled(module, args_for, cache)
        with torch.inference_mode():
            eager_logits, eager_kv = module(*args_for(cache.clone(), slots))
        layers = tuple((layer[0].clone(), layer[1].clone()) for layer in cache.unbind(0))  # as exported
        before = [part.clone() for pair in layers for part in pair]
        with monkeypatch.context() as patch, torch.inference_mode():
            _as_exported(patch)
            if kind == "t5":
                d, s, m, c, _, p = args_for(layers, slots)
                logits, kv = module(d, s, m, tuple((c[0], c[1]) for c in c.unbind(0)), layers, p)
            else:
                logits, kv = module(*args_for(layers, slots))
        after = [part for pair in layers for part in pair]
        assert all(torch.equal(a, b) for a, b in zip(after, before)), "the export path wrote its cache input"
        torch.testing.assert_close(logits, eager_logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(kv, eager_kv, atol=1e-6, rtol=0)
