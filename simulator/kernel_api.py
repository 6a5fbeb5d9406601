"""Standalone kernels: ``predict_kernel`` and ``kernel_op``, over the op-kind registry.

Kernel names and their shape arguments are declared by each kind (``simulator.kinds``); run
``hwperf kernel --help`` or read ``simulator.kinds.KINDS[name].shape`` for the list.
"""

from __future__ import annotations

from simulator import kinds
from simulator.api import resolve
from simulator.engine import link_rate
from simulator.kinds.base import Op
from simulator.results import KernelPrediction
from simulator.roofline import op_time


def kernel_op(kernel: str, **shape) -> Op:
    """The Op a standalone kernel benchmark runs (the same builders as the model graph)."""
    return kinds.get(kernel).op(**shape)


def predict_kernel(hardware, kernel: str, calibration="auto", impl="vendor", **shape) -> KernelPrediction:
    """GPU time of one kernel (no host launch): "gemm" (m, n, k, dtype), "attention_prefill" (batch, seq,
    n_q_heads, n_kv_heads, head_dim, causal=True, dtype), "attention_decode" (batch, context, n_q_heads,
    n_kv_heads, head_dim, dtype, paged=False: a block-table KV cache), "copy" (bytes, device→device),
    "h2d"/"d2h" (bytes, pinned=True), "elementwise" (n_elements, dtype), collectives "allreduce",
    "all_gather", "reduce_scatter", "all_to_all" (bytes per rank, n_ranks, dtype). ``impl``: "vendor"
    (cuBLAS / SDPA / copy_ / NCCL) or "triton" (hwperf's kernels)."""
    hw, _, prm, _ = resolve(hardware, None, calibration, impl)
    op = kernel_op(kernel, **shape)
    t = op_time(op, hw, prm, link_bytes_per_s=hw.scaleup_bandwidth_bytes_per_s,
                host_link_bytes_per_s=link_rate(hw.host_link))
    return KernelPrediction(float(t.time_s), float(op.flops), float(op.hbm_bytes), str(t.bound), float(t.compute_s),
                            float(t.memory_s), float(t.latency_s), float(t.link_s))
