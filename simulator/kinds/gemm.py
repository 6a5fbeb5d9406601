"""GEMM: C[m,n] = A[m,k] @ B[k,n] — the formulas, hwperf's Triton GEMM dispatch, and the time model.

Counts: 2·m·n·k FLOPs (one multiply-add per (m, n, k)); A, B read once and C written once (ideal reuse
in SMEM/L2 — the calibrated efficiency absorbs real re-reads). ``kernels/gemm.py`` imports ``flops``,
``hbm_bytes`` and the dispatch rules below, so the kernel and the model cannot disagree.

Time: tile and wave quantization over the SMs at the calibrated fraction of the dense peak, a
memory term at the skinny-GEMM (GEMV) efficiency, the smooth knee and a latency floor. Parameter
group: ``gemm`` (hwspecs.effects.GemmParams).
"""

from __future__ import annotations

import math

import numpy as np

from hwspecs.schema import DTYPE_BYTES
from simulator.kinds.base import Op, OpKind, ShapeField, past_l2, xp_for

NAME = "gemm"


def flops(m, n, k):
    """2 FLOPs per multiply-add."""
    return 2 * m * n * k


def hbm_bytes(m, n, k, in_bytes, out_bytes):
    """Fewest HBM bytes: A (m·k) and B (k·n) read once at ``in_bytes`` each, C (m·n) written once."""
    return (m * k + k * n) * in_bytes + m * n * out_bytes


def gemm_op(name, m, n, k, *, weight_dtype="bf16", act_dtype="bf16", bias=False, scope="layer",
            n_repeats=1, weights_are_operand=True, n_weight_matrices=1, groups=None) -> Op:
    """C[m,n] = A[m,k] @ W[k,n] (+ bias) of the model graph. A is activations, W weights (or a second
    activation if ``weights_are_operand`` is False, e.g. a plain kernel benchmark). ``groups``: a grouped
    GEMM (MoE experts), ``groups`` problems of this shape, each with its own W (``n_weight_matrices``)."""
    wb, ab = DTYPE_BYTES[weight_dtype], DTYPE_BYTES[act_dtype]
    g = 1 if groups is None else groups
    # 8-bit GEMMs write bf16: torch._scaled_mm(out_dtype=bfloat16) and W8A8 serving kernels dequantize in
    # the epilogue (ncu, H200, fp8 4096³: 20.8 MB written, more than an fp8 C's 16.8 MB could be).
    out_bytes = max(ab, DTYPE_BYTES["bf16"])
    w_bytes = n_weight_matrices * (k * n + n * bias) * wb
    shape = {"m": m, "n": n, "k": k} if groups is None else {"m": m, "n": n, "k": k, "groups": groups}
    return Op(name=name, kind=NAME, scope=scope, n_repeats=n_repeats, flops=flops(m, n, k) * g * 1.0,
              weight_bytes=w_bytes if weights_are_operand else 0.0,
              act_read_bytes=g * m * k * ab + (0.0 if weights_are_operand else w_bytes),
              act_write_bytes=g * m * n * out_bytes, compute_dtype=act_dtype, shape=shape)


def _kernel_op(m, n, k, dtype) -> Op:
    # Benchmarks multiply two activation-like operands: both are "read", none is a weight.
    return gemm_op("gemm", m, n, k, weight_dtype=dtype, act_dtype=dtype, scope="model", weights_are_operand=False)


# ---- hwperf's Triton GEMM dispatch (read by kernels/gemm.py; torch-free) --------------------------------

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) of the pointer kernel's autotune candidates.
TRITON_POINTER_CONFIGS = (
    # Prefill-sized M: big tiles keep the tensor cores fed (128×256×64 is the Hopper sweet spot).
    (128, 256, 64, 8, 3), (128, 256, 64, 8, 4), (256, 128, 64, 8, 3), (256, 128, 64, 8, 4),
    (128, 128, 64, 8, 4), (128, 128, 64, 4, 4), (128, 128, 128, 8, 3), (128, 64, 64, 4, 4),
    (64, 256, 64, 4, 4), (64, 128, 64, 4, 4),
    # Decode-sized M (1..64): thin tiles and deep K slices; the problem is reading B once.
    (16, 64, 128, 4, 4), (16, 128, 128, 4, 4), (16, 256, 64, 4, 4), (32, 64, 128, 4, 4), (32, 128, 128, 4, 4),
    (64, 64, 128, 4, 4), (64, 128, 128, 4, 3),
    # Narrow N tiles: more programs when N is small (N=4096 → 128 programs with BLOCK_N=32).
    (16, 32, 256, 4, 4), (32, 32, 256, 4, 4), (64, 32, 128, 4, 4),
)
# (BLOCK_N, BLOCK_K, num_warps, num_stages, EPILOGUE_SUBTILE) of the persistent TMA kernel; BLOCK_M = 128.
TRITON_PERSISTENT_BLOCK_M = 128
TRITON_PERSISTENT_CONFIGS = ((256, 64, 8, 3, True), (256, 64, 8, 4, True), (256, 64, 8, 3, False),
                             (128, 64, 8, 4, False), (128, 64, 4, 4, False), (128, 128, 8, 3, False),
                             (256, 128, 8, 2, True))
# The persistent kernel runs for 16-bit GEMMs with M > 64 and ≥ 1e11 FLOP (~150 µs at 700 TFLOP/s);
# below that its launch overhead outweighs its faster main loop.
TRITON_PERSISTENT_MIN_FLOPS = 1e11
TRITON_SMALL_M = 64
TRITON_POINTER_TILES = tuple(sorted({(c[0], c[1]) for c in TRITON_POINTER_CONFIGS}))
TRITON_PERSISTENT_TILES = tuple(sorted({(TRITON_PERSISTENT_BLOCK_M, c[0]) for c in TRITON_PERSISTENT_CONFIGS}))


def m_pow2(m, xp=np):
    """Next power of two ≥ M, at least 16: the row tile a GEMM library (or hwperf's pruning) uses for skinny M."""
    return xp.maximum(16.0, 2.0 ** xp.ceil(xp.log2(xp.maximum(m, 1.0))))


def triton_tile_offered(m, tile_m, xp=np):
    """Whether the pointer kernel's config pruning keeps BLOCK_M = ``tile_m`` for this M: thin tiles
    (≤ 64 and ≤ the next power of two of M) for M ≤ 64, tiles of at least 64 rows above."""
    return xp.where(m <= TRITON_SMALL_M, (tile_m <= m_pow2(m, xp)) & (tile_m <= TRITON_SMALL_M),
                    tile_m >= TRITON_SMALL_M)


def triton_uses_persistent(m, n, k, sixteen_bit=True):
    """Whether kernels/gemm.py dispatches its persistent TMA kernel (where the hardware allows TMA)."""
    return sixteen_bit & (m > TRITON_SMALL_M) & (flops(m, n, k) >= TRITON_PERSISTENT_MIN_FLOPS)


# What kernels/gemm.py runs on: fp16, bf16 and fp8 operands (``matmul`` refuses others); fp8 needs compute
# capability >= 8.9 (Ada, Hopper, Blackwell); the persistent TMA kernel needs capability >= 9 (``_tma_eligible``:
# Hopper sm_90, Blackwell sm_100/sm_120 — NVIDIA, https://docs.nvidia.com/cuda/cuda-c-programming-guide/
# index.html#compute-capabilities). hwspecs names the architecture, which fixes the capability.
TRITON_DTYPES = ("fp16", "bf16", "fp8")
FP8_ARCHITECTURES = ("ada", "hopper", "blackwell")
TMA_ARCHITECTURES = ("hopper", "blackwell")


def has_tma(hw) -> bool:
    return hw.vendor == "nvidia" and hw.architecture in TMA_ARCHITECTURES


def check_triton_dtype(hw, dtype: str) -> None:
    """Refuse a Triton GEMM the kernel cannot run (a prediction for a kernel that does not exist)."""
    if dtype not in TRITON_DTYPES:
        raise ValueError(f"impl='triton': hwperf's Triton GEMM (kernels/gemm.py) runs {', '.join(TRITON_DTYPES)}, "
                         f"not dtype {dtype!r}; use impl='vendor'")
    if dtype == "fp8" and not (hw.vendor == "nvidia" and hw.architecture in FP8_ARCHITECTURES):
        raise ValueError(f"impl='triton': an fp8 GEMM needs compute capability >= 8.9 (Ada, Hopper, Blackwell); "
                         f"{hw.id} is {hw.vendor} {hw.architecture}")


# ---- time ---------------------------------------------------------------------------------------------

def tiled_s(m, n, k, tm, tn, groups, n_sms, rate_flops_per_s, split_k: bool, xp=np, overhead_dim=0.0):
    """A GEMM cut into tm × tn output tiles, one tile per SM per wave: ``ceil(tiles / n_sms)`` waves of
    tile-time (wave quantization, padded edge tiles included). ``split_k``: a grid smaller than the GPU is
    spread over every SM by splitting K (cuBLAS split-K / stream-K), so there is no penalty below one
    wave; without it (hwperf's Triton kernels) the idle SMs are lost. ``overhead_dim``: each K step also
    loads a tm × tk and a tk × tn slice, costing like this many extra rows and columns of work:
    tile time = 2·tm·tn·k·(1 + overhead_dim·(1/tm + 1/tn)) / rate."""
    tiles = xp.ceil(m / tm) * xp.ceil(n / tn) * groups
    waves = xp.ceil(tiles / n_sms)
    busy = xp.where(tiles >= n_sms, waves * n_sms, tiles) if split_k else waves * n_sms
    return busy * 2.0 * tm * tn * k * (1.0 + overhead_dim * (1.0 / tm + 1.0 / tn)) / rate_flops_per_s


def _autotuned_s(m, n, k, tiles, groups, n_sms, rate_flops_per_s, overhead_dim, xp=np, pruned=False):
    """The autotuner's pick: the fastest of ``tiles`` (``pruned``: only those the pointer kernel's
    config pruning offers for this M), no split-K."""
    best = None
    for tm, tn in tiles:
        t = tiled_s(m, n, k, float(tm), float(tn), groups, n_sms, rate_flops_per_s, False, xp, overhead_dim)
        if pruned:
            t = xp.where(triton_tile_offered(m, tm, xp), t, math.inf)
        best = t if best is None else xp.minimum(best, t)
    return best


def compute_s(m, n, k, dtype, peak_flops_per_s, n_sms, prm, groups=1.0, xp=np, tma=True):
    """Compute time of ``groups`` GEMMs of m × n × k. Vendor (cuBLAS): the fitted tile, a shorter one
    for skinny M, split-K below one wave. Triton: the pointer or the persistent kernel as kernels/gemm.py
    dispatches (the persistent one only where the device has TMA, ``tma``), each the fastest of the tiles
    its autotuner tries, no split-K."""
    g = prm.gemm
    eight_bit = dtype in ("fp8", "int8")
    rate = peak_flops_per_s
    eff = g.efficiency_8bit_frac if eight_bit else g.efficiency_frac
    if dtype == "int8":
        eff = eff * g.int8_rate_frac
    if prm.impl != "triton":
        tm = xp.minimum(float(g.tile[0]), m_pow2(m, xp))
        return tiled_s(m, n, k, tm, float(g.tile[1]), groups, n_sms, rate * eff, True, xp)
    t = _autotuned_s(m, n, k, TRITON_POINTER_TILES, groups, n_sms, rate * eff, g.tile_overhead_dim, xp, pruned=True)
    if eight_bit or not tma:
        return t
    t_p = _autotuned_s(m, n, k, TRITON_PERSISTENT_TILES, groups, n_sms, rate * g.persistent_efficiency_frac,
                       g.tile_overhead_dim, xp)
    return xp.where(triton_uses_persistent(m, n, k), t_p, t)


def time(op: Op, hw, prm, xp, link_bytes_per_s, host_link_bytes_per_s):
    s = op.shape
    if prm.impl == "triton":
        check_triton_dtype(hw, op.compute_dtype)
    tc = compute_s(s["m"], s["n"], s["k"], op.compute_dtype, hw.peak(op.compute_dtype), hw.n_sms, prm,
                   s.get("groups", 1.0), xp, tma=has_tma(hw))
    tm = op.hbm_bytes / (hw.memory_bandwidth_bytes_per_s * prm.gemm.gemv_efficiency_frac)
    return tc, tm, prm.gemm.latency_s, 0.0


# DRAM traffic of a large GEMM: an output-tile wave covers DRAM_GROUP_M rows of tiles × (SMs / DRAM_GROUP_M)
# columns; an operand larger than half of L2 is re-read once per wave-row (B) or wave-column (A) band.
# Checked against ncu on an H200 (validate/measurements/h200-sxm-141gb/dram_bytes.csv): 8192³ bf16 1.48 GB
# modelled vs 1.38 GB read+written (minimum 0.40 GB); 4096×14336×4096 0.72 vs 0.68 GB.
# 8-bit GEMMs (fp8 torch._scaled_mm) are modelled with tiles of the same 32768 outputs turned the other way,
# 256 rows × 128 columns: fewer, taller wave-row bands, so B is re-read half as often. Inferred from the ncu
# counts, not from kernel names (not recorded): an fp8 8192³ GEMM read 0.55 GB; the bf16 tile predicts 0.67 GB
# of reads, this one 0.54 GB. Over the 7 fp8 cases measured (with --states-set extra2) reads are 16% off
# with this tile and 21% with bf16's; neither band count fits them all (2048×8192×8192 read its 67 MB B
# 2.3 times, this tile says once, bf16's twice; 4096×14336×4096 read B 2.3 times, this tile 2, bf16's 4).
DRAM_TILE = (128, 256)
DRAM_TILE_8BIT = (256, 128)
DRAM_GROUP_M = 8


def dram_bytes(op: Op, hw) -> float:
    """DRAM bytes of a GEMM op on ``hw`` (see above); skinny and small GEMMs read each operand once."""
    s = op.shape
    m, n, k, g = s["m"], s["n"], s["k"], s.get("groups", 1.0)
    xp = xp_for(m, n, g)
    a = g * m * k * DTYPE_BYTES[op.compute_dtype]
    # B: the weights, or (a kernel benchmark multiplying two activations) the rest of what it reads
    benchmark = isinstance(op.weight_bytes, float) and op.weight_bytes == 0.0
    b = op.act_read_bytes - a if benchmark else op.weight_bytes
    tile_m, tile_n = DRAM_TILE_8BIT if op.compute_dtype in ("fp8", "int8") else DRAM_TILE
    wave_n = max(1, hw.n_sms // DRAM_GROUP_M)
    a_bands = xp.maximum(1.0, xp.ceil(n / (tile_n * wave_n)))
    b_bands = xp.maximum(1.0, xp.ceil(m / (tile_m * DRAM_GROUP_M)))
    return past_l2(a, a_bands, hw, xp) + past_l2(b, b_bands, hw, xp) + op.act_write_bytes


KIND = OpKind(
    name=NAME, help="C[m,n] = A[m,k] @ B[k,n] in dtype", stage="gemm", build=_kernel_op, time=time, library="cublas",
    dram=dram_bytes, clock_bound_frac=lambda prm: prm.gemm.clock_bound_frac, dram_paced=True,
    shape=(ShapeField("m", "int"), ShapeField("n", "int"), ShapeField("k", "int"),
           ShapeField("dtype", "dtype", "bf16")),
)
KINDS = (KIND,)
