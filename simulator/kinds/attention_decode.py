"""Decode attention: one query token per sequence over its KV cache (split-KV / flash-decoding).

Counts come from ``attention_prefill`` (one attention formula). Time: the KV stream at the calibrated
fraction of HBM bandwidth, limited by occupancy — u = sequences × kv-heads × splits work units reach
u / (u + n_sms × ctas_per_sm) of it (each unit keeps a bounded number of loads in flight, so bandwidth
saturates smoothly: Little's law); a paged (block-table) cache streams a little slower and pays a fixed
extra time. Splits: the vendor library's rule is not public (a fitted, continuous split size); hwperf's
Triton kernel uses ``triton_splits`` below, which ``kernels/attention_decode.py`` itself calls.
Parameter group: ``attention_decode``.
"""

from __future__ import annotations

import numpy as np

from simulator.kinds.attention_prefill import HEAD_FIELDS, attention_op, check_heads
from simulator.kinds.base import Op, OpKind, ShapeField

NAME = "attention_decode"

# hwperf's Triton decode kernel: about 4 programs per SM, each split at least 512 tokens, at most 64 splits.
TRITON_PROGRAMS_PER_SM = 4
TRITON_MIN_TOKENS_PER_SPLIT = 512
TRITON_MAX_SPLITS = 64


def triton_splits(batch, n_kv_heads, context, n_sms, xp=np):
    """KV splits per (sequence, kv-head) of hwperf's Triton decode kernel (the kernel's own rule)."""
    want = xp.ceil(TRITON_PROGRAMS_PER_SM * n_sms / (batch * n_kv_heads))
    most = xp.maximum(1.0, xp.floor(context / TRITON_MIN_TOKENS_PER_SPLIT))
    return xp.maximum(1.0, xp.minimum(xp.minimum(want, most), float(TRITON_MAX_SPLITS)))


def splits(batch, n_kv_heads, context, n_sms, prm, xp=np):
    """Split count for ``prm.impl``. Vendor: context / split_tokens between 1 and the cap, continuous (a
    library rule we do not mirror; whole splits would make the modelled time drop at each step). Triton:
    the kernel's discrete rule (a longer context can then run faster, as it does)."""
    if prm.impl == "triton":
        return triton_splits(batch, n_kv_heads, context, n_sms, xp)
    d = prm.attention_decode
    return xp.minimum(d.splits, xp.maximum(1.0, context / d.split_tokens))


def occupancy_frac(batch, n_kv_heads, n_splits, n_sms, prm):
    """u / (u + u_half) with u = batch × kv-heads × splits, u_half = SMs × ctas_per_sm
    (H100 run: 512 units reach 0.83 of the 2048-unit bandwidth)."""
    units = batch * n_kv_heads * n_splits
    return units / (units + n_sms * prm.attention_decode.ctas_per_sm)


def time(op: Op, hw, prm, xp, link_bytes_per_s, host_link_bytes_per_s):
    s, d = op.shape, prm.attention_decode
    n_splits = splits(s["batch"], s["n_kv_heads"], s["kv_tokens"], hw.n_sms, prm, xp)
    lat = d.latency_s
    if prm.impl == "triton":
        # One split needs no merge: the kernel writes the output directly, skipping the reduce kernel.
        lat = lat + xp.where(n_splits > 1.0, prm.memory.latency_s, 0.0)
    eff = d.efficiency_frac
    if s.get("paged"):
        lat = lat + d.paged_latency_s
        eff = eff * d.paged_frac
    occ = occupancy_frac(s["batch"], s["n_kv_heads"], n_splits, hw.n_sms, prm)
    tc = op.flops / (hw.peak(op.compute_dtype) * prm.attention_prefill.efficiency_frac)
    # Occupancy limits the KV stream; the query/output bytes do not grow with context.
    tm = (op.act_read_bytes + op.act_write_bytes + op.kv_read_bytes / occ) / (hw.memory_bandwidth_bytes_per_s * eff)
    return tc, tm, lat, 0.0


def _kernel_op(batch, context, n_q_heads, n_kv_heads, head_dim, dtype, paged) -> Op:
    return attention_op(NAME, batch, 1, context, n_q_heads, n_kv_heads, head_dim, act_dtype=dtype, kv_dtype=dtype,
                        causal=False, scope="model", paged=paged)


KIND = OpKind(
    name=NAME, help="one query token per sequence over a KV cache of context tokens (paged: block table)",
    stage=NAME, build=_kernel_op, time=time, check=check_heads, library="sdpa",
    shape=(ShapeField("batch", "int"), ShapeField("context", "int"), *HEAD_FIELDS, ShapeField("dtype", "dtype", "bf16"),
           ShapeField("paged", "bool", False)),
)
KINDS = (KIND,)
