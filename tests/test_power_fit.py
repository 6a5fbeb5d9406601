"""validate.power_fit and the burst-ceiling stage of validate.calibrate, on synthetic measurements generated
from known parameters: the fits must give those parameters back."""

import numpy as np
import pandas as pd
import pytest

import hwspecs
import simulator
from hwspecs.calibration import Calibration, EffectParams
from simulator.kinds.gemm import gemm_op
from simulator.power import op_work, power_model
from validate.calibrate import fit_burst_ceilings, split_fit_score
from validate.power_fit import fit_power, power_points

HW = hwspecs.resolve_hardware("h200-sxm-141gb")
TRUE = {"power.active_power_frac": 0.05, "power.tensor_power_frac": 1.6, "power.tensor_8bit_energy_frac": 0.6,
        "power.dram_power_frac": 0.75, "power.voltage_exponent": 1.6}
IDLE_W = 130.0


def _sustained_rows():
    rows = []
    shapes = [(8192, 8192, 8192), (4096, 4096, 4096), (2048, 8192, 8192), (1, 28672, 4096), (64, 4096, 4096)]
    for i, ((m, n, k), dtype) in enumerate([(s, "bf16") for s in shapes] + [(s, "fp8") for s in shapes[:3]]):
        rows.append({"case_id": f"c{i}", "kernel": "gemm", "impl": "vendor", "state": "sustained", "dtype": dtype,
                     "m": m, "n": n, "k": k, "flops": 2.0 * m * n * k, "median_s": 1e-4 * (1 + i),
                     "mean_sm_clock_hz": HW.boost_clock_hz * (0.7 + 0.04 * i), "mean_power_w": 1.0})
    return pd.DataFrame(rows)


def _true_power(pts: pd.DataFrame, prm: EffectParams) -> np.ndarray:
    p, phi = prm.power, pts["phi"].to_numpy()
    g, e_dev = p.voltage_exponent, p.hbm_device_j_per_byte
    per_flop = p.tensor_power_frac * HW.tdp_w / HW.peak("bf16")
    dram_j = p.dram_power_frac * HW.tdp_w / HW.memory_bandwidth_bytes_per_s
    stage_j = p.stage_power_frac * HW.tdp_w / HW.memory_bandwidth_bytes_per_s
    tensor = (pts["tensor_flops_per_s"] + p.tensor_8bit_energy_frac * pts["tensor_8bit_flops_per_s"]
              + p.attention_flop_energy_frac * pts["attention_flops_per_s"])
    # decode attention: its DRAM bytes also pass through shared memory into the tensor cores (clock-scaled)
    staged = np.where(pts["case"].str.contains("attention_decode"), pts["dram_bytes_per_s"], 0.0)
    return (IDLE_W + p.active_power_frac * HW.tdp_w * phi ** (1 + g) + per_flop * phi ** g * tensor
            + (e_dev + (dram_j - e_dev) * phi ** g) * pts["dram_bytes_per_s"] + stage_j * phi ** g * staged).to_numpy()


def _decode_rows(n: int) -> pd.DataFrame:
    rows = []
    for i, (b, ctx) in enumerate([(64, 4096), (16, 32768), (128, 2048), (8, 1024)][:n]):
        kv_bytes = 2 * b * ctx * 8 * 128 * 2
        rows.append({"case_id": f"attention_decode-{i}", "kernel": "attention_decode", "impl": "vendor",
                     "state": "sustained", "dtype": "bf16", "batch": b, "context": ctx, "n_q_heads": 32,
                     "n_kv_heads": 8, "head_dim": 128, "paged": False, "flops": 4.0 * b * 32 * ctx * 128,
                     "median_s": kv_bytes / 4.3e12, "mean_sm_clock_hz": HW.boost_clock_hz * (0.93 - 0.02 * i),
                     "mean_power_w": 1.0})
    return pd.DataFrame(rows)


def test_fit_power_recovers_the_staged_byte_energy():
    """Decode attention drawing more than its DRAM bytes and FLOPs explain gives its staged-byte energy back,
    the other terms unchanged."""
    truth = EffectParams(impl="vendor").with_values({**TRUE, "power.stage_power_frac": 0.2})
    states = pd.concat([_sustained_rows(), _decode_rows(3)], ignore_index=True)
    states["mean_power_w"] = _true_power(power_points(HW, None, states), truth)
    power = pd.DataFrame([{"run": "idle", "mean_power_w": IDLE_W, "mean_sm_clock_hz": 345e6}])
    fitted = fit_power(HW, power, states, EffectParams(impl="vendor")).power
    assert fitted.stage_power_frac == pytest.approx(0.2, rel=1e-3)
    assert fitted.dram_power_frac == pytest.approx(0.75, rel=1e-3)
    assert fitted.tensor_power_frac == pytest.approx(1.6, rel=1e-3)


def _prefill_attention_rows(n: int) -> pd.DataFrame:
    rows = []
    for i, (b, seq) in enumerate([(4, 4096), (1, 8192), (8, 1024), (2, 8192)][:n]):
        flops = 2 * 2.0 * b * 32 * seq * seq * 128 / 2  # QKᵀ and PV, causal half
        rows.append({"case_id": f"attention_prefill-{i}", "kernel": "attention_prefill", "impl": "vendor",
                     "state": "sustained", "dtype": "bf16", "batch": b, "seq": seq, "n_q_heads": 32, "n_kv_heads": 8,
                     "head_dim": 128, "causal": True, "flops": flops, "median_s": flops / 6e14,
                     "mean_sm_clock_hz": HW.boost_clock_hz * (0.86 - 0.01 * i), "mean_power_w": 1.0})
    return pd.DataFrame(rows)


def test_fit_power_recovers_the_prefill_attention_flop_energy():
    """Flash attention drawing more per FLOP than a GEMM gives that ratio back, the GEMM terms unchanged."""
    truth = EffectParams(impl="vendor").with_values({**TRUE, "power.attention_flop_energy_frac": 1.3})
    states = pd.concat([_sustained_rows(), _prefill_attention_rows(3)], ignore_index=True)
    states["mean_power_w"] = _true_power(power_points(HW, None, states), truth)
    power = pd.DataFrame([{"run": "idle", "mean_power_w": IDLE_W, "mean_sm_clock_hz": 345e6}])
    fitted = fit_power(HW, power, states, EffectParams(impl="vendor")).power
    assert fitted.attention_flop_energy_frac == pytest.approx(1.3, rel=1e-3)
    assert fitted.tensor_power_frac == pytest.approx(1.6, rel=1e-3)


def test_with_one_prefill_attention_case_its_flop_energy_keeps_its_prior():
    truth = EffectParams(impl="vendor").with_values({**TRUE, "power.attention_flop_energy_frac": 1.3})
    states = pd.concat([_sustained_rows(), _prefill_attention_rows(1)], ignore_index=True)
    states["mean_power_w"] = _true_power(power_points(HW, None, states), truth)
    power = pd.DataFrame([{"run": "idle", "mean_power_w": IDLE_W, "mean_sm_clock_hz": 345e6}])
    start = EffectParams(impl="vendor").with_values({"power.attention_flop_energy_frac": 0.9})
    assert fit_power(HW, power, states, start).power.attention_flop_energy_frac == 0.9


def test_with_one_decode_case_the_staged_energy_keeps_its_prior():
    truth = EffectParams(impl="vendor").with_values({**TRUE, "power.stage_power_frac": 0.2})
    states = pd.concat([_sustained_rows(), _decode_rows(1)], ignore_index=True)
    states["mean_power_w"] = _true_power(power_points(HW, None, states), truth)
    power = pd.DataFrame([{"run": "idle", "mean_power_w": IDLE_W, "mean_sm_clock_hz": 345e6}])
    start = EffectParams(impl="vendor").with_values({"power.stage_power_frac": 0.3})
    assert fit_power(HW, power, states, start).power.stage_power_frac == 0.3


def test_fit_power_recovers_the_8bit_energy_ratio():
    truth = EffectParams(impl="vendor").with_values(TRUE)
    states = _sustained_rows()
    pts = power_points(HW, None, states)
    states["mean_power_w"] = _true_power(pts, truth)
    power = pd.DataFrame([{"run": "idle", "mean_power_w": IDLE_W, "mean_sm_clock_hz": 345e6}])
    fitted = fit_power(HW, power, states, EffectParams(impl="vendor")).power
    assert fitted.voltage_exponent == pytest.approx(1.6)
    assert fitted.tensor_8bit_energy_frac == pytest.approx(0.6, rel=1e-3)
    assert fitted.tensor_power_frac == pytest.approx(1.6, rel=1e-3)
    assert fitted.idle_power_w == IDLE_W


def test_without_8bit_cases_the_ratio_keeps_its_prior():
    states = _sustained_rows()
    states = states[states["dtype"] == "bf16"].copy()
    pts = power_points(HW, None, states)
    states["mean_power_w"] = _true_power(pts, EffectParams(impl="vendor").with_values(TRUE))
    power = pd.DataFrame([{"run": "idle", "mean_power_w": IDLE_W, "mean_sm_clock_hz": 345e6}])
    start = EffectParams(impl="vendor")
    assert fit_power(HW, power, states, start).power.tensor_8bit_energy_frac == start.power.tensor_8bit_energy_frac


def test_an_8bit_flop_costs_the_ratio_of_a_bf16_flop():
    pm = power_model(HW, EffectParams(impl="vendor").with_values(TRUE))
    bf16 = gemm_op("g", 4096, 4096, 4096, weight_dtype="bf16", act_dtype="bf16")
    fp8 = gemm_op("g", 4096, 4096, 4096, weight_dtype="fp8", act_dtype="fp8")
    assert op_work(pm, fp8)[0] == pytest.approx(0.6 * op_work(pm, bf16)[0])


def test_burst_rows_set_the_gemm_ceiling():
    """Burst times generated at efficiency 0.9 move a 0.8 start back to 0.9 (shape terms held)."""
    truth = EffectParams(impl="vendor").with_values({"gemm.efficiency_frac": 0.9})
    cal = Calibration.from_params(HW.id, truth, truth)
    rows = []
    for m, n, k in [(8192, 8192, 8192), (4096, 4096, 4096), (2048, 8192, 8192), (4096, 14336, 4096)]:
        t = simulator.predict_kernel(HW, "gemm", calibration=cal, state="burst", m=m, n=n, k=k).time_s
        rows.append({"case_id": f"g{m}-{n}-{k}", "kernel": "gemm", "impl": "vendor", "state": "burst",
                     "dtype": "bf16", "m": m, "n": n, "k": k, "median_s": t})
    states = split_fit_score(pd.DataFrame(rows), by=("kernel", "state")).assign(split="fit")
    start = EffectParams(impl="vendor").with_values({"gemm.efficiency_frac": 0.8})
    assert fit_burst_ceilings(HW, states, start).gemm.efficiency_frac == pytest.approx(0.9, rel=1e-3)


def test_eager_host_cost_is_eager_minus_the_measured_burst_time():
    """Eager calls 12 µs above their own burst times give 12 µs, whatever the model thinks the GPU time is."""
    from validate.power_fit import fit_eager_calls

    rows = []
    for i, (m, t_gpu) in enumerate([(16, 13e-6), (64, 12e-6), (1024, 45e-6)]):
        shape = {"kernel": "gemm", "impl": "vendor", "dtype": "bf16", "m": m, "n": 4096, "k": 4096}
        rows.append({"case_id": f"g{m}", "state": "burst", "split": "score", "median_s": t_gpu * 1.3, **shape})
        rows.append({"case_id": f"g{m}", "state": "eager_call", "split": "fit", "median_s": t_gpu * 1.3 + 12e-6,
                     **shape})
    fitted = fit_eager_calls(HW, pd.DataFrame(rows), EffectParams(impl="vendor"))
    assert fitted.host.eager_call_cublas_s == pytest.approx(12e-6)


def test_fit_clock_bound_recovers_the_gemm_beta_of_the_non_dram_time():
    """Sustained times generated at β = 0.7 (of the time a GEMM's DRAM traffic leaves) from the model at the
    clocks given: the fit returns 0.7, though each case's own slowdown ratio differs with its DRAM share."""
    from validate.power_fit import fit_clock_bound

    truth = EffectParams(impl="vendor").with_values({"gemm.clock_bound_frac": 0.7})
    cal = Calibration.from_params(HW.id, truth, truth)
    rows, ratios = [], []
    for i, (m, n, k) in enumerate([(8192, 8192, 8192), (4096, 4096, 4096), (256, 14336, 4096), (512, 28672, 4096)]):
        shape = {"kernel": "gemm", "impl": "vendor", "dtype": "bf16", "m": m, "n": n, "k": k}
        clock = HW.boost_clock_hz * (0.7 + 0.02 * i)
        burst = simulator.predict_kernel(HW, "gemm", calibration=cal, state="burst", m=m, n=n, k=k).time_s
        slow = simulator.predict_kernel(HW, "gemm", calibration=cal, state="burst", sm_clock_hz=clock,
                                        m=m, n=n, k=k).time_s
        ratios.append((slow / burst - 1) / (HW.boost_clock_hz / clock - 1))
        rows += [{"case_id": f"g{i}", "state": "burst", "split": "fit", "median_s": burst,
                  "mean_sm_clock_hz": HW.boost_clock_hz, **shape},
                 {"case_id": f"g{i}", "state": "sustained", "split": "fit", "median_s": slow,
                  "mean_sm_clock_hz": clock, **shape}]
    assert max(ratios) - min(ratios) > 0.2  # the DRAM-heavy shapes slow less per clock drop
    fitted = fit_clock_bound(pd.DataFrame(rows), EffectParams(impl="vendor"), HW)
    # not exact: the knee with the memory term and the latency floor also soften the slowdown
    assert fitted.gemm.clock_bound_frac == pytest.approx(0.7, rel=0.05)
    plain = fit_clock_bound(pd.DataFrame(rows), EffectParams(impl="vendor"))  # without the DRAM share
    assert plain.gemm.clock_bound_frac < 0.9 * 0.7
