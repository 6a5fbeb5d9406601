"""Time of one op on one device: a roofline that carries the effects that make real kernels slower.

    t = latency + (t_compute^p + t_memory^p)^(1/p)

- t_compute = FLOPs / (dense peak × achievable fraction × clock fraction), with GEMM tile and wave
  quantization (padded tiles, whole waves over the SMs) and a skinny-M tile that shrinks with M;
- t_memory = bytes / (HBM bandwidth × achievable fraction), with decode attention's occupancy limit
  (too few (sequence, kv-head, split) work units leave SMs idle and bandwidth unused);
- latency: the per-kernel floor (launch + ramp + tail); p: the knee sharpness (p → ∞ is max()).
All-reduces and host transfers are link-bound. Every parameter is an ``EffectParams`` field.

Inputs may be numpy arrays (sweeps); outputs then are arrays of the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import math

import numpy as np

from hwspecs.calibration import EffectParams
from hwspecs.schema import Hardware
from simulator.ops import ALLREDUCE, ATTN_DECODE, ATTN_PREFILL, COPY, D2H, ELEMENTWISE, GEMM, H2D, Op


@dataclass(frozen=True)
class OpTime:
    compute_s: Any
    memory_s: Any
    latency_s: Any
    link_s: Any
    time_s: Any
    bound: Any  # "compute" | "memory" | "latency" | "link" (array of str for sweeps)


class _Scalar:
    """numpy's ufunc names over Python floats: a single predict() evaluates ~100 scalar ops, where each
    numpy call on a 0-d value costs ~1 µs. Sweeps pass arrays and use numpy itself."""

    maximum = staticmethod(max)
    minimum = staticmethod(min)
    ceil = staticmethod(math.ceil)
    floor = staticmethod(math.floor)
    log2 = staticmethod(math.log2)
    exp = staticmethod(math.exp)

    @staticmethod
    def where(cond, a, b):
        return a if cond else b


def xp_for(*values):
    """numpy for arrays, the scalar shim for plain numbers."""
    return np if any(isinstance(v, np.ndarray) for v in values) else _Scalar


def knee(tc, tm, p, xp=np):
    """Smooth maximum of compute and memory time: (tc^p + tm^p)^(1/p) = top·(1 + r^p)^(1/p) with
    r = smaller / larger — one power per element (they dominate large sweeps); p = 4 by squaring."""
    top = xp.maximum(tc, tm)
    low = xp.minimum(tc, tm)
    r = low / xp.where(top > 0, top, 1.0)
    if p == 4.0:
        r2 = r * r
        return top * (1.0 + r2 * r2) ** 0.25
    return top * (1.0 + r ** p) ** (1.0 / p)


def _m_pow2(m, xp=np):
    """Next power of two ≥ M, at least 16: the row tile a GEMM library (or hwperf's pruning) uses for skinny M."""
    return xp.maximum(16.0, 2.0 ** xp.ceil(xp.log2(xp.maximum(m, 1.0))))


def _tiled_gemm_s(m, n, k, tm, tn, groups, n_sms, rate_flops_per_s, split_k: bool, xp=np, overhead_dim=0.0):
    """Time of a GEMM cut into tm × tn output tiles, one tile per SM per wave: ``ceil(tiles / n_sms)``
    waves of tile-time (wave quantization, padded edge tiles included). ``split_k``: a grid smaller than
    the GPU is spread over every SM by splitting K (cuBLAS split-K / stream-K), so there is no penalty
    below one wave; without it (hwperf's Triton kernels) the idle SMs are lost.
    ``overhead_dim``: each K step also loads a tm × tk and a tk × tn slice; that costs like this many extra
    rows and columns of work, so a tile's time is 2·tm·tn·k·(1 + overhead_dim·(1/tm + 1/tn)) / rate and
    small tiles are slower per FLOP."""
    tiles = xp.ceil(m / tm) * xp.ceil(n / tn) * groups
    waves = xp.ceil(tiles / n_sms)
    busy = xp.where(tiles >= n_sms, waves * n_sms, tiles) if split_k else waves * n_sms
    return busy * 2.0 * tm * tn * k * (1.0 + overhead_dim * (1.0 / tm + 1.0 / tn)) / rate_flops_per_s


# kernels/gemm.py runs its persistent TMA kernel for 16-bit GEMMs with M > 64 and ≥ 1e11 FLOP (else its
# pointer kernel); these are the two kernels' autotuned (BLOCK_M, BLOCK_N) tiles. The pointer kernel
# offers BLOCK_M ≤ 64 (and ≤ next power of two of M, at least 16) for M ≤ 64, BLOCK_M ≥ 64 above.
# tests/test_kernels_gemm.py checks these agree with the kernel.
TRITON_GEMM_PERSISTENT_MIN_FLOPS = 1e11
TRITON_GEMM_SMALL_M = 64
TRITON_GEMM_PERSISTENT_TILES = ((128, 128), (128, 256))
TRITON_GEMM_POINTER_TILES = ((16, 32), (16, 64), (16, 128), (16, 256), (32, 32), (32, 64), (32, 128), (64, 32),
                             (64, 64), (64, 128), (64, 256), (128, 64), (128, 128), (128, 256), (256, 128))


def triton_gemm_tile_offered(m, tile_m, xp=np):
    """Whether kernels/gemm.py's pointer kernel tries BLOCK_M = ``tile_m`` for this M (its config pruning)."""
    return xp.where(m <= TRITON_GEMM_SMALL_M, (tile_m <= _m_pow2(m, xp)) & (tile_m <= TRITON_GEMM_SMALL_M),
                    tile_m >= TRITON_GEMM_SMALL_M)


def _autotuned_gemm_s(m, n, k, tiles, groups, n_sms, rate_flops_per_s, overhead_dim, xp=np, pruned=False):
    """The autotuner's pick: the fastest of ``tiles`` (``pruned``: only those the pointer kernel's config
    pruning offers for this M), no split-K."""
    best = None
    for tm, tn in tiles:
        t = _tiled_gemm_s(m, n, k, float(tm), float(tn), groups, n_sms, rate_flops_per_s, False, xp, overhead_dim)
        if pruned:
            t = xp.where(triton_gemm_tile_offered(m, tm, xp), t, math.inf)
        best = t if best is None else xp.minimum(best, t)
    return best


def gemm_compute_s(m, n, k, dtype, peak_flops_per_s, n_sms, prm: EffectParams, clock_frac=1.0, groups=1.0, xp=np):
    """Compute time of C[m,n] = A[m,k]·B[k,n] (``groups`` such GEMMs) with tile and wave quantization.

    Library kernels: the fitted ``gemm_tile_m × gemm_tile_n`` tile, a shorter one for skinny M (next power
    of two ≥ M, at least 16), split-K below one wave. hwperf's Triton GEMM: its pointer kernel, or — where
    kernels/gemm.py dispatches it — its persistent TMA kernel at its own efficiency; either with the
    fastest of the tiles its autotuner tries, and no split-K.
    """
    eight_bit = dtype in ("fp8", "int8")
    rate = peak_flops_per_s * clock_frac
    eff = prm.gemm_8bit_efficiency_frac if eight_bit else prm.gemm_efficiency_frac
    if prm.kernel_family != "hwperf-triton":
        tm = xp.minimum(prm.gemm_tile_m, _m_pow2(m, xp))
        return _tiled_gemm_s(m, n, k, tm, float(prm.gemm_tile_n), groups, n_sms, rate * eff, True, xp)
    ovh = prm.gemm_tile_overhead_dim
    t = _autotuned_gemm_s(m, n, k, TRITON_GEMM_POINTER_TILES, groups, n_sms, rate * eff, ovh, xp, pruned=True)
    if eight_bit:
        return t
    t_p = _autotuned_gemm_s(m, n, k, TRITON_GEMM_PERSISTENT_TILES, groups, n_sms,
                            rate * prm.gemm_persistent_efficiency_frac, ovh, xp)
    persistent = (m > TRITON_GEMM_SMALL_M) & (2.0 * m * n * k >= TRITON_GEMM_PERSISTENT_MIN_FLOPS)
    return xp.where(persistent, t_p, t)


# Flash-attention query/key tile edge (FA2/FA3 and hwperf's Triton kernel use 128-row query blocks).
ATTENTION_TILE = 128.0


# hwperf's Triton decode kernel picks its split count by this rule (kernels/attention_decode.py,
# default_num_splits; tests/test_kernels_attention.py checks the two agree): about 4 programs
# per SM, each split at least 512 tokens, at most 64 splits.
TRITON_DECODE_PROGRAMS_PER_SM = 4.0
TRITON_DECODE_MIN_TOKENS_PER_SPLIT = 512.0
TRITON_DECODE_MAX_SPLITS = 64.0


def triton_decode_splits(batch, n_kv_heads, context, n_sms, xp=np):
    """KV splits per (sequence, kv-head) of hwperf's Triton decode kernel (float, or array of floats)."""
    want = xp.ceil(TRITON_DECODE_PROGRAMS_PER_SM * n_sms / (batch * n_kv_heads))
    most = xp.maximum(1.0, xp.floor(context / TRITON_DECODE_MIN_TOKENS_PER_SPLIT))
    return xp.maximum(1.0, xp.minimum(xp.minimum(want, most), TRITON_DECODE_MAX_SPLITS))


def decode_splits(batch, n_kv_heads, context, n_sms, prm: EffectParams, xp=np):
    """Split count of decode attention for ``prm.kernel_family``.

    "library": context / split_tokens, between 1 and the cap, continuous (no ceil) — a library whose
    heuristic we do not mirror; with whole splits the modelled time would drop at each step.
    "hwperf-triton": hwperf's kernel's own discrete rule (a longer context can then run faster, as it does).
    """
    if prm.kernel_family == "hwperf-triton":
        return triton_decode_splits(batch, n_kv_heads, context, n_sms, xp)
    return xp.minimum(prm.attention_decode_splits, xp.maximum(1.0, context / prm.attention_decode_split_tokens))


def decode_occupancy_frac(batch, n_kv_heads, splits, n_sms, prm: EffectParams, xp=np):
    """Fraction of full HBM bandwidth decode attention reaches with u = sequence × kv-head × split work
    units in flight: u / (u + u_half), u_half = SMs × ``attention_decode_ctas_per_sm``. Each unit keeps a
    bounded number of loads in flight, so bandwidth grows with units and saturates smoothly (Little's law),
    with no sharp edge (H100 run: 512 units reach 0.83 of the 2048-unit bandwidth)."""
    units = batch * n_kv_heads * splits
    return units / (units + n_sms * prm.attention_decode_ctas_per_sm)


def prefill_attention_compute_s(s: dict, peak_flops_per_s, prm: EffectParams, clock_frac=1.0, xp=np):
    """Flash-attention forward as tiles: each of B·Hq·ceil(q/128) query blocks visits its key tiles
    (all of ceil(kv/128), or the lower triangle when causal), plus a fixed per-block cost, plus the
    masked diagonal tiles' extra work. A tile is 4·128·128·D FLOPs, slowed by softmax work worth
    ``attention_softmax_overhead_dim`` extra head dims."""
    nq = xp.ceil(s["q_tokens"] / ATTENTION_TILE)
    nk = xp.ceil(s["kv_tokens"] / ATTENTION_TILE)
    if s["causal"]:
        tiles = nq * (nq + 1.0) / 2.0 + nq * (prm.attention_causal_diag_overhead_frac
                                              + prm.attention_q_block_overhead_tiles)
    else:
        tiles = nq * (nk + prm.attention_q_block_overhead_tiles)
    d = s["head_dim"]
    work = s["batch"] * s["n_q_heads"] * tiles * 4.0 * ATTENTION_TILE ** 2 * (d + prm.attention_softmax_overhead_dim)
    return work / (peak_flops_per_s * prm.attention_prefill_efficiency_frac * clock_frac)


def host_transfer_s(kind: str, pinned: bool, n_bytes, host_link_bytes_per_s: float, prm: EffectParams, xp=np,
                    limit_bytes_per_s: float | None = None):
    """(latency_s, transfer_s) of one host↔device copy of ``n_bytes``; the one formula for kernel
    predictions and context switching. ``limit_bytes_per_s``: a slower device behind the link (a drive).

    Pinned: DMA at a fraction of the link. Pageable: the driver stages through a pinned buffer, so the
    host's memcpy sets the rate — one rate for the first ``pageable_fast_bytes`` (source still in CPU
    caches, staging overlapped) and, host→device, another beyond (H100 host: 16.5 GB/s at 16 MB, 9.8 GB/s
    at 1 GB).
    """
    def rate(eff):
        r = host_link_bytes_per_s * eff
        return r if limit_bytes_per_s is None else min(r, limit_bytes_per_s)

    if pinned:
        return prm.host_transfer_latency_s, n_bytes / rate(prm.h2d_pinned_efficiency_frac)
    # Device→host pageable copies measured no slower for large sizes (the host writes into its own DRAM).
    small, large = ((prm.h2d_pageable_efficiency_frac, prm.h2d_pageable_large_efficiency_frac) if kind == H2D
                    else (prm.d2h_pageable_efficiency_frac,) * 2)
    head = xp.minimum(n_bytes, prm.pageable_fast_bytes)
    return prm.pageable_transfer_latency_s, head / rate(small) + (n_bytes - head) / rate(large)


def op_time(op: Op, hw: Hardware, prm: EffectParams, *, clock_frac=1.0, link_bytes_per_s: float | None = None,
            host_link_bytes_per_s: float | None = None, with_bound: bool = True) -> OpTime:
    """Time of one execution of ``op`` on ``hw`` with effect parameters ``prm``.

    ``clock_frac``: sustained-clock fraction for compute (power limit; 1 = boost).
    ``link_bytes_per_s``: scale-up link rate per direction (all-reduce); ``host_link_bytes_per_s``: PCIe.
    ``with_bound=False`` skips labelling the bound (array inputs only).
    """
    xp = xp_for(op.flops, op.hbm_bytes, *op.shape.values())
    zero = np.zeros_like(op.flops, dtype=float) if xp is np else 0.0
    bw = hw.memory_bandwidth_bytes_per_s
    lat = prm.kernel_latency_s + zero
    link = zero
    if op.kind == GEMM:
        s = op.shape
        lat = prm.gemm_latency_s + zero
        tc = gemm_compute_s(s["m"], s["n"], s["k"], op.compute_dtype, hw.peak(op.compute_dtype), hw.n_sms, prm,
                            clock_frac, s.get("groups", 1.0), xp)
        tm = op.hbm_bytes / (bw * prm.gemv_efficiency_frac)
    elif op.kind == ATTN_PREFILL:
        lat = prm.attention_latency_s + zero
        tc = prefill_attention_compute_s(op.shape, hw.peak(op.compute_dtype), prm, clock_frac, xp)
        tm = op.hbm_bytes / (bw * prm.memory_efficiency_frac)
    elif op.kind == ATTN_DECODE:
        s = op.shape
        splits = decode_splits(s["batch"], s["n_kv_heads"], s["kv_tokens"], hw.n_sms, prm, xp)
        lat = prm.attention_decode_latency_s + zero
        if prm.kernel_family == "hwperf-triton":
            # One split needs no merge: the kernel writes the output directly, skipping the reduce kernel.
            lat = lat + xp.where(splits > 1.0, prm.kernel_latency_s, 0.0)
        if s.get("paged"):
            lat = lat + prm.attention_decode_paged_latency_s
        occ = decode_occupancy_frac(s["batch"], s["n_kv_heads"], splits, hw.n_sms, prm, xp)
        tc = op.flops / (hw.peak(op.compute_dtype) * prm.attention_prefill_efficiency_frac * clock_frac)
        # Occupancy limits the KV stream; the query/output bytes do not grow with context.
        eff = prm.attention_decode_efficiency_frac * (prm.attention_decode_paged_frac if s.get("paged") else 1.0)
        tm = (op.act_read_bytes + op.act_write_bytes + op.kv_read_bytes / occ) / (bw * eff)
    elif op.kind in (ELEMENTWISE,):
        tc = op.flops / hw.peak("fp32")
        tm = op.hbm_bytes / (bw * prm.elementwise_efficiency_frac)
    elif op.kind == COPY:
        tc = zero
        tm = op.hbm_bytes / (bw * prm.memory_efficiency_frac)
    elif op.kind in (H2D, D2H):
        if host_link_bytes_per_s is None:
            raise ValueError("host transfers need host_link_bytes_per_s")
        lat_s, link = host_transfer_s(op.kind, op.shape["pinned"], op.shape["link_bytes"], host_link_bytes_per_s,
                                      prm, xp)
        lat = lat_s + zero
        tc = tm = zero
    elif op.kind == ALLREDUCE:
        if link_bytes_per_s is None:
            raise ValueError("all-reduce needs a scale-up link (tensor_parallel > 1 on a GPU without one)")
        tc = zero
        tm = op.hbm_bytes / (bw * prm.elementwise_efficiency_frac)
        link = op.shape["link_bytes"] / (link_bytes_per_s * prm.link_efficiency_frac)
    else:
        raise ValueError(f"unknown op kind {op.kind!r}")
    tc = tc + zero
    tm = tm + zero
    body = xp.maximum(knee(tc, tm, prm.roofline_knee_exponent, xp), link)
    time = lat + body
    if xp is np:
        if not with_bound:  # sweeps' inner loops need the time only; string arrays cost more than the model
            return OpTime(tc, tm, lat, link, time, None)
        bound = np.where(link >= np.maximum(np.maximum(tc, tm), lat), "link",
                         np.where(lat >= np.maximum(tc, tm), "latency", np.where(tc >= tm, "compute", "memory")))
        return OpTime(tc, tm, lat, link, time, bound)
    top = max(tc, tm)
    bound = "link" if link >= max(top, lat) else "latency" if lat >= top else "compute" if tc >= tm else "memory"
    return OpTime(float(tc), float(tm), float(lat), float(link), float(time), bound)
