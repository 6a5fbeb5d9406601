"""Prefill, decode steps and single layers — finished results, vectorised over scenario points.

Definitions (the README glossary repeats them):
- TTFT: prefill of the whole batch's prompts, producing the first output token. Prefill runs eagerly.
- decode step at context c: one new token per sequence, attention over the c tokens then in the cache.
- Launch: eager steps cannot run faster than the host issues kernels (max(GPU time + gaps, n_kernels ×
  eager overhead)); CUDA-graph replay adds a small gap per kernel.
- Clock and power: each pass runs at the clock its operating state allows (``simulator.power``):
  "burst" at boost, "sustained" at the highest clock whose power stays within the limit; every op of
  the pass is timed at that clock, and the pass reports its mean power and energy.

Every step-level rule (launch, clock, power, bound) lives here; the API and calibration call these
functions; ``decode.py`` sums decode steps over a growing context.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

import hwspecs
from hwspecs.calibration import EffectParams
from hwspecs.schema import Hardware
from simulator import kv_compression, weight_quant
from simulator.kinds.base import xp_for
from simulator.ops import forward_op_list
from simulator.power import PowerModel, op_work, power_model, settle, throttle
from simulator.quant import stream_dtype
from simulator.roofline import at_clock, clock_scale, knee, op_time
from workloads.model import ModelSpec

BYTE_KINDS = ("weight_bytes", "act_read_bytes", "act_write_bytes", "kv_read_bytes", "kv_write_bytes")
# A pass whose settled clock sits this far below the allowed clock is labelled "power"-bound (when its
# time is mostly compute): the power limit, not the tensor cores, set its pace.
POWER_BOUND_CLOCK_FRAC = 0.999


@dataclass(frozen=True)
class Setup:
    hw: Hardware
    model: ModelSpec
    prm: EffectParams
    weight_dtype: str
    act_dtype: str
    kv_dtype: str
    tp: int
    link_bytes_per_s: float | None
    host_link_bytes_per_s: float
    pm: PowerModel
    kv_method: Any = None  # a workloads.kv_methods.KVMethod (None: the dense KV dtype)
    par: Any = None  # a workloads.parallel.Parallel (None: tensor parallel ``tp`` only)
    links: Any = None  # the parallel groups' links (simulator.parallel.links)
    expert_imbalance: float = 1.0  # MoE routing skew (simulator.blocks.expected_experts_touched)

    @property
    def stream_dtype(self) -> str:
        """Activations outside the GEMMs' inputs (bf16 under W8A8 INT8; ``simulator.quant.stream_dtype``)."""
        return stream_dtype(self.act_dtype)


@lru_cache(maxsize=64)
def link_rate(link_id: str | None) -> float | None:
    """Per-direction bandwidth of a link spec by id (None for no link)."""
    return None if link_id is None else hwspecs.load(link_id).bandwidth_bytes_per_s


def make_setup(hw: Hardware, model: ModelSpec, prm: EffectParams, weight_dtype="bf16", act_dtype="bf16",
               kv_dtype="bf16", tp: int = 1, state="sustained", power_cap_w=None, sm_clock_hz=None,
               kv_method=None) -> Setup:
    hw.peak(act_dtype)  # raises a clear error when the device lacks that dtype
    if tp > 1 and hw.scaleup_bandwidth_bytes_per_s is None:
        raise ValueError(f"tensor_parallel={tp} needs a scale-up link, and {hw.id} has none (scaleup_link)")
    return Setup(hw, model, prm, weight_dtype, act_dtype, kv_dtype, tp, hw.scaleup_bandwidth_bytes_per_s,
                 link_rate(hw.host_link), power_model(hw, prm, state, power_cap_w, sm_clock_hz), kv_method)


@dataclass(frozen=True)
class PhaseResult:
    """One forward pass (or one decoder layer): ``time_s`` as the user sees it (launch rule applied),
    ``gpu_s`` the kernels' own time, FLOPs and HBM bytes (``bytes`` by kind, per pass), the settled clock
    (fraction of boost, and in Hz), mean board power and energy of the pass, the dominant bound, and
    ``pairs``: (Op, OpTime) per op in execution order, timed at the settled clock."""

    phase: str
    time_s: Any
    gpu_s: Any
    n_kernels: int
    flops: Any
    hbm_bytes: Any
    bound: Any
    clock_frac: Any
    pairs: tuple
    power_w: Any = None
    energy_j: Any = None
    clock_hz: Any = None

    @property
    def bytes(self) -> dict:
        return {k: sum(getattr(op, k) * op.n_repeats for op, _ in self.pairs) for k in BYTE_KINDS}


def launch_bound_s(gpu_s, n_kernels, prm: EffectParams, cuda_graph):
    """Step time from GPU time and kernel count: back-to-back kernels leave a small gap each (graph
    replay); eager cannot beat the host's issue rate either (the CPU runs ahead of the GPU, so the slower
    of the two streams sets the pace, plus one launch to start)."""
    back_to_back = gpu_s + n_kernels * prm.launch.graph_gap_s
    if cuda_graph:
        return back_to_back
    return np.maximum(back_to_back, n_kernels * prm.host.eager_launch_overhead_s) + prm.host.eager_launch_overhead_s


def time_ops(s: Setup, ops, clock_frac=1.0, with_bound=True, xp=None):
    return tuple((op, op_time(op, s.hw, s.prm, clock_frac=clock_frac, link_bytes_per_s=s.link_bytes_per_s,
                              host_link_bytes_per_s=s.host_link_bytes_per_s, with_bound=with_bound, xp=xp))
                 for op in ops)


def _timed_pass(s: Setup, batch, q_tokens, kv_tokens, layer_only=False, with_bound=True):
    """(Op, OpTime) pairs of one forward pass at the boost clock."""
    ops = forward_op_list(s.model, batch, q_tokens, kv_tokens, weight_dtype=s.weight_dtype, act_dtype=s.act_dtype,
                          kv_dtype=s.kv_dtype, tp=s.tp, parallel=s.par, links=s.links,
                          expert_imbalance=s.expert_imbalance)
    ops = weight_quant.apply(s, kv_compression.apply(s, ops))
    if layer_only:
        ops = [op for op in ops if op.scope == "layer"]
    return time_ops(s, ops, with_bound=with_bound, xp=xp_for(batch, q_tokens, kv_tokens))


def totals(pairs):
    """(GPU time, kernel launches, FLOPs, HBM bytes) of one pass's (Op, OpTime) pairs."""
    gpu = sum(t.time_s * op.n_repeats for op, t in pairs)
    n_kernels = sum(op.n_repeats for op, _ in pairs)
    flops = sum(op.flops * op.n_repeats for op, _ in pairs)
    hbm = sum(op.hbm_bytes * op.n_repeats for op, _ in pairs)
    return gpu, n_kernels, flops, hbm


def work(pairs, pm: PowerModel):
    """(SM energy at boost in J, DRAM bytes) of a pass: what its dynamic energy is spent on (``op_work``)."""
    per_op = [(op.n_repeats, *op_work(pm, op)) for op, _ in pairs]
    return sum(n * sm for n, sm, _ in per_op), sum(n * dram for n, _, dram in per_op)


_PLAIN = xp_for(0.0)  # the ufunc names over plain floats


def _scalar_timer(pairs, prm: EffectParams):
    """gpu_at for a pass of plain numbers, as a closure over its terms: the clock search re-times a pass
    ~10 times, and the generic path costs ~20 µs a time."""
    rows = [(op.n_repeats, t.latency_s, t.compute_s, t.memory_s, t.link_s, t.clock_bound_frac) for op, t in pairs]
    p = prm.gemm.knee_exponent

    def gpu(phi: float) -> float:
        total = 0.0
        for n, lat, tc, tm, link, beta in rows:
            body = knee(tc * clock_scale(beta, phi), tm, p, _PLAIN)
            total += n * (lat + (body if body >= link else link))
        return total
    return gpu


def gpu_at(pairs, phi, prm: EffectParams):
    """GPU time of boost-timed ``pairs`` with every compute term at clock fraction ``phi`` (no kind is
    re-evaluated: compute time scales as 1/φ)."""
    xp = xp_for(phi, pairs[0][1].time_s)
    p = prm.gemm.knee_exponent
    total = 0.0
    for op, t in pairs:
        body = knee(t.compute_s * clock_scale(t.clock_bound_frac, phi), t.memory_s, p, xp)
        total = total + op.n_repeats * (t.latency_s + xp.maximum(body, t.link_s))
    return total


def step_bound(pairs) -> str:
    """The bound that accounts for most of a pass's time (scalar passes only)."""
    by: dict[str, float] = {}
    for op, t in pairs:
        by[t.bound] = by.get(t.bound, 0.0) + t.time_s * op.n_repeats
    return max(by, key=by.get)


def settled(s: Setup, phase: str, boost_pairs, cuda_graph) -> PhaseResult:
    """The pass at the clock its operating state settles at, with its power, energy and bound."""
    n = sum(op.n_repeats for op, _ in boost_pairs)
    sm_j, dram = work(boost_pairs, s.pm)

    scalar = xp_for(boost_pairs[0][1].time_s, sm_j) is not np
    fast = _scalar_timer(boost_pairs, s.prm) if scalar else None

    def power_at(phi):
        gpu = fast(phi) if scalar and isinstance(phi, float) else gpu_at(boost_pairs, phi, s.prm)
        return s.pm.power_w(phi, launch_bound_s(gpu, n, s.prm, cuda_graph), gpu, sm_j, dram)

    phi = settle(s.pm, power_at)
    pairs = tuple((op, at_clock(t, phi, s.prm)) for op, t in boost_pairs)
    gpu, _, flops, hbm = totals(pairs)
    launched = launch_bound_s(gpu, n, s.prm, cuda_graph)
    time, energy = throttle(s.pm, phi, launched, gpu, sm_j, dram)
    bound = None
    if np.ndim(gpu) == 0 and pairs[0][1].bound is not None:
        bound = step_bound(pairs)
        if not cuda_graph and n * s.prm.host.eager_launch_overhead_s >= gpu + n * s.prm.launch.graph_gap_s:
            bound = "launch"  # the host's issue rate, not the GPU, set the pace
        elif time > launched or (bound == "compute" and phi < s.pm.phi_max * POWER_BOUND_CLOCK_FRAC):
            bound = "power"
    return PhaseResult(phase, time, gpu, n, flops, hbm, bound, phi, pairs, energy / time, energy,
                       phi * s.pm.boost_clock_hz)


def prefill(s: Setup, batch, prompt_tokens, layer_only=False, cuda_graph=False, with_bound=True) -> PhaseResult:
    """Prefill of ``batch`` prompts of ``prompt_tokens`` (eager unless ``cuda_graph``)."""
    return settled(s, "prefill", _timed_pass(s, batch, prompt_tokens, prompt_tokens, layer_only, with_bound),
                   cuda_graph)


def decode_step(s: Setup, batch, context_tokens, cuda_graph=True, layer_only=False) -> PhaseResult:
    """One decode step: one token per sequence, attention over ``context_tokens``."""
    return settled(s, "decode", _timed_pass(s, batch, 1, context_tokens, layer_only), cuda_graph)


def layer(s: Setup, mode: str, batch, tokens, cuda_graph) -> PhaseResult:
    """One decoder block (the ops of scope "layer"): ``mode`` "prefill" (``tokens`` = sequence length)
    or "decode" (``tokens`` = context), with the launch and clock rules of whole passes."""
    if mode == "prefill":
        return prefill(s, batch, tokens, layer_only=True, cuda_graph=cuda_graph)
    return decode_step(s, batch, tokens, cuda_graph, layer_only=True)
