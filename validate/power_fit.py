"""Fit the power group (``hwspecs.effects.PowerParams``) to NVML measurements of steady load.

Each steady run gives one point: SM clock fraction φ, mean board power, and the rates of the work it
sustained — tensor FLOP/s and DRAM bytes/s (kernels back to back, so the SMs are busy all the time):

    P − P_idle = a·TDP·φ^(1+γ) + k_t·(TDP / peak)·φ^γ·R_tensor + k_d·(TDP / bandwidth)·R_dram
                 + k_s·(TDP / bandwidth)·φ^γ·R_staged

(R_staged: the DRAM bytes/s of decode attention, ``simulator.power.STAGED_KINDS``; k_s is fitted where at
least ``MIN_STAGED_POINTS`` such cases were measured, else keeps its prior; 8-bit and prefill-attention FLOPs
enter R_tensor at their energy ratios, each fitted as its own column where enough such cases were measured)
linear in (a, k_t, k_d, k_s) for a fixed γ: non-negative least squares on relative residuals for each γ of a
grid, keeping the best (in calibration: the γ whose settled clocks best match the sustained rows,
``fit_power``). P_idle is the idle run's power. Points: ``power.csv`` (compute: 8192³ bf16
GEMMs; memory: 2 GiB copies; idle) and the "sustained" rows of ``states.csv`` (kernels of every class
held at the power limit). With fewer than ``MIN_POINTS_FOR_SHAPE`` points only k_t and k_d are fitted
(a and γ keep their priors).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from hwspecs.calibration import EffectParams
import simulator
from simulator.kinds import KINDS
from simulator.kinds.gemm import flops as gemm_flops
from simulator.power import EIGHT_BIT_DTYPES, SOFTMAX_KINDS, STAGED_KINDS, TENSOR_KINDS, power_model

POWER_GEMM_SIZE = 8192  # validate/power.py's compute run: back-to-back 8192³ bf16 GEMMs
GAMMA_GRID = np.round(np.arange(0.0, 3.01, 0.1), 2)
MIN_POINTS_FOR_SHAPE = 5


def power_points(hw, power: pd.DataFrame | None, states: pd.DataFrame | None,
                 params: EffectParams | None = None) -> pd.DataFrame:
    """One row per steady run: case, phi, power_w, tensor FLOP/s in 16-bit and in 8-bit dtypes
    (tensor_flops_per_s, tensor_8bit_flops_per_s; 16-bit prefill attention's apart, attention_flops_per_s),
    dram_bytes_per_s, staged_bytes_per_s (the DRAM bytes/s of a STAGED_KINDS kernel, else 0). ``params``: the effects the layer steps' DRAM traffic is counted with
    (``simulator.power.PowerModel.dram_bytes``: the elementwise ops' unfused passes); default the priors."""
    rows = []
    if power is not None:
        for r in power.to_dict("records"):
            phi = r["mean_sm_clock_hz"] / hw.boost_clock_hz
            if r["run"] == "compute" and r.get("achieved_flops_per_s", 0) > 0:
                n = POWER_GEMM_SIZE
                dram = r["achieved_flops_per_s"] / gemm_flops(n, n, n) * _dram_bytes(
                    hw, {"kernel": "gemm", "m": n, "n": n, "k": n, "dtype": "bf16"})
                rows.append(("power:compute", phi, r["mean_power_w"], r["achieved_flops_per_s"], 0.0, 0.0, dram, 0.0))
            elif r["run"] == "memory" and r.get("achieved_bytes_per_s", 0) > 0:
                rows.append(("power:memory", phi, r["mean_power_w"], 0.0, 0.0, 0.0, r["achieved_bytes_per_s"], 0.0))
    if states is not None and len(states):
        sus = states[(states["state"] == "sustained") & (states["median_s"] > 0) & (states["mean_power_w"] > 0)]
        for r in sus.to_dict("records"):
            work = _layer_work(hw, r, params) if r["kernel"] == "layer" else _kernel_work(hw, r)
            rows.append((f"states:{r['case_id']}", r["mean_sm_clock_hz"] / hw.boost_clock_hz, r["mean_power_w"],
                         *(w / r["median_s"] for w in work)))
    return pd.DataFrame(rows, columns=["case", "phi", "power_w", "tensor_flops_per_s", "tensor_8bit_flops_per_s",
                                       "attention_flops_per_s", "dram_bytes_per_s", "staged_bytes_per_s"])


def _work(kind: str, flops: float, dtype: str, dram: float) -> np.ndarray:
    """(16-bit tensor FLOPs but prefill attention's, 8-bit tensor FLOPs, 16-bit prefill-attention FLOPs, DRAM
    bytes, staged DRAM bytes) of one kernel; the columns ``power_points`` reports per second."""
    flops = flops if kind in TENSOR_KINDS else 0.0
    eight = dtype in EIGHT_BIT_DTYPES
    softmax = kind in SOFTMAX_KINDS and not eight  # 8-bit attention: with the 8-bit FLOPs (none measured)
    return np.array([0.0 if eight or softmax else flops, flops if eight else 0.0, flops if softmax else 0.0, dram,
                     dram if kind in STAGED_KINDS else 0.0])


def _kernel_work(hw, row) -> tuple[float, ...]:
    """``_work`` of one measured kernel call."""
    return tuple(float(x) for x in _work(row["kernel"], row["flops"], row.get("dtype"), _dram_bytes(hw, row)))


def _layer_work(hw, row, params: EffectParams | None) -> tuple[float, ...]:
    """``_kernel_work`` of one measured decoder-layer step: summed over the model's ops of the step, their
    DRAM bytes as the power model counts them under ``params``."""
    from validate.rows import layer_result

    params = EffectParams(impl="vendor") if params is None else params
    pm = power_model(hw, params, "burst")
    out = sum(op.n_repeats * _work(op.kind, op.flops, op.compute_dtype, pm.dram_bytes(op))
              for op, _ in layer_result(hw, row, params, "burst").pairs)
    return tuple(float(x) for x in out)


def _dram_bytes(hw, row) -> float:
    """The model's DRAM bytes of a measured kernel (tile re-reads included): the traffic that drew power."""
    shape = KINDS[row["kernel"]].shape_from_row(row)
    return simulator.predict_kernel(hw, row["kernel"], calibration=None, state="burst", **shape).dram_bytes


def idle_power_w(power: pd.DataFrame | None) -> float | None:
    if power is None:
        return None
    idle = power[power["run"] == "idle"]["mean_power_w"]
    return float(idle.iloc[0]) if len(idle) and idle.iloc[0] > 0 else None


MIN_8BIT_POINTS = 2  # 8-bit cases needed to fit their energy per FLOP apart from bf16's
MIN_STAGED_POINTS = 2  # decode-attention cases needed to fit the staged-byte energy (k_s)
MIN_ATTENTION_POINTS = 2  # prefill-attention cases needed to fit their energy per FLOP apart from GEMMs'


def _design(hw, pts: pd.DataFrame, gamma: float, eight_bit_frac: float | None, staged: bool,
            attention_frac: float | None = 1.0) -> np.ndarray:
    """Columns multiplying (a, k_t, k_d) — plus k_s (staged bytes) when ``staged``, k_t8 (8-bit tensor work)
    when ``eight_bit_frac`` is None and k_ta (prefill-attention work) when ``attention_frac`` is None; else
    that work joins the bf16 column at its energy ratio. The DRAM column carries the clock-scaled (on-chip)
    part only."""
    phi = pts["phi"].to_numpy()
    per_flop = hw.tdp_w / hw.peak("bf16") * phi ** gamma
    r_8, r_a = pts["tensor_8bit_flops_per_s"].to_numpy(), pts["attention_flops_per_s"].to_numpy()
    tensor = (pts["tensor_flops_per_s"].to_numpy() + (0.0 if eight_bit_frac is None else eight_bit_frac * r_8)
              + (0.0 if attention_frac is None else attention_frac * r_a))
    per_byte = hw.tdp_w / hw.memory_bandwidth_bytes_per_s * phi ** gamma
    cols = [hw.tdp_w * phi ** (1.0 + gamma), per_flop * tensor, per_byte * pts["dram_bytes_per_s"].to_numpy()]
    cols += [per_byte * pts["staged_bytes_per_s"].to_numpy()] if staged else []
    cols += [per_flop * r_8] if eight_bit_frac is None else []
    return np.column_stack(cols + ([per_flop * r_a] if attention_frac is None else []))


def fit_power(hw, power: pd.DataFrame | None, states: pd.DataFrame | None, params: EffectParams,
              gamma_by_prediction: bool = False) -> EffectParams:
    """``params`` with the power group fitted (unchanged where there is nothing to fit). The 8-bit energy
    ratio and the prefill-attention one are fitted only with enough such cases and the full shape fit, the
    staged-byte energy only with enough decode-attention cases; else each keeps its prior.

    γ: the grid value whose fit has the smallest power residual, or with ``gamma_by_prediction``
    (calibration on measured states) the one whose predictions of the sustained rows of ``states`` — time,
    power and settled clock, as ``validate.compare_states`` scores them — match best (``sustained_error``).
    Power at the measured clock hardly pins γ, the other terms trading against it. H200 fit half: that
    residual is smallest at γ = 0.6-0.8 (1.9%), where the settled clocks are 2.2-2.7% off; the predictions are
    best at 1.4-1.5 (time 2.9%, power 2.1%, clock 1.6%), where the residual is 2.5-2.6%, and from 1.3 to 1.8
    they are within 0.03 point of that."""
    pts = power_points(hw, power, states, params)
    idle = idle_power_w(power)
    if idle is None or len(pts) < 2:
        return params
    # The HBM devices' own energy per byte (e_dev) does not scale with the clock: with DRAM energy
    # e_dev + (k_d·TDP/BW − e_dev)·φ^γ per byte, the fit explains y = P − idle − e_dev·R_dram·(1 − φ^γ).
    e_dev = params.power.hbm_device_j_per_byte
    phi, r_d, r_s = (pts[c].to_numpy() for c in ("phi", "dram_bytes_per_s", "staged_bytes_per_s"))
    weight = 1.0 / pts["power_w"].to_numpy()  # relative residuals
    p = params.power
    shape = len(pts) >= MIN_POINTS_FOR_SHAPE
    own_8bit = shape and (pts["tensor_8bit_flops_per_s"] > 0).sum() >= MIN_8BIT_POINTS
    own_attn = shape and (pts["attention_flops_per_s"] > 0).sum() >= MIN_ATTENTION_POINTS
    staged = bool((r_s > 0).sum() >= MIN_STAGED_POINTS)
    frac = None if own_8bit else p.tensor_8bit_energy_frac
    attn = None if own_attn else p.attention_flop_energy_frac
    k_s = p.stage_power_frac

    def target(g):  # a staged-byte energy that is not fitted enters at its prior
        prior = 0.0 if staged else k_s * hw.tdp_w / hw.memory_bandwidth_bytes_per_s * phi ** g * r_s
        return pts["power_w"].to_numpy() - idle - e_dev * r_d * (1.0 - phi ** g) - prior

    def with_fit(coef, gamma):
        return _with_power_fit(params, idle, coef, gamma, staged, own_8bit, own_attn)

    if not shape:
        g = p.voltage_exponent
        fixed = _design(hw, pts, g, frac, staged, attn)
        coef, _ = nnls(fixed[:, 1:] * weight[:, None], (target(g) - p.active_power_frac * fixed[:, 0]) * weight)
        return with_fit(np.array([p.active_power_frac, *coef]), g)
    fits = [(*nnls(_design(hw, pts, g, frac, staged, attn) * weight[:, None], target(g) * weight)[::-1], g)
            for g in GAMMA_GRID]
    sustained = _sustained_rows(states) if gamma_by_prediction else None
    if sustained is not None and len(sustained):
        return min((with_fit(c, g) for _, c, g in fits), key=lambda q: sustained_error(hw, sustained, q))
    _, coef, gamma = min(fits, key=lambda f: f[0])
    return with_fit(coef, gamma)


def _with_power_fit(params: EffectParams, idle: float, coef, gamma: float, staged: bool, own_8bit: bool,
                    own_attn: bool) -> EffectParams:
    """``params`` with one fit's coefficients (a, k_t, k_d[, k_s][, k_t8][, k_ta]) at ``gamma``; the energy
    ratios not fitted keep their values."""
    p = params.power
    a, k_t, k_d = coef[:3]
    extra = iter(coef[3:])
    k_s = next(extra) if staged else p.stage_power_frac
    k_8 = next(extra) if own_8bit else None
    k_a = next(extra) if own_attn else None
    values = {"power.idle_power_w": idle, "power.active_power_frac": float(a), "power.tensor_power_frac": float(k_t),
              "power.dram_power_frac": float(k_d), "power.stage_power_frac": float(k_s),
              "power.voltage_exponent": float(gamma)}
    if k_8 is not None and k_t > 0:
        values["power.tensor_8bit_energy_frac"] = float(k_8 / k_t)
    if k_a is not None and k_t > 0:
        values["power.attention_flop_energy_frac"] = float(k_a / k_t)
    return params.with_values(values)


def _sustained_rows(states: pd.DataFrame | None) -> pd.DataFrame | None:
    """The sustained rows of ``states`` with a measured power and clock (kernels the model knows, layer steps)."""
    if states is None or not len(states) or "mean_sm_clock_hz" not in states:
        return None
    ok = (states["state"] == "sustained") & (states["mean_sm_clock_hz"] > 0) & (states["mean_power_w"] > 0)
    return states[ok & (states["kernel"].isin(list(KINDS)) | (states["kernel"] == "layer"))]


def sustained_error(hw, rows: pd.DataFrame, params: EffectParams) -> float:
    """Sum over time, board power and settled SM clock of the mean |predicted / measured − 1| over sustained
    ``rows``, predicted as ``validate.compare_states`` scores them under ``params``."""
    from validate.compare_states import predict_state_row

    cal = _as_calibration(hw, params)
    pred = np.array([predict_state_row(hw, r, cal) for r in rows.to_dict("records")])
    measured = rows[["median_s", "mean_power_w", "mean_sm_clock_hz"]].to_numpy(dtype=float)
    return float(np.abs(pred / measured - 1.0).mean(axis=0).sum())


def fit_eager_calls(hw, states: pd.DataFrame | None, params: EffectParams) -> EffectParams:
    """Per kernel library, the host's per-call launch cost: the median over its "eager_call" rows of the
    fit split of (one call timed with events around it − the same case's GPU time). The GPU time is the
    case's measured burst time where states.csv has it (eager calls run after idle, at boost; a model
    error in the GPU time would otherwise land in the host cost), else the predicted burst time."""
    if states is None or not len(states):
        return params
    calls = states[(states["state"] == "eager_call") & states["kernel"].isin(list(KINDS))]
    if "split" in calls:
        calls = calls[calls["split"] == "fit"]
    burst = states[states["state"] == "burst"].set_index("case_id")["median_s"]
    gaps: dict[str, list[float]] = {}
    for r in calls.to_dict("records"):
        kind = KINDS[r["kernel"]]
        gpu = burst.get(r["case_id"])
        if gpu is None or not np.isfinite(gpu):
            gpu = simulator.predict_kernel(hw, r["kernel"], calibration=_as_calibration(hw, params), impl="vendor",
                                           state="burst", **kind.shape_from_row(r)).time_s
        gaps.setdefault(kind.library, []).append(r["median_s"] - gpu)
    return params.with_values({f"host.eager_call_{lib}_s": float(max(np.median(g), 0.0)) for lib, g in gaps.items()})


def _as_calibration(hw, params: EffectParams):
    from hwspecs.calibration import Calibration

    return Calibration.from_params(hw.id, params, params)


# kernel class in states.csv → the effect field holding its clock-bound share of compute time
CLOCK_BOUND_FIELDS = {"gemm": "gemm.clock_bound_frac", "attention_prefill": "attention_prefill.clock_bound_frac"}
MIN_CLOCK_DROP_FRAC = 0.05  # cases whose clock fell less than this say nothing about β


def fit_clock_bound(states: pd.DataFrame | None, params: EffectParams, hw=None) -> EffectParams:
    """β per kernel class from the same case timed burst and sustained: t_s / t_b − 1 = β_i·(f_b / f_s − 1)
    (compute-bound cases, whose clock fell under the power limit); the median over cases, in [0, 1]. For a
    DRAM-paced kind (``OpKind.dram_paced``, needs ``hw``) β_i = β·(1 − DRAM share), the share from the
    model's DRAM bytes and compute time at boost, so each case gives β_i / (1 − share)."""
    if states is None or not len(states):
        return params
    updates = {}
    for kernel, path in CLOCK_BOUND_FIELDS.items():
        rows = states[states["kernel"] == kernel]
        burst = rows[rows["state"] == "burst"].set_index("case_id")
        sus = rows[(rows["state"] == "sustained") & (rows["split"] == "fit")].set_index("case_id")
        both = sus.join(burst, lsuffix="_s", rsuffix="_b", how="inner")
        drop = both["mean_sm_clock_hz_b"] / both["mean_sm_clock_hz_s"] - 1.0
        betas = (both["median_s_s"] / both["median_s_b"] - 1.0) / drop
        if hw is not None and KINDS[kernel].dram_paced:
            left = pd.Series([_non_dram_share(hw, r, params) for r in sus.loc[both.index].reset_index().to_dict("records")],
                             index=both.index)
            betas, drop = betas / left.where(left > 0), drop.where(left > 0)
        betas = betas[drop > MIN_CLOCK_DROP_FRAC]
        if len(betas):
            updates[path] = float(np.clip(np.median(betas), 0.0, 1.0))
    return params.with_values(updates) if updates else params


def _non_dram_share(hw, row: dict, params: EffectParams) -> float:
    """1 − DRAM share of a measured kernel's compute time at boost, as the model counts both."""
    kp = simulator.predict_kernel(hw, row["kernel"], calibration=_as_calibration(hw, params), state="burst",
                                  **KINDS[row["kernel"]].shape_from_row(row))
    return 1.0 - kp.dram_bytes / hw.memory_bandwidth_bytes_per_s / kp.compute_s if kp.compute_s > 0 else 0.0
