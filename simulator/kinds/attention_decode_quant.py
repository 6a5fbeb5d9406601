"""Decode attention over a compressed KV cache (quantized, evicted, low-rank or shared; ``workloads.kv_methods``).

Counts: FLOPs are attention's (``attention_prefill.flops``, over the tokens the method keeps); the KV
stream is the method's ``step_read_bytes`` (quantized data + scales/zero-points + full-precision residual,
or whatever the method reads), queries and outputs in the activation dtype; dequantization costs
``dequant_ops`` non-tensor operations; ShadowKV-style fetches add ``host_bytes`` over the host link.

Time: the KV stream as in ``attention_decode`` (split-KV occupancy, same splits rule), at the decode
kernel's bandwidth fraction times ``stream_frac`` (a narrower element costs extra instructions per byte);
the dequantization at the width's ``dequant_frac`` of the fp32 (CUDA-core) rate, overlapped with the stream by the
knee; a host fetch runs beside the kernel (the link term). Parameter group: ``attention_decode_quant``
(with ``attention_decode``'s latency and occupancy).

Standalone shape (hwperf's Triton kernel ``kernels/attention_decode_quant.py``): K and V stored as
``bits``-bit integers with one fp16 scale and one fp16 zero-point per ``group_size`` elements along
head_dim, no residual window — the bytes ``kernel_kv_bytes`` counts.
"""

from __future__ import annotations

from simulator.kinds.attention_decode import occupancy_frac, splits
from simulator.kinds.attention_prefill import HEAD_FIELDS, check_heads, flops as attention_flops
from simulator.kinds.base import Op, OpKind, ShapeField

NAME = "attention_decode_quant"
KERNEL_BITS = (8, 4, 2)
SCALE_BYTES = 2.0  # fp16 scale, fp16 zero-point
DEQUANT_OPS_PER_ELEMENT = 3.0  # mask, OR, subtract (kernels/attention_decode_quant._codes; scales folded out)


def kernel_kv_bytes(batch, context, n_kv_heads, head_dim, bits, group_size):
    """K+V bytes of the Triton kernel's cache: packed codes + per-group fp16 scale and zero-point."""
    elements = batch * context * 2.0 * n_kv_heads * head_dim
    return elements * bits / 8.0 + elements / group_size * 2.0 * SCALE_BYTES


def quant_attention_op(name, batch, kv_tokens, n_q_heads, n_kv_heads, head_dim, *, kv_read_bytes, dequant_ops,
                       bits, act_dtype="bf16", host_bytes=0.0, host_link_bytes_per_s=None, scope="layer",
                       n_repeats=1) -> Op:
    """One layer's decode attention over a compressed cache; ``kv_tokens`` = tokens attended over."""
    act = 2.0 if act_dtype in ("bf16", "fp16") else 4.0 if act_dtype == "fp32" else 1.0
    qo = batch * n_q_heads * head_dim * act
    return Op(name=name, kind=NAME, scope=scope, n_repeats=n_repeats,
              flops=attention_flops(batch, 1, kv_tokens, n_q_heads, head_dim, False),
              act_read_bytes=qo, kv_read_bytes=kv_read_bytes, act_write_bytes=qo, compute_dtype=act_dtype,
              shape={"batch": batch, "q_tokens": 1, "kv_tokens": kv_tokens, "n_q_heads": n_q_heads,
                     "n_kv_heads": n_kv_heads, "head_dim": head_dim, "causal": False, "paged": False,
                     "bits": bits, "dequant_ops": dequant_ops, "host_bytes": host_bytes,
                     "host_link_bytes_per_s": host_link_bytes_per_s})


def time(op: Op, hw, prm, xp, link_bytes_per_s, host_link_bytes_per_s):
    s, d, q = op.shape, prm.attention_decode, prm.attention_decode_quant
    n_splits = splits(s["batch"], s["n_kv_heads"], s["kv_tokens"], hw.n_sms, prm, xp)
    occ = occupancy_frac(s["batch"], s["n_kv_heads"], n_splits, hw.n_sms, prm)
    stream = q.stream_frac(s["bits"])
    tm = ((op.act_read_bytes + op.act_write_bytes + op.kv_read_bytes / occ)
          / (hw.memory_bandwidth_bytes_per_s * d.efficiency_frac * stream))
    tc = (op.flops / (hw.peak(op.compute_dtype) * prm.attention_prefill.efficiency_frac)
          + s["dequant_ops"] / (hw.peak("fp32") * q.dequant_frac(s["bits"])))
    link = 0.0
    rate = s.get("host_link_bytes_per_s") or host_link_bytes_per_s
    if rate is not None:
        link = s.get("host_bytes", 0.0) / (rate * prm.link.pinned_efficiency_frac)
    return tc, tm, d.latency_s + q.extra_latency_s, link


def _kernel_op(batch, context, n_q_heads, n_kv_heads, head_dim, bits, group_size, dtype) -> Op:
    kv = kernel_kv_bytes(batch, context, n_kv_heads, head_dim, bits, group_size)
    ops = batch * context * 2.0 * n_kv_heads * head_dim * DEQUANT_OPS_PER_ELEMENT
    return quant_attention_op(NAME, batch, context, n_q_heads, n_kv_heads, head_dim, kv_read_bytes=kv,
                              dequant_ops=ops, bits=bits, act_dtype=dtype, scope="model")


def check(shape: dict) -> None:
    check_heads(shape)
    if shape["bits"] not in KERNEL_BITS:
        raise ValueError(f"bits must be one of {', '.join(map(str, KERNEL_BITS))}, got {shape['bits']}")
    if shape["head_dim"] % shape["group_size"]:
        raise ValueError(f"group_size ({shape['group_size']}) must divide head_dim ({shape['head_dim']})")


KIND = OpKind(
    name=NAME, help="decode attention over an int8/int4/int2 KV cache with per-group fp16 scales and zero-points",
    stage=NAME, build=_kernel_op, time=time, check=check, library="triton",
    shape=(ShapeField("batch", "int"), ShapeField("context", "int"), *HEAD_FIELDS, ShapeField("bits", "int", 4),
           ShapeField("group_size", "int", 32), ShapeField("dtype", "dtype", "bf16")),
)
KINDS = (KIND,)
