"""Board power and the clock the power limit allows (DVFS), for a pass of ops timed at the boost clock.

    P(φ) = P_idle + P_active·φ^(1+γ)·t_busy/t + (φ^γ·E_sm + E_dram·bytes) / t,
    E_sm = E_tensor·FLOPs_tensor + E_stage·bytes_staged


φ = SM clock / boost clock; t(φ) the pass's time at that clock (compute terms scale as 1/φ, memory terms
do not); ``hwspecs.effects.PowerParams`` defines every term and its defaults. Operating states:

- ``"burst"``: right after idle — the boost clock (or a locked clock), whatever the power;
- ``"sustained"``: the same work back to back — the clock settles at the highest φ ≤ the locked or boost
  clock whose P(φ) stays within the power limit (the device's TDP, or ``power_cap_w``), never below
  ``min_clock_frac``. Memory-bound work draws less and stays near boost; compute-bound work slows.

E_sm is the SM-side work that runs on the GPU's clock and voltage: tensor-core FLOPs, and for decode attention
(``STAGED_KINDS``) each KV byte staged through shared memory into the tensor cores and the softmax — a copy or a
GEMV moves its bytes through registers once; decode attention at the same DRAM rate drew ~100 W more on an H200
(hwperf measurement 2026-12-01, states.csv: 698-702 W at 1.81-1.86 GHz and 4.4 TB/s vs copies 608-615 W and
GEMVs 573-632 W at boost and 4.0-4.3 TB/s). Energy of a pass = P·t = idle·t + P_active·φ^(1+γ)·t_busy +
φ^γ·E_sm + E_dram·bytes, the integral of the power over the pass by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.kinds import KINDS
from simulator.kinds.base import past_l2, xp_for

STATES = ("sustained", "burst")
# Kinds whose FLOPs run on the tensor cores; the rest (norms, activations) are counted in the active power.
TENSOR_KINDS = frozenset({"gemm", "attention_prefill", "attention_decode"})
# Kinds whose FLOPs also carry an online softmax on the SMs (``PowerParams.attention_flop_energy_frac``).
SOFTMAX_KINDS = frozenset({"attention_prefill"})
# Kinds whose DRAM bytes are staged through shared memory into tensor-core work (``PowerParams.stage_power_frac``).
STAGED_KINDS = frozenset({"attention_decode"})
# Kinds whose counted bytes are the fused minimum while the calibrated time is that of unfused eager passes.
UNFUSED_KINDS = frozenset({"elementwise"})
_SETTLE_ITERATIONS = 8  # regula falsi steps: P(φ) is smooth, 8 reach ~1e-6 W
# Within 50 mW of the limit is settled: the measured power it is checked against varies by ~1% (7 W at 700 W);
# a tighter stop costs a fifth re-timing of every over-limit node of a sweep (sweep: 0.95 → 0.84 s per 1M points).
_SETTLE_TOLERANCE_W = 0.05


def sixteen_bit_dtype(hw) -> str:
    """The 16-bit tensor dtype the power scale is normalised to: bf16, or fp16 where there is none (Turing)."""
    return "bf16" if "bf16" in hw.peak_flops_per_s else "fp16"


@dataclass(frozen=True)
class PowerModel:
    state: str
    idle_w: float
    active_w: float  # clock tree and leakage of busy SMs at boost
    tensor_j_per_flop: float  # at boost
    stage_j_per_byte: float  # at boost: SM work per DRAM byte of a STAGED_KINDS op
    dram_j_per_byte: float  # at boost: moving a byte through L2, the crossbar and the HBM devices
    hbm_device_j_per_byte: float  # the HBM devices' own share, which the SM clock does not change
    gamma: float
    cap_w: float
    phi_max: float  # 1, or a locked clock / boost
    phi_min: float
    boost_clock_hz: float
    hw: Any = field(default=None, repr=False, compare=False)  # for the kinds' DRAM-traffic rules
    tensor_8bit_energy_frac: float = 0.5  # energy of an 8-bit tensor FLOP / a bf16 one
    attention_flop_energy_frac: float = 1.0  # energy of a prefill-attention FLOP / a GEMM one
    elementwise_traffic_frac: float = 1.0  # DRAM bytes an elementwise op moves / its counted bytes

    def dram_bytes(self, op):
        """DRAM bytes of one execution of ``op`` as the memory controller sees them: tile re-reads (the
        kind's rule), and for elementwise ops the unfused passes (``elementwise_traffic_frac``) where their
        temporaries, about the op's own bytes, spill past half of L2 (``simulator.kinds.base.past_l2``, the GEMM
        operands' rule); a decode step's few-MB norms and activations stay in L2."""
        dram = KINDS[op.kind].dram_bytes(op, self.hw)
        if op.kind not in UNFUSED_KINDS:
            return dram
        return past_l2(dram, self.elementwise_traffic_frac, self.hw, xp_for(dram))

    def power_w(self, phi, step_s, busy_s, sm_j, dram_bytes):
        """Mean board power of a pass of ``step_s`` (kernels busy ``busy_s``) at clock fraction ``phi``;
        ``sm_j``, ``dram_bytes``: the pass's ``op_work`` summed over its ops."""
        return self.idle_w + self.dynamic_j(phi, busy_s, sm_j, dram_bytes) / step_s

    def dynamic_j(self, phi, busy_s, sm_j, dram_bytes):
        """Energy above idle of a pass: clock tree while busy, SM work (``sm_j`` at boost), DRAM traffic."""
        phi_g = phi ** self.gamma
        on_chip = self.dram_j_per_byte - self.hbm_device_j_per_byte
        return (self.active_w * phi_g * phi * busy_s + phi_g * sm_j
                + (self.hbm_device_j_per_byte + on_chip * phi_g) * dram_bytes)


EIGHT_BIT_DTYPES = frozenset({"fp8", "int8"})


def tensor_work(kind: str, flops, dtype: str, eight_bit_energy_frac: float, attention_energy_frac: float = 1.0):
    """Tensor-core work of an op in bf16-FLOP energy units: FLOPs, × ``eight_bit_energy_frac`` for 8-bit
    dtypes (``PowerParams.tensor_8bit_energy_frac``), × ``attention_energy_frac`` for ``SOFTMAX_KINDS``
    (``PowerParams.attention_flop_energy_frac``); 0 for kinds off the tensor cores."""
    if kind not in TENSOR_KINDS:
        return 0.0
    work = flops * eight_bit_energy_frac if dtype in EIGHT_BIT_DTYPES else flops
    return work * attention_energy_frac if kind in SOFTMAX_KINDS else work


def op_work(pm: PowerModel, op):
    """(SM energy at boost in J, DRAM bytes) of one execution of ``op``: what its dynamic energy is spent
    on. SM energy: tensor work (``tensor_work``) plus, for ``STAGED_KINDS``, its DRAM bytes staged into it."""
    dram = pm.dram_bytes(op)
    sm = pm.tensor_j_per_flop * tensor_work(op.kind, op.flops, op.compute_dtype, pm.tensor_8bit_energy_frac,
                                            pm.attention_flop_energy_frac)
    return (sm + pm.stage_j_per_byte * dram if op.kind in STAGED_KINDS else sm), dram


def op_power_w(pm: PowerModel, op, t, phi):
    """Board power while one op runs (its kernel alone, at clock fraction ``phi``)."""
    return pm.power_w(phi, t.time_s, t.time_s, *op_work(pm, op))


def elementwise_traffic_frac(prm) -> float:
    """DRAM bytes an elementwise op moves per byte it counts: copy efficiency / elementwise efficiency, at least 1.

    The op counts the fused minimum (an RMSNorm reads x and writes its output: 4 B per bf16 element), but its
    time is calibrated on eager PyTorch layers (``MemoryParams.elementwise_efficiency_frac``, 0.17 of HBM
    bandwidth on the H200), where the norm is seven kernels through fp32 temporaries (``validate/layers.py``
    ``_rms``: x.float(), pow, mean, rsqrt, two multiplies, .to(bf16); ~36 B per element), RoPE and SiLU·up
    several more. Each of those passes streams at about the copy rate, so the traffic behind the measured time
    is the counted bytes × copy efficiency / elementwise efficiency (5.2× on the H200), and where it reaches
    DRAM (``PowerModel.dram_bytes``) that traffic draws DRAM power: an eager prefill layer's norms and
    activations are 28-30% of its time, and counting only their minimum bytes put its clock 4-7% above the
    measured one to fill the power limit (H200, states.csv). Fused elementwise kernels (efficiency at the copy
    rate) move their counted bytes."""
    m = prm.memory
    return max(1.0, m.copy_efficiency_frac / m.elementwise_efficiency_frac)


def power_model(hw, prm, state="sustained", power_cap_w=None, sm_clock_hz=None) -> PowerModel:
    """The power model of ``hw`` with ``prm.power``; checks the what-if inputs against the device."""
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}, got {state!r}")
    p = prm.power
    idle = hw.idle_power_w if p.idle_power_w is None else p.idle_power_w
    cap = hw.tdp_w if power_cap_w is None else _checked(power_cap_w, "power_cap_w")
    if not idle < cap <= hw.tdp_w:
        raise ValueError(f"power_cap_w must be above {hw.id}'s idle power ({idle:.0f} W) and at most its power "
                         f"limit ({hw.tdp_w:.0f} W), got {cap!r}")
    phi_max = 1.0
    if sm_clock_hz is not None:
        clock = _checked(sm_clock_hz, "sm_clock_hz")
        lo = p.min_clock_frac * hw.boost_clock_hz
        if not lo <= clock <= hw.boost_clock_hz:
            raise ValueError(f"sm_clock_hz must be between {lo / 1e6:.0f} MHz and {hw.id}'s boost clock "
                             f"({hw.boost_clock_hz / 1e6:.0f} MHz), got {clock!r}")
        phi_max = clock / hw.boost_clock_hz
    dram_j = p.dram_power_frac * hw.tdp_w / hw.memory_bandwidth_bytes_per_s
    return PowerModel(state, idle, p.active_power_frac * hw.tdp_w,
                      p.tensor_power_frac * hw.tdp_w / hw.peak(sixteen_bit_dtype(hw)),
                      p.stage_power_frac * hw.tdp_w / hw.memory_bandwidth_bytes_per_s, dram_j,
                      min(p.hbm_device_j_per_byte, dram_j), p.voltage_exponent, cap,
                      phi_max, min(p.min_clock_frac, phi_max), hw.boost_clock_hz, hw, p.tensor_8bit_energy_frac,
                      p.attention_flop_energy_frac, elementwise_traffic_frac(prm))


def _checked(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def throttle(pm: PowerModel, phi, step_s, busy_s, sm_j, dram_bytes):
    """(step_s, energy_j) of a pass at its settled clock. Where even the lowest clock draws more than the
    limit (memory-bound work under a deep cap), the power manager also stalls the SMs (clock gating):
    the pass stretches until its mean power is the limit, E_dyn / (cap − idle)."""
    dyn = pm.dynamic_j(phi, busy_s, sm_j, dram_bytes)
    if pm.state == "burst":
        return step_s, pm.idle_w * step_s + dyn
    step = np.maximum(step_s, dyn / (pm.cap_w - pm.idle_w))
    return step, pm.idle_w * step + dyn


def settle(pm: PowerModel, power_at):
    """Clock fraction φ of a pass in ``pm.state``; ``power_at(φ)`` → the pass's mean power at that clock
    (arrays broadcast). Burst: φ_max. Sustained: the largest φ ≤ φ_max with P(φ) ≤ cap — P rises with φ —
    found where φ_max draws too much; where even the lowest clock draws too much, the manager sits at its
    floor.

    The search is a secant on log(P − P_idle) against log φ: a pass's dynamic power is close to a power of
    φ (exactly φ^(1+γ) for a fully clock-bound pass, a lower power where memory time and the share 1 − β
    of compute time do not stretch), so the first step from that exponent and each secant step after it
    land within a watt, then a milliwatt (three or four re-timings of the pass)."""
    phi_max = pm.phi_max
    if pm.state == "burst":
        return phi_max
    p_hi = power_at(phi_max)
    if not np.any(p_hi > pm.cap_w):
        return phi_max
    if np.ndim(p_hi) == 0:
        return _settle_scalar(pm, power_at, float(p_hi))
    target = np.log(pm.cap_w - _SETTLE_TOLERANCE_W / 2 - pm.idle_w)
    x1, y1 = np.log(phi_max), np.log(np.maximum(p_hi - pm.idle_w, 1e-12))
    x = np.clip(x1 + (target - y1) / (1.0 + pm.gamma), np.log(pm.phi_min), x1)
    over = p_hi > pm.cap_w
    best = np.where(over, 0.0, phi_max)  # per node: the highest clock seen within the limit (0: none yet)
    done = ~over
    for _ in range(_SETTLE_ITERATIONS):
        p = power_at(np.exp(x))
        ok = p <= pm.cap_w
        best = np.where(~done & ok & (np.exp(x) > best), np.exp(x), best)
        done = done | (ok & (p > pm.cap_w - _SETTLE_TOLERANCE_W)) | (~ok & (x <= np.log(pm.phi_min)))
        if np.all(done):
            break
        y = np.log(np.maximum(p - pm.idle_w, 1e-12))
        slope = np.where(np.abs(x - x1) > 1e-12, (y - y1) / np.where(x != x1, x - x1, 1.0), 1.0 + pm.gamma)
        x1, y1 = x, y
        x = np.clip(x + (target - y) / np.maximum(slope, 0.05), np.log(pm.phi_min), np.log(phi_max))
    return np.where(best > 0.0, best, np.exp(x))  # none within the limit: the last step (throttle stretches)


def _settle_scalar(pm: PowerModel, power_at, p_hi: float) -> float:
    """``settle`` for one pass, in plain floats (numpy on 0-d values costs ~1 µs a call)."""
    target = math.log(pm.cap_w - _SETTLE_TOLERANCE_W / 2 - pm.idle_w)
    lo, hi = math.log(pm.phi_min), math.log(pm.phi_max)
    x1, y1 = hi, math.log(max(p_hi - pm.idle_w, 1e-12))
    x, best = min(max(x1 + (target - y1) / (1.0 + pm.gamma), lo), hi), None
    for _ in range(_SETTLE_ITERATIONS):
        p = float(power_at(math.exp(x)))
        if p <= pm.cap_w:
            best = math.exp(x) if best is None else max(best, math.exp(x))
            if p > pm.cap_w - _SETTLE_TOLERANCE_W:  # within the limit, by less than a milliwatt
                break
        elif x <= lo:
            break  # even the floor clock draws too much
        y = math.log(max(p - pm.idle_w, 1e-12))
        slope = (y - y1) / (x - x1) if abs(x - x1) > 1e-12 else 1.0 + pm.gamma
        x1, y1 = x, y
        x = min(max(x + (target - y) / max(slope, 0.05), lo), hi)
    return math.exp(x) if best is None else best  # none within the limit: the last step (throttle stretches)
