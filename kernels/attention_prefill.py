"""Prefill attention (flash-attention forward) in Triton, with causal masking and GQA/MQA.

Anatomy (as in Triton's fused-attention tutorial): ``_attn_fwd_kernel`` → ``attention`` (checks,
allocates, launches) → ``reference`` (fp32 torch). ``flops`` and ``hbm_bytes`` give the counts that
turn a measured time into an achieved rate. Nothing runs at import.

Each program owns BLOCK_M query rows of one (batch, q-head) and streams that head's K/V in BLOCK_N
tiles, keeping the running max, running sum and fp32 output accumulator in registers (online
softmax, exponentials in base 2 with log2(e) folded into the fp32 score scale). Causal work is split in two
loops: tiles wholly below the diagonal ("off-band", no mask) and the tiles that the diagonal
crosses ("on-band", masked), so most tiles pay for no mask arithmetic. For GQA, q-head h reads
kv-head h // (Hq // Hkv).
"""

import math

import torch
import triton
import triton.language as tl

from kernels._common import AUTOTUNE
from kernels._common import INTERPRET as _INTERPRET
from kernels._common import online_softmax_step, require_gpu
from simulator.kinds import attention_prefill as _attention_kind

_SUPPORTED_DTYPES = (torch.float16, torch.bfloat16)
_SUPPORTED_HEAD_DIMS = (64, 128)
_LOG2E = 1.4426950408889634


def _gpu_configs() -> list[triton.Config]:
    def cfg(bm, bn, warps, stages):
        return triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=warps, num_stages=stages)

    return [
        cfg(128, 64, 8, 3),
        cfg(128, 64, 8, 4),
        cfg(128, 128, 8, 3),
        cfg(128, 128, 8, 2),
        cfg(128, 64, 4, 3),
        cfg(64, 64, 4, 4),
    ]


if _INTERPRET:
    # One config under the interpreter: autotuning several configs benchmarks them through the GPU
    # driver, which TRITON_INTERPRET runs lack (hwperf observation, triton 3.x); small tiles keep it cheap.
    _CONFIGS = [triton.Config({"BLOCK_M": 32, "BLOCK_N": 16}, num_warps=4)]
elif not AUTOTUNE:  # quick GPU test runs: no tuning
    _CONFIGS = _gpu_configs()[:1]
else:
    _CONFIGS = _gpu_configs()


@triton.jit
def _attn_inner(
    acc, l_i, m_i, q, qk_scale,
    k_base, v_base, stride_kn, stride_vn,
    offs_m, offs_d, lo, hi, seq_len,
    BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr, DOT_F32: tl.constexpr,
):
    """Online-softmax accumulation over key tiles [lo, hi); qk_scale = sm_scale·log2(e)."""
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k_ptrs = k_base + offs_n[None, :] * stride_kn + offs_d[:, None]
        v_ptrs = v_base + offs_n[:, None] * stride_vn + offs_d[None, :]
        if MASKED:
            k = tl.load(k_ptrs, mask=offs_n[None, :] < seq_len, other=0.0)
            v = tl.load(v_ptrs, mask=offs_n[:, None] < seq_len, other=0.0)
        else:
            k = tl.load(k_ptrs)
            v = tl.load(v_ptrs)
        if DOT_F32:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        # Scores in log2 units: sm_scale·log2(e) applied in fp32, so exp2 gives the softmax.
        qk = tl.dot(q, k) * qk_scale  # [BLOCK_M, BLOCK_N]
        if MASKED:
            keep = offs_n[None, :] < seq_len
            if CAUSAL:
                keep = keep & (offs_m[:, None] >= offs_n[None, :])
            qk = tl.where(keep, qk, float("-inf"))
        # The first tile a row sees always holds a visible key, so m_i is finite from then on and
        # fully masked later tiles give exp2(-inf) = 0 without NaNs.
        acc, l_i, m_i = online_softmax_step(qk, v, acc, l_i, m_i, DOT_F32)
    return acc, l_i, m_i


@triton.autotune(configs=_CONFIGS, key=["SEQ", "HEAD_DIM", "CAUSAL"])
@triton.jit
def _attn_fwd_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr,
    qk_scale,
    stride_qb, stride_qh, stride_qm,
    stride_kb, stride_kh, stride_kn,
    stride_vb, stride_vh, stride_vn,
    stride_ob, stride_oh, stride_om,
    n_q_heads, group_size,
    SEQ,
    HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DOT_F32: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    tl.static_assert(BLOCK_M % BLOCK_N == 0)
    start_m = tl.program_id(0)
    off_bh = tl.program_id(1)
    off_b = off_bh // n_q_heads
    off_h = off_bh % n_q_heads
    off_kvh = off_h // group_size

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q_base = q_ptr + off_b.to(tl.int64) * stride_qb + off_h.to(tl.int64) * stride_qh
    k_base = k_ptr + off_b.to(tl.int64) * stride_kb + off_kvh.to(tl.int64) * stride_kh
    v_base = v_ptr + off_b.to(tl.int64) * stride_vb + off_kvh.to(tl.int64) * stride_vh
    o_base = o_ptr + off_b.to(tl.int64) * stride_ob + off_h.to(tl.int64) * stride_oh

    row_ok = offs_m[:, None] < SEQ
    q = tl.load(q_base + offs_m[:, None] * stride_qm + offs_d[None, :], mask=row_ok, other=0.0)
    if DOT_F32:
        q = q.to(tl.float32)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    if CAUSAL:
        # Off-band: keys [0, start_m·BLOCK_M) are visible to every row of this tile and in bounds.
        off_hi = start_m * BLOCK_M
        acc, l_i, m_i = _attn_inner(acc, l_i, m_i, q, qk_scale, k_base, v_base, stride_kn, stride_vn,
                                    offs_m, offs_d, 0, off_hi, SEQ,
                                    BLOCK_N, False, True, DOT_F32)
        # On-band: the diagonal tile(s), masked for causality and for the sequence end.
        band_hi = tl.minimum((start_m + 1) * BLOCK_M, SEQ)
        acc, l_i, m_i = _attn_inner(acc, l_i, m_i, q, qk_scale, k_base, v_base, stride_kn, stride_vn,
                                    offs_m, offs_d, off_hi, band_hi, SEQ,
                                    BLOCK_N, True, True, DOT_F32)
    else:
        # Full tiles without masks, then one masked tail tile if SEQ is ragged.
        full_hi = (SEQ // BLOCK_N) * BLOCK_N
        acc, l_i, m_i = _attn_inner(acc, l_i, m_i, q, qk_scale, k_base, v_base, stride_kn, stride_vn,
                                    offs_m, offs_d, 0, full_hi, SEQ,
                                    BLOCK_N, False, False, DOT_F32)
        acc, l_i, m_i = _attn_inner(acc, l_i, m_i, q, qk_scale, k_base, v_base, stride_kn, stride_vn,
                                    offs_m, offs_d, full_hi, SEQ, SEQ,
                                    BLOCK_N, True, False, DOT_F32)

    acc = acc / l_i[:, None]
    tl.store(o_base + offs_m[:, None] * stride_om + offs_d[None, :],
             acc.to(o_ptr.dtype.element_ty), mask=row_ok)


def _check_inputs(q, k, v):
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor")
        if t.ndim != 4:
            raise ValueError(f"{name} must be 4-D [batch, heads, seq, head_dim], got {tuple(t.shape)}")
    if q.dtype not in _SUPPORTED_DTYPES:
        raise ValueError(f"q.dtype must be one of {_SUPPORTED_DTYPES}, got {q.dtype}")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise ValueError(f"{name}.dtype must equal q.dtype ({q.dtype}), got {t.dtype}")
        if t.device != q.device:
            raise ValueError(f"{name} must be on q's device {q.device}, got {t.device}")
    require_gpu("q", q)
    if k.shape != v.shape:
        raise ValueError(f"k and v shapes differ: {tuple(k.shape)} vs {tuple(v.shape)}")
    B, Hq, S, D = q.shape
    Bk, Hkv, Sk, Dk = k.shape
    if D not in _SUPPORTED_HEAD_DIMS:
        raise ValueError(f"head_dim must be one of {_SUPPORTED_HEAD_DIMS}, got {D}")
    if (Bk, Sk, Dk) != (B, S, D):
        raise ValueError(
            f"k/v [batch, seq, head_dim] = {(Bk, Sk, Dk)} must match q's {(B, S, D)}"
        )
    if Hkv == 0 or Hq % Hkv != 0:
        raise ValueError(f"n_q_heads ({Hq}) must be a multiple of n_kv_heads ({Hkv})")
    if S == 0 or B == 0:
        raise ValueError(f"batch and seq must be >= 1, got batch={B}, seq={S}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.stride(3) != 1:
            raise ValueError(f"{name} must have a unit stride in head_dim, got strides {t.stride()}")


def attention(q, k, v, causal: bool = True, sm_scale: float | None = None) -> torch.Tensor:
    """softmax(Q Kᵀ · sm_scale [+ causal mask]) V for one prefill chunk (queries = keys = S).

    Args:
        q: [B, Hq, S, D] float16 or bfloat16, D in {64, 128}, unit stride along D.
        k, v: [B, Hkv, S, D], same dtype/device; Hq must be a multiple of Hkv (GQA, MQA: Hkv=1).
        causal: mask keys after the query position (query i sees keys 0..i).
        sm_scale: softmax scale; default 1/sqrt(D).
    Returns:
        o: [B, Hq, S, D], contiguous, same dtype as q.
    """
    _check_inputs(q, k, v)
    B, Hq, S, D = q.shape
    Hkv = k.shape[1]
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(D)
    o = torch.empty_like(q, memory_format=torch.contiguous_format)
    grid = lambda meta: (triton.cdiv(S, meta["BLOCK_M"]), B * Hq)
    _attn_fwd_kernel[grid](
        q, k, v, o,
        sm_scale * _LOG2E,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        o.stride(0), o.stride(1), o.stride(2),
        Hq, Hq // Hkv,
        S,
        HEAD_DIM=D, CAUSAL=bool(causal), DOT_F32=_INTERPRET and q.dtype == torch.bfloat16,
    )
    return o


def reference(q, k, v, causal: bool = True, sm_scale: float | None = None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Plain softmax attention in ``dtype`` (fp32 by default; fp64 for a tighter reference)."""
    B, Hq, S, D = q.shape
    group = Hq // k.shape[1]
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(D)
    qf = q.to(dtype)
    kf = k.to(dtype).repeat_interleave(group, dim=1)
    vf = v.to(dtype).repeat_interleave(group, dim=1)
    scores = (qf @ kf.transpose(-1, -2)) * sm_scale
    if causal:
        visible = torch.ones(S, S, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~visible, float("-inf"))
    return torch.softmax(scores, dim=-1) @ vf


def flops(batch: int, seq: int, n_q_heads: int, head_dim: int, causal: bool) -> int:
    """Matmul FLOPs: QKᵀ and PV are each 2·S·S·D per (batch, q-head) → 4·B·Hq·S²·D.

    Causal counts half the score matrix: the convention of the FlashAttention benchmarks behind the
    FA2 paper's TFLOPs/s (arXiv 2307.08691; Dao-AILab/flash-attention benchmarks/benchmark_flash_attention.py).
    The model's formula (simulator.kinds.attention_prefill) with q = kv = S; 4·… is even, so the
    causal half is a whole number.
    """
    return int(_attention_kind.flops(batch, seq, seq, n_q_heads, head_dim, causal))


def hbm_bytes(batch: int, seq: int, n_q_heads: int, n_kv_heads: int, head_dim: int,
              dtype_bytes: int) -> int:
    """Fewest HBM bytes: Q and O (B·Hq·S·D each) plus K and V (B·Hkv·S·D each), touched once
    (the model's formula, simulator.kinds.attention_prefill, with q = kv = S)."""
    return int(_attention_kind.hbm_bytes(batch, seq, seq, n_q_heads, n_kv_heads, head_dim,
                                         dtype_bytes, dtype_bytes))
