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
tile's packed bytes and group scales once, turns the codes into fp16 in registers one bit position at a time
(a mask, an OR and a subtract: ``_codes``), and folds the scales and zero-points into the small operands of
the tensor-core dots instead of the [BLOCK_N, HEAD_DIM] tiles (see the kernel), so HBM traffic is the
compressed bytes only. Earlier versions, measured side by side in ``benchmarks/results/``: per-element
gathers of bytes and scales (5-17% of the bf16 kernel's bandwidth), then bit planes dequantized with an FMA
against broadcast scale tiles (17-44%), then this one.
"""

import math

import torch
import triton
import triton.language as tl

from kernels import attention_decode as _bf16
from kernels._common import AUTOTUNE
from kernels._common import INTERPRET as _INTERPRET
from kernels._common import require_gpu, split_bounds
from simulator.kinds import attention_decode_quant as _kind

SUPPORTED_BITS = _kind.KERNEL_BITS
_SUPPORTED_HEAD_DIMS = (64, 128)


def _gpu_configs() -> list[triton.Config]:
    # Large token tiles too: a tile of 2- or 4-bit codes is a quarter or an eighth of a bf16 tile's bytes.
    # (H200, 2026-12-01: 4 warps beat 8 at every benchmarked shape, so 8 gave way to 2.)
    return [triton.Config({"BLOCK_N": bn}, num_warps=w, num_stages=s)
            for bn in (64, 128, 256) for w in (2, 4) for s in (2, 3)]


if _INTERPRET:
    _CONFIGS = [triton.Config({"BLOCK_N": 32}, num_warps=4)]
elif not AUTOTUNE:
    _CONFIGS = _gpu_configs()[:1]
else:
    _CONFIGS = _gpu_configs()


@triton.jit
def _codes(packed, P: tl.constexpr, BITS: tl.constexpr):
    """fp16 2^(P·BITS) · (c − 2^(BITS−1)) for the BITS-bit code c at bit P·BITS of each int16-widened byte,
    exactly: the code is masked in place (no shift), the exponent bits of 1024 (0x6400) are OR-ed in, making
    the fp16 number 1024 + 2^(P·BITS) · c (< 2048: exact), and one subtract removes the 1024 and the
    midpoint. The power of two is undone on the small operand (q, or the output) instead of on every element.

    Centred codes keep the running P·V accumulator near the data's own scale: with raw codes (all ≥ 0) it
    grew to ~2^(BITS−1) · scale per unit weight, only for the zero-point term to cancel it at the end, and
    the tensor cores' accumulation error on that large sum reached 2% of the output at 32K tokens, int8."""
    mid: tl.constexpr = 1024.0 + (1 << (P * BITS)) * (1 << (BITS - 1))
    return ((packed & (((1 << BITS) - 1) << (P * BITS))) | 0x6400).to(tl.float16, bitcast=True) - mid


@triton.jit
def _head_rows(kvh, group_size, GP: tl.constexpr, DP: tl.constexpr, NG: tl.constexpr, SUB: tl.constexpr):
    """A program's query heads [GP], which of them exist, and in_grp [NG, 1, DP]: plane column j belongs to
    scale group g = j // SUB."""
    offs_h = tl.arange(0, GP)
    in_grp = tl.arange(0, NG)[:, None, None] == (tl.arange(0, DP) // SUB)[None, None, :]
    return kvh * group_size + offs_h, offs_h < group_size, in_grp


@triton.jit
def _q_plane(q_ptrs, h_ok, in_grp, qsum, P: tl.constexpr, BITS: tl.constexpr, R: tl.constexpr,
             DP: tl.constexpr, DT: tl.constexpr):
    """q's elements d = j·PB + P as the block-diagonal operand [R = NG·GP, DP]: row (g, h) holds head h's
    elements of scale group g (zero elsewhere), divided by 2^(P·BITS) to undo ``_codes``' in-place
    weight; qsum [NG, GP] gains each head's sum over each group (the zero-point's coefficient)."""
    q = tl.load(q_ptrs + P, mask=h_ok[:, None], other=0.0).to(tl.float32)
    qg = tl.where(in_grp, q[None, :, :], 0.0)
    return tl.reshape(qg * (1.0 / (1 << (P * BITS))), (R, DP)).to(DT), qsum + tl.sum(qg, 2)


@triton.jit
def _group_rows(x, in_grp, P: tl.constexpr, BITS: tl.constexpr, NG: tl.constexpr, GP: tl.constexpr,
                DP: tl.constexpr):
    """[R, DP] block-diagonal accumulator → [GP, DP]: column j's value from its own scale group's rows."""
    x3 = tl.reshape(x, (NG, GP, DP))
    return tl.sum(tl.where(in_grp, x3, 0.0), 0) * (1.0 / (1 << (P * BITS)))


@triton.jit
def _load_tile(kc, vc, ks, kz, vs, vz, start_n, hi, stride_ctok, stride_stok, DP: tl.constexpr, NG: tl.constexpr,
               BLOCK_N: tl.constexpr):
    """Tokens [start_n, start_n + BLOCK_N) of one (sequence, kv-head): K and V packed codes [BLOCK_N, DP]
    (int16-widened), their scales and zero-points transposed [NG, BLOCK_N] fp32, and the in-range mask."""
    offs_n = start_n + tl.arange(0, BLOCK_N)
    n_ok = offs_n < hi
    row = offs_n.to(tl.int64)
    byte_off = row[:, None] * stride_ctok + tl.arange(0, DP)[None, :]
    kp = tl.load(kc + byte_off, mask=n_ok[:, None], other=0).to(tl.int16)
    vp = tl.load(vc + byte_off, mask=n_ok[:, None], other=0).to(tl.int16)
    s_off = row[None, :] * stride_stok + tl.arange(0, NG)[:, None]
    s_ok = n_ok[None, :]
    return (kp, vp, tl.load(ks + s_off, mask=s_ok, other=0.0).to(tl.float32),
            tl.load(kz + s_off, mask=s_ok, other=0.0).to(tl.float32),
            tl.load(vs + s_off, mask=s_ok, other=0.0).to(tl.float32),
            tl.load(vz + s_off, mask=s_ok, other=0.0).to(tl.float32), n_ok)


@triton.autotune(configs=_CONFIGS, key=["HEAD_DIM", "GP", "BITS", "GROUP", "DIRECT"])
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
    HEAD_DIM: tl.constexpr, GP: tl.constexpr, BITS: tl.constexpr, GROUP: tl.constexpr,
    DIRECT: tl.constexpr, DOT_F32: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Program (b, kv-head, split): partial attention of its query-head group over its token chunk.

    Bit planes: a byte holds the codes of PB = 8 / BITS neighbouring elements d = j·PB + p. The program keeps
    one [BLOCK_N, DP = HEAD_DIM / PB] tile per bit position p and splits q and the output the same way
    (q·kᵀ = Σ_p q[:, p::PB] · k_pᵀ, o[:, p::PB] = P · v_p), so packed bytes load once, contiguously, and
    nothing is interleaved back.

    Scales folded out of the big tiles: with k = s·c + z per (token, group), q·k = Σ_g s_g (q_g·c_g) + z_g Σ q_g.
    The dot runs on the raw codes with q laid out block-diagonally (row (g, h) = head h's group-g elements),
    giving every group's partial score [NG·GP, BLOCK_N] in one tensor-core dot; the scales and zero-points
    are applied to those partials (NG·GP·BLOCK_N multiplies, not BLOCK_N·HEAD_DIM). Values likewise: the
    softmax weights are multiplied by each group's scale ([NG·GP, BLOCK_N]) before the dot with raw codes,
    and Σ_n p·z is a [GP, NG] side sum. GQA groups of 4 with 4 scale groups fill the 16 rows a tensor-core
    dot pads to anyway, so the block-diagonal layout costs no extra dot work there. Per code element the
    program does a mask, an OR and a subtract (``_codes``): no shift, no int→float conversion, no FMA.
    """
    b, kvh, split, lo, hi = split_bounds(ctx_ptr, tokens_per_split)
    PB: tl.constexpr = 8 // BITS
    DP: tl.constexpr = HEAD_DIM // PB
    NG: tl.constexpr = HEAD_DIM // GROUP
    SUB: tl.constexpr = GROUP // PB  # a sub-tile's columns per scale group: column j is in group j // SUB
    R: tl.constexpr = NG * GP

    offs_j = tl.arange(0, DP)
    heads, h_ok, in_grp = _head_rows(kvh, group_size, GP, DP, NG, SUB)
    q_ptrs = q_ptr + b * stride_qb + heads[:, None] * stride_qh + offs_j[None, :] * PB
    dt = tl.float32 if DOT_F32 else tl.float16
    qsum = tl.zeros([NG, GP], dtype=tl.float32)
    q0, qsum = _q_plane(q_ptrs, h_ok, in_grp, qsum, 0, BITS, R, DP, dt)
    q1 = q0
    q2 = q0
    q3 = q0
    if PB > 1:
        q1, qsum = _q_plane(q_ptrs, h_ok, in_grp, qsum, 1, BITS, R, DP, dt)
    if PB > 2:
        q2, qsum = _q_plane(q_ptrs, h_ok, in_grp, qsum, 2, BITS, R, DP, dt)
        q3, qsum = _q_plane(q_ptrs, h_ok, in_grp, qsum, 3, BITS, R, DP, dt)
    c_base = b.to(tl.int64) * stride_cb + kvh.to(tl.int64) * stride_ch
    s_base = b.to(tl.int64) * stride_sb + kvh.to(tl.int64) * stride_sh

    m_i = tl.full([GP], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([GP], dtype=tl.float32)
    z_acc = tl.zeros([NG, GP], dtype=tl.float32)  # Σ_n p · v_zero, per group
    acc0 = tl.zeros([R, DP], dtype=tl.float32)
    acc1 = acc0
    acc2 = acc0
    acc3 = acc0
    kc = kc_ptr + c_base
    vc = vc_ptr + c_base
    ks = ks_ptr + s_base
    kz = kz_ptr + s_base
    vs = vs_ptr + s_base
    vz = vz_ptr + s_base
    # Prefetch by hand: the next tile's loads are issued before this tile's math (the codes feed register
    # math, not a dot, so Triton's pipeliner leaves them synchronous). H200: +10-16% at 8 and 4 bits.
    kp_n, vp_n, ks_n, kz_n, vs_n, vz_n, ok_n = _load_tile(kc, vc, ks, kz, vs, vz, lo, hi, stride_ctok,
                                                          stride_stok, DP, NG, BLOCK_N)
    MID: tl.constexpr = 1 << (BITS - 1)
    for start_n in range(lo, hi, BLOCK_N):
        kp, vp, k_s, k_z, v_s, v_z, n_ok = kp_n, vp_n, ks_n, kz_n, vs_n, vz_n, ok_n
        k_z = k_z + k_s * MID  # x = s·c + z = s·(c − MID) + (z + s·MID): ``_codes`` are centred
        v_z = v_z + v_s * MID
        kp_n, vp_n, ks_n, kz_n, vs_n, vz_n, ok_n = _load_tile(kc, vc, ks, kz, vs, vz, start_n + BLOCK_N, hi,
                                                              stride_ctok, stride_stok, DP, NG, BLOCK_N)
        part = tl.dot(q0, tl.trans(_codes(kp, 0, BITS).to(dt)))  # [R, BLOCK_N]: q_g · c_g per group
        if PB > 1:
            part = tl.dot(q1, tl.trans(_codes(kp, 1, BITS).to(dt)), part)
        if PB > 2:
            part = tl.dot(q2, tl.trans(_codes(kp, 2, BITS).to(dt)), part)
            part = tl.dot(q3, tl.trans(_codes(kp, 3, BITS).to(dt)), part)
        qk = tl.sum(tl.reshape(part, (NG, GP, BLOCK_N)) * k_s[:, None, :], 0) \
            + tl.sum(qsum[:, :, None] * k_z[:, None, :], 0)
        qk = tl.where(n_ok[None, :], qk * qk_scale, float("-inf"))
        # online softmax (kernels._common.online_softmax_step, spelled out for the block-diagonal accumulators)
        m_ij = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_ij[:, None])
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + tl.sum(p, 1)
        m_i = m_ij
        z_acc = z_acc * alpha[None, :] + tl.sum(p[None, :, :] * v_z[:, None, :], 2)
        pv = tl.reshape(p[None, :, :] * v_s[:, None, :], (R, BLOCK_N)).to(dt)  # row (g, h): p · v_scale_g
        a_r = tl.reshape(tl.broadcast_to(alpha[None, :], (NG, GP)), (R,))[:, None]
        acc0 = tl.dot(pv, _codes(vp, 0, BITS).to(dt), acc0 * a_r)
        if PB > 1:
            acc1 = tl.dot(pv, _codes(vp, 1, BITS).to(dt), acc1 * a_r)
        if PB > 2:
            acc2 = tl.dot(pv, _codes(vp, 2, BITS).to(dt), acc2 * a_r)
            acc3 = tl.dot(pv, _codes(vp, 3, BITS).to(dt), acc3 * a_r)

    nonempty = l_i > 0.0
    l_safe = tl.where(nonempty, l_i, 1.0)[:, None]
    z_cols = tl.sum(tl.where(in_grp, z_acc[:, :, None], 0.0), 0)  # [GP, DP]: column j's group's Σ p·z
    out_ptrs = out_ptr + b * stride_ob + heads[:, None] * stride_oh + split * stride_os + offs_j[None, :] * PB
    out_t = out_ptr.dtype.element_ty
    tl.store(out_ptrs, ((_group_rows(acc0, in_grp, 0, BITS, NG, GP, DP) + z_cols) / l_safe).to(out_t),
             mask=h_ok[:, None])
    if PB > 1:
        tl.store(out_ptrs + 1, ((_group_rows(acc1, in_grp, 1, BITS, NG, GP, DP) + z_cols) / l_safe).to(out_t),
                 mask=h_ok[:, None])
    if PB > 2:
        tl.store(out_ptrs + 2, ((_group_rows(acc2, in_grp, 2, BITS, NG, GP, DP) + z_cols) / l_safe).to(out_t),
                 mask=h_ok[:, None])
        tl.store(out_ptrs + 3, ((_group_rows(acc3, in_grp, 3, BITS, NG, GP, DP) + z_cols) / l_safe).to(out_t),
                 mask=h_ok[:, None])
    if not DIRECT:
        lse = tl.where(nonempty, m_i + tl.math.log2(tl.where(nonempty, l_i, 1.0)), float("-inf"))
        tl.store(lse_ptr + b * stride_lb + heads * stride_lh + split, lse, mask=h_ok)


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
    if (D // scale.shape[3]) % (8 // bits) or (scale.shape[3] & (scale.shape[3] - 1)):
        raise ValueError(f"group_size ({D // scale.shape[3]}) must be a multiple of {8 // bits} (codes per byte) "
                         f"leaving a power-of-two group count")
    if v[0].shape != codes.shape or v[0].stride() != codes.stride():
        raise ValueError("v codes must have k codes' shape and strides")
    if codes.stride(3) != 1 or scale.stride(3) != 1:
        raise ValueError("codes and scales must be contiguous along head_dim")
    if Hq % codes.shape[1]:
        raise ValueError(f"n_q_heads ({Hq}) must be a multiple of n_kv_heads ({codes.shape[1]})")
    if context_lens.shape != (B,) or context_lens.dtype != torch.int32:
        raise ValueError(f"context_lens must be int32 of shape ({B},)")


def _rows_per_group(group: int, n_groups: int) -> int:
    """Rows per scale group of the block-diagonal operand: the query-head group padded to a power of two,
    and to 16 rows in all (a tensor-core dot's smallest M)."""
    return max(triton.next_power_of_2(group), triton.cdiv(16, n_groups))


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
    num_splits, tokens_per_split, o, part, lse, lse_strides = split_buffers(q, Hkv, max_context, num_splits)
    sm_scale = 1.0 / math.sqrt(D) if sm_scale is None else sm_scale
    group = Hq // Hkv
    direct = num_splits == 1
    _quant_split_kernel[(B, Hkv, num_splits)](
        q, codes, scale, k[2], v[0], v[1], v[2], context_lens, part, lse,
        sm_scale * _bf16._LOG2E,
        q.stride(0), q.stride(1),
        codes.stride(0), codes.stride(1), codes.stride(2),
        scale.stride(0), scale.stride(1), scale.stride(2),
        part.stride(0), part.stride(1), part.stride(2),
        *lse_strides,
        group, tokens_per_split,
        HEAD_DIM=D, GP=_rows_per_group(group, D // group_size), BITS=bits, GROUP=group_size,
        DIRECT=direct, DOT_F32=_INTERPRET and q.dtype == torch.bfloat16,
    )
    return merge_splits(part, lse, o, num_splits)


def split_buffers(q, n_kv_heads: int, max_context: int, num_splits):
    """Split-KV geometry and buffers of a decode launch (``kernels.attention_decode``'s rule):
    (num_splits, tokens_per_split, o [B, Hq, D], part, lse, lse_strides); one split writes o directly."""
    B, Hq, D = q.shape
    if num_splits is None:
        num_splits = _bf16.default_num_splits(B, n_kv_heads, max_context, _bf16._num_sms(q.device))
    tokens_per_split = triton.cdiv(triton.cdiv(max(max_context, 1), num_splits),
                                   _bf16._SPLIT_ALIGN_TOKENS) * _bf16._SPLIT_ALIGN_TOKENS
    o = torch.empty((B, Hq, D), device=q.device, dtype=q.dtype)
    if num_splits == 1:
        return num_splits, tokens_per_split, o, o.unsqueeze(2), o, (0, 0)
    part = torch.empty((B, Hq, num_splits, D), device=q.device, dtype=torch.float32)
    lse = torch.empty((B, Hq, num_splits), device=q.device, dtype=torch.float32)
    return num_splits, tokens_per_split, o, part, lse, (lse.stride(0), lse.stride(1))


def merge_splits(part, lse, o, num_splits: int):
    """o from the per-split partials (the bf16 kernel's reduce); nothing to do for one split."""
    if num_splits > 1:
        B, Hq, D = o.shape
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
