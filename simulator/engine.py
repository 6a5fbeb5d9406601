"""Prefill, decode, memory, concurrency and context switching — vectorised over scenario points.

Definitions (the glossary in README repeats them):
- TTFT (``ttft_s``): prefill of the whole batch's prompts, producing the first output token.
- decode step at context c: one new token per sequence, attention over the c tokens then in the cache.
- decode total: Σ_{j=1}^{T-1} step(P + j) — integrated exactly for the c-independent ops and by 8-node
  Gauss–Legendre quadrature for attention (smooth in c), never by averaging the first and last step.
- TPOT (``tpot_s``): decode total / (T − 1); e2e = TTFT + decode total.
- Launch: eager steps cannot run faster than the host issues kernels (max(GPU time, n_kernels × eager
  overhead)); CUDA-graph replay adds a small per-kernel gap. Prefill runs eagerly.
- Power: compute-bound work long enough to heat the chip runs at a lower clock (``sustained_clock_frac``);
  the average clock over a phase of length t decays from boost with ``power_throttle_time_constant_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

import hwspecs
from hwspecs.calibration import EffectParams
from hwspecs.schema import DTYPE_BYTES, Hardware
from simulator.ops import ATTN_DECODE, attention_op, forward_op_list
from simulator.roofline import op_time
from workloads.model import ModelSpec

# CUDA context + cuBLAS/attention workspaces + allocator slack held by a serving process (vLLM
# profiles ~1-2 GB outside weights and KV on H100); not available to KV blocks.
RUNTIME_RESERVED_BYTES = 1.5e9

# Gauss–Legendre nodes/weights on [-1, 1] for the decode integral over context.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)


class DoesNotFitError(ValueError):
    """The model (or the requested batch) does not fit in device memory; the message gives the sizes."""


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
    if link_id is None:
        return None
    return hwspecs.load(link_id).bandwidth_bytes_per_s


def make_setup(hw: Hardware, model: ModelSpec, prm: EffectParams, weight_dtype="bf16", act_dtype="bf16",
               kv_dtype="bf16", tp: int = 1) -> Setup:
    hw.peak(act_dtype)  # raises a clear error when the device lacks that dtype
    if tp > 1 and hw.scaleup_bandwidth_bytes_per_s is None:
        raise ValueError(f"tensor_parallel={tp} needs a scale-up link, and {hw.id} has none (scaleup_link)")
    return Setup(hw, model, prm, weight_dtype, act_dtype, kv_dtype, tp, hw.scaleup_bandwidth_bytes_per_s,
                 link_rate(hw.host_link))


def sustained_clock_frac(duration_s, prm: EffectParams):
    """Mean clock fraction over a compute-bound phase of ``duration_s``: the clock decays from boost (1)
    to ``sustained_clock_frac`` s with time constant τ: s + (1 − s)·(τ/t)·(1 − e^(−t/τ))."""
    s, tau = prm.sustained_clock_frac, prm.power_throttle_time_constant_s
    t = np.maximum(np.asarray(duration_s, dtype=float), 1e-12)
    return s + (1.0 - s) * (tau / t) * (1.0 - np.exp(-t / tau))


def launch_bound_s(gpu_s, n_kernels, prm: EffectParams, cuda_graph):
    """Step time from GPU time and kernel count: back-to-back kernels leave a small gap each (graph
    replay); eager cannot beat the host's issue rate either (the CPU runs ahead of the GPU, so the slower
    of the two streams sets the pace, plus one launch to start)."""
    back_to_back = gpu_s + n_kernels * prm.graph_launch_overhead_s
    if cuda_graph:
        return back_to_back
    return np.maximum(back_to_back, n_kernels * prm.eager_launch_overhead_s) + prm.eager_launch_overhead_s


def phase_ops(s: Setup, batch, q_tokens, kv_tokens, clock_frac=1.0, ops=None):
    """[(Op, OpTime)] for one forward pass, in execution (topological) order (``ops`` to re-time given ops)."""
    if ops is None:
        ops = forward_op_list(s.model, batch, q_tokens, kv_tokens, weight_dtype=s.weight_dtype,
                              act_dtype=s.act_dtype, kv_dtype=s.kv_dtype, tp=s.tp)
    return [(op, op_time(op, s.hw, s.prm, clock_frac=clock_frac, link_bytes_per_s=s.link_bytes_per_s,
                         host_link_bytes_per_s=s.host_link_bytes_per_s)) for op in ops]


def totals(pairs):
    """(GPU time, kernel launches, FLOPs, HBM bytes) of one pass's (Op, OpTime) pairs."""
    gpu = sum(t.time_s * op.n_repeats for op, t in pairs)
    n_kernels = sum(op.n_repeats for op, _ in pairs)
    flops = sum(op.flops * op.n_repeats for op, _ in pairs)
    hbm = sum(op.hbm_bytes * op.n_repeats for op, _ in pairs)
    return gpu, n_kernels, flops, hbm


def prefill_eval(s: Setup, batch, prompt_tokens):
    """Prefill (eager) of ``batch`` prompts of ``prompt_tokens``: returns (time_s, flops, hbm_bytes, pairs, clock).

    The sustained-clock correction is one fixed-point step: time at boost → mean clock over that time →
    time again with compute terms at that clock."""
    pairs = phase_ops(s, batch, prompt_tokens, prompt_tokens)
    gpu, n, flops, hbm = totals(pairs)
    clock = sustained_clock_frac(launch_bound_s(gpu, n, s.prm, False), s.prm)
    if np.ndim(clock) == 0:
        clock = float(clock)
    pairs = phase_ops(s, batch, prompt_tokens, prompt_tokens, clock_frac=clock, ops=[op for op, _ in pairs])
    gpu, n, flops, hbm = totals(pairs)
    return launch_bound_s(gpu, n, s.prm, False), flops, hbm, pairs, clock


def decode_eval(s: Setup, batch, context_tokens, cuda_graph=True):
    """One decode step (one token per sequence, attention over ``context_tokens``)."""
    pairs = phase_ops(s, batch, 1, context_tokens)
    gpu, n, flops, hbm = totals(pairs)
    return launch_bound_s(gpu, n, s.prm, cuda_graph), flops, hbm, pairs


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


def decode_coeffs(s: Setup, batch) -> DecodeCoeffs:
    """Evaluate the decode graph at contexts 0 and 1: the constant part, and attention's slopes."""
    pairs0 = phase_ops(s, batch, 1, 0.0)
    const_gpu = const_flops = const_hbm = 0.0
    n_kernels = 0
    attn = []
    for op0, t0 in pairs0:
        n_kernels += op0.n_repeats
        if op0.kind == ATTN_DECODE:
            op1 = _attention_at(s, op0, op0.shape["batch"], 1.0)
            attn.append((op0, op1.flops - op0.flops, op1.hbm_bytes - op0.hbm_bytes))
        else:
            const_gpu = const_gpu + t0.time_s * op0.n_repeats
            const_flops = const_flops + op0.flops * op0.n_repeats
            const_hbm = const_hbm + op0.hbm_bytes * op0.n_repeats
    return DecodeCoeffs(const_gpu, n_kernels, const_flops, const_hbm, tuple(attn), tuple(pairs0))


def _attention_at(s: Setup, op0, batch, context):
    sh = op0.shape
    return attention_op(op0.name, batch, 1, context, sh["n_q_heads"], sh["n_kv_heads"], sh["head_dim"],
                        act_dtype=s.act_dtype, kv_dtype=s.kv_dtype, n_repeats=op0.n_repeats)


def decode_pairs_at(s: Setup, co: DecodeCoeffs, context_tokens):
    """The step's (Op, OpTime) pairs at one context: only attention differs from the c = 0 step."""
    out = []
    for op, t in co.pairs0:
        if op.kind == ATTN_DECODE:
            op = _attention_at(s, op, op.shape["batch"], context_tokens)
            t = op_time(op, s.hw, s.prm)
        out.append((op, t))
    return out


def decode_total_from_coeffs(s: Setup, co: DecodeCoeffs, prompt_tokens, output_tokens, cuda_graph=True):
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
    mid = P + T / 2.0
    half = (T - 1.0) / 2.0
    ctx = mid[..., None] + half[..., None] * _GL_X  # (..., 8)
    step = np.asarray(co.const_gpu_s, dtype=float)[..., None] + 0.0 * ctx
    for op0, d_flops, d_hbm in co.attention:
        op = _attention_at(s, op0, np.asarray(op0.shape["batch"], dtype=float)[..., None], ctx)
        t = op_time(op, s.hw, s.prm, with_bound=False)
        step = step + op0.n_repeats * t.time_s
        flops = flops + op0.n_repeats * (steps * op0.flops + d_flops * sum_ctx)
        hbm = hbm + op0.n_repeats * (steps * op0.hbm_bytes + d_hbm * sum_ctx)
    step = launch_bound_s(step, co.n_kernels, s.prm, cuda_graph)
    total = half * (step @ _GL_W)
    return np.where(steps > 0, total, 0.0), flops, hbm, steps


def decode_total_eval(s: Setup, batch, prompt_tokens, output_tokens, cuda_graph=True):
    """Decode total for scenario points (batch, P, T broadcast together). See decode_total_from_coeffs.
    Returns (total_s, flops, hbm_bytes, steps, coefficients)."""
    co = decode_coeffs(s, batch)
    return (*decode_total_from_coeffs(s, co, prompt_tokens, output_tokens, cuda_graph), co)


# ---- memory and concurrency -----------------------------------------------------------------------------

def weight_bytes_per_gpu(s: Setup) -> float:
    return s.model.total_params * DTYPE_BYTES[s.weight_dtype] / s.tp


def kv_bytes_per_sequence(s: Setup, context_tokens, block_tokens=16):
    """KV of one sequence on one GPU, in whole paged blocks (the last block is partly empty)."""
    blocks = np.ceil(np.asarray(context_tokens, dtype=float) / block_tokens)
    return blocks * block_tokens * s.model.kv_bytes_per_token(s.kv_dtype, s.model.kv_heads_per_gpu(s.tp))


def activation_bytes(s: Setup, n_tokens, n_sequences):
    """Peak transient activations of one forward pass over n_tokens (per GPU): the residual stream and its
    normalised copy (2·h) plus the widest intermediate (QKV, or MLP up-projection output + activation),
    plus fp32 logits for one token per sequence."""
    m = s.model
    n_up = 2 if m.gated_mlp else 1
    widest = max((m.n_q_heads + 2 * m.n_kv_heads) * m.head_dim, (n_up + 1) * m.ffn_hidden * m.top_k) / s.tp
    return (np.asarray(n_tokens, dtype=float) * DTYPE_BYTES[s.act_dtype] * (2 * m.hidden + widest)
            + np.asarray(n_sequences, dtype=float) * m.vocab_size / s.tp * 4.0)


def check_weights_fit(s: Setup) -> None:
    need = weight_bytes_per_gpu(s) + RUNTIME_RESERVED_BYTES
    if need > s.hw.memory_bytes:
        raise DoesNotFitError(
            f"{s.model.id} weights in {s.weight_dtype} need {weight_bytes_per_gpu(s) / 1e9:.1f} GB per GPU "
            f"(+{RUNTIME_RESERVED_BYTES / 1e9:.1f} GB runtime) but {s.hw.id} has {s.hw.memory_bytes / 1e9:.1f} GB; "
            f"use more GPUs (tensor_parallel), a smaller weight_dtype, or a bigger device")


def max_concurrency(s: Setup, prompt_tokens, output_tokens, block_tokens=16):
    """Sequences of P+T tokens whose KV fits next to the weights, the runtime reserve and the activations
    of one prompt's prefill (chunked admission). Paged blocks waste up to block_tokens−1 slots each."""
    free = (s.hw.memory_bytes - weight_bytes_per_gpu(s) - RUNTIME_RESERVED_BYTES
            - activation_bytes(s, prompt_tokens, 1))
    per_seq = kv_bytes_per_sequence(s, np.asarray(prompt_tokens) + np.asarray(output_tokens), block_tokens)
    return np.floor(np.maximum(free, 0.0) / per_seq).astype(np.int64)


def memory_breakdown(s: Setup, batch, prompt_tokens, output_tokens, block_tokens=16) -> dict:
    """Peak device memory (per GPU) of running ``batch`` requests to completion."""
    weights = weight_bytes_per_gpu(s)
    kv = np.asarray(batch) * kv_bytes_per_sequence(s, np.asarray(prompt_tokens) + np.asarray(output_tokens),
                                                   block_tokens)
    act = activation_bytes(s, np.asarray(batch) * np.asarray(prompt_tokens), batch)
    total = weights + kv + act + RUNTIME_RESERVED_BYTES
    return {"weights_bytes": weights, "kv_cache_bytes": kv, "activation_bytes": act,
            "workspace_bytes": RUNTIME_RESERVED_BYTES, "peak_memory_bytes": total}
