"""Decode attention over a quantized KV cache (int8, int4, int2 with per-group fp16 scale and zero-point).

Anatomy: ``_quant_split_kernel`` (+ the bf16 kernel's reduce, ``attention_decode._decode_reduce_kernel``)
→ ``decode_attention_quant`` (checks, allocates, launches) → ``quantize`` / ``dequantize`` / ``reference``
(torch). ``flops`` and ``hbm_bytes`` turn a measured time into achieved rates. Nothing runs at import.

Format (asymmetric, KIVI-style per-token groups, arXiv 2402.02750): for each cached token and kv-head,
head_dim is cut into groups of ``group_size`` elements; group g stores ``scale``, ``zero`` (fp16) and
codes c ∈ [0, 2^bits − 1] with x ≈ c · scale + zero. Codes are packed little-end first along head_dim:
element d lives in byte d // (8 / bits) at bit offset (d % (8 / bits)) · bits.

Layouts (contiguous cache): k_codes, v_codes [B, Hkv, S_max, D · bits / 8] uint8;
k_scale, k_zero, v_scale, v_zero [B, Hkv, S_max, D / group_size] fp16.

Split-KV as in ``kernels.attention_decode`` (same split rule, same reduce kernel): each program loads a
tile's packed bytes and group scales once, dequantizes them in registers one bit position at a time
(shift + mask, the fp16 exponent trick, one FMA with the broadcast group scale; see the kernel) and runs the
online softmax over fp16 tensor-core dots, so HBM traffic is the compressed bytes only. An earlier version
unpacked an interleaved [BLOCK_N, D] tile with per-element gathers of bytes and scales and reached 5-17% of
the bf16 kernel's bandwidth; ``benchmarks/results/quant_variants_split_h200.csv`` has both.
"""

import math

import torch
import triton
import triton.language as tl

from kernels import attention_decode as _bf16
from kernels._common import AUTOTUNE
from kernels._common import INTERPRET as _INTERPRET
from kernels._common import codes_as_float, require_gpu, split_bounds
from simulator.kinds import attention_decode_quant as _kind

SUPPORTED_BITS = _kind.KERNEL_BITS
_SUPPORTED_HEAD_DIMS = (64, 128)


def _gpu_configs() -> list[triton.Config]:
    # Small token tiles too: dequantized [BLOCK_N, D] tiles live in registers (K, V, codes, scales).
    return [triton.Config({"BLOCK_N": bn}, num_warps=w, num_stages=s)
            for bn in (32, 64, 128) for w in (4, 8) for s in (2, 3)]


if _INTERPRET:
    _CONFIGS = [triton.Config({"BLOCK_N": 32}, num_warps=4)]
elif not AUTOTUNE:
    _CONFIGS = _gpu_configs()[:1]
else:
    _CONFIGS = _gpu_configs()


@triton.jit
def _group_tile(ptr, row, n_ok, stride_stok, N_GROUPS: tl.constexpr, SUB: tl.constexpr, BLOCK_N: tl.constexpr):
    """[BLOCK_N, N_GROUPS · SUB] fp16: each token's per-group value (scale or zero-point), loaded once as a
    contiguous [BLOCK_N, N_GROUPS] tile and broadcast over the SUB elements of its group (no gathers)."""
    offs_g = tl.arange(0, N_GROUPS)
    s = tl.load(ptr + row[:, None] * stride_stok + offs_g[None, :], mask=n_ok[:, None], other=0.0)
    return tl.reshape(tl.broadcast_to(s[:, :, None], (BLOCK_N, N_GROUPS, SUB)), (BLOCK_N, N_GROUPS * SUB))


@triton.jit
def _dequant(packed, scale, zero, SHIFT: tl.constexpr, BITS: tl.constexpr):
    """Codes at bit SHIFT of each int16-widened byte → fp16 c · scale + zero (``codes_as_float``)."""
    return codes_as_float(packed, SHIFT, BITS, 0.0, tl.float16) * scale + zero


@triton.autotune(configs=_CONFIGS, key=["HEAD_DIM", "G_PAD", "BITS", "GROUP", "DIRECT"])
@triton.jit
def _quant_split_kernel(
    q_ptr, kc_ptr, ks_ptr, kz_ptr, vc_ptr, vs_ptr, vz_ptr, ctx_ptr, out_ptr, lse_ptr,
    qk_scale,
    stride_qb, stride_qh,
    stride_cb, stride_ch, stride_ctok,
    stride_sb, stride_sh, stride_stok,
    stride_ob, stride_oh, stride_os,
    stride_lb, stride_lh,
    group_size, tokens_per_split,
    HEAD_DIM: tl.constexpr, G_PAD: tl.constexpr, BITS: tl.constexpr, GROUP: tl.constexpr,
    DIRECT: tl.constexpr, DOT_F32: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Program (b, kv-head, split): partial attention of its query-head group over its token chunk.

    A byte holds the codes of PB = 8 / BITS neighbouring elements d = j·PB + p. Rather than interleaving
    them back into [BLOCK_N, HEAD_DIM] (register shuffles), the program keeps PB sub-tiles
    [BLOCK_N, HEAD_DIM / PB], one per bit position p, and splits q and the output the same way:
    q·kᵀ = Σ_p q[:, p::PB] · k_pᵀ and o[:, p::PB] = P · v_p. Every load is contiguous (packed bytes once,
    scales and zero-points once per group). The dots run in fp16 whatever q's dtype (q is converted once
    per program), so the dequantized fp16 tiles feed the tensor cores without a conversion per element.
    """
    b, kvh, split, lo, hi = split_bounds(ctx_ptr, tokens_per_split)
    PB: tl.constexpr = 8 // BITS
    DP: tl.constexpr = HEAD_DIM // PB
    N_GROUPS: tl.constexpr = HEAD_DIM // GROUP
    SUB: tl.constexpr = GROUP // PB

    offs_g = tl.arange(0, G_PAD)
    offs_j = tl.arange(0, DP)
    heads = kvh * group_size + offs_g
    g_ok = offs_g < group_size
    q_ptrs = q_ptr + b * stride_qb + heads[:, None] * stride_qh + offs_j[None, :] * PB
    dt = tl.float32 if DOT_F32 else tl.float16
    q0 = tl.load(q_ptrs, mask=g_ok[:, None], other=0.0).to(dt)
    q1 = q0
    q2 = q0
    q3 = q0
    if PB > 1:
        q1 = tl.load(q_ptrs + 1, mask=g_ok[:, None], other=0.0).to(dt)
    if PB > 2:
        q2 = tl.load(q_ptrs + 2, mask=g_ok[:, None], other=0.0).to(dt)
        q3 = tl.load(q_ptrs + 3, mask=g_ok[:, None], other=0.0).to(dt)
    c_base = b.to(tl.int64) * stride_cb + kvh.to(tl.int64) * stride_ch
    s_base = b.to(tl.int64) * stride_sb + kvh.to(tl.int64) * stride_sh

    m_i = tl.full([G_PAD], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([G_PAD], dtype=tl.float32)
    acc0 = tl.zeros([G_PAD, DP], dtype=tl.float32)
    acc1 = acc0
    acc2 = acc0
    acc3 = acc0
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        n_ok = offs_n < hi
        row = offs_n.to(tl.int64)
        byte_off = row[:, None] * stride_ctok + offs_j[None, :]
        kp = tl.load(kc_ptr + c_base + byte_off, mask=n_ok[:, None], other=0).to(tl.int16)
        vp = tl.load(vc_ptr + c_base + byte_off, mask=n_ok[:, None], other=0).to(tl.int16)
        k_s = _group_tile(ks_ptr + s_base, row, n_ok, stride_stok, N_GROUPS, SUB, BLOCK_N)
        k_z = _group_tile(kz_ptr + s_base, row, n_ok, stride_stok, N_GROUPS, SUB, BLOCK_N)
        qk = tl.dot(q0, tl.trans(_dequant(kp, k_s, k_z, 0, BITS).to(dt)))
        if PB > 1:
            qk = tl.dot(q1, tl.trans(_dequant(kp, k_s, k_z, BITS, BITS).to(dt)), qk)
        if PB > 2:
            qk = tl.dot(q2, tl.trans(_dequant(kp, k_s, k_z, 2 * BITS, BITS).to(dt)), qk)
            qk = tl.dot(q3, tl.trans(_dequant(kp, k_s, k_z, 3 * BITS, BITS).to(dt)), qk)
        qk = tl.where(n_ok[None, :], qk * qk_scale, float("-inf"))
        # online softmax (kernels._common.online_softmax_step, spelled out for the PB accumulators)
        m_ij = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_ij[:, None])
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + tl.sum(p, 1)
        m_i = m_ij
        p = p.to(dt)
        v_s = _group_tile(vs_ptr + s_base, row, n_ok, stride_stok, N_GROUPS, SUB, BLOCK_N)
        v_z = _group_tile(vz_ptr + s_base, row, n_ok, stride_stok, N_GROUPS, SUB, BLOCK_N)
        acc0 = tl.dot(p, _dequant(vp, v_s, v_z, 0, BITS).to(dt), acc0 * alpha[:, None])
        if PB > 1:
            acc1 = tl.dot(p, _dequant(vp, v_s, v_z, BITS, BITS).to(dt), acc1 * alpha[:, None])
        if PB > 2:
            acc2 = tl.dot(p, _dequant(vp, v_s, v_z, 2 * BITS, BITS).to(dt), acc2 * alpha[:, None])
            acc3 = tl.dot(p, _dequant(vp, v_s, v_z, 3 * BITS, BITS).to(dt), acc3 * alpha[:, None])

    nonempty = l_i > 0.0
    l_safe = tl.where(nonempty, l_i, 1.0)
    out_ptrs = out_ptr + b * stride_ob + heads[:, None] * stride_oh + split * stride_os + offs_j[None, :] * PB
    out_t = out_ptr.dtype.element_ty
    tl.store(out_ptrs, (acc0 / l_safe[:, None]).to(out_t), mask=g_ok[:, None])
    if PB > 1:
        tl.store(out_ptrs + 1, (acc1 / l_safe[:, None]).to(out_t), mask=g_ok[:, None])
    if PB > 2:
        tl.store(out_ptrs + 2, (acc2 / l_safe[:, None]).to(out_t), mask=g_ok[:, None])
        tl.store(out_ptrs + 3, (acc3 / l_safe[:, None]).to(out_t), mask=g_ok[:, None])
    if not DIRECT:
        lse = tl.where(nonempty, m_i + tl.math.log2(l_safe), float("-inf"))
        tl.store(lse_ptr + b * stride_lb + heads * stride_lh + split, lse, mask=g_ok)


# ---- the quantized format (torch) -------------------------------------------------------------------------

def quantize(x: torch.Tensor, bits: int, group_size: int):
    """x [..., D] float → (codes [..., D·bits/8] uint8, scale [..., D/G] fp16, zero [..., D/G] fp16)."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of {', '.join(map(str, SUPPORTED_BITS))}, got {bits}")
    D = x.shape[-1]
    if D % group_size:
        raise ValueError(f"group_size ({group_size}) must divide head_dim ({D})")
    g = x.float().unflatten(-1, (D // group_size, group_size))
    lo, hi = g.amin(-1), g.amax(-1)
    levels = (1 << bits) - 1
    scale = ((hi - lo) / levels).clamp_min(1e-8).half()
    zero = lo.half()
    codes = ((g - zero.float()[..., None]) / scale.float()[..., None]).round().clamp(0, levels).to(torch.int32)
    codes = codes.flatten(-2).unflatten(-1, (D * bits // 8, 8 // bits))
    shifts = torch.arange(8 // bits, device=x.device, dtype=torch.int32) * bits
    packed = (codes << shifts).sum(-1).to(torch.uint8)
    return packed, scale, zero


def dequantize(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int) -> torch.Tensor:
    """The fp32 values the kernel sees: c · scale + zero, per group."""
    shifts = torch.arange(8 // bits, device=codes.device, dtype=torch.int32) * bits
    c = ((codes.to(torch.int32)[..., None] >> shifts) & ((1 << bits) - 1)).flatten(-2).float()
    group = c.shape[-1] // scale.shape[-1]
    return (c.unflatten(-1, (-1, group)) * scale.float()[..., None] + zero.float()[..., None]).flatten(-2)


def _check(q, k, v, context_lens, bits):
    if q.ndim != 3 or q.dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"q must be [B, Hq, D] float16/bfloat16, got {q.dtype} {tuple(q.shape)}")
    require_gpu("q", q)
    B, Hq, D = q.shape
    if D not in _SUPPORTED_HEAD_DIMS:
        raise ValueError(f"head_dim must be one of {_SUPPORTED_HEAD_DIMS}, got {D}")
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of {', '.join(map(str, SUPPORTED_BITS))}, got {bits}")
    codes, scale, zero = k
    if codes.dtype != torch.uint8 or codes.ndim != 4 or codes.shape[0] != B or codes.shape[3] != D * bits // 8:
        raise ValueError(f"k codes must be uint8 [B={B}, Hkv, S, {D * bits // 8}], got {codes.dtype} "
                         f"{tuple(codes.shape)}")
    for name, t in (("k scale", scale), ("k zero", zero), ("v scale", v[1]), ("v zero", v[2])):
        if t.shape != scale.shape or t.dtype != torch.float16 or t.stride() != scale.stride():
            raise ValueError(f"{name} must be fp16 {tuple(scale.shape)} like k scale, got {t.dtype} {tuple(t.shape)}")
    if D % scale.shape[3]:
        raise ValueError(f"group count {scale.shape[3]} does not divide head_dim {D}")
    if v[0].shape != codes.shape or v[0].stride() != codes.stride():
        raise ValueError("v codes must have k codes' shape and strides")
    if codes.stride(3) != 1 or scale.stride(3) != 1:
        raise ValueError("codes and scales must be contiguous along head_dim")
    if Hq % codes.shape[1]:
        raise ValueError(f"n_q_heads ({Hq}) must be a multiple of n_kv_heads ({codes.shape[1]})")
    if context_lens.shape != (B,) or context_lens.dtype != torch.int32:
        raise ValueError(f"context_lens must be int32 of shape ({B},)")


def decode_attention_quant(q, k, v, context_lens, bits: int, sm_scale=None, num_splits=None) -> torch.Tensor:
    """softmax(q Kᵀ · sm_scale) V over the first context_lens[b] tokens of a quantized cache.

    Args:
        q: [B, Hq, D] fp16/bf16, D in {64, 128}.
        k, v: (codes, scale, zero) each, as ``quantize`` returns for a [B, Hkv, S_max, D] cache.
        context_lens: [B] int32. bits: 8, 4 or 2.
    Returns: o [B, Hq, D], q's dtype.
    """
    _check(q, k, v, context_lens, bits)
    B, Hq, D = q.shape
    codes, scale, _ = k
    _, Hkv, max_context, _ = codes.shape
    group_size = D // scale.shape[3]
    if num_splits is None:
        num_splits = _bf16.default_num_splits(B, Hkv, max_context, _bf16._num_sms(q.device))
    tokens_per_split = triton.cdiv(triton.cdiv(max(max_context, 1), num_splits),
                                   _bf16._SPLIT_ALIGN_TOKENS) * _bf16._SPLIT_ALIGN_TOKENS
    sm_scale = 1.0 / math.sqrt(D) if sm_scale is None else sm_scale
    group = Hq // Hkv
    o = torch.empty((B, Hq, D), device=q.device, dtype=q.dtype)
    direct = num_splits == 1
    if direct:
        part, lse, lse_strides = o.unsqueeze(2), o, (0, 0)
    else:
        part = torch.empty((B, Hq, num_splits, D), device=q.device, dtype=torch.float32)
        lse = torch.empty((B, Hq, num_splits), device=q.device, dtype=torch.float32)
        lse_strides = (lse.stride(0), lse.stride(1))
    _quant_split_kernel[(B, Hkv, num_splits)](
        q, codes, scale, k[2], v[0], v[1], v[2], context_lens, part, lse,
        sm_scale * _bf16._LOG2E,
        q.stride(0), q.stride(1),
        codes.stride(0), codes.stride(1), codes.stride(2),
        scale.stride(0), scale.stride(1), scale.stride(2),
        part.stride(0), part.stride(1), part.stride(2),
        *lse_strides,
        group, tokens_per_split,
        HEAD_DIM=D, G_PAD=max(16, triton.next_power_of_2(group)), BITS=bits, GROUP=group_size,
        DIRECT=direct, DOT_F32=_INTERPRET and q.dtype == torch.bfloat16,
    )
    if not direct:
        _bf16._decode_reduce_kernel[(B, Hq)](
            part, lse, o, part.stride(0), part.stride(1), part.stride(2), lse.stride(0), lse.stride(1),
            o.stride(0), o.stride(1), num_splits,
            HEAD_DIM=D, SPLITS_PAD=max(2, triton.next_power_of_2(num_splits)), num_warps=4)
    return o


def reference(q, k, v, context_lens, bits: int, sm_scale=None, dtype=torch.float32) -> torch.Tensor:
    """Attention in ``dtype`` over the dequantized cache (``dequantize``), per sequence."""
    kf = dequantize(*k, bits)
    vf = dequantize(*v, bits)
    return _bf16.reference(q, kf, vf, context_lens, sm_scale=sm_scale, dtype=dtype)


def flops(batch: int, context: int, n_q_heads: int, head_dim: int) -> int:
    """4·B·Hq·ctx·D, the model's attention formula with one query token."""
    return _bf16.flops(batch, context, n_q_heads, head_dim)


def hbm_bytes(batch: int, context: int, n_q_heads: int, n_kv_heads: int, head_dim: int, bits: int,
              group_size: int) -> int:
    """Fewest HBM bytes: packed K and V codes + their fp16 scales and zero-points
    (``simulator.kinds.attention_decode_quant.kernel_kv_bytes``) + q read and o written in bf16."""
    qo = 2 * batch * n_q_heads * head_dim * 2
    return int(_kind.kernel_kv_bytes(batch, context, n_kv_heads, head_dim, bits, group_size) + qo)
