"""Attention: the formulas every attention op uses, and prefill (flash-attention forward) timing.

Counts, per layer, for ``batch`` sequences each adding ``q_tokens`` queries to a cache of ``kv_tokens``:
- FLOPs: QKᵀ and PV are 2·q·kv·d each per query head → 4·B·Hq·q·kv·d; causal prefill counts HALF the
  score matrix (q = kv = S: 2·S²·d per head), the flash-attention benchmark convention.
- bytes: Q read (B·q·Hq·d) and O written (B·q·Hq·d) in the activation dtype; K and V read
  (B·kv·2·Hkv·d) in the KV dtype. GQA enters only through Hkv, in this one place.
``kernels/attention_prefill.py`` and ``kernels/attention_decode.py`` count with these functions.

Prefill time: each of B·Hq·ceil(q/128) query blocks visits its key tiles (all, or the lower triangle
when causal) plus a per-block cost, at the calibrated fraction of the dense peak. Parameter group:
``attention_prefill``.
"""

from __future__ import annotations

import numpy as np

from hwspecs.schema import DTYPE_BYTES
from simulator.kinds.base import Op, OpKind, ShapeField

NAME = "attention_prefill"
DECODE = "attention_decode"
# Flash-attention query/key tile edge (FA2/FA3 and hwperf's Triton kernel use 128-row query blocks).
TILE = 128.0


def flops(batch, q_tokens, kv_tokens, n_q_heads, head_dim, causal):
    """4·B·Hq·q·kv·d, halved for causal (half the score matrix)."""
    full = 4.0 * batch * n_q_heads * q_tokens * kv_tokens * head_dim
    return full * 0.5 if causal else full


def bytes_by_kind(batch, q_tokens, kv_tokens, n_q_heads, n_kv_heads, head_dim, act_bytes, kv_bytes):
    """(Q read, K+V read, O written) in bytes."""
    qo = batch * q_tokens * n_q_heads * head_dim * act_bytes
    return qo, batch * kv_tokens * 2 * n_kv_heads * head_dim * kv_bytes, qo


def hbm_bytes(batch, q_tokens, kv_tokens, n_q_heads, n_kv_heads, head_dim, act_bytes, kv_bytes):
    return sum(bytes_by_kind(batch, q_tokens, kv_tokens, n_q_heads, n_kv_heads, head_dim, act_bytes, kv_bytes))


def attention_op(name, batch, q_tokens, kv_tokens, n_q_heads, n_kv_heads, head_dim, *, act_dtype="bf16",
                 kv_dtype="bf16", causal=True, scope="layer", n_repeats=1, paged=False) -> Op:
    """Attention of ``q_tokens`` new queries per sequence over ``kv_tokens`` cached keys/values (one layer).
    q_tokens == 1 is a decode step (kind attention_decode, never causal); otherwise prefill."""
    decode = bool(np.all(q_tokens == 1)) if isinstance(q_tokens, np.ndarray) else q_tokens == 1
    causal = bool(causal and not decode)
    q_read, kv_read, o_write = bytes_by_kind(batch, q_tokens, kv_tokens, n_q_heads, n_kv_heads, head_dim,
                                             DTYPE_BYTES[act_dtype], DTYPE_BYTES[kv_dtype])
    return Op(name=name, kind=DECODE if decode else NAME, scope=scope, n_repeats=n_repeats,
              flops=flops(batch, q_tokens, kv_tokens, n_q_heads, head_dim, causal),
              act_read_bytes=q_read, kv_read_bytes=kv_read, act_write_bytes=o_write, compute_dtype=act_dtype,
              shape={"batch": batch, "q_tokens": q_tokens, "kv_tokens": kv_tokens, "n_q_heads": n_q_heads,
                     "n_kv_heads": n_kv_heads, "head_dim": head_dim, "causal": causal, "paged": bool(paged)})


def check_heads(shape: dict) -> None:
    if shape["n_q_heads"] % shape["n_kv_heads"]:
        raise ValueError(f"n_q_heads ({shape['n_q_heads']}) must be a multiple of n_kv_heads ({shape['n_kv_heads']})")


def compute_s(s: dict, peak_flops_per_s, prm, xp=np):
    """Flash-attention forward as tiles: B·Hq·ceil(q/128) query blocks each visit their key tiles, plus a
    fixed per-block cost, plus the masked diagonal tiles' extra work. A tile is 4·128·128·D FLOPs, slowed
    by softmax work worth ``softmax_overhead_dim`` extra head dims."""
    a = prm.attention_prefill
    nq = xp.ceil(s["q_tokens"] / TILE)
    nk = xp.ceil(s["kv_tokens"] / TILE)
    if s["causal"]:
        tiles = nq * (nq + 1.0) / 2.0 + nq * (a.causal_diag_overhead_frac + a.q_block_overhead_tiles)
    else:
        tiles = nq * (nk + a.q_block_overhead_tiles)
    work = s["batch"] * s["n_q_heads"] * tiles * 4.0 * TILE ** 2 * (s["head_dim"] + a.softmax_overhead_dim)
    return work / (peak_flops_per_s * a.efficiency_frac)


def time(op: Op, hw, prm, xp, link_bytes_per_s, host_link_bytes_per_s):
    tc = compute_s(op.shape, hw.peak(op.compute_dtype), prm, xp)
    tm = op.hbm_bytes / (hw.memory_bandwidth_bytes_per_s * prm.memory.copy_efficiency_frac)
    return tc, tm, prm.attention_prefill.latency_s, 0.0


def _kernel_op(batch, seq, n_q_heads, n_kv_heads, head_dim, causal, dtype) -> Op:
    return attention_op(NAME, batch, seq, seq, n_q_heads, n_kv_heads, head_dim, act_dtype=dtype, kv_dtype=dtype,
                        causal=causal, scope="model")


HEAD_FIELDS = (ShapeField("n_q_heads", "int"), ShapeField("n_kv_heads", "int"), ShapeField("head_dim", "int"))
KIND = OpKind(
    name=NAME, help="causal or full self-attention of batch × seq tokens (flash-attention forward)",
    stage=NAME, build=_kernel_op, time=time, check=check_heads, library="sdpa",
    clock_bound_frac=lambda prm: prm.attention_prefill.clock_bound_frac,
    shape=(ShapeField("batch", "int"), ShapeField("seq", "int"), *HEAD_FIELDS, ShapeField("causal", "bool", True),
           ShapeField("dtype", "dtype", "bf16")),
)
KINDS = (KIND,)
