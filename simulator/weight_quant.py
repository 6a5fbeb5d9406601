"""Weight-only int4 (W4A16) in the op graph: the decoder layers' GEMMs become ``gemm_w4a16`` ops.

With ``weight_dtype="int4"`` and 16-bit activations, each layer's linear weights are int4 with one fp16
scale per 128 inputs (GPTQ/AWQ; the same rule ``simulator.quant`` uses for their stored bytes) and are
dequantized in registers before the tensor cores: ``simulator.kinds.gemm_w4a16`` times the packed bytes,
the scales and the dequantization work. The embedding and LM head stay 16-bit (``simulator.quant``);
grouped (MoE expert) GEMMs keep the plain GEMM kind at int4 bytes. FP8 W8A8 (fp8 weights and
activations) needs nothing here: the GEMM kind runs it at the fp8 tensor rate with its 8-bit efficiency.
"""

from __future__ import annotations

from simulator.kinds.gemm import NAME as GEMM
from simulator.kinds.gemm_w4a16 import w4a16_op


def active(s) -> bool:
    return s.weight_dtype == "int4" and s.act_dtype in ("bf16", "fp16")


def apply(s, ops):
    """The pass's ops with each layer GEMM over int4 weights as a W4A16 op (unchanged otherwise)."""
    if not active(s):
        return ops
    out = []
    for op in ops:
        sh = op.shape
        if op.kind == GEMM and op.scope == "layer" and "groups" not in sh and op.weight_bytes:
            op = w4a16_op(op.name, sh["m"], sh["n"], sh["k"], act_dtype=op.compute_dtype, scope=op.scope,
                          n_repeats=op.n_repeats)
        out.append(op)
    return out
