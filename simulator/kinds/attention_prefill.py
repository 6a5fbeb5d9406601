"""Attention: the formulas every attention op uses, and prefill (flash-attention forward) timing.

Counts, per layer, for ``batch`` sequences each adding ``q_tokens`` queries to a cache of ``kv_tokens``:
- FLOPs: QKᵀ and PV are 2·q·kv·d each per query head → 4·B·Hq·q·kv·d; causal prefill counts HALF the
  score matrix (q = kv = S: 2·S²·d per head), the flash-attention benchmark convention.
- bytes: Q read (B·q·Hq·d) and O written (B·q·Hq·d) in the activation dtype; K and V read
  (B·kv·2·Hkv·d) in the KV dtype. GQA enters only through Hkv, in this one place.
``kernels/attention_prefill.py`` and ``kernels/attention_decode.py`` count with these functions.
Generalised for today's families (defaults reproduce the above): a value head dim ``v_head_dim`` ≠ the
query/key dim (MLA: 2·(d_qk + d_v) FLOPs per query-key pair per head), ``kv_elements`` cached elements per
token (default 2·Hkv·d; MLA decode reads one shared latent of kv_lora_rank + rope dims), and a sliding
``window`` (a query sees at most W keys: decode reads min(kv, W) tokens; causal prefill of S > W tokens
attends S·W − W²/2 pairs, the half-matrix convention continued past the window).

Prefill time: each of B·Hq·ceil(q/128) query blocks visits its key tiles (all, or the lower triangle
when causal) plus a per-block cost, at the calibrated fraction of the dense peak. Parameter group:
``attention_prefill``.
"""

from __future__ import annotations

import math

import numpy as np

from hwspecs.schema import DTYPE_BYTES
from simulator.kinds.base import Op, OpKind, ShapeField

NAME = "attention_prefill"
DECODE = "attention_decode"
# Flash-attention query/key tile edge (FA2/FA3 and hwperf's Triton kernel use 128-row query blocks).
TILE = 128.0


def windowed_keys(kv_tokens, window):
    """Keys one decode query reads: min(kv, W) (all of them without a window)."""
    return kv_tokens if window is None else np.minimum(kv_tokens, window)


def query_key_pairs(q_tokens, kv_tokens, causal, window=None):
    """Scored query-key pairs per (sequence, head): q·kv, halved for causal; with a window, min(kv, W) per
    decode query and S·W − W²/2 for a causal prefill of S = q = kv tokens past the window."""
    if window is None:
        return q_tokens * kv_tokens * (0.5 if causal else 1.0)
    if not causal:
        return q_tokens * windowed_keys(kv_tokens, window)
    s = np.minimum(kv_tokens, window)
    return kv_tokens * s - s * s / 2.0


def flops(batch, q_tokens, kv_tokens, n_q_heads, head_dim, causal, v_head_dim=None, window=None):
    """2·B·Hq·pairs·(d_qk + d_v): 4·B·Hq·q·kv·d without a window, halved for causal (half the score matrix)."""
    dv = head_dim if v_head_dim is None else v_head_dim
    return 2.0 * batch * n_q_heads * query_key_pairs(q_tokens, kv_tokens, causal, window) * (head_dim + dv)


def bytes_by_kind(batch, q_tokens, kv_tokens, n_q_heads, n_kv_heads, head_dim, act_bytes, kv_bytes):
    """(Q read, K+V read, O written) in bytes."""
    qo = batch * q_tokens * n_q_heads * head_dim * act_bytes
    return qo, batch * kv_tokens * 2 * n_kv_heads * head_dim * kv_bytes, qo


def hbm_bytes(batch, q_tokens, kv_tokens, n_q_heads, n_kv_heads, head_dim, act_bytes, kv_bytes):
    return sum(bytes_by_kind(batch, q_tokens, kv_tokens, n_q_heads, n_kv_heads, head_dim, act_bytes, kv_bytes))


def attention_op(name, batch, q_tokens, kv_tokens, n_q_heads, n_kv_heads, head_dim, *, act_dtype="bf16",
                 kv_dtype="bf16", causal=True, scope="layer", n_repeats=1, paged=False, v_head_dim=None,
                 kv_elements=None, window=None) -> Op:
    """Attention of ``q_tokens`` new queries per sequence over ``kv_tokens`` cached keys/values (one layer).
    q_tokens == 1 is a decode step (kind attention_decode, never causal); otherwise prefill.
    ``v_head_dim``, ``kv_elements`` (cached elements per token) and ``window``: see the module docstring."""
    decode = bool(np.all(q_tokens == 1)) if isinstance(q_tokens, np.ndarray) else q_tokens == 1
    causal = bool(causal and not decode)
    dv = head_dim if v_head_dim is None else v_head_dim
    if v_head_dim is None and kv_elements is None and window is None:  # the plain case, as measured
        q_read, kv_read, o_write = bytes_by_kind(batch, q_tokens, kv_tokens, n_q_heads, n_kv_heads, head_dim,
                                                 DTYPE_BYTES[act_dtype], DTYPE_BYTES[kv_dtype])
    else:
        elems = 2 * n_kv_heads * head_dim if kv_elements is None else kv_elements
        read = windowed_keys(kv_tokens, window) if decode else kv_tokens  # prefill reads every key once
        q_read = batch * q_tokens * n_q_heads * head_dim * DTYPE_BYTES[act_dtype]
        o_write = batch * q_tokens * n_q_heads * dv * DTYPE_BYTES[act_dtype]
        kv_read = batch * read * elems * DTYPE_BYTES[kv_dtype]
    shape = {"batch": batch, "q_tokens": q_tokens, "kv_tokens": windowed_keys(kv_tokens, window) if decode
             else kv_tokens, "n_q_heads": n_q_heads, "n_kv_heads": n_kv_heads, "head_dim": head_dim,
             "causal": causal, "paged": bool(paged)}
    if v_head_dim is not None or kv_elements is not None or window is not None:
        shape.update(v_head_dim=dv, kv_elements=kv_elements, window=window)
    return Op(name=name, kind=DECODE if decode else NAME, scope=scope, n_repeats=n_repeats,
              flops=flops(batch, q_tokens, kv_tokens, n_q_heads, head_dim, causal, v_head_dim, window),
              act_read_bytes=q_read, kv_read_bytes=kv_read, act_write_bytes=o_write, compute_dtype=act_dtype,
              shape=shape)


def at_context(op: Op, batch, context, kv_dtype) -> Op:
    """A decode attention op rebuilt at another batch and context (decode.py re-times attention so)."""
    sh = op.shape
    return attention_op(op.name, batch, 1, context, sh["n_q_heads"], sh["n_kv_heads"], sh["head_dim"],
                        act_dtype=op.compute_dtype, kv_dtype=kv_dtype, n_repeats=op.n_repeats,
                        v_head_dim=sh.get("v_head_dim"), kv_elements=sh.get("kv_elements"), window=sh.get("window"))


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
    if s["causal"] and s.get("window") is not None:
        # each query block visits at most ceil(W/128) + 1 key tiles past the window
        nw = math.ceil(s["window"] / TILE)
        inside = xp.minimum(nq, float(nw))
        tiles = (inside * (inside + 1.0) / 2.0 + xp.maximum(nq - nw, 0.0) * (nw + 1.0)
                 + nq * (a.causal_diag_overhead_frac + a.q_block_overhead_tiles))
    elif s["causal"]:
        tiles = nq * (nq + 1.0) / 2.0 + nq * (a.causal_diag_overhead_frac + a.q_block_overhead_tiles)
    else:
        tiles = nq * (nk + a.q_block_overhead_tiles)
    d = (s["head_dim"] + s.get("v_head_dim", s["head_dim"])) / 2.0  # mean of the QK and PV dims
    work = s["batch"] * s["n_q_heads"] * tiles * 4.0 * TILE ** 2 * (d + a.softmax_overhead_dim)
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
