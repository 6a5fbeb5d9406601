"""Steady-state serving at a given load: power and latency of one instance vs arrival rate, per clock level.

The row planner cannot run the iteration-level scheduler for 10⁵ servers × weeks, so it reads these
curves (built once from the same ``StepTable``; the tests compare them with the scheduler). For requests of
P prompt and T output tokens (means) arriving at rate λ at clock level ℓ:

- prefill busy share u_p = λ·t_p (t_p: one prompt's prefill pass);
- decode: mean sequences decoding B̄ = λ·(T−1)·t_d(b)/(1 − u_p) (Little's law; steps are stretched by the
  prefills between them), with the batch while decoding b = B̄/(1 − e^{−B̄}) (the number decoding taken as
  Poisson, as in an M/G/∞ system) and t_d(b) the decode step at context P + T/2; solved by fixed-point
  iteration from B̄ = 0 (t_d grows with b, so it converges to the least solution);
- the instance saturates where b reaches its KV/sequence limit B_cap: λ_max = B_cap / (B_cap·t_p + (T−1)·t_d(B_cap));
- power = u_p·P_prefill + u_d·P_decode(b) + (1 − u_p − u_d)·P_idle with u_d = (1 − u_p)(1 − e^{−B̄});
- TPOT = t_d(b)/(1 − u_p); TTFT = t_p + u_d·t_d(b)/2 (the iteration in flight) + u_p·t_p/(2(1 − u_p))
  (M/D/1 wait behind other prompts); E2E = TTFT + (T − 1)·TPOT.

Curves are tabulated on x = λ/λ_max ∈ [0, 1] (``N_POINTS`` points) so a lookup is an index and a blend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_POINTS = 257
X_MAX = 0.995  # the last point: the fixed point is singular at saturation
_FIXED_POINT_ITERATIONS = 200


@dataclass(frozen=True)
class LoadCurves:
    """Arrays of shape (levels, N_POINTS) over x = λ/λ_max; ``max_rate_per_s`` (levels,). Power is the
    instance's GPUs together (W); times in s."""

    x: np.ndarray
    max_rate_per_s: np.ndarray
    power_w: np.ndarray
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    e2e_s: np.ndarray
    idle_power_w: float


def _level_curve(table, level, prompt_tokens, output_tokens, b_cap):
    t_p, e_p, _ = table.prefill(level, 1, prompt_tokens)
    ctx = prompt_tokens + output_tokens / 2.0
    bs = np.arange(1, b_cap + 1, dtype=float)
    td, ed = np.array([table.decode(level, b, ctx)[:2] for b in bs]).T
    steps = max(output_tokens - 1.0, 0.0)
    lam_max = b_cap / (b_cap * t_p + steps * td[-1])
    x = np.linspace(0.0, X_MAX, N_POINTS)
    lam = x * lam_max
    u_p = lam * t_p
    B = np.zeros_like(lam)
    for _ in range(_FIXED_POINT_ITERATIONS):
        b = np.where(B > 1e-9, B / -np.expm1(-np.maximum(B, 1e-9)), 1.0)
        B_new = np.minimum(lam * steps * np.interp(b, bs, td) / (1.0 - u_p), b_cap)
        if np.allclose(B_new, B, rtol=1e-10, atol=1e-12):
            break
        B = B_new
    b = np.where(B > 1e-9, B / -np.expm1(-np.maximum(B, 1e-9)), 1.0)
    t_d, e_d = np.interp(b, bs, td), np.interp(b, bs, ed)
    u_d = (1.0 - u_p) * -np.expm1(-B)
    idle = table.idle_w
    power = u_p * e_p / t_p + u_d * e_d / t_d + (1.0 - u_p - u_d) * idle
    tpot = t_d / (1.0 - u_p)
    ttft = t_p + u_d * t_d / 2.0 + u_p * t_p / (2.0 * (1.0 - u_p))
    n = table.n_gpus
    return lam_max, power * n, ttft, tpot, ttft + steps * tpot


def load_curves(inst, prompt_tokens: float, output_tokens: float, max_num_seqs: int) -> LoadCurves:
    """Curves for every clock level of ``inst`` (a ``serving.Instance``) at mean request lengths."""
    per_seq_blocks = -(-int(round(prompt_tokens + output_tokens)) // inst.block_tokens)
    b_cap = int(max(1, min(max_num_seqs, inst.capacity_blocks // per_seq_blocks)))
    rows = [_level_curve(inst.table, lv, float(prompt_tokens), float(output_tokens), b_cap)
            for lv in range(len(inst.table.levels))]
    lam, power, ttft, tpot, e2e = (np.array([r[i] for r in rows]) for i in range(5))
    return LoadCurves(np.linspace(0.0, X_MAX, N_POINTS), lam, power, ttft, tpot, e2e,
                      inst.table.idle_w * inst.table.n_gpus)


def lookup(curve: np.ndarray, level: np.ndarray, x: np.ndarray) -> np.ndarray:
    """curve[level, x] with x ∈ [0, 1] (clipped to the last point), blended linearly; any shapes that broadcast."""
    pos = np.clip(x, 0.0, X_MAX) * ((N_POINTS - 1) / X_MAX)
    k = np.minimum(pos.astype(np.int64), N_POINTS - 2)
    w = pos - k
    return curve[level, k] * (1.0 - w) + curve[level, k + 1] * w
