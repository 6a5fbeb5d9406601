"""Tiers as a path, swaps between tiers, time-sharing, and offloaded / in-storage decode, checked against
bounds computed here from the spec files' own numbers."""

import itertools

import pytest

import hwspecs
import simulator
from hwspecs.schema import System
from simulator import memory, offload, switching
from simulator.api import resolve, setup
from simulator.tiers import TierError, layerwise_s, load_tiers, tier_path
from workloads.kv_methods import parse

PRM = resolve("h100-sxm5-80gb", None, "auto")[2]


def link_rate(spec_id):
    return hwspecs.load(spec_id).bandwidth_bytes_per_s


@pytest.mark.parametrize("system", ["dgx-h100", "instinfer-a6000", "hgx-h200"])
def test_every_swap_is_no_faster_than_its_slowest_link(system):
    t = load_tiers(system)
    gpu_link = link_rate(t.gpu.host_link)
    for a, b in itertools.permutations(t.names, 2):
        p = tier_path(t, a, b, PRM)
        n = 3.0e9
        assert p.time_s(n) >= n / min(h.bytes_per_s for h in p.hops)
        if "hbm" in (a, b):  # the GPU's own PCIe link, at its datasheet rate, bounds every GPU transfer
            assert p.time_s(n) >= n / gpu_link
        for drive in {"nvme", "csd"} & {a, b}:  # and each drive's link and flash rate, × drives striped
            d, k = t.drive(drive)
            rate = d.seq_write_bytes_per_s if b == drive else d.seq_read_bytes_per_s
            assert p.time_s(n) >= n / (k * min(rate, link_rate(d.host_link)))


def test_swap_bytes_are_the_requests_kv_with_metadata():
    sw = switching.swap("h200-sxm-141gb", "mistral-7b", 20_000, tier="ddr", kv_method="kivi-4")
    hw, m, prm, _ = resolve("h200-sxm-141gb", "mistral-7b", "auto")
    dense = 2 * 32 * 8 * 128 * 2 * 20_000
    assert sw.kv_bytes == pytest.approx(dense * parse("kivi-4").effective_bits(20_000) / 16, rel=1e-12)
    s = setup(hw, m, prm, "bf16", "bf16", "bf16", 1, kv_method="kivi-4")
    assert sw.kv_bytes == pytest.approx(float(memory.kv_bytes_per_sequence(s, 20_000, 1)))
    assert sw.swap_s >= sw.kv_bytes / sw.slowest_out_bytes_per_s + sw.kv_bytes / sw.slowest_in_bytes_per_s


def test_recompute_wins_short_and_swap_wins_long():
    # An H100 with one Gen4 NVMe drive (no P2P), Qwen2-7B (131K context): swap costs bytes/link per token,
    # recompute FLOPs per token that grow with context (attention).
    box = System(id="h100-one-ssd", name="test", sources={}, accelerator="h100-sxm5-80gb", n_accelerators=1,
                 host_memory="ddr5-4800-8ch", storage=["nvme-gen4-ssd"])
    short = switching.swap(None, "qwen2-7b", 4096, system=box, tier="nvme")
    long = switching.swap(None, "qwen2-7b", 100_000, system=box, tier="nvme")
    assert short.cheaper == "recompute" and long.cheaper == "swap"
    assert short.recompute_alone_s >= short.recompute_s


def test_tiers_the_system_lacks_are_named():
    with pytest.raises(TierError, match="tier 'csd' is not in system dgx-h100"):
        switching.swap(None, "mistral-7b", 1000, system="dgx-h100", tier="csd")
    with pytest.raises(TierError, match="tier must be one of"):
        switching.swap("h100-sxm5-80gb", "mistral-7b", 1000, tier="tape")
    with pytest.raises(TierError, match="n_csd .3. exceeds the 2 CSDs"):
        offload.offload_throughput("instinfer-a6000", "opt-13b", [16], methods=("instinfer",), n_csd=3)


def test_layerwise_overlap_bounds():
    for tx, tc in ((1.0, 3.0), (3.0, 1.0), (2.0, 2.0)):
        t = layerwise_s(tx, tc, 40)
        assert max(tx, tc) <= t <= tx + tc


def test_time_sharing_loses_time_only_past_capacity():
    d = switching.time_sharing("h200-sxm-141gb", "mistral-7b", 30_000, [2, 40, 200], 0.5, tier="ddr")
    k = int(d["resident_users"].iloc[0])
    assert k > 2
    first, *rest = d.to_dict("records")
    assert first["lost_frac"] == 0.0 and first["switched_users"] == 0
    for r in rest:
        assert r["switched_users"] == min(k, r["n_users"] - k)
        assert r["lost_frac"] == pytest.approx(r["switch_s"] / (0.5 + r["switch_s"]))
    assert rest[0]["lost_frac"] <= rest[1]["lost_frac"]


def test_csd_attention_is_bounded_by_internal_flash_bandwidth():
    t = load_tiers("instinfer-a6000")
    hw, m, prm, _ = resolve(t.gpu, "opt-13b", "auto")
    s = setup(hw, m, prm, "fp16", "fp16", "fp16", 1)
    csd = hwspecs.load("csd-instinfer")
    internal = csd.n_flash_channels * csd.flash_channel_bytes_per_s  # 8 × 1.4 GB/s
    for batch, context, n, frac in ((16, 1500, 1, 1.0), (64, 2000, 2, 1.0), (256, 1200, 2, 0.125)):
        kv = batch * context * 2 * m.n_layers * m.n_kv_heads * m.head_dim * 2  # fp16 K and V, every layer
        step = offload.instinfer_step_s(s, t, batch, context, sparse_frac=frac, n_csd=n)
        assert step >= kv * frac / (n * internal)
    # the GPU never receives the KV: doubling the host link's speed cannot make a dense step faster than flash
    assert offload.instinfer_step_s(s, t, 64, 2000, n_csd=1) > offload.instinfer_step_s(s, t, 64, 2000, n_csd=2)


def test_flexgen_step_streams_the_kv_over_the_drive():
    t = load_tiers("instinfer-a6000")
    hw, m, prm, _ = resolve(t.gpu, "opt-13b", "auto")
    s = setup(hw, m, prm, "fp16", "fp16", "fp16", 1)
    ssd = hwspecs.load("nvme-gen4-ssd")
    kv = 32 * 1800 * 2 * m.n_layers * m.n_kv_heads * m.head_dim * 2
    assert offload.flexgen_step_s(s, t, 32, 1800, "nvme") >= kv / ssd.seq_read_bytes_per_s


def test_context_switch_reaches_the_tiers_with_its_old_arguments():
    host = simulator.context_switch("h100-sxm5-80gb", "mistral-7b", 20_000)  # the original host-link path
    ddr = simulator.context_switch("h100-sxm5-80gb", "mistral-7b", 20_000, tier="ddr")
    assert ddr.swap_s == pytest.approx(host.swap_s, rel=1e-9) and ddr.kv_bytes == host.kv_bytes
    nvme = simulator.context_switch(None, "mistral-7b", 20_000, tier="nvme", system="dgx-h100")
    assert nvme.swap_s > ddr.swap_s
    with pytest.raises(ValueError, match="tier must be one of host, ssd, ddr, nvme, csd"):
        simulator.context_switch("h100-sxm5-80gb", "mistral-7b", 20_000, tier="tape")
