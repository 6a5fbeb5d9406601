"""Today's model families: parameter counts against torch meta-device modules and published figures,
MLA/sliding-window KV, MoE decode weight bytes, old YAMLs unchanged."""

import pytest

import workloads
from simulator.ops import expected_experts_touched, forward_op_list
from tests.torch_reference_families import count_params_meta

FAMILIES = ["deepseek-v3", "qwen3-30b-a3b", "qwen3-235b-a22b", "gpt-oss-20b", "gpt-oss-120b", "gemma-3-27b",
            "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mixtral-8x22b", "qwen2.5-72b"]


@pytest.mark.parametrize("model_id", FAMILIES)
def test_param_count_matches_meta_module(model_id):
    m = workloads.load_model(model_id)
    assert m.total_params == count_params_meta(m)


# (total, active, relative tolerance, active counted without embeddings?) — published figures:
# DeepSeek-V3: 671B total / 37B active, arXiv 2412.19437 abstract (MTP module excluded);
# Qwen3: Hugging Face safetensors totals (30,532,122,624 and 235,093,634,560), 3.3B / 22B active;
# gpt-oss: model card arXiv 2508.10925 Table 1: 116.83B / 5.13B and 20.91B / 3.61B (active excludes
# the embedding table); Gemma 3 27B: 27B text decoder (the 27.4B checkpoint adds a 0.4B vision tower);
# Llama 3.1, Qwen2.5, Mixtral-8x22B: Hugging Face safetensors totals; Mixtral-8x22B 39B active
# (mistral.ai/news/mixtral-8x22b).
PUBLISHED = {
    "deepseek-v3": (671e9, 37e9, 0.02, False),
    "qwen3-30b-a3b": (30_532_122_624, 3.3e9, 0.02, False),
    "qwen3-235b-a22b": (235_093_634_560, 22e9, 0.02, False),
    "gpt-oss-120b": (116.83e9, 5.13e9, 0.001, True),
    "gpt-oss-20b": (20.91e9, 3.61e9, 0.001, True),
    "gemma-3-27b": (27.0e9, 27.0e9, 0.01, False),
    "llama-3.1-8b": (8_030_261_248, 8_030_261_248, 0.0, False),
    "llama-3.1-70b": (70_553_706_496, 70_553_706_496, 0.0, False),
    "llama-3.1-405b": (405_853_388_800, 405_853_388_800, 0.0, False),
    "qwen2.5-72b": (72_706_203_648, 72_706_203_648, 0.0, False),
    "mixtral-8x22b": (140_620_634_112, 39e9, 0.01, False),
}


@pytest.mark.parametrize("model_id", PUBLISHED)
def test_param_count_matches_published(model_id):
    total, active, rel, no_embed = PUBLISHED[model_id]
    m = workloads.load_model(model_id)
    assert m.total_params == pytest.approx(total, rel=rel, abs=0)
    got_active = m.active_params - (m.embedding_params if no_embed else 0)
    assert got_active == pytest.approx(active, rel=max(rel, 0.02), abs=0)


def test_deepseek_v3_kv_bytes_per_token_bf16():
    # 61 layers × (kv_lora_rank 512 + rope 64) × 2 bytes (arXiv 2412.19437 / 2405.04434)
    assert workloads.load_model("deepseek-v3").kv_bytes_per_token("bf16") == 70_272


def test_mla_kv_is_replicated_not_split_by_tensor_parallel():
    m = workloads.load_model("deepseek-v3")
    assert m.kv_bytes_per_token("bf16", tensor_parallel=8) == 70_272
    g = workloads.load_model("llama-3-70b")
    assert g.kv_bytes_per_token("bf16", tensor_parallel=8) * 8 == g.kv_bytes_per_token("bf16")


def _attn_kv_read(ops, name):
    return next(op.kv_read_bytes for op in ops if op.name == name)


def test_sliding_window_decode_kv_bytes_stop_growing_past_the_window():
    m = workloads.load_model("gpt-oss-20b")  # window 128 on the "sliding" group
    reads = {c: forward_op_list(m, 1, 1, c) for c in (64, 128, 129, 4096)}
    slide = {c: _attn_kv_read(ops, "sliding.attention") for c, ops in reads.items()}
    full = {c: _attn_kv_read(ops, "full.attention") for c, ops in reads.items()}
    assert slide[64] < slide[128] == slide[129] == slide[4096]
    assert full[128] < full[129] < full[4096]
    # one layer's K+V of 8 heads × 64 dims × 2 bytes per token, capped at 128 tokens
    assert slide[4096] == 128 * 2 * 8 * 64 * 2


def test_moe_decode_weight_bytes_from_k_experts_toward_all():
    m = workloads.load_model("qwen3-30b-a3b")
    g = m.groups[0]
    one_expert = g.mlp.expert_params(m.hidden) * 2  # bf16 bytes of one expert (gate, up, down)

    def expert_bytes(batch):
        ops = forward_op_list(m, batch, 1, 100)
        return sum(op.weight_bytes for op in ops if op.name.startswith("experts_"))

    assert expert_bytes(1) == pytest.approx(g.mlp.top_k * one_expert)
    seq = [expert_bytes(b) for b in (1, 4, 16, 64, 1024)]
    assert all(a < b for a, b in zip(seq, seq[1:]))
    assert seq[-1] == pytest.approx(g.mlp.n_experts * one_expert, rel=1e-3)
    # uniform routing: E·(1 − (1 − k/E)^B) experts at batch 16
    assert expert_bytes(16) / one_expert == pytest.approx(128 * (1 - (1 - 8 / 128) ** 16))


def test_routing_imbalance_touches_fewer_experts():
    assert expected_experts_touched(128, 8, 1, imbalance=2.0) == pytest.approx(8)
    assert expected_experts_touched(128, 8, 64, imbalance=2.0) < expected_experts_touched(128, 8, 64)
    assert expected_experts_touched(128, 8, 10**6, imbalance=2.0) == pytest.approx(64)


def test_window_larger_than_context_limit_is_rejected():
    data = workloads.load_model("gpt-oss-20b").model_dump(exclude_unset=True)
    data["max_context_tokens"] = 64
    with pytest.raises(ValueError, match="window_tokens"):
        workloads.ModelSpec(**data)


def test_layer_counts_must_add_up():
    data = workloads.load_model("deepseek-v3").model_dump(exclude_unset=True)
    data["n_layers"] = 60
    with pytest.raises(ValueError, match="n_layers"):
        workloads.ModelSpec(**data)


@pytest.mark.parametrize("model_id", ["deepseek-v3", "qwen3-30b-a3b", "gemma-3-27b"])
def test_decode_step_at_large_batch_streams_every_weight_once(model_id):
    m = workloads.load_model(model_id)
    batch = 10**7  # every expert touched; the embedding gathers rows instead of streaming the table
    ops = forward_op_list(m, batch, 1, 10)
    streamed = sum(op.weight_bytes * op.n_repeats for op in ops if op.name != "embedding") / 2
    expected = m.total_params - m.embedding_params + (m.vocab_size * m.hidden if m.tied_embeddings else 0)
    assert streamed == pytest.approx(expected, rel=1e-6)


def test_mla_decode_reads_the_latent_cache_and_prefill_materialises_kv():
    m = workloads.load_model("deepseek-v3")
    dec = next(op for op in forward_op_list(m, 4, 1, 1000) if op.name == "moe.attention")
    assert dec.kv_read_bytes == 4 * 1000 * 576 * 2  # the latent + rope key, shared by 128 heads
    # absorbed: 2·(576 + 512) FLOPs per head per cached token
    assert dec.flops == pytest.approx(2 * 4 * 128 * 1000 * (576 + 512))
    pre = forward_op_list(m, 1, 1000, 1000)
    names = {op.name for op in pre}
    assert "moe.kv_b_proj" in names and "moe.q_absorb" not in names
    att = next(op for op in pre if op.name == "moe.attention")
    assert att.flops == pytest.approx(2 * 128 * 1000 * 1000 / 2 * (192 + 128))


def test_windowed_decode_total_equals_the_per_step_sum():
    import hwspecs
    from simulator import decode, engine, memory
    hw = hwspecs.load("h100-sxm5-80gb")
    s = engine.make_setup(hw, workloads.load_model("gpt-oss-20b"), hwspecs.calibration_for(hw, None).params("vendor"))
    P, T = 100, 60  # crosses the 128-token window
    total = decode.decode_total(s, decode.decode_coeffs(s, 2), P, T)
    steps = [engine.decode_step(s, 2, P + j) for j in range(1, T)]
    assert float(total.flops) == pytest.approx(sum(float(x.flops) for x in steps), rel=1e-9)
    assert float(total.hbm_bytes) == pytest.approx(sum(float(x.hbm_bytes) for x in steps), rel=1e-9)
    # memory: the sliding half of the layers holds 128 tokens (8 blocks of 16) however long the context
    grow = memory.kv_bytes_per_sequence(s, 100_000) - memory.kv_bytes_per_sequence(s, 50_000)
    assert grow == 50_000 * 12 * 2 * 8 * 64 * 2
