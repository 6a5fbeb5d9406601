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
from simulator.kinds.attention_decode import NAME as ATTN_DECODE
from simulator.kinds.attention_prefill import attention_op
from simulator.power import settle
from simulator.roofline import OpTime, at_clock, op_time

# Gauss–Legendre nodes/weights on [-1, 1] for the decode integral over context.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)


@dataclass(frozen=True)
class DecodeCoeffs:
    """A decode step as a function of context c, for fixed batch (see the module docstring)."""

    const_gpu_s: object  # at the boost clock
    n_kernels: int
    const_flops: object
    const_hbm_bytes: object
    const_tensor_flops: object
    attention: tuple  # per attention op: (op at c = 0, FLOPs slope, bytes slope)
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
    const = tuple((op, t) for op, t in pairs0 if op.kind != ATTN_DECODE)
    attn = []
    for op0, _ in pairs0:
        if op0.kind == ATTN_DECODE:
            op1 = attention_at(s, op0, op0.shape["batch"], 1.0)
            attn.append((op0, op1.flops - op0.flops, op1.hbm_bytes - op0.hbm_bytes))
    const_gpu = sum(t.time_s * op.n_repeats for op, t in const)
    const_flops = sum(op.flops * op.n_repeats for op, _ in const)
    tensor, dram = work(const)
    return DecodeCoeffs(const_gpu, sum(op.n_repeats for op, _ in pairs0), const_flops, dram, tensor, tuple(attn),
                        pairs0, const)


def attention_at(s: Setup, op0, batch, context):
    sh = op0.shape
    return attention_op(op0.name, batch, 1, context, sh["n_q_heads"], sh["n_kv_heads"], sh["head_dim"],
                        act_dtype=s.act_dtype, kv_dtype=s.kv_dtype, n_repeats=op0.n_repeats)


def decode_step_at(s: Setup, co: DecodeCoeffs, context_tokens, cuda_graph=True) -> PhaseResult:
    """The step at one context from the coefficients: only attention is re-timed."""
    pairs = []
    for op, t in co.pairs0:
        if op.kind == ATTN_DECODE:
            op = attention_at(s, op, op.shape["batch"], context_tokens)
            t = op_time(op, s.hw, s.prm)
        pairs.append((op, t))
    return settled(s, "decode", tuple(pairs), cuda_graph)


def _with_node_axis(t: OpTime) -> OpTime:
    """An OpTime of the constant ops, broadcastable against the quadrature-node axis."""
    return OpTime(*(x[..., None] if isinstance(x, np.ndarray) else x for x in
                    (t.compute_s, t.memory_s, t.latency_s, t.link_s, t.time_s)), None)


def _node_steps(s: Setup, co: DecodeCoeffs, attn_nodes, cuda_graph):
    """step(φ) at the quadrature nodes → (step_s, gpu_s); boost terms kept, only φ varies."""
    const_nodes = tuple((op, _with_node_axis(t)) for op, t in co.const_pairs)

    def at(phi):
        boost = isinstance(phi, float) and phi == 1.0
        const = np.asarray(co.const_gpu_s, dtype=float)[..., None] if boost else gpu_at(const_nodes, phi, s.prm)
        gpu = const + sum(
            op.n_repeats * (t.time_s if boost else at_clock(t, phi, s.prm).time_s)
            for op, t in attn_nodes)
        return launch_bound_s(gpu, co.n_kernels, s.prm, cuda_graph), gpu
    return at


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
    tensor_node = np.asarray(co.const_tensor_flops, dtype=float)[..., None]
    dram_node = np.asarray(co.const_hbm_bytes, dtype=float)[..., None]
    attn_nodes = []
    for op0, d_flops, d_hbm in co.attention:
        op = attention_at(s, op0, np.asarray(op0.shape["batch"], dtype=float)[..., None], ctx)
        attn_nodes.append((op, op_time(op, s.hw, s.prm, with_bound=False)))
        tensor_node = tensor_node + op0.n_repeats * op.flops
        dram_node = dram_node + op0.n_repeats * op.hbm_bytes
        flops = flops + op0.n_repeats * (steps * op0.flops + d_flops * sum_ctx)
        hbm = hbm + op0.n_repeats * (steps * op0.hbm_bytes + d_hbm * sum_ctx)
    at = _node_steps(s, co, attn_nodes, cuda_graph)
    phi = settle_nodes(s, at, tensor_node, dram_node)
    step, gpu = at(phi)
    energy = s.pm.power_w(phi, step, gpu, tensor_node, dram_node) * step
    total = half * (step @ _GL_W)
    clock = half * ((phi * step) @ _GL_W) / np.where(total > 0, total, 1.0)
    zero = steps <= 0
    return DecodeTotal(np.where(zero, 0.0, total), flops, hbm, steps, np.where(zero, 0.0, half * (energy @ _GL_W)),
                       np.where(zero, s.pm.phi_max, clock))


def settle_nodes(s: Setup, at, tensor_node, dram_node):
    """The settled clock of each node's step (φ_max where the step stays within the power limit)."""
    return settle(s.pm, lambda phi: s.pm.power_w(phi, *at(phi), tensor_node, dram_node))
