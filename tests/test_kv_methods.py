"""KV-compression methods: bytes against independently built buffers, and the same bytes seen by memory,
concurrency, decode and swap."""

import pytest
import torch

import simulator
import workloads
from simulator import engine, memory
from simulator.api import resolve, setup
from workloads.kv_methods import KVMethod, KVMethodError, parse

H200, MODEL = "h200-sxm-141gb", "mistral-7b"  # 32 layers, 8 kv-heads, head_dim 128, 32K context


def kivi_buffers_bytes(context, head_dim=128, bits=2, group=32, residual=128):
    """One layer, one kv-head: the buffers KIVI keeps (arXiv 2402.02750, Alg. 1), built as real tensors.
    Keys per channel: codes of the quantized tokens, one fp16 scale + zero per channel per G tokens;
    values per token: one fp16 scale + zero per token per G channels; the last R tokens in fp16."""
    q = context - residual
    per_byte = 8 // bits
    bufs = [
        torch.empty(q, head_dim // per_byte, dtype=torch.uint8),  # key codes, packed
        torch.empty(2, q // group, head_dim, dtype=torch.float16),  # key scale, zero (per channel)
        torch.empty(q, head_dim // per_byte, dtype=torch.uint8),  # value codes, packed
        torch.empty(2, q, head_dim // group, dtype=torch.float16),  # value scale, zero (per token)
        torch.empty(2, residual, head_dim, dtype=torch.float16),  # full-precision K and V window
    ]
    return sum(b.numel() * b.element_size() for b in bufs)


def test_kivi_2bit_group32_residual128_effective_bits():
    context = 4096
    dense_elements = 2 * context * 128
    expected_bits = 8 * kivi_buffers_bytes(context) / dense_elements
    assert expected_bits == pytest.approx(((context - 128) * (2 + 32 / 32) + 128 * 16) / context)  # 3.406
    assert parse("kivi-2").effective_bits(context) == pytest.approx(expected_bits, rel=1e-12)
    assert parse("kivi-4:group=64,residual=128").effective_bits(8192) == pytest.approx(
        8 * kivi_buffers_bytes(8192, bits=4, group=64) / (2 * 8192 * 128), rel=1e-12)


def test_swap_moves_the_requests_kv_including_metadata():
    context = 30_080  # a multiple of the group after the residual window
    cs = simulator.context_switch(H200, MODEL, context, kv_method="kivi-2")
    buffers = kivi_buffers_bytes(context) * 32 * 8  # every layer and kv-head
    assert cs.kv_bytes == pytest.approx(buffers, rel=1e-9)
    dense = simulator.context_switch(H200, MODEL, context)
    assert dense.kv_bytes == pytest.approx(2 * context * 32 * 8 * 128 * 2, rel=1e-12)
    assert cs.swap_s < dense.swap_s * buffers / dense.kv_bytes * 1.01


def test_concurrency_scales_with_effective_bits():
    prompt, out = 16_000, 384
    # chunked prefill: the KV, not the admission batch's activations, bounds the count
    sc = workloads.Scenario(batch=1, prompt_tokens=prompt, output_tokens=out, prefill_chunk_tokens=2048)
    dense = simulator.predict(H200, MODEL, sc)
    for name in ("kivi-8", "kivi-4", "kivi-2", "kvquant-3"):
        p = simulator.predict(H200, MODEL, sc.model_copy(update={"kv_method": name}))
        bits = parse(name).effective_bits(prompt + out)
        assert p.max_concurrency / dense.max_concurrency == pytest.approx(16 / bits, rel=0.03), name


def test_decode_time_and_bytes_follow_the_method():
    hw, m, prm, _ = resolve(H200, MODEL, "auto")
    times = {}
    for name in (None, "kivi-8", "kivi-4", "kivi-2"):
        s = setup(hw, m, prm, "bf16", "bf16", "bf16", 1, kv_method=name)
        step = engine.decode_step(s, 32, 30_000)
        attn = [op for op, _ in step.pairs if op.name == "attention"][0]
        per_seq = float(memory.kv_bytes_per_sequence(s, 30_000, 1))
        assert attn.kv_read_bytes * attn.n_repeats == pytest.approx(32 * per_seq, rel=1e-9)
        times[name] = float(step.time_s)
    assert times[None] > times["kivi-8"] > times["kivi-4"] > times["kivi-2"]


def test_h2o_reads_its_budget_not_the_context():
    a = simulator.decode_step(H200, MODEL, 8, 8_192, kv_method="h2o:budget=2048")
    b = simulator.decode_step(H200, MODEL, 8, 30_000, kv_method="h2o:budget=2048")
    full = simulator.decode_step(H200, MODEL, 8, 30_000)
    assert a.time_s == pytest.approx(b.time_s, rel=1e-6) and b.time_s < full.time_s


def test_bad_methods_are_named():
    with pytest.raises(KVMethodError, match="bits must be one of 8, 4, 3, 2"):
        parse("kivi-5")
    with pytest.raises(KVMethodError, match="budget_tokens .* larger than the context"):
        simulator.decode_step(H200, MODEL, 1, 1000, kv_method="h2o:budget=2048")
    with pytest.raises(ValueError, match="budget_tokens"):
        workloads.Scenario(prompt_tokens=100, output_tokens=10, kv_method="h2o:budget=2048")
    with pytest.raises(KVMethodError, match="group_size .*48.* must divide .*head_dim"):
        simulator.decode_step(H200, MODEL, 1, 1000, kv_method="kivi-2:group=48")
    with pytest.raises(KVMethodError, match="kv_method must be one of"):
        parse("zip-2")
    with pytest.raises(KVMethodError, match="group_size"):
        parse("kivi-2:group=0")
    assert KVMethod(family="h2o", budget_frac=0.1).kept_tokens(1000) == pytest.approx(100)
