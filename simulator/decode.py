"""Decode over many steps: Σ_{j=1}^{T-1} step(P + j), vectorised over scenario points.

Every op but attention is constant in the context c; attention's FLOPs and bytes are exactly linear in c,
its time is not (split-KV occupancy changes with c). The constant part is summed exactly; step(c) —
attention timed at each context, the clock settled for that step, then the launch rule — is integrated
by 8-node Gauss–Legendre over [P + ½, P + T − ½], which sums any linear function over the integers
exactly (tests compare with the per-token sum); never by averaging the first and last step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.engine import PhaseResult, Setup, _timed_pass, gpu_at, launch_bound_s, settled, work
from simulator.kv_compression import DECODE_ATTENTION_KINDS, active as kv_method_of, decode_attention_op
from simulator.kinds.attention_prefill import at_context
from simulator.power import op_work, settle, throttle
from simulator.roofline import at_clock, clock_scale, knee, op_time

# Gauss–Legendre nodes/weights on [-1, 1] for the decode integral over context.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)


@dataclass(frozen=True)
class DecodeCoeffs:
    """A decode step as a function of context c, for fixed batch (see the module docstring)."""

    const_gpu_s: object  # at the boost clock
    n_kernels: int
    const_flops: object
    const_hbm_bytes: object
    const_sm_j: object  # SM energy at boost (simulator.power.op_work)
    const_dram_bytes: object
    attention: tuple  # per attention op: (op at c = 0, FLOPs slope, bytes slope, SM-energy slope, DRAM slope)
    pairs0: tuple  # (Op, OpTime) of the step at c = 0, boost clock
    const_pairs: tuple  # the pairs that do not depend on c


@dataclass(frozen=True)
class DecodeTotal:
    """Σ over the decode steps: time, FLOPs, HBM bytes, energy, the time-weighted mean clock fraction."""

    time_s: object
    flops: object
    hbm_bytes: object
    steps: object
    energy_j: object
    clock_frac: object


def decode_coeffs(s: Setup, batch, with_bound=True) -> DecodeCoeffs:
    """Evaluate the decode graph at context 0 (and attention's counts at 1): the constant part and slopes."""
    pairs0 = _timed_pass(s, batch, 1, 0.0, with_bound=with_bound)
    const = tuple((op, t) for op, t in pairs0 if op.kind not in DECODE_ATTENTION_KINDS)
    attn = []
    for op0, _ in pairs0:
        if op0.kind in DECODE_ATTENTION_KINDS:
            op1 = attention_at(s, op0, op0.shape["batch"], 1.0)
            (sm0, dram0), (sm1, dram1) = op_work(s.pm, op0), op_work(s.pm, op1)
            attn.append((op0, op1.flops - op0.flops, op1.hbm_bytes - op0.hbm_bytes, sm1 - sm0, dram1 - dram0))
    const_gpu = sum(t.time_s * op.n_repeats for op, t in const)
    const_flops = sum(op.flops * op.n_repeats for op, _ in const)
    const_hbm = sum(op.hbm_bytes * op.n_repeats for op, _ in const)
    sm_j, dram = work(const, s.pm)
    return DecodeCoeffs(const_gpu, sum(op.n_repeats for op, _ in pairs0), const_flops, const_hbm, sm_j, dram,
                        tuple(attn), pairs0, const)


def attention_at(s: Setup, op0, batch, context):
    sh = op0.shape
    if kv_method_of(s) is not None:
        return decode_attention_op(s, op0.name, batch, context, sh["n_q_heads"], sh["n_kv_heads"], sh["head_dim"],
                                   op0.n_repeats)
    return at_context(op0, batch, context, s.kv_dtype)


def decode_step_at(s: Setup, co: DecodeCoeffs, context_tokens, cuda_graph=True) -> PhaseResult:
    """The step at one context from the coefficients: only attention is re-timed."""
    pairs = []
    for op, t in co.pairs0:
        if op.kind in DECODE_ATTENTION_KINDS:
            op = attention_at(s, op, op.shape["batch"], context_tokens)
            t = op_time(op, s.hw, s.prm)
        pairs.append((op, t))
    return settled(s, "decode", tuple(pairs), cuda_graph)


def _gatherer(shape, over):
    """x → x at the nodes where ``over`` is true, for any x broadcastable to ``shape`` (small per-batch
    arrays are indexed, never broadcast to the full node grid)."""
    coords = np.unravel_index(np.flatnonzero(over), shape)

    def gather(x):
        x = np.asarray(x, dtype=float)
        if x.ndim == 0:
            return x
        x = x.reshape((1,) * (len(shape) - x.ndim) + x.shape)
        return x[tuple(c if d > 1 else 0 for c, d in zip(coords, x.shape))]
    return gather


# The ops that do not depend on the context are timed, per batch, on this many clocks spaced evenly in
# 1/φ between the lowest and the highest allowed clock; a node's constant part at any clock is read off
# that table (linear in 1/φ between entries: their time is a + b/φ away from the knee; the tests check
# the decode total under a deep cap against the per-step sum within 0.2%). Attention is re-timed exactly.
_CLOCK_TABLE_SIZE = 32


def _const_clock_table(s: Setup, co: DecodeCoeffs):
    """(1/φ grid, GPU time of the constant ops: batch-shaped arrays flattened × grid)."""
    pm = s.pm
    u = np.linspace(1.0 / pm.phi_max, 1.0 / pm.phi_min, _CLOCK_TABLE_SIZE)
    table = np.stack([np.ravel(np.asarray(gpu_at(co.const_pairs, 1.0 / ui, s.prm), dtype=float)) for ui in u], -1)
    return u, table


def _node_timer(s: Setup, co: DecodeCoeffs, attn_nodes, gather, cuda_graph):
    """gpu(φ) at the over-limit nodes: the constant ops from the clock table, attention re-timed."""
    u, table = _const_clock_table(s, co)
    batch_shape = np.shape(np.asarray(co.const_gpu_s))
    row = gather(np.arange(table.shape[0], dtype=float).reshape(batch_shape)[..., None]).astype(np.int64)
    attn = [(op.n_repeats, *(gather(x) for x in (t.compute_s, t.memory_s, t.latency_s, t.link_s)),
             t.clock_bound_frac) for op, t in attn_nodes]
    p, du = s.prm.gemm.knee_exponent, u[1] - u[0] if len(u) > 1 else 1.0

    def gpu(phi):
        pos = np.clip((1.0 / phi - u[0]) / du, 0.0, len(u) - 1.0)
        k = np.minimum(pos.astype(np.int64), len(u) - 2)
        w = pos - k
        total = table[row, k] * (1.0 - w) + table[row, k + 1] * w
        for n, tc, tm, lat, link, beta in attn:
            total = total + n * (lat + np.maximum(knee(tc * clock_scale(beta, phi), tm, p, np), link))
        return total
    return gpu


def _settle_nodes(s: Setup, co: DecodeCoeffs, attn_nodes, work, ctx, cuda_graph):
    """(φ, step_s, energy_j) per node: the clock within the power limit, re-timed only on the nodes that
    exceed it at φ_max. ``work`` = (SM energy at boost, DRAM bytes), each (value at c = 0, slope per token of
    context) — linear in c, so full-size arrays are touched a few times (sweeps have millions of nodes)."""
    pm = s.pm
    at_max = pm.phi_max == 1.0
    const = co.const_gpu_s if at_max else gpu_at(co.const_pairs, pm.phi_max, s.prm)
    gpu_hi = np.asarray(const, dtype=float)[..., None] + sum(
        op.n_repeats * (t.time_s if at_max else at_clock(t, pm.phi_max, s.prm).time_s) for op, t in attn_nodes)
    step_hi = launch_bound_s(gpu_hi, co.n_kernels, s.prm, cuda_graph)
    (t0, t1), (d0, d1) = work
    w0, w1 = (pm.dynamic_j(pm.phi_max, 0.0, t, d) for t, d in ((t0, d0), (t1, d1)))
    energy_hi = pm.idle_w * step_hi + pm.dynamic_j(pm.phi_max, gpu_hi, 0.0, 0.0) + w0 + w1 * ctx
    over = energy_hi > pm.cap_w * step_hi
    if pm.state == "burst" or not np.any(over):
        return pm.phi_max, step_hi, energy_hi
    shape = np.shape(over)
    gather = _gatherer(shape, over)
    ctx_o = gather(ctx)
    sm_o, dram_o = gather(t0) + gather(t1) * ctx_o, gather(d0) + gather(d1) * ctx_o
    gpu_at_node = _node_timer(s, co, attn_nodes, gather, cuda_graph)

    def power_at(phi):
        gpu = gpu_at_node(phi)
        return pm.power_w(phi, launch_bound_s(gpu, co.n_kernels, s.prm, cuda_graph), gpu, sm_o, dram_o)

    phi_o = settle(pm, power_at)
    gpu_o = gpu_at_node(phi_o)
    step_o = launch_bound_s(gpu_o, co.n_kernels, s.prm, cuda_graph)
    step_o, energy_o = throttle(pm, phi_o, step_o, gpu_o, sm_o, dram_o)
    # step_hi and energy_hi are fresh full-size arrays here (the node axis broadcasts them): update in place
    step, energy = (x if np.shape(x) == shape else np.broadcast_to(x, shape).copy() for x in (step_hi, energy_hi))
    phi = np.full(shape, pm.phi_max)
    phi[over], step[over], energy[over] = phi_o, step_o, energy_o
    return phi, step, energy


def capped_context_sum(prompt_tokens, steps, window):
    """Σ_{j=1}^{n} min(P + j, W) for n = ``steps``: the keys a sliding-window layer reads over the decode."""
    inside = np.clip(window - prompt_tokens, 0.0, steps)  # steps whose context is still within the window
    return inside * prompt_tokens + inside * (inside + 1.0) / 2.0 + (steps - inside) * window


def decode_total(s: Setup, co: DecodeCoeffs, prompt_tokens, output_tokens, cuda_graph=True) -> DecodeTotal:
    """Σ over the T−1 decode steps after prefill, at contexts P+1 … P+T−1 (see the module docstring).
    FLOPs and bytes are summed exactly: Σ_j (P + j) = (T−1)·P + (T−1)·T/2. Arguments broadcast (batch in
    ``co``, P and T on their own axes)."""
    P = np.asarray(prompt_tokens, dtype=float)
    T = np.asarray(output_tokens, dtype=float)
    steps = np.maximum(T - 1.0, 0.0)
    sum_ctx = steps * P + steps * T / 2.0
    flops, hbm = steps * co.const_flops, steps * co.const_hbm_bytes
    half = (T - 1.0) / 2.0
    ctx = (P + T / 2.0)[..., None] + half[..., None] * _GL_X  # (..., 8)
    node = lambda x: np.asarray(x, dtype=float)[..., None]  # noqa: E731 - per batch, beside the node axis
    # (SM energy, DRAM bytes) of the step at c = 0 and their slopes per token of context (simulator.power.op_work)
    t0, d0, t1, d1 = node(co.const_sm_j), node(co.const_dram_bytes), 0.0, 0.0
    attn_nodes = []
    for op0, d_flops, d_hbm, d_sm, d_dram in co.attention:
        op = attention_at(s, op0, node(op0.shape["batch"]), ctx)
        attn_nodes.append((op, op_time(op, s.hw, s.prm, with_bound=False)))
        window = op0.shape.get("window")
        if window is None:
            sm0, dram0 = op_work(s.pm, op0)
            t0, t1 = t0 + op0.n_repeats * node(sm0), t1 + op0.n_repeats * node(d_sm)
            d0, d1 = d0 + op0.n_repeats * node(dram0), d1 + op0.n_repeats * node(d_dram)
        else:  # a sliding window stops the growth at W: its work at each node, no slope
            sm, dram = op_work(s.pm, op)
            t0, d0 = t0 + op0.n_repeats * sm, d0 + op0.n_repeats * dram
        ctx_sum = sum_ctx if window is None else capped_context_sum(P, steps, window)
        flops = flops + op0.n_repeats * (steps * op0.flops + d_flops * ctx_sum)
        hbm = hbm + op0.n_repeats * (steps * op0.hbm_bytes + d_hbm * ctx_sum)
    phi, step, energy = _settle_nodes(s, co, attn_nodes, ((t0, t1), (d0, d1)), ctx, cuda_graph)
    total = half * (step @ _GL_W)
    clock = phi if np.ndim(phi) == 0 else half * ((phi * step) @ _GL_W) / np.where(total > 0, total, 1.0)
    zero = steps <= 0
    return DecodeTotal(np.where(zero, 0.0, total), flops, hbm, steps, np.where(zero, 0.0, half * (energy @ _GL_W)),
                       np.where(zero, s.pm.phi_max, clock))
