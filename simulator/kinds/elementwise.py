"""Elementwise and normalisation kernels (norms, RoPE, residual adds, activations, KV writes).

Counts: the caller gives elements read and written (activation dtype), FLOPs per written element, any
weight elements (norm scales, embedding rows) and KV bytes written. Time: bytes at the elementwise
fraction of HBM bandwidth (these kernels move bytes less efficiently than a copy), FLOPs at the fp32
peak, the copy-kernel latency floor. Parameter group: ``memory``.
"""

from __future__ import annotations

from hwspecs.schema import DTYPE_BYTES
from simulator.kinds.base import Op, OpKind, ShapeField

NAME = "elementwise"


def elementwise_op(name, n_elements_read, n_elements_written, *, act_dtype="bf16", flops_per_element=1.0,
                   weight_elements=0, weight_dtype="bf16", scope="layer", n_repeats=1, kv_write_bytes=0.0) -> Op:
    ab = DTYPE_BYTES[act_dtype]
    return Op(name=name, kind=NAME, scope=scope, n_repeats=n_repeats, flops=flops_per_element * n_elements_written,
              weight_bytes=weight_elements * DTYPE_BYTES[weight_dtype], act_read_bytes=n_elements_read * ab,
              act_write_bytes=n_elements_written * ab, kv_write_bytes=kv_write_bytes, compute_dtype="fp32")


def time(op: Op, hw, prm, xp, link_bytes_per_s, host_link_bytes_per_s):
    tm = op.hbm_bytes / (hw.memory_bandwidth_bytes_per_s * prm.memory.elementwise_efficiency_frac)
    return op.flops / hw.peak("fp32"), tm, prm.memory.latency_s, 0.0


def _kernel_op(n_elements, dtype) -> Op:
    return elementwise_op(NAME, n_elements, n_elements, act_dtype=dtype, scope="model")


KIND = OpKind(name=NAME, help="read and write n_elements (one FLOP each), like a residual add or activation",
              stage="layers", build=_kernel_op, time=time,
              shape=(ShapeField("n_elements", "int"), ShapeField("dtype", "dtype", "bf16")))
KINDS = (KIND,)
