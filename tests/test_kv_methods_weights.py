"""Weight-only int4 (W4A16) in the op graph: bytes against the kernel's real buffers, time bounds."""

import pytest
import torch

import simulator
import workloads
from kernels import gemm_w4a16 as w4

HW, MODEL = "h100-sxm5-80gb", "llama-3-8b"


def test_w4a16_layer_gemms_move_the_packed_weights_and_scales():
    p = simulator.decode_step(HW, MODEL, 1, 1024, weight_dtype="int4")
    m = workloads.load_model(MODEL)
    ops = p.ops.set_index("op")
    for name, n, k in (("qkv_proj", (m.n_q_heads + 2 * m.n_kv_heads) * m.head_dim, m.hidden),
                       ("mlp_down", m.hidden, m.ffn_hidden)):
        packed, scales = w4.quantize(torch.empty(n, k, device="meta"))  # shapes and dtypes only
        real = packed.numel() * packed.element_size() + scales.numel() * scales.element_size()
        assert ops.loc[name, "kind"] == "gemm_w4a16"
        assert ops.loc[name, "weight_bytes"] == pytest.approx(real)
    assert ops.loc["lm_head", "kind"] == "gemm"  # stays 16-bit


def test_w4a16_decode_is_faster_than_bf16_and_no_faster_than_its_bytes():
    hw = simulator.api.resolve(HW, None, "auto")[0]
    int4 = simulator.decode_step(HW, MODEL, 1, 1024, weight_dtype="int4")
    bf16 = simulator.decode_step(HW, MODEL, 1, 1024)
    assert int4.time_s < 0.75 * bf16.time_s
    for r in int4.ops.itertuples():
        if r.kind == "gemm_w4a16":
            assert r.time_s >= r.hbm_bytes / hw.memory_bandwidth_bytes_per_s
    kp = simulator.predict_kernel(HW, "gemm_w4a16", m=1, n=4096, k=4096)
    assert kp.time_s >= w4.hbm_bytes(1, 4096, 4096) / hw.memory_bandwidth_bytes_per_s
