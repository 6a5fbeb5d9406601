"""W4A16 GEMM: activations in 16 bits times int4 weights with one fp16 scale per group of 128 along K
(GPTQ, arXiv 2210.17323; AWQ, arXiv 2306.00978), dequantized in registers before the tensor cores.

Counts: 2·m·n·k FLOPs; HBM bytes = x (m·k·2) + packed weights (n·k/2) + scales (n·k/128·2) + y (m·n·2)
(``hbm_bytes``; ``kernels/gemm_w4a16.py`` counts with it). Dequantization: every tile unpacks its
[BLOCK_N, K / splits] weight slice on its own SM (3 non-tensor operations per weight: shift/mask,
subtract, scale), so it runs in the same waves as the tile's MMAs.

Time: tiles and waves as ``gemm.tiled_s`` over hwperf's kernel's tiles (no split-K) at ``efficiency_frac``
of the 16-bit peak, plus dequantization at ``dequant_frac`` of the fp32 (CUDA-core) rate, knee'd with the
bytes at ``stream_frac`` of HBM bandwidth, plus a latency floor. Parameter group: ``gemm_w4a16``.
"""

from __future__ import annotations

from simulator.kinds.base import Op, OpKind, ShapeField
from simulator.kinds.gemm import flops, tiled_s

NAME = "gemm_w4a16"
GROUP_SIZE = 128
SCALE_BYTES = 2.0
DEQUANT_OPS_PER_WEIGHT = 3.0
# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) of the Triton kernel's autotune candidates.
TRITON_CONFIGS = ((16, 32, 128, 4, 4), (16, 64, 128, 4, 4), (16, 64, 64, 4, 4), (16, 32, 64, 4, 3),
                  (16, 128, 64, 8, 3), (64, 128, 64, 4, 4), (128, 128, 64, 8, 3), (128, 256, 64, 8, 3),
                  (64, 64, 64, 4, 4))
SMALL_M_TILE = 16
SPLIT_MIN_K = 512
SPLIT_MAX = 16


def triton_split_k(m, n, k, n_sms):
    """The Triton kernel's K splits (torch-free, shared with the kernel): skinny M (≤ 64) splits K until
    n-tiles of the smallest N tile × splits reach two programs per SM, each split ≥ 512 of K, a power of
    two dividing K / 128; otherwise 1."""
    if m > 64:
        return 1
    n_tiles = -(-n // min(c[1] for c in TRITON_CONFIGS))
    s = 1
    while (n_tiles * s < 2 * n_sms and s < SPLIT_MAX and k % (2 * s * 128) == 0
           and k // (2 * s) >= SPLIT_MIN_K):
        s *= 2
    return s


def hbm_bytes(m, n, k, group_size=GROUP_SIZE):
    """x and y in 16 bits, packed int4 weights, one fp16 scale per group."""
    return 2.0 * m * k + n * k / 2.0 + n * k / group_size * SCALE_BYTES + 2.0 * m * n


def w4a16_op(name, m, n, k, *, act_dtype="bf16", scope="layer", n_repeats=1) -> Op:
    w = n * k / 2.0 + n * k / GROUP_SIZE * SCALE_BYTES
    return Op(name=name, kind=NAME, scope=scope, n_repeats=n_repeats, flops=flops(m, n, k) * 1.0, weight_bytes=w,
              act_read_bytes=2.0 * m * k, act_write_bytes=2.0 * m * n, compute_dtype=act_dtype,
              shape={"m": m, "n": n, "k": k})


def time(op: Op, hw, prm, xp, link_bytes_per_s, host_link_bytes_per_s):
    s, g = op.shape, prm.gemm_w4a16
    m, n, k = s["m"], s["n"], s["k"]
    rate = hw.peak(op.compute_dtype) * g.efficiency_frac
    splits = triton_split_k(m, n, k, hw.n_sms)
    tc = None
    for tm, tn, _, _, _ in TRITON_CONFIGS:
        if tm > max(SMALL_M_TILE, 1 << (int(m) - 1).bit_length()):
            continue  # pruned for skinny M (the kernel's rule: BLOCK_M ≤ max(16, next power of two ≥ m))
        t = tiled_s(m, n, k / splits, float(tm), float(tn), float(splits), hw.n_sms, rate, False, xp)
        # each tile also unpacks its tn × k/splits weights on its SM's CUDA cores, wave by wave
        waves = xp.ceil(xp.ceil(m / tm) * xp.ceil(n / tn) * splits / hw.n_sms)
        t = t + waves * tn * (k / splits) * DEQUANT_OPS_PER_WEIGHT / (hw.peak("fp32") / hw.n_sms * g.dequant_frac)
        tc = t if tc is None else xp.minimum(tc, t)
    tm_s = op.hbm_bytes / (hw.memory_bandwidth_bytes_per_s * g.stream_frac)
    return tc, tm_s, g.latency_s, 0.0


def _kernel_op(m, n, k, dtype) -> Op:
    return w4a16_op(NAME, m, n, k, act_dtype=dtype, scope="model")


def _check(shape: dict) -> None:
    if shape["k"] % GROUP_SIZE:
        raise ValueError(f"k must be a multiple of the group size {GROUP_SIZE}, got {shape['k']}")
    if shape["dtype"] not in ("bf16", "fp16"):
        raise ValueError(f"dtype must be bf16 or fp16 (the activations of W4A16), got {shape['dtype']}")


KIND = OpKind(
    name=NAME, help="y[m,n] = x[m,k] @ W[n,k]^T with int4 W and fp16 scales per 128 (weight-only quantization)",
    stage=NAME, build=_kernel_op, time=time, check=_check, library="triton",
    shape=(ShapeField("m", "int"), ShapeField("n", "int"), ShapeField("k", "int"), ShapeField("dtype", "dtype", "bf16")),
)
KINDS = (KIND,)
