"""Property tests over every preset model and GPU: physical sanity of the analytical model."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwspecs
import simulator
import workloads
from simulator import engine, memory
from simulator.ops import forward_op_list

MODELS = workloads.available_models()
GPUS = [g for g in hwspecs.available("gpu") if "bf16" in hwspecs.load(g).peak_flops_per_s]  # bf16 runs (not the T4)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

batches = st.integers(1, 512)
contexts = st.integers(1, 131072)


def _fits(hw_id, model_id):
    hw, m = hwspecs.load(hw_id), workloads.load_model(model_id)
    return m.total_params * 2 < 0.9 * hw.memory_bytes  # bf16 weights within vLLM's default 0.9 share


@SETTINGS
@given(model_id=st.sampled_from(MODELS), hw_id=st.sampled_from(GPUS), batch=batches, ctx=contexts,
       graph=st.booleans())
def test_decode_step_positive_finite_and_above_weight_bytes(model_id, hw_id, batch, ctx, graph):
    step = simulator.decode_step(hw_id, model_id, batch, ctx, cuda_graph=graph, check_fit=False)
    m = workloads.load_model(model_id)
    assert math.isfinite(step.time_s) and step.time_s > 0
    # Every decode step streams at least all non-embedding weights (MoE: the experts it touches).
    assert step.hbm_bytes >= (m.active_params - m.embedding_params) * 2


@SETTINGS
@given(model_id=st.sampled_from(MODELS), batch=batches, ctx=st.integers(1, 65536), d_ctx=st.integers(0, 65536),
       d_batch=st.integers(0, 512))
def test_decode_step_non_decreasing_in_context_and_batch(model_id, batch, ctx, d_ctx, d_batch):
    hw = "h200-sxm-141gb"
    t = simulator.decode_step(hw, model_id, batch, ctx, check_fit=False).time_s
    assert simulator.decode_step(hw, model_id, batch, ctx + d_ctx, check_fit=False).time_s >= t * (1 - 1e-9)
    assert simulator.decode_step(hw, model_id, batch + d_batch, ctx, check_fit=False).time_s >= t * (1 - 1e-9)


@SETTINGS
@given(model_id=st.sampled_from(MODELS), hw_id=st.sampled_from(GPUS), batch=st.integers(1, 64),
       prompt=st.integers(1, 16384), calibrated=st.booleans())
def test_prefill_not_faster_than_datasheet_roofline(model_id, hw_id, batch, prompt, calibrated):
    """No prediction beats max(FLOPs / dense peak, bytes / HBM bandwidth), op by op."""
    hw = hwspecs.load(hw_id)
    p = simulator.prefill(hw, model_id, batch, prompt, calibration="auto" if calibrated else None, check_fit=False)
    assert math.isfinite(p.time_s) and p.time_s > 0
    df = p.ops
    peak = hw.peak("bf16")
    bound = sum(max(r.flops / (peak if r.kind != "elementwise" else hw.peak("fp32")),
                    r.hbm_bytes / hw.memory_bandwidth_bytes_per_s) * r.n_repeats for r in df.itertuples())
    assert p.time_s >= bound
    m = workloads.load_model(model_id)
    # 2 FLOPs per parameter per token for every layer weight (embedding rows are gathered, not multiplied;
    # the LM head runs on the last token only).
    layer_params = m.active_params - m.embedding_params - m.norm_params - m.lm_head_params
    assert p.flops >= 2 * layer_params * batch * prompt


@pytest.mark.parametrize("model_id", [i for i in MODELS if not workloads.load_model(i).layer_groups])
def test_gqa_reduces_kv_bytes_by_head_ratio_in_every_path(model_id):
    m = workloads.load_model(model_id)
    mha = m.model_copy(update={"n_kv_heads": m.n_q_heads})
    ratio = m.n_q_heads // m.n_kv_heads
    assert mha.kv_bytes_per_token("bf16") == ratio * m.kv_bytes_per_token("bf16")
    for q, kv in ((1, 3000), (512, 512)):  # decode and prefill paths
        ops, ops_mha = forward_op_list(m, 2, q, kv), forward_op_list(mha, 2, q, kv)
        for field in ("kv_read_bytes", "kv_write_bytes"):
            ours = sum(getattr(o, field) * o.n_repeats for o in ops)
            theirs = sum(getattr(o, field) * o.n_repeats for o in ops_mha)
            assert theirs == ratio * ours
    # memory model and context switching use the same formula
    assert (simulator.context_switch("h200-sxm-141gb", mha, 4096, check_fit=False).kv_bytes
            == ratio * simulator.context_switch("h200-sxm-141gb", m, 4096, check_fit=False).kv_bytes)


def test_decode_kv_read_equals_kv_per_token_times_context():
    m = workloads.load_model("llama-3-70b")
    ops = forward_op_list(m, 8, 1, 5000, kv_dtype="fp8")
    read = sum(o.kv_read_bytes * o.n_repeats for o in ops)
    assert read == 8 * 5000 * m.kv_bytes_per_token("fp8")


def test_dense_not_sparse_peaks_are_used():
    # A compute-bound GEMM can never beat dense peak; with sparse peaks (2x) it would predict < this.
    k = simulator.predict_kernel("h100-sxm5-80gb", "gemm", calibration=None, m=16384, n=16384, k=16384, dtype="bf16")
    assert k.bound == "compute"
    assert k.time_s >= k.flops / 989.4e12
    assert k.time_s < 2 * k.flops / 989.4e12


def test_decimal_rates_for_bandwidth():
    # A 3.35e12 B/s device copying 1e10 bytes (read + write) cannot take less than 2e10 / 3.35e12 s,
    # and a 2**40-based bandwidth (3.68e12) would make this roughly 9% faster than the bound allows.
    k = simulator.predict_kernel("h100-sxm5-80gb", "copy", calibration=None, bytes=int(1e10))
    assert k.hbm_bytes == 2e10
    assert k.time_s >= 2e10 / 3.35e12


def test_decode_total_matches_brute_force_sum_of_steps():
    """The quadrature over context equals the per-token sum of decode steps."""
    hw, model = "h100-sxm5-80gb", "llama-3-8b"
    for batch, prompt, out, graph in ((1, 100, 300, True), (48, 4000, 200, True), (4, 10, 50, False)):
        sc = workloads.Scenario(batch=batch, prompt_tokens=prompt, output_tokens=out, cuda_graph=graph)
        p = simulator.predict(hw, model, sc)
        brute = sum(simulator.decode_step(hw, model, batch, prompt + j, cuda_graph=graph, check_fit=False).time_s
                    for j in range(1, out))
        assert p.e2e_s - p.ttft_s == pytest.approx(brute, rel=2e-3)
        assert p.tpot_s == pytest.approx(brute / (out - 1), rel=2e-3)


def test_sweep_matches_predict_and_is_cartesian():
    df = simulator.sweep("h100-sxm5-80gb", "mistral-7b", batch=[1, 8, 64], prompt_tokens=[128, 4096],
                         output_tokens=[1, 64], kv_dtype=["bf16", "fp8"])
    assert len(df) == 3 * 2 * 2 * 2
    for r in df.sample(6, random_state=0).itertuples():
        sc = workloads.Scenario(batch=r.batch, prompt_tokens=r.prompt_tokens, output_tokens=r.output_tokens,
                                kv_dtype=r.kv_dtype)
        p = simulator.predict("h100-sxm5-80gb", "mistral-7b", sc)
        # prefill settles its clock under the power limit; the search stops within a milliwatt of it
        assert r.ttft_s == pytest.approx(p.ttft_s, rel=1e-6)
        assert r.tpot_s == pytest.approx(p.tpot_s, rel=1e-6)
        assert r.energy_per_output_token_j == pytest.approx(p.energy_per_output_token_j, rel=1e-6)
        assert r.max_concurrency == p.max_concurrency
        assert r.peak_memory_bytes == pytest.approx(p.peak_memory_bytes, rel=1e-12)


def test_eager_decode_is_host_bound_at_batch_one():
    eager = simulator.decode_step("h100-sxm5-80gb", "llama-3-8b", 1, 128, cuda_graph=False)
    graph = simulator.decode_step("h100-sxm5-80gb", "llama-3-8b", 1, 128, cuda_graph=True)
    assert eager.time_s > graph.time_s
    assert eager.bound == "launch"


def test_concurrency_counts_paged_blocks():
    m = workloads.load_model("llama-3-8b")
    hw = hwspecs.load("h100-sxm5-80gb")
    sc = dict(prompt_tokens=1000, output_tokens=1)  # 1001 tokens → 63 blocks of 16 = 1008 slots
    c = simulator.predict(hw, m, workloads.Scenario(batch=1, **sc)).max_concurrency
    s = engine.make_setup(hw, m, hwspecs.DEFAULT_CALIBRATION.params("vendor"))
    # n requests admitted together: 0.9 of the device holds the bf16 weights, n × 1008 KV slots and the
    # activations of one prefill pass over n × 1000 tokens (fp32 logits for n sequences).
    free = 0.9 * hw.memory_bytes - m.total_params * 2
    per_request = 1008 * m.kv_bytes_per_token("bf16") + memory.activation_bytes(s, 1000, 1)
    assert c == int(free // per_request)


def test_tensor_parallel_splits_weights_and_adds_allreduce():
    sc1 = workloads.Scenario(batch=8, prompt_tokens=1024, output_tokens=64, tensor_parallel=1)
    sc8 = sc1.model_copy(update={"tensor_parallel": 8})
    with pytest.raises(simulator.DoesNotFitError):
        simulator.predict("h100-sxm5-80gb", "llama-3-70b", sc1)
    p8 = simulator.predict("h100-sxm5-80gb", "llama-3-70b", sc8)
    assert p8.memory["weights_bytes"] == pytest.approx(workloads.load_model("llama-3-70b").total_params * 2 / 8)
    assert (p8.ops.kind == "allreduce").any()
    with pytest.raises(ValueError, match="scale-up link"):
        simulator.predict("rtx-4090", "llama-2-7b", workloads.Scenario(tensor_parallel=2))


def test_context_switch_compares_swap_and_recompute():
    short = simulator.context_switch("a100-sxm4-80gb", "yi-34b", 4096, check_fit=False)
    assert short.swap_s == pytest.approx(short.swap_out_s + short.swap_in_s)
    assert short.kv_bytes == 4096 * 245_760
    # PCIe Gen4 x16: 31.5 GB/s per direction at most
    assert short.swap_in_s >= short.kv_bytes / 31.5e9
    ssd = simulator.context_switch("a100-sxm4-80gb", "yi-34b", 4096, tier="ssd", storage="nvme-gen4-ssd", check_fit=False)
    assert ssd.swap_s > short.swap_s
    assert short.cheaper in ("swap", "recompute")


def test_paged_decode_attention_is_an_option_and_not_faster():
    shape = dict(batch=8, context=4096, n_q_heads=32, n_kv_heads=8, head_dim=128, dtype="bf16")
    flat = simulator.predict_kernel("h100-sxm5-80gb", "attention_decode", impl="triton", **shape)
    paged = simulator.predict_kernel("h100-sxm5-80gb", "attention_decode", impl="triton", paged=True, **shape)
    assert paged.hbm_bytes == flat.hbm_bytes
    assert paged.time_s >= flat.time_s


def test_pageable_host_to_device_slows_past_the_fast_size_and_pinned_does_not():
    from hwspecs.calibration import Calibration, EffectParams
    prm = EffectParams().with_values({"host.h2d_pageable_efficiency_frac": 0.3, "host.pageable_fast_bytes": 50e6,
                                      "host.h2d_pageable_large_efficiency_frac": 0.12,
                                      "host.d2h_pageable_efficiency_frac": 0.25})
    cal = Calibration.from_params("h100-sxm5-80gb", prm, prm)
    link_bytes_per_s = 63.0e9  # PCIe Gen5 x16 per direction, the H100 SXM's host link

    def marginal_bytes_per_s(kind, pinned, lo, hi):
        t = [simulator.predict_kernel("h100-sxm5-80gb", kind, calibration=cal, bytes=n, pinned=pinned).time_s
             for n in (lo, hi)]
        return (hi - lo) / (t[1] - t[0])

    # below the fast size: the small-copy rate; beyond it: the large-copy rate (host→device only)
    assert marginal_bytes_per_s("h2d", False, 10e6, 40e6) == pytest.approx(0.3 * link_bytes_per_s, rel=1e-6)
    assert marginal_bytes_per_s("h2d", False, 100e6, 1e9) == pytest.approx(0.12 * link_bytes_per_s, rel=1e-6)
    assert marginal_bytes_per_s("d2h", False, 100e6, 1e9) == pytest.approx(0.25 * link_bytes_per_s, rel=1e-6)
    assert marginal_bytes_per_s("h2d", True, 100e6, 1e9) == pytest.approx(
        prm.link.pinned_efficiency_frac * link_bytes_per_s, rel=1e-6)
    # context switching uses the same copy model: a pageable swap-in of a large KV cache is slower
    big = simulator.context_switch("h100-sxm5-80gb", "llama-3-8b", 32768, calibration=cal, pinned=False, check_fit=False)
    assert big.kv_bytes > 1e9
    assert big.swap_in_s > big.kv_bytes / (0.3 * link_bytes_per_s)


def test_triton_decode_follows_the_kernels_split_steps():
    # One sequence, 8 KV heads: at 1023 tokens the kernel runs 1 split (8 programs), at 1024 it runs 2
    # and is faster although it reads more; the smooth vendor model never gets faster with context.
    shape = dict(batch=1, n_q_heads=32, n_kv_heads=8, head_dim=128, dtype="bf16")
    t = {impl: [simulator.predict_kernel("h100-sxm5-80gb", "attention_decode", impl=impl, context=c, **shape).time_s
                for c in (1023, 1024)] for impl in ("triton", "vendor")}
    assert t["triton"][1] < t["triton"][0]
    assert t["vendor"][1] >= t["vendor"][0]


@settings(max_examples=60, deadline=None)
@given(p=st.floats(1.0, 16.0), n=st.integers(1, 40), zeros=st.booleans())
def test_knee_table_matches_the_closed_form(p, n, zeros):
    """Arrays take the knee from an interpolated table; it must equal (tc^p + tm^p)^(1/p) to 2e-7, with
    broadcasting, both-zero entries and exact ties (r = 1, the table's last point) included; p spans the
    calibration bounds of ``gemm.knee_exponent``."""
    import numpy as np

    from simulator.roofline import knee

    rng = np.random.default_rng(n)
    tc = rng.random((n, 1)) * 10.0 ** rng.uniform(-7, -1, (n, 1))
    tm = rng.random((1, n + 3)) * 1e-4
    tm[0, 0] = tc[0, 0]  # a tie
    if zeros:
        tc[0, 0] = tm[0, 0] = tm[0, 1] = 0.0
    exact = (tc ** p + tm ** p) ** (1.0 / p)
    got = knee(tc, tm, p)
    assert got.shape == exact.shape
    assert np.allclose(got, exact, rtol=2e-7, atol=0.0)
    assert float(knee(tc[0, 0], tm[0, 2], p)) == pytest.approx(float(exact[0, 2]), rel=1e-12)
