"""The power model and the clock it allows: energy bookkeeping, caps, locks, states, bad inputs."""

import numpy as np
import pytest

import hwspecs
import simulator
import workloads
from simulator import api, decode, engine

HW, MODEL = "h100-sxm5-80gb", "llama-3-8b"


def _setup(**power):
    hw, m, prm, _ = api.resolve(HW, MODEL, "auto")
    return api.setup(hw, m, prm, "bf16", "bf16", "bf16", 1, **power)


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_pass_energy_is_the_integral_of_op_power(phase):
    # Per-op power × time, summed, plus idle power over the launch gaps = the pass's own energy.
    s = _setup()
    p = simulator.prefill(HW, MODEL, 4, 2048) if phase == "prefill" else simulator.decode_step(HW, MODEL, 32, 4096)
    ops = p.ops
    assert (ops.clock_hz == p.clock_hz).all()
    assert p.energy_j == pytest.approx(ops.energy_j.sum() + s.pm.idle_w * (p.time_s - p.gpu_s), rel=1e-9)
    assert p.energy_j == pytest.approx(p.power_w * p.time_s, rel=1e-12)


def test_decode_energy_matches_the_sum_over_steps():
    s = _setup(power_cap_w=300.0)  # low enough that large steps settle below boost
    co = decode.decode_coeffs(s, 128)
    P, T = 3000, 41
    total = decode.decode_total(s, co, P, T)
    steps = [engine.decode_step(s, 128, P + j) for j in range(1, T)]
    assert float(total.time_s) == pytest.approx(sum(float(x.time_s) for x in steps), rel=2e-3)
    assert float(total.energy_j) == pytest.approx(sum(float(x.energy_j) for x in steps), rel=2e-3)


@pytest.mark.parametrize("cap", [700.0, 560.0, 420.0, 350.0, 250.0])
def test_sustained_power_never_exceeds_the_cap(cap):
    for batch, prompt in ((1, 128), (8, 2048), (64, 8192)):
        for r in (simulator.prefill(HW, MODEL, batch, prompt, power_cap_w=cap, check_fit=False),
                  simulator.decode_step(HW, MODEL, batch * 8, prompt, power_cap_w=cap, check_fit=False)):
            assert r.power_w <= cap * (1 + 1e-9)
    for kernel, shape in (("gemm", dict(m=8192, n=8192, k=8192)), ("copy", dict(bytes=2**30))):
        assert simulator.predict_kernel(HW, kernel, power_cap_w=cap, **shape).power_w <= cap * (1 + 1e-9)


def test_a_lower_cap_never_makes_anything_faster():
    caps = [700.0, 630.0, 560.0, 490.0, 420.0, 350.0, 280.0]
    for batch in (1, 16, 96):  # batch 128 of 2048 + 256 tokens no longer fits in one prefill pass (0.9 share)
        preds = [simulator.predict(HW, MODEL, workloads.Scenario(batch=batch, power_cap_w=c)) for c in caps]
        for a, b in zip(preds, preds[1:]):
            assert b.ttft_s >= a.ttft_s * (1 - 1e-9)
            assert b.tpot_s >= a.tpot_s * (1 - 1e-9)
            assert b.prefill_clock_hz <= a.prefill_clock_hz * (1 + 1e-9)
    df = simulator.sweep(HW, MODEL, batch=[1, 64], prompt_tokens=[512, 8192], output_tokens=[128], power_cap_w=caps)
    for _, g in df.groupby(["batch", "prompt_tokens"]):
        g = g.sort_values("power_cap_w", ascending=False)
        assert (np.diff(g.ttft_s.to_numpy()) >= -1e-12).all()
        assert (np.diff(g.tpot_s.to_numpy()) >= -1e-12).all()


def test_half_cap_slows_prefill_far_more_than_decode():
    # Splitwise and POLCA measured decode nearly insensitive to power caps, prefill not.
    # 7936 + 256 output tokens = Llama-3-8B's 8192-token context
    full = simulator.predict(HW, MODEL, workloads.Scenario(batch=16, prompt_tokens=7936))
    half = simulator.predict(HW, MODEL, workloads.Scenario(batch=16, prompt_tokens=7936, power_cap_w=350.0))
    prefill_slowdown = half.ttft_s / full.ttft_s - 1
    decode_slowdown = half.tpot_s / full.tpot_s - 1
    assert prefill_slowdown > 0.15
    assert decode_slowdown < prefill_slowdown / 3


def test_memory_bound_work_keeps_its_clock_near_boost():
    hw = hwspecs.load(HW)
    assert simulator.decode_step(HW, MODEL, 1, 4096).clock_hz >= 0.97 * hw.boost_clock_hz
    gemv = simulator.predict_kernel(HW, "gemm", m=1, n=28672, k=4096)
    big = simulator.predict_kernel(HW, "gemm", m=8192, n=8192, k=8192)
    assert gemv.clock_hz >= 0.97 * hw.boost_clock_hz
    assert big.clock_hz < 0.9 * hw.boost_clock_hz  # compute-bound: held at the power limit


def test_burst_runs_at_boost_and_is_faster_than_sustained():
    hw = hwspecs.load(HW)
    burst = simulator.predict_kernel(HW, "gemm", m=8192, n=8192, k=8192, state="burst")
    sus = simulator.predict_kernel(HW, "gemm", m=8192, n=8192, k=8192, state="sustained")
    assert burst.clock_hz == hw.boost_clock_hz
    assert burst.power_w > hw.tdp_w  # boost is a transient: the limit is what sustained operation obeys
    assert sus.time_s > 1.1 * burst.time_s
    p = simulator.predict(HW, MODEL, workloads.Scenario(state="burst"))
    assert p.prefill_clock_hz == hw.boost_clock_hz and p.state == "burst"


def test_a_locked_clock_slows_compute_and_saves_power():
    hw = hwspecs.load(HW)
    lock = 0.6 * hw.boost_clock_hz
    free = simulator.prefill(HW, MODEL, 4, 4096, state="burst")
    locked = simulator.prefill(HW, MODEL, 4, 4096, state="burst", sm_clock_hz=lock)
    assert locked.clock_hz == pytest.approx(lock)
    assert locked.time_s > free.time_s and locked.power_w < free.power_w


def test_eager_call_adds_the_library_launch():
    prm = hwspecs.calibration_for(hwspecs.load(HW)).params("vendor")
    g = simulator.predict_kernel(HW, "gemm", m=16, n=4096, k=4096)
    e = simulator.predict_kernel(HW, "gemm", m=16, n=4096, k=4096, launch="eager")
    assert e.time_s == pytest.approx(g.time_s + prm.host.eager_call_cublas_s)
    a = simulator.predict_kernel(HW, "attention_decode", batch=8, context=1024, n_q_heads=32, n_kv_heads=8,
                                 head_dim=128, launch="eager")
    assert a.time_s - a.gpu_s == pytest.approx(prm.host.eager_call_sdpa_s)


@pytest.mark.parametrize("kw, field", [
    (dict(power_cap_w=10.0), "power_cap_w"),        # below idle
    (dict(power_cap_w=5000.0), "power_cap_w"),      # above the device's limit
    (dict(power_cap_w=-1.0), "power_cap_w"),
    (dict(power_cap_w=float("nan")), "power_cap_w"),
    (dict(sm_clock_hz=5e9), "sm_clock_hz"),         # above boost
    (dict(sm_clock_hz=1e6), "sm_clock_hz"),         # below the floor
    (dict(state="turbo"), "state"),
])
def test_bad_power_inputs_name_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        simulator.prefill(HW, MODEL, 1, 128, **kw)
    with pytest.raises(ValueError, match=field):
        simulator.predict_kernel(HW, "copy", bytes=2**20, **kw)


def test_bad_launch_names_the_field():
    with pytest.raises(ValueError, match="launch"):
        simulator.predict_kernel(HW, "copy", bytes=2**20, launch="lazy")


def test_prediction_reports_energy_per_token():
    p = simulator.predict(HW, MODEL, workloads.Scenario(batch=8, prompt_tokens=1024, output_tokens=128))
    assert p.energy_j == pytest.approx(p.energy_per_request_j * 8)
    assert p.energy_per_output_token_j == pytest.approx(p.energy_j / (8 * 128))
    assert p.output_tokens_per_j == pytest.approx(1 / p.energy_per_output_token_j)
    assert hwspecs.load(HW).idle_power_w < p.decode_power_w <= hwspecs.load(HW).tdp_w


def test_gemm_dram_bytes_follow_ncu_counts():
    # ncu's DRAM read + write bytes of cuBLAS GEMMs on an H200 (validate/measurements/h200-sxm-141gb/
    # dram_bytes.csv): large GEMMs re-read operands past L2 (the minimum count misses by 40-70%).
    import pandas as pd

    from validate.calibrate import kernel_shape
    ncu = pd.read_csv("validate/measurements/h200-sxm-141gb/dram_bytes.csv")
    bf16 = ncu[(ncu.kernel == "gemm") & (ncu.dtype == "bf16")]
    assert len(bf16) >= 10
    errors = []
    for r in bf16.to_dict("records"):
        kp = simulator.predict_kernel("h200-sxm-141gb", "gemm", **kernel_shape(r))
        measured = r["dram_read_bytes"] + r["dram_write_bytes"]
        errors.append(abs(kp.dram_bytes / measured - 1))
        assert errors[-1] < 0.21, r["case_id"]  # 1024×4096×4096: ncu sees no write (C still in L2)
        if kp.dram_bytes > 2 * kp.hbm_bytes:  # where the model re-reads, the minimum is far below DRAM
            assert kp.hbm_bytes / measured < 0.6, r["case_id"]
    assert np.mean(errors) < 0.07
    gemv = ncu[(ncu.kernel == "gemm") & (ncu.m == 1)].iloc[0].to_dict()
    kp = simulator.predict_kernel("h200-sxm-141gb", "gemm", **kernel_shape(gemv))
    assert kp.dram_bytes == kp.hbm_bytes == pytest.approx(gemv["dram_read_bytes"] + gemv["dram_write_bytes"], rel=0.01)
