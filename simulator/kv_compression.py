"""A KV-compression method (``workloads.kv_methods``) applied to the op graph and to KV sizes.

One rule per consumer, each reading the method's fractions of the model's dense KV (the KV dtype's bytes
per element, ``ModelSpec.kv_bytes_per_token``), so whatever per-token KV the architecture gives composes:
- resident bytes (memory, concurrency, swap): ``resident_frac``;
- a decode step's attention: kind ``attention_decode_quant`` with ``step_read_frac`` of the dense KV
  stream, ``step_host_frac`` over the host link, and the dequantization operations;
- KV writes of new tokens: the long-run bytes per token (quantized data + metadata).
Prefill attention reads the fresh full-precision K and V, so it is unchanged.
"""

from __future__ import annotations

from dataclasses import replace

from hwspecs.schema import DTYPE_BYTES
from simulator.kinds.attention_decode import NAME as ATTN_DECODE
from simulator.kinds.attention_decode_quant import NAME as ATTN_QUANT, quant_attention_op
from workloads.kv_methods import KVMethod

DECODE_ATTENTION_KINDS = (ATTN_DECODE, ATTN_QUANT)
# Context at which a method's long-run bytes per new token are read (residual windows amortised away).
_LONG_RUN_TOKENS = 1 << 20


def active(s) -> KVMethod | None:
    m = getattr(s, "kv_method", None)
    return None if m is None or m.family == "none" else m


def dense_bits(s) -> float:
    return 8.0 * DTYPE_BYTES[s.kv_dtype]


def key_width(s) -> int:
    """kv-heads × head_dim of one layer on one GPU."""
    return s.model.kv_heads_per_gpu(s.tp) * s.model.head_dim


def resident_frac(s, context_tokens):
    """GPU bytes of a sequence's KV over its dense bytes (1 without a method)."""
    m = active(s)
    if m is None:
        return 1.0
    return m.resident_frac(context_tokens, s.model.head_dim, key_width(s), dense_bits(s))


def offloaded_bytes_per_sequence(s, context_tokens):
    """Host bytes a method keeps off the GPU for one sequence (ShadowKV's values)."""
    m = active(s)
    dense = s.model.kv_bytes_per_token(s.kv_dtype, s.model.kv_heads_per_gpu(s.tp)) * context_tokens
    return 0.0 * dense if m is None else m.offloaded_frac(context_tokens) * dense


def decode_attention_op(s, name, batch, context, n_q_heads, n_kv_heads, head_dim, n_repeats=1):
    """One layer's decode attention over ``context`` tokens compressed by the setup's method."""
    m = active(s)
    dense_layer = batch * context * 2.0 * n_kv_heads * head_dim * DTYPE_BYTES[s.kv_dtype]  # one layer
    kept = m.kept_tokens(context)
    read = dense_layer * m.step_read_frac(context, head_dim, n_kv_heads * head_dim, dense_bits(s))
    ops = batch * kept * 2.0 * n_kv_heads * head_dim * m.step_dequant_ops_per_element(head_dim)
    bits = m.bits if m.bits is not None else 8 * DTYPE_BYTES[s.kv_dtype]
    return quant_attention_op(name, batch, kept, n_q_heads, n_kv_heads, head_dim, kv_read_bytes=read,
                              dequant_ops=ops, bits=bits, act_dtype=s.stream_dtype,
                              host_bytes=dense_layer * m.step_host_frac(context),
                              host_link_bytes_per_s=s.host_link_bytes_per_s, n_repeats=n_repeats)


def apply(s, ops):
    """The forward pass's ops with the setup's KV method in force (unchanged without one)."""
    if active(s) is None:
        return ops
    out = []
    for op in ops:
        if op.kind == ATTN_DECODE:
            sh = op.shape
            op = decode_attention_op(s, op.name, sh["batch"], sh["kv_tokens"], sh["n_q_heads"], sh["n_kv_heads"],
                                     sh["head_dim"], op.n_repeats)
        elif op.name.endswith("kv_write"):  # "<group>.kv_write" in layer-group models
            op = replace(op, kv_write_bytes=op.kv_write_bytes * resident_frac(s, _LONG_RUN_TOKENS))
        out.append(op)
    return out
