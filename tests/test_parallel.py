"""Tensor, pipeline and expert parallelism, data-parallel attention, collectives and overlap."""

import math

import pytest

import hwspecs
import simulator
import workloads
from simulator import engine, parallel
from simulator.kinds import collective
from simulator.ops import forward_op_list
from workloads.parallel import Parallel, ParallelError


def _setup(hw_id, model_id, par=None, hardware=None, **kw):
    hw = hwspecs.resolve_hardware(hw_id)
    m = workloads.load_model(model_id)
    s = engine.make_setup(hw, m, hwspecs.calibration_for(hw, None).params("vendor"),
                          tp=(par or Parallel()).tensor_parallel, **kw)
    return parallel.attach(s, hardware or hw_id, par)


def test_tensor_parallel_divides_sharded_weights_and_adds_two_allreduces_per_layer():
    m = workloads.load_model("llama-3-70b")
    w1 = parallel.weight_bytes_per_gpu(m, Parallel(), "bf16")
    w8 = parallel.weight_bytes_per_gpu(m, Parallel(tensor_parallel=8), "bf16")
    # RMSNorm weights (2 per layer + final) are replicated; everything else is split 8 ways
    replicated = (2 * m.n_layers + 1) * m.hidden * 2
    assert w1 == m.total_params * 2
    assert w8 == pytest.approx((w1 - replicated) / 8 + replicated)
    ops = forward_op_list(m, 4, 1, 1000, parallel=Parallel(tensor_parallel=8))
    reduces = [op for op in ops if op.kind == collective.ALL_REDUCE]
    assert sum(op.n_repeats for op in reduces) == 2 * m.n_layers
    assert all(op.shape["n_ranks"] == 8 for op in reduces)


def test_pipeline_parallel_leaves_a_stage_of_the_weights_and_adds_the_bubble():
    m = workloads.load_model("llama-3-70b")
    w1 = parallel.weight_bytes_per_gpu(m, Parallel(), "bf16")
    w4 = parallel.weight_bytes_per_gpu(m, Parallel(pipeline_parallel=4), "bf16")
    # 20 of 80 layers, plus the embedding table (first stage) or LM head (last): ~1/4
    layer = (w1 - 2 * m.vocab_size * m.hidden * 2 - m.hidden * 2) / m.n_layers
    assert w4 == pytest.approx(20 * layer + m.vocab_size * m.hidden * 2 + m.hidden * 2, rel=1e-9)
    assert 0.25 < w4 / w1 < 0.27
    for micro in (1, 4):
        s = _setup("dgx-h100", "llama-3-8b", Parallel(pipeline_parallel=2, micro_batches=micro))
        one = engine.prefill(s, 8 / micro, 1024)
        rate, lat = s.links["pp"]
        boundary = lat + 8 / micro * 1024 * 4096 * 2 / rate
        got = parallel.prefill(s, 8, 1024)
        # GPipe: (m + p − 1) stage times of t(B/m)/p + one boundary transfer
        assert float(got.time_s) == pytest.approx((micro + 1) * (float(one.time_s) / 2 + boundary))
    # the bubble shrinks with more micro-batches: 4 micro-batches beat 1
    t1 = parallel.prefill(_setup("dgx-h100", "llama-3-8b", Parallel(pipeline_parallel=2, micro_batches=1)), 8, 1024)
    t4 = parallel.prefill(_setup("dgx-h100", "llama-3-8b", Parallel(pipeline_parallel=2, micro_batches=4)), 8, 1024)
    assert float(t4.time_s) < float(t1.time_s)


def test_expert_parallel_all_to_all_bytes_are_tokens_topk_hidden_dtype_per_direction():
    m = workloads.load_model("deepseek-v3")
    par = Parallel(expert_parallel=8, data_parallel_attention=True)
    batch = 64  # 8 sequences per data-parallel attention rank
    ops = forward_op_list(m, batch, 1, 4096, parallel=par)
    for name in ("moe.moe_dispatch", "moe.moe_combine"):
        op = next(o for o in ops if o.name == name)
        local_tokens = batch / 8
        assert op.act_read_bytes == local_tokens * 8 * 7168 * 2  # tokens × top-k × hidden × bf16
        assert op.shape["link_bytes"] == pytest.approx(op.act_read_bytes * 7 / 8)  # 1/8 stays on this GPU
    # each GPU holds 32 of 256 experts; at batch 1 it touches k/ep = 1 of them on average
    one = forward_op_list(m, 1, 1, 4096, parallel=par)
    expert = next(o for o in one if o.name == "moe.experts_down")
    assert expert.shape["groups"] == pytest.approx(8 / 8)
    # attention is data-parallel: every GPU runs all 128 heads on its own sequences
    attn = next(o for o in ops if o.name == "moe.attention")
    assert attn.shape["n_q_heads"] == 128 and attn.shape["batch"] == 8


def test_expert_parallel_weights_per_gpu():
    m = workloads.load_model("deepseek-v3")
    ep8 = parallel.weight_bytes_per_gpu(m, Parallel(expert_parallel=8, data_parallel_attention=True), "fp8")
    moe = m.groups[1].mlp
    routed = m.groups[1].n_layers * moe.n_experts * moe.expert_params(m.hidden)
    # routed experts split 8 ways, the rest (attention, dense layers, shared experts, embeddings) replicated;
    # fp8: 1 byte per weight, the embedding and LM head kept in bf16 (2 bytes)
    edge = m.embedding_params + m.lm_head_params
    assert ep8 == pytest.approx(m.total_params - routed + routed / 8 + edge, rel=1e-9)


@pytest.mark.parametrize("model,kw,match", [
    ("llama-3-8b", {"pipeline_parallel": 64}, "pipeline_parallel"),
    ("qwen3-30b-a3b", {"expert_parallel": 3, "tensor_parallel": 3}, "expert_parallel=3 must divide"),
    ("llama-3-8b", {"expert_parallel": 2, "tensor_parallel": 2}, "mixture-of-experts"),
    ("deepseek-v3", {"data_parallel_attention": True}, "expert_parallel > 1"),
    ("deepseek-v3", {"expert_parallel": 8, "tensor_parallel": 2}, "must divide tensor_parallel"),
    ("deepseek-v3", {"expert_parallel": 16, "data_parallel_attention": True}, "16 GPUs"),
])
def test_bad_degrees_are_clear_errors(model, kw, match):
    with pytest.raises(ParallelError, match=match):
        Parallel(**kw).check(workloads.load_model(model), 8, "hgx-h200")


def test_too_many_gpus_for_the_system_through_the_api():
    sc = workloads.Scenario(tensor_parallel=8, pipeline_parallel=2, weight_dtype="fp8")
    with pytest.raises(ValueError, match="needs 16 GPUs"):
        simulator.predict("hgx-h200", "deepseek-v3", sc)


def test_collective_algorithms_and_links():
    topo = parallel.topology("dgx-h100-2node")
    inside, across = parallel.group_link(topo, 8), parallel.group_link(topo, 16)
    assert inside["link_bytes_per_s"] == 450e9 and across["link_bytes_per_s"] == 50e9
    prm = hwspecs.calibration_for(hwspecs.resolve_hardware("h100-sxm5-80gb"), None).params("vendor")
    hw = hwspecs.resolve_hardware("h100-sxm5-80gb")

    def t(n_bytes, alg, ranks=8):
        link = parallel.group_link(topo, ranks, alg)
        op = collective.allreduce_op("ar", n_bytes / 2, ranks, link=link)
        tc, tm, lat, tl = collective.time(op, hw, prm, None, None, None)
        return lat + max(tm, tl)
    # ring: 2(t−1) = 14 link latencies; tree: 2·log2(8) = 6; tree sends 2n, ring 2·7/8·n
    assert t(1024, "tree") < t(1024, "ring")
    assert t(1 << 30, "ring") < t(1 << 30, "tree")
    assert t(1 << 30, "ring", 16) > 8 * t(1 << 30, "ring", 8)  # 50 vs 450 GB/s per direction
    with pytest.raises(ValueError, match="collective_algorithm"):
        parallel.group_link(topo, 8, "butterfly")


def test_pcie_without_peer_access_halves_the_rate():
    topo = parallel.topology(hwspecs.load("workstation-4x-rtx-4090").model_copy(update={"peer_access": False}))
    assert topo.intra_bytes_per_s == pytest.approx(hwspecs.load("pcie-gen4-x16").bandwidth_bytes_per_s / 2)


def test_overlap_hides_at_most_the_collectives_on_the_critical_path():
    s = _setup("hgx-h200", "llama-3-70b", Parallel(tensor_parallel=8))
    pf = engine.prefill(s, 8, 2048)
    comm = sum(float(t.time_s) * op.n_repeats for op, t in pf.pairs if op.kind in parallel.COLLECTIVE_KINDS)
    hidden = parallel.hidden_comm_s(pf.pairs)
    assert 0 < hidden <= comm * (1 + 1e-12)
    # a chain without overlap: the critical path is the plain sum
    ops = [(op, float(t.time_s)) for op, t in pf.pairs if op.scope == "layer"]
    g = parallel.layer_graph(ops, overlap=False, n_unrolled=1)
    assert parallel.critical_path_s(g) == pytest.approx(sum(x for _, x in ops))
    base = simulator.predict("hgx-h200", "llama-3-70b", workloads.Scenario(tensor_parallel=8))
    over = simulator.predict("hgx-h200", "llama-3-70b", workloads.Scenario(tensor_parallel=8, overlap_comm=True))
    assert over.ttft_s < base.ttft_s and over.tpot_s < base.tpot_s


def test_data_parallel_attention_multiplies_concurrency():
    sc = dict(prompt_tokens=8192, output_tokens=1024, weight_dtype="fp8", batch=8, prefill_chunk_tokens=8192)
    dp = simulator.predict("hgx-h200", "deepseek-v3", workloads.Scenario(
        expert_parallel=8, data_parallel_attention=True, **sc))
    s = _setup("hgx-h200", "deepseek-v3", Parallel(expert_parallel=8, data_parallel_attention=True),
               weight_dtype="fp8")
    from simulator import memory
    per_seq = memory.kv_bytes_per_sequence(s, 9216)
    # each GPU keeps its own sequences' latent KV: the replica holds 8× one GPU's share
    assert float(per_seq) * 8 == pytest.approx(math.ceil(9216 / 16) * 16 * 70_272)
    assert dp.max_concurrency > 8


def test_sweep_and_predict_time_tensor_parallel_collectives_alike():
    df = simulator.sweep("h200-sxm-141gb", "llama-3-70b", batch=[8], prompt_tokens=[1024], output_tokens=[64],
                         tensor_parallel=[8])
    p = simulator.predict("h200-sxm-141gb", "llama-3-70b", workloads.Scenario(batch=8, prompt_tokens=1024,
                                                                                output_tokens=64, tensor_parallel=8))
    assert df.tpot_s.iloc[0] == pytest.approx(p.tpot_s) and df.ttft_s.iloc[0] == pytest.approx(p.ttft_s)


def test_cli_rejects_bad_degrees_with_exit_2():
    from typer.testing import CliRunner

    from faces.cli import app
    r = CliRunner().invoke(app, ["predict", "-m", "llama-3-8b", "-H", "hgx-h200", "--pipeline-parallel", "64"])
    assert r.exit_code == 2 and "pipeline_parallel=64" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["predict", "-m", "deepseek-v3", "-H", "hgx-h200", "--expert-parallel", "8",
                                 "--data-parallel-attention", "--weight-dtype", "fp8", "--json"])
    assert r.exit_code == 0, r.output


def test_expert_imbalance_through_predict():
    sc = dict(batch=64, prompt_tokens=512, output_tokens=32)
    even = simulator.predict("h200-sxm-141gb", "qwen3-30b-a3b", workloads.Scenario(**sc))
    skew = simulator.predict("h200-sxm-141gb", "qwen3-30b-a3b", workloads.Scenario(expert_imbalance=4.0, **sc))
    # a hot set of 32 of 128 experts: fewer expert weights streamed per decode step, a shorter step
    assert skew.tpot_s < even.tpot_s
    with pytest.raises(ValueError, match="expert_imbalance"):
        workloads.Scenario(expert_imbalance=0.5)
