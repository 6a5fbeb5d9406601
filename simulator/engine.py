"""Prefill, decode steps, decode totals and single layers — finished results, vectorised over scenario points.

Definitions (the README glossary repeats them):
- TTFT: prefill of the whole batch's prompts, producing the first output token. Prefill runs eagerly.
- decode step at context c: one new token per sequence, attention over the c tokens then in the cache.
- decode total: Σ_{j=1}^{T-1} step(P + j) — summed exactly for the c-independent ops and by 8-node
  Gauss–Legendre quadrature for attention (smooth in c), never by averaging the first and last step.
- Launch: eager steps cannot run faster than the host issues kernels (max(GPU time + gaps, n_kernels ×
  eager overhead)); CUDA-graph replay adds a small gap per kernel.
- Power: compute-bound work long enough to heat the chip runs at a lower clock; the mean clock over a
  phase of length t decays from boost towards ``power.sustained_clock_frac`` with time constant τ.

Every step-level rule (launch, clock, bound) lives here; the API and calibration call these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

import hwspecs
from hwspecs.calibration import EffectParams
from hwspecs.schema import Hardware
from simulator.kinds.attention_decode import NAME as ATTN_DECODE
from simulator.kinds.attention_prefill import attention_op
from simulator.kinds.base import xp_for
from simulator.ops import forward_op_list
from simulator.roofline import at_clock, op_time
from workloads.model import ModelSpec

# Gauss–Legendre nodes/weights on [-1, 1] for the decode integral over context.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)
# A compute-bound phase is labelled "power"-bound when the power-limited clock makes it at least this
# much slower than at boost (the clock then, not the tensor cores, sets its pace).
POWER_BOUND_MIN_SLOWDOWN_FRAC = 0.03
BYTE_KINDS = ("weight_bytes", "act_read_bytes", "act_write_bytes", "kv_read_bytes", "kv_write_bytes")


@dataclass(frozen=True)
class Setup:
    hw: Hardware
    model: ModelSpec
    prm: EffectParams
    weight_dtype: str
    act_dtype: str
    kv_dtype: str
    tp: int
    link_bytes_per_s: float | None
    host_link_bytes_per_s: float


@lru_cache(maxsize=64)
def link_rate(link_id: str | None) -> float | None:
    """Per-direction bandwidth of a link spec by id (None for no link)."""
    return None if link_id is None else hwspecs.load(link_id).bandwidth_bytes_per_s


def make_setup(hw: Hardware, model: ModelSpec, prm: EffectParams, weight_dtype="bf16", act_dtype="bf16",
               kv_dtype="bf16", tp: int = 1) -> Setup:
    hw.peak(act_dtype)  # raises a clear error when the device lacks that dtype
    if tp > 1 and hw.scaleup_bandwidth_bytes_per_s is None:
        raise ValueError(f"tensor_parallel={tp} needs a scale-up link, and {hw.id} has none (scaleup_link)")
    return Setup(hw, model, prm, weight_dtype, act_dtype, kv_dtype, tp, hw.scaleup_bandwidth_bytes_per_s,
                 link_rate(hw.host_link))


@dataclass(frozen=True)
class PhaseResult:
    """One forward pass (or one decoder layer): ``time_s`` as the user sees it (launch rule applied),
    ``gpu_s`` the kernels' own time, FLOPs and HBM bytes (``bytes`` by kind, per pass), the mean clock
    fraction, the dominant bound, and ``pairs``: (Op, OpTime) per op in execution order."""

    phase: str
    time_s: Any
    gpu_s: Any
    n_kernels: int
    flops: Any
    hbm_bytes: Any
    bound: Any
    clock_frac: Any
    pairs: tuple

    @property
    def bytes(self) -> dict:
        return {k: sum(getattr(op, k) * op.n_repeats for op, _ in self.pairs) for k in BYTE_KINDS}


def sustained_clock_frac(duration_s, prm: EffectParams):
    """Mean clock fraction over a compute-bound phase of ``duration_s``: the clock decays from boost (1)
    to the sustained fraction s with time constant τ: s + (1 − s)·(τ/t)·(1 − e^(−t/τ))."""
    s, tau = prm.power.sustained_clock_frac, prm.power.throttle_time_constant_s
    t = np.maximum(np.asarray(duration_s, dtype=float), 1e-12)
    return s + (1.0 - s) * (tau / t) * (1.0 - np.exp(-t / tau))


def launch_bound_s(gpu_s, n_kernels, prm: EffectParams, cuda_graph):
    """Step time from GPU time and kernel count: back-to-back kernels leave a small gap each (graph
    replay); eager cannot beat the host's issue rate either (the CPU runs ahead of the GPU, so the slower
    of the two streams sets the pace, plus one launch to start)."""
    back_to_back = gpu_s + n_kernels * prm.launch.graph_gap_s
    if cuda_graph:
        return back_to_back
    return np.maximum(back_to_back, n_kernels * prm.host.eager_launch_overhead_s) + prm.host.eager_launch_overhead_s


def time_ops(s: Setup, ops, clock_frac=1.0, with_bound=True, xp=None):
    return tuple((op, op_time(op, s.hw, s.prm, clock_frac=clock_frac, link_bytes_per_s=s.link_bytes_per_s,
                              host_link_bytes_per_s=s.host_link_bytes_per_s, with_bound=with_bound, xp=xp))
                 for op in ops)


def _timed_pass(s: Setup, batch, q_tokens, kv_tokens, layer_only=False, with_bound=True):
    """(Op, OpTime) pairs of one forward pass at the boost clock."""
    ops = forward_op_list(s.model, batch, q_tokens, kv_tokens, weight_dtype=s.weight_dtype, act_dtype=s.act_dtype,
                          kv_dtype=s.kv_dtype, tp=s.tp)
    if layer_only:
        ops = [op for op in ops if op.scope == "layer"]
    return time_ops(s, ops, with_bound=with_bound, xp=xp_for(batch, q_tokens, kv_tokens))


def totals(pairs):
    """(GPU time, kernel launches, FLOPs, HBM bytes) of one pass's (Op, OpTime) pairs."""
    gpu = sum(t.time_s * op.n_repeats for op, t in pairs)
    n_kernels = sum(op.n_repeats for op, _ in pairs)
    flops = sum(op.flops * op.n_repeats for op, _ in pairs)
    hbm = sum(op.hbm_bytes * op.n_repeats for op, _ in pairs)
    return gpu, n_kernels, flops, hbm


def step_bound(pairs) -> str:
    """The bound that accounts for most of a pass's time (scalar passes only)."""
    by: dict[str, float] = {}
    for op, t in pairs:
        by[t.bound] = by.get(t.bound, 0.0) + t.time_s * op.n_repeats
    return max(by, key=by.get)


def _finish(phase, pairs, prm, cuda_graph, clock=1.0, gpu_at_boost=None) -> PhaseResult:
    gpu, n, flops, hbm = totals(pairs)
    time = launch_bound_s(gpu, n, prm, cuda_graph)
    bound = None
    if np.ndim(gpu) == 0 and pairs[0][1].bound is not None:
        bound = step_bound(pairs)
        if not cuda_graph and n * prm.host.eager_launch_overhead_s >= gpu + n * prm.launch.graph_gap_s:
            bound = "launch"  # the host's issue rate, not the GPU, set the pace
        elif bound == "compute" and gpu_at_boost is not None and gpu > gpu_at_boost * (1 + POWER_BOUND_MIN_SLOWDOWN_FRAC):
            bound = "power"
    return PhaseResult(phase, time, gpu, n, flops, hbm, bound, clock, pairs)


def prefill(s: Setup, batch, prompt_tokens, layer_only=False, cuda_graph=False, with_bound=True) -> PhaseResult:
    """Prefill of ``batch`` prompts of ``prompt_tokens`` (eager unless ``cuda_graph``). The clock is one
    fixed-point step: time at boost → mean clock over that time → compute terms at that clock."""
    boost = _timed_pass(s, batch, prompt_tokens, prompt_tokens, layer_only, with_bound)
    gpu0, n, _, _ = totals(boost)
    clock = sustained_clock_frac(launch_bound_s(gpu0, n, s.prm, cuda_graph), s.prm)
    if np.ndim(clock) == 0:
        clock = float(clock)
    pairs = tuple((op, at_clock(t, clock, s.prm)) for op, t in boost)
    return _finish("prefill", pairs, s.prm, cuda_graph, clock, gpu0)


def decode_step(s: Setup, batch, context_tokens, cuda_graph=True, layer_only=False) -> PhaseResult:
    """One decode step: one token per sequence, attention over ``context_tokens``."""
    return _finish("decode", _timed_pass(s, batch, 1, context_tokens, layer_only), s.prm, cuda_graph)


def layer(s: Setup, mode: str, batch, tokens, cuda_graph) -> PhaseResult:
    """One decoder block (the ops of scope "layer"): ``mode`` "prefill" (``tokens`` = sequence length)
    or "decode" (``tokens`` = context), with the launch and clock rules of whole passes."""
    if mode == "prefill":
        return prefill(s, batch, tokens, layer_only=True, cuda_graph=cuda_graph)
    return decode_step(s, batch, tokens, cuda_graph, layer_only=True)


# ---- decode over many steps ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DecodeCoeffs:
    """A decode step as a function of context c, for fixed batch: every op but attention is constant in c.
    Attention's FLOPs and bytes are exactly linear in c (value at c = 0 + slope·c); its time is not
    (split-KV occupancy changes with c), so attention ops are kept to be timed at each context."""

    const_gpu_s: object
    n_kernels: int
    const_flops: object
    const_hbm_bytes: object
    attention: tuple  # per attention op: (op at c = 0, FLOPs slope, bytes slope)
    pairs0: tuple  # (Op, OpTime) of the step at c = 0


def decode_coeffs(s: Setup, batch, with_bound=True) -> DecodeCoeffs:
    """Evaluate the decode graph at context 0 (and attention's counts at 1): the constant part and slopes."""
    pairs0 = _timed_pass(s, batch, 1, 0.0, with_bound=with_bound)
    const_gpu = const_flops = const_hbm = 0.0
    attn = []
    for op0, t0 in pairs0:
        if op0.kind == ATTN_DECODE:
            op1 = _attention_at(s, op0, op0.shape["batch"], 1.0)
            attn.append((op0, op1.flops - op0.flops, op1.hbm_bytes - op0.hbm_bytes))
        else:
            const_gpu = const_gpu + t0.time_s * op0.n_repeats
            const_flops = const_flops + op0.flops * op0.n_repeats
            const_hbm = const_hbm + op0.hbm_bytes * op0.n_repeats
    n_kernels = sum(op.n_repeats for op, _ in pairs0)
    return DecodeCoeffs(const_gpu, n_kernels, const_flops, const_hbm, tuple(attn), pairs0)


def _attention_at(s: Setup, op0, batch, context):
    sh = op0.shape
    return attention_op(op0.name, batch, 1, context, sh["n_q_heads"], sh["n_kv_heads"], sh["head_dim"],
                        act_dtype=s.act_dtype, kv_dtype=s.kv_dtype, n_repeats=op0.n_repeats)


def decode_step_at(s: Setup, co: DecodeCoeffs, context_tokens, cuda_graph=True) -> PhaseResult:
    """The step at one context from the coefficients: only attention is re-timed."""
    pairs = []
    for op, t in co.pairs0:
        if op.kind == ATTN_DECODE:
            op = _attention_at(s, op, op.shape["batch"], context_tokens)
            t = op_time(op, s.hw, s.prm)
        pairs.append((op, t))
    return _finish("decode", tuple(pairs), s.prm, cuda_graph)


def decode_total(s: Setup, co: DecodeCoeffs, prompt_tokens, output_tokens, cuda_graph=True):
    """Σ over the T−1 decode steps after prefill, at contexts P+1 … P+T−1.

    The constant part is summed exactly. step(c) — attention timed at each context, then the launch rule —
    is integrated by 8-node Gauss–Legendre over [P + ½, P + T − ½], which sums any linear function over
    the integers exactly (tests compare with the per-token sum). FLOPs and bytes are summed exactly:
    Σ_j (P + j) = (T−1)·P + (T−1)·T/2. Arguments broadcast (batch in ``co``, P and T on their own axes).
    Returns (total_s, flops, hbm_bytes, steps)."""
    P = np.asarray(prompt_tokens, dtype=float)
    T = np.asarray(output_tokens, dtype=float)
    steps = np.maximum(T - 1.0, 0.0)
    sum_ctx = steps * P + steps * T / 2.0
    flops = steps * co.const_flops
    hbm = steps * co.const_hbm_bytes
    half = (T - 1.0) / 2.0
    ctx = (P + T / 2.0)[..., None] + half[..., None] * _GL_X  # (..., 8)
    step = np.asarray(co.const_gpu_s, dtype=float)[..., None] + 0.0 * ctx
    for op0, d_flops, d_hbm in co.attention:
        op = _attention_at(s, op0, np.asarray(op0.shape["batch"], dtype=float)[..., None], ctx)
        step = step + op0.n_repeats * op_time(op, s.hw, s.prm, with_bound=False).time_s
        flops = flops + op0.n_repeats * (steps * op0.flops + d_flops * sum_ctx)
        hbm = hbm + op0.n_repeats * (steps * op0.hbm_bytes + d_hbm * sum_ctx)
    step = launch_bound_s(step, co.n_kernels, s.prm, cuda_graph)
    total = half * (step @ _GL_W)
    return np.where(steps > 0, total, 0.0), flops, hbm, steps
