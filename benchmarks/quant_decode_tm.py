"""Candidate for the next quantized decode kernel, to be measured: codes on the dots' first operand, V stored
token-major. Not measured on a GPU yet (the 2026-12-01 session's device time ran out); run it there with

    python benchmarks/quant_decode_tm.py OUT_DIR      # beside kernels.attention_decode_quant and bf16

Why. ``kernels.attention_decode_quant`` (v3) feeds its dequantized 16-bit planes to the tensor cores as the
dots' second operand, so Triton stores every plane to shared memory and reads it back (2 + 2 bytes per
element; its compiled TTGIR shows ``local_alloc`` of f16 planes). At 4 and 2 bits that per-element traffic,
not HBM, bounds it (about 2.3 T elements/s, 22-38% of the bf16 kernel's bandwidth). When the codes are the
*first* operand of a Hopper warp-group dot, Triton moves the layout change above the elementwise unpacking:
the packed uint8 tile crosses shared memory (1/PB bytes per element) and the planes are built in registers
already in the dot's operand layout (``python benchmarks/quant_decode_tm.py --ttgir`` prints it for each
width, compiled for sm_90 on a machine without a GPU). For the scores that is a transpose of the math
(Sᵀ = C · q̂ᵀ, [tokens, rows]). For the output it needs Vᵀ as a first operand without a transpose in
registers (a transposed tile was not moved: the 2026-12-01 operand-swap experiment), so V's codes are stored
token-major, [B, Hkv, D·bits/8, S]: byte (j, t) holds elements j·PB … j·PB + PB − 1 of token t. K keeps the
standard layout, scales and zero-points are unchanged, so every byte count is the same as v3's.

Everything else is v3 (bit planes, scales folded into the small operands, centred codes) except v3's hand
prefetch: a tile carried over from the previous iteration is not a load, and the layout change then stays
below the unpacking. Compiled for sm_90 here, the K and V tiles each cross shared memory once as uint8
([BLOCK_N, DP] and [DP, BLOCK_N]), where v3 moves PB fp16 planes of each; only q's planes and the
[BLOCK_N, rows] softmax weights stay 16-bit operands (tests/test_kernels_quant.py checks both).
"""

import csv
import json
import math
import re
import sys
from pathlib import Path

import torch
import triton
import triton.language as tl

from kernels import attention_decode as _bf16
from kernels import attention_decode_quant as adq
from kernels._common import INTERPRET, split_bounds


def _configs():
    if INTERPRET:
        return [triton.Config({"BLOCK_N": 32}, num_warps=4)]
    return [triton.Config({"BLOCK_N": bn}, num_warps=w, num_stages=s)
            for bn in (64, 128, 256) for w in (4, 8) for s in (2, 3)]


@triton.jit
def _tile(kc, vc, ks, kz, vs, vz, start_n, hi, stride_ctok, stride_vj, stride_stok, DP: tl.constexpr,
          NG: tl.constexpr, BLOCK_N: tl.constexpr):
    """K codes [BLOCK_N, DP], V codes [DP, BLOCK_N] (token-major: contiguous along tokens; both widened to
    int16 for ``adq._codes``), scales and
    zero-points [BLOCK_N, NG] fp32, the in-range mask [BLOCK_N]."""
    offs_n = start_n + tl.arange(0, BLOCK_N)
    n_ok = offs_n < hi
    row = offs_n.to(tl.int64)
    offs_j = tl.arange(0, DP)
    kp = tl.load(kc + row[:, None] * stride_ctok + offs_j[None, :], mask=n_ok[:, None], other=0).to(tl.int16)
    vp = tl.load(vc + offs_j[:, None].to(tl.int64) * stride_vj + row[None, :], mask=n_ok[None, :],
                 other=0).to(tl.int16)
    s_off = row[:, None] * stride_stok + tl.arange(0, NG)[None, :]
    ok = n_ok[:, None]
    return (kp, vp, tl.load(ks + s_off, mask=ok, other=0.0).to(tl.float32),
            tl.load(kz + s_off, mask=ok, other=0.0).to(tl.float32),
            tl.load(vs + s_off, mask=ok, other=0.0).to(tl.float32),
            tl.load(vz + s_off, mask=ok, other=0.0).to(tl.float32), n_ok)


@triton.jit
def _out_plane(acc, z_rows, l_safe, in_grp_t, P: tl.constexpr, BITS: tl.constexpr, NG: tl.constexpr,
               GP: tl.constexpr, DP: tl.constexpr):
    """[DP, R] accumulator → [DP, GP] output rows of plane P: row j's own scale group, the 2^(P·BITS) undone,
    the zero-point sum added, normalised."""
    x = tl.sum(tl.where(in_grp_t, tl.reshape(acc, (DP, NG, GP)), 0.0), 1) * (1.0 / (1 << (P * BITS)))
    return (x + z_rows) / l_safe


@triton.autotune(configs=_configs(), key=["HEAD_DIM", "GP", "BITS", "GROUP", "DIRECT"])
@triton.jit
def _tm_kernel(
    q_ptr, kc_ptr, ks_ptr, kz_ptr, vc_ptr, vs_ptr, vz_ptr, ctx_ptr, out_ptr, lse_ptr, qk_scale,
    stride_qb, stride_qh, stride_cb, stride_ch, stride_ctok, stride_vb, stride_vh, stride_vj,
    stride_sb, stride_sh, stride_stok, stride_ob, stride_oh, stride_os, stride_lb, stride_lh,
    group_size, tokens_per_split,
    HEAD_DIM: tl.constexpr, GP: tl.constexpr, BITS: tl.constexpr, GROUP: tl.constexpr, DIRECT: tl.constexpr,
    DOT_F32: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Program (b, kv-head, split), as ``kernels.attention_decode_quant._quant_split_kernel`` with the dots
    transposed: scores Sᵀ [BLOCK_N, R] = Σ_p C_p · q̂_pᵀ, outputs Oᵀ_p [DP, R] = V_pᵀ · (P ⊙ scale)ᵀ."""
    b, kvh, split, lo, hi = split_bounds(ctx_ptr, tokens_per_split)
    PB: tl.constexpr = 8 // BITS
    DP: tl.constexpr = HEAD_DIM // PB
    NG: tl.constexpr = HEAD_DIM // GROUP
    SUB: tl.constexpr = GROUP // PB
    R: tl.constexpr = NG * GP
    MID: tl.constexpr = 1 << (BITS - 1)

    offs_j = tl.arange(0, DP)
    heads, h_ok, in_grp = adq._head_rows(kvh, group_size, GP, DP, NG, SUB)
    in_grp_t = (offs_j // SUB)[:, None, None] == tl.arange(0, NG)[None, :, None]  # [DP, NG, 1]
    q_ptrs = q_ptr + b * stride_qb + heads[:, None] * stride_qh + offs_j[None, :] * PB
    dt = tl.float32 if DOT_F32 else tl.float16
    qsum = tl.zeros([NG, GP], dtype=tl.float32)
    q0, qsum = adq._q_plane(q_ptrs, h_ok, in_grp, qsum, 0, BITS, R, DP, dt)
    q0 = tl.trans(q0)
    q1 = q0
    q2 = q0
    q3 = q0
    if PB > 1:
        q1, qsum = adq._q_plane(q_ptrs, h_ok, in_grp, qsum, 1, BITS, R, DP, dt)
        q1 = tl.trans(q1)
    if PB > 2:
        q2, qsum = adq._q_plane(q_ptrs, h_ok, in_grp, qsum, 2, BITS, R, DP, dt)
        q3, qsum = adq._q_plane(q_ptrs, h_ok, in_grp, qsum, 3, BITS, R, DP, dt)
        q2 = tl.trans(q2)
        q3 = tl.trans(q3)
    kc = kc_ptr + b.to(tl.int64) * stride_cb + kvh.to(tl.int64) * stride_ch
    vc = vc_ptr + b.to(tl.int64) * stride_vb + kvh.to(tl.int64) * stride_vh
    s_base = b.to(tl.int64) * stride_sb + kvh.to(tl.int64) * stride_sh
    ks = ks_ptr + s_base
    kz = kz_ptr + s_base
    vs = vs_ptr + s_base
    vz = vz_ptr + s_base

    m_i = tl.full([GP], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([GP], dtype=tl.float32)
    z_acc = tl.zeros([NG, GP], dtype=tl.float32)
    acc0 = tl.zeros([DP, R], dtype=tl.float32)
    acc1 = acc0
    acc2 = acc0
    acc3 = acc0
    # No hand prefetch (v3 has one): a tile carried across iterations is not a load, and Triton then keeps
    # the planes' layout change below the unpacking (16-bit planes through shared memory again).
    for start_n in range(lo, hi, BLOCK_N):
        kp, vp, k_s, k_z, v_s, v_z, n_ok = _tile(kc, vc, ks, kz, vs, vz, start_n, hi, stride_ctok, stride_vj,
                                                 stride_stok, DP, NG, BLOCK_N)
        k_z = k_z + k_s * MID
        v_z = v_z + v_s * MID
        part = tl.dot(adq._codes(kp, 0, BITS).to(dt), q0)  # [BLOCK_N, R]
        if PB > 1:
            part = tl.dot(adq._codes(kp, 1, BITS).to(dt), q1, part)
        if PB > 2:
            part = tl.dot(adq._codes(kp, 2, BITS).to(dt), q2, part)
            part = tl.dot(adq._codes(kp, 3, BITS).to(dt), q3, part)
        qk = tl.sum(tl.reshape(part, (BLOCK_N, NG, GP)) * k_s[:, :, None], 1) \
            + tl.sum(k_z[:, :, None] * qsum[None, :, :], 1)  # [BLOCK_N, GP]
        qk = tl.where(n_ok[:, None], qk * qk_scale, float("-inf"))
        m_ij = tl.maximum(m_i, tl.max(qk, 0))
        p = tl.math.exp2(qk - m_ij[None, :])
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + tl.sum(p, 0)
        m_i = m_ij
        z_acc = z_acc * alpha[None, :] + tl.sum(v_z[:, :, None] * p[:, None, :], 0)
        pv = tl.reshape(p[:, None, :] * v_s[:, :, None], (BLOCK_N, R)).to(dt)
        a_r = tl.reshape(tl.broadcast_to(alpha[None, :], (NG, GP)), (R,))[None, :]
        acc0 = tl.dot(adq._codes(vp, 0, BITS).to(dt), pv, acc0 * a_r)  # [DP, R]
        if PB > 1:
            acc1 = tl.dot(adq._codes(vp, 1, BITS).to(dt), pv, acc1 * a_r)
        if PB > 2:
            acc2 = tl.dot(adq._codes(vp, 2, BITS).to(dt), pv, acc2 * a_r)
            acc3 = tl.dot(adq._codes(vp, 3, BITS).to(dt), pv, acc3 * a_r)

    nonempty = l_i > 0.0
    l_safe = tl.where(nonempty, l_i, 1.0)[None, :]
    z_rows = tl.sum(tl.where(in_grp_t, z_acc[None, :, :], 0.0), 1)  # [DP, GP]
    out = out_ptr + b * stride_ob + heads[None, :] * stride_oh + split * stride_os + offs_j[:, None] * PB
    out_t = out_ptr.dtype.element_ty
    h_ok_t = h_ok[None, :]
    tl.store(out, _out_plane(acc0, z_rows, l_safe, in_grp_t, 0, BITS, NG, GP, DP).to(out_t), mask=h_ok_t)
    if PB > 1:
        tl.store(out + 1, _out_plane(acc1, z_rows, l_safe, in_grp_t, 1, BITS, NG, GP, DP).to(out_t), mask=h_ok_t)
    if PB > 2:
        tl.store(out + 2, _out_plane(acc2, z_rows, l_safe, in_grp_t, 2, BITS, NG, GP, DP).to(out_t), mask=h_ok_t)
        tl.store(out + 3, _out_plane(acc3, z_rows, l_safe, in_grp_t, 3, BITS, NG, GP, DP).to(out_t), mask=h_ok_t)
    if not DIRECT:
        lse = tl.where(nonempty, m_i + tl.math.log2(tl.where(nonempty, l_i, 1.0)), float("-inf"))
        tl.store(lse_ptr + b * stride_lb + heads * stride_lh + split, lse, mask=h_ok)


def token_major(v):
    """(codes [B, Hkv, S, D·bits/8], scale, zero) as ``adq.quantize`` returns → codes [B, Hkv, D·bits/8, S]."""
    return v[0].transpose(2, 3).contiguous(), v[1], v[2]


def decode_attention_quant_tm(q, k, v_tm, context_lens, bits: int, sm_scale=None, num_splits=None):
    """``adq.decode_attention_quant`` with V's codes token-major (``token_major``); same checks."""
    codes_tm = v_tm[0]
    adq._check(q, k, (k[0], v_tm[1], v_tm[2]), context_lens, bits)
    if codes_tm.shape != k[0].transpose(2, 3).shape or codes_tm.dtype != torch.uint8 or codes_tm.stride(3) != 1:
        raise ValueError(f"token-major v codes must be uint8 {tuple(k[0].transpose(2, 3).shape)}, contiguous along "
                         f"tokens, got {codes_tm.dtype} {tuple(codes_tm.shape)}")
    B, Hq, D = q.shape
    codes, scale, _ = k
    _, Hkv, max_context, _ = codes.shape
    group_size = D // scale.shape[3]
    num_splits, tokens_per_split, o, part, lse, lse_strides = adq.split_buffers(q, Hkv, max_context, num_splits)
    sm_scale = 1.0 / math.sqrt(D) if sm_scale is None else sm_scale
    group = Hq // Hkv
    direct = num_splits == 1
    _tm_kernel[(B, Hkv, num_splits)](
        q, codes, scale, k[2], codes_tm, v_tm[1], v_tm[2], context_lens, part, lse, sm_scale * _bf16._LOG2E,
        q.stride(0), q.stride(1), codes.stride(0), codes.stride(1), codes.stride(2),
        codes_tm.stride(0), codes_tm.stride(1), codes_tm.stride(2),
        scale.stride(0), scale.stride(1), scale.stride(2), part.stride(0), part.stride(1), part.stride(2),
        *lse_strides, group, tokens_per_split,
        HEAD_DIM=D, GP=adq._rows_per_group(group, D // group_size), BITS=bits, GROUP=group_size, DIRECT=direct,
        DOT_F32=INTERPRET and q.dtype == torch.bfloat16,
    )
    return adq.merge_splits(part, lse, o, num_splits)


def ttgir_operands(bits: int, block_n: int = 128) -> dict:
    """Compile the kernel for sm_90 here (no GPU needed) and list what it stores to shared memory:
    {'local_alloc': [tensor types]}."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = _tm_kernel.fn
    sig = {n: "i32" for n in fn.arg_names}
    sig.update({"q_ptr": "*bf16", "kc_ptr": "*u8", "vc_ptr": "*u8", "ks_ptr": "*fp16", "kz_ptr": "*fp16",
                "vs_ptr": "*fp16", "vz_ptr": "*fp16", "ctx_ptr": "*i32", "out_ptr": "*fp32", "lse_ptr": "*fp32",
                "qk_scale": "fp32"})
    consts = dict(HEAD_DIM=128, GP=4, BITS=bits, GROUP=32, DIRECT=False, DOT_F32=False, BLOCK_N=block_n)
    sig.update({k: "constexpr" for k in consts})
    src = ASTSource(fn=fn, signature=sig, constexprs={(fn.arg_names.index(k),): v for k, v in consts.items()})
    ir = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, "num_stages": 2}).asm["ttgir"]
    return {"local_alloc": re.findall(r"local_alloc %\S+ : \(tensor<([0-9x]+\w+),", ir)}


def main(out: Path):
    """Time v3 and this kernel beside the bf16 Triton decode kernel (CUDA-graph replay, burst)."""
    rows = []
    for b, c in [(8, 4096), (32, 16384), (64, 32768)]:
        q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16)
        lens = torch.full((b,), c, device="cuda", dtype=torch.int32)
        k = torch.randn(b, 8, c, 128, device="cuda", dtype=torch.bfloat16)
        v = torch.randn_like(k)
        t = triton.testing.do_bench_cudagraph(lambda: _bf16.decode_attention(q, k, v, lens), rep=40) * 1e-3
        ref = _bf16.hbm_bytes(b, c, 32, 8, 128, 2) / t
        for bits in (8, 4, 2):
            kq, vq = adq.quantize(k, bits, 32), adq.quantize(v, bits, 32)
            vt = token_major(vq)
            exact = adq.reference(q, kq, vq, lens, bits)
            for name, run in (("v3", lambda: adq.decode_attention_quant(q, kq, vq, lens, bits)),
                              ("token_major", lambda: decode_attention_quant_tm(q, kq, vt, lens, bits))):
                err = ((run().float() - exact).norm() / exact.norm()).item()
                t = triton.testing.do_bench_cudagraph(run, rep=40) * 1e-3
                bw = adq.hbm_bytes(b, c, 32, 8, 128, bits, 32) / t
                rows.append((name, b, c, bits, t, bw, bw / ref, err))
                print(f"b{b} ctx{c} int{bits} {name:12s} {t * 1e6:8.1f} us {bw / 1e9:6.0f} GB/s "
                      f"{100 * bw / ref:4.0f}% of bf16, err {err:.1e}", flush=True)
        del k, v
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "quant_decode_tm.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("variant", "batch", "context", "bits", "median_s", "bytes_per_s", "vs_bf16",
                                   "rel_err")] + rows)


if __name__ == "__main__":
    if sys.argv[1:] == ["--ttgir"]:  # one JSON line: {bits: ttgir_operands(bits)} (TRITON_INTERPRET unset)
        print(json.dumps({bits: ttgir_operands(bits) for bits in (8, 4, 2)}))
    else:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("."))
