"""Standalone kernels: ``predict_kernel`` and ``kernel_op``, over the op-kind registry.

Kernel names and their shape arguments are declared by each kind (``simulator.kinds``); run
``hwperf kernel --help`` or read ``simulator.kinds.KINDS[name].shape`` for the list.
"""

from __future__ import annotations

from simulator import kinds
from simulator.api import resolve
from simulator.engine import link_rate
from simulator.kinds.base import Op
from simulator.power import op_work, power_model, settle, throttle
from simulator.results import KernelPrediction
from simulator.roofline import at_clock, op_time

LAUNCHES = ("graph", "eager")


def kernel_op(kernel: str, **shape) -> Op:
    """The Op a standalone kernel benchmark runs (the same builders as the model graph)."""
    return kinds.get(kernel).op(**shape)


def eager_call_s(kind, prm) -> float:
    """Host time before one eagerly launched kernel of this kind reaches the GPU (its library's launcher)."""
    library = "triton" if prm.impl == "triton" else kind.library
    return getattr(prm.host, f"eager_call_{library}_s")


def predict_kernel(hardware, kernel: str, calibration="auto", impl="vendor", *, state="sustained", launch="graph",
                   power_cap_w=None, sm_clock_hz=None, **shape) -> KernelPrediction:
    """Time, power and clock of one kernel: "gemm" (m, n, k, dtype), "attention_prefill" (batch, seq,
    n_q_heads, n_kv_heads, head_dim, causal=True, dtype), "attention_decode" (batch, context, n_q_heads,
    n_kv_heads, head_dim, dtype, paged=False: a block-table KV cache), "copy" (bytes, device→device),
    "h2d"/"d2h" (bytes, pinned=True), "elementwise" (n_elements, dtype), collectives "allreduce",
    "all_gather", "reduce_scatter", "all_to_all" (bytes per rank, n_ranks, dtype).

    ``impl``: "vendor" (cuBLAS / SDPA / copy_ / NCCL) or "triton" (hwperf's kernels). ``state``:
    "sustained" (run back to back: the clock settles under the power limit or ``power_cap_w``) or "burst"
    (right after idle: boost clock); ``sm_clock_hz`` locks the clock. ``launch``: "graph" — GPU time, as
    CUDA-graph replay or back-to-back calls see it — or "eager": one call timed alone with CUDA events
    around it, which includes the host's launch of that kernel library."""
    if launch not in LAUNCHES:
        raise ValueError(f"launch must be one of {', '.join(LAUNCHES)}, got {launch!r}")
    hw, _, prm, _ = resolve(hardware, None, calibration, impl)
    pm = power_model(hw, prm, state, power_cap_w, sm_clock_hz)
    kind = kinds.get(kernel)
    op = kind.op(**shape)
    boost = op_time(op, hw, prm, link_bytes_per_s=hw.scaleup_bandwidth_bytes_per_s,
                    host_link_bytes_per_s=link_rate(hw.host_link))
    sm_j, dram = op_work(pm, op)  # once: the clock search re-times the op ~10 times

    def power_at(phi):
        t_phi = at_clock(boost, phi, prm).time_s
        return pm.power_w(phi, t_phi, t_phi, sm_j, dram)

    phi = settle(pm, power_at)
    t = at_clock(boost, phi, prm)
    gpu, energy = throttle(pm, phi, t.time_s, t.time_s, sm_j, dram)
    bound = "power" if gpu > t.time_s else str(t.bound)
    time = gpu + (eager_call_s(kind, prm) if launch == "eager" else 0.0)
    return KernelPrediction(float(time), float(op.flops), float(op.hbm_bytes), bound, float(t.compute_s),
                            float(t.memory_s), float(t.latency_s), float(t.link_s), float(energy / gpu), float(energy),
                            phi * hw.boost_clock_hz, state, launch, float(gpu), float(dram))
