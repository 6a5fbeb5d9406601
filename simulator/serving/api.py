"""``simulator.serving.serve``: a request stream through one serving instance, iteration by iteration.

    from simulator import serving
    req = serving.poisson(2.0, 600, prompt_tokens=1024, output_tokens=256)
    r = serving.serve("a100-sxm4-80gb", "llama-2-70b", req, tensor_parallel=8, engine="vllm-0.6")
    r.summary["p99_ttft_s"], r.requests, r.timeline, r.over_time(1.0)

An instance is ``tensor_parallel`` GPUs serving one model copy; power and energy in the outputs are the
instance's GPUs together (per-GPU power × tensor_parallel), host and other server parts excluded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from simulator import memory
from simulator.api import resolve, setup
from simulator.long_context import context_switch
from simulator.serving import metrics, scheduler
from simulator.serving.arrivals import Requests, TraceError
from simulator.serving.scheduler import PREEMPTION_MODES, SchedulerConfig, SwapCost
from simulator.serving.steptable import StepTable
from workloads.engine_profile import load_engine
from workloads.scenario import check_count


class SLOError(ValueError):
    """An SLO that is not a positive number, or that no configuration can meet (the message says why)."""


@dataclass(frozen=True)
class Instance:
    """One model copy on ``tensor_parallel`` GPUs: its step table (one level per clock), KV capacity
    in blocks, and swap cost."""

    table: StepTable
    capacity_blocks: int
    block_tokens: int
    swap: SwapCost
    n_gpus: int
    engine_id: str


def check_scheduler(cfg: SchedulerConfig) -> SchedulerConfig:
    if not isinstance(cfg, SchedulerConfig):
        raise ValueError(f"scheduler must be a SchedulerConfig, got {type(cfg).__name__}")
    for name in ("max_num_batched_tokens", "max_num_seqs", "block_tokens"):
        check_count(name, getattr(cfg, name))
    if cfg.preemption not in PREEMPTION_MODES:
        raise ValueError(f"preemption must be one of {', '.join(PREEMPTION_MODES)}, got {cfg.preemption!r}")
    return cfg


def _effects(prm, profile):
    """The calibration's effect parameters as the engine runs them."""
    values = {}
    if profile.eager_launch_overhead_s is not None:
        values["host.eager_launch_overhead_s"] = profile.eager_launch_overhead_s
    if profile.fused_elementwise:  # a fused norm/activation streams like a copy, not like an eager kernel
        values["memory.elementwise_efficiency_frac"] = prm.memory.copy_efficiency_frac
    return prm.with_values(values) if values else prm


def _swap_cost(hw, m, calibration, tp, dtypes) -> SwapCost:
    """Swap-out/in time of one sequence, a + b·tokens, from ``context_switch`` at two contexts."""
    w, a, kv = dtypes
    lo, hi = (context_switch(hw, m, c, calibration, kv_dtype=kv, weight_dtype=w, activation_dtype=a,
                             tensor_parallel=tp, check_fit=False) for c in (1024, 8192))  # a line through two points
    b_out, b_in = (hi.swap_out_s - lo.swap_out_s) / 7168, (hi.swap_in_s - lo.swap_in_s) / 7168
    return SwapCost(lo.swap_out_s - 1024 * b_out, b_out, lo.swap_in_s - 1024 * b_in, b_in)


def instance(hardware, model, calibration="auto", *, tensor_parallel=1, engine="kernels-only", clocks_hz=(None,),
             state="sustained", power_cap_w=None, scheduler_config=SchedulerConfig(), max_context_tokens=8192,
             weight_dtype="bf16", activation_dtype="bf16", kv_dtype="bf16") -> Instance:
    """Build the step table for each clock in ``clocks_hz`` (None = uncapped) and the KV capacity."""
    cfg = check_scheduler(scheduler_config)
    profile = load_engine(engine)
    hw, m, prm, _ = resolve(hardware, model, calibration)
    prm = _effects(prm, profile)
    setups = [setup(hw, m, prm, weight_dtype, activation_dtype, kv_dtype, tensor_parallel, state=state,
                    power_cap_w=power_cap_w, sm_clock_hz=c) for c in clocks_hz]
    s = setups[0]
    frac = profile.memory_utilization_frac
    memory.check_weights_fit(s, frac)
    free = (memory.usable_bytes(s, frac) - memory.weight_bytes_per_gpu(s)
            - float(memory.activation_bytes(s, cfg.max_num_batched_tokens, cfg.max_num_seqs)))
    block = float(memory.kv_bytes_per_sequence(s, cfg.block_tokens, cfg.block_tokens))
    cap = int(max(free, 0.0) // block)
    if cap < 1:
        raise memory.DoesNotFitError(
            f"{m.id} on {tensor_parallel}× {hw.id} leaves no memory for the KV cache with engine {profile.id} "
            f"(memory_utilization_frac {profile.memory_utilization_frac}); use more GPUs or a smaller batch budget")
    table = StepTable(setups, cfg.max_num_seqs, max_context_tokens, profile.iteration_fixed_s,
                      profile.per_sequence_s, profile.cuda_graph, cfg.max_num_batched_tokens + cfg.max_num_seqs)
    swap = _swap_cost(hw, m, calibration, tensor_parallel, (weight_dtype, activation_dtype, kv_dtype))
    return Instance(table, cap, cfg.block_tokens, swap, tensor_parallel, profile.id)


def check_slo(name: str, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SLOError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ServingResult:
    requests: pd.DataFrame  # one row per request: arrival, lengths, first token, finish, TTFT, TPOT, E2E
    timeline: pd.DataFrame  # one row per iteration (or idle gap): scheduler.TIMELINE_COLUMNS
    summary: dict  # metrics.summary
    engine: str
    capacity_blocks: int

    def over_time(self, bin_s: float = 1.0) -> pd.DataFrame:
        return metrics.over_time(self.timeline, bin_s)


def simulate(inst: Instance, req: Requests, cfg: SchedulerConfig, level=0, slo_ttft_s=None,
             slo_tpot_s=None) -> ServingResult:
    """Serve ``req`` on a built instance at clock ``level`` (an index into the clocks it was built for)."""
    if not isinstance(req, Requests):
        raise TraceError(f"requests must be a serving.Requests (from poisson, gamma, diurnal or from_arrays), "
                         f"got {type(req).__name__}")
    need = -(-(req.prompt_tokens + req.output_tokens) // cfg.block_tokens)
    if need.max() > inst.capacity_blocks:
        i = int(need.argmax())
        raise memory.DoesNotFitError(
            f"request {i} ({req.prompt_tokens[i]} + {req.output_tokens[i]} tokens) needs {need[i]} KV blocks but the "
            f"instance holds {inst.capacity_blocks}; shorten it or add GPUs")
    per_req, rows = scheduler.run(req, inst.table, cfg, inst.capacity_blocks, level, inst.swap)
    df = metrics.request_frame(per_req)
    tl = pd.DataFrame(rows, columns=list(scheduler.TIMELINE_COLUMNS))
    return ServingResult(df, tl, metrics.summary(df, tl, slo_ttft_s, slo_tpot_s), inst.engine_id, inst.capacity_blocks)


def serve(hardware, model, requests: Requests, calibration="auto", *, tensor_parallel=1, engine="kernels-only",
          scheduler_config=SchedulerConfig(), state="sustained", sm_clock_hz=None, power_cap_w=None,
          slo_ttft_s=None, slo_tpot_s=None, weight_dtype="bf16", activation_dtype="bf16",
          kv_dtype="bf16") -> ServingResult:
    """Serve a request stream with continuous batching (``scheduler``) on one instance and report
    per-request latency, percentiles, goodput under the SLOs, and power/energy/queue over time."""
    slo_ttft_s, slo_tpot_s = check_slo("slo_ttft_s", slo_ttft_s), check_slo("slo_tpot_s", slo_tpot_s)
    if not isinstance(requests, Requests):
        raise TraceError(f"requests must be a serving.Requests, got {type(requests).__name__}")
    ctx = int((requests.prompt_tokens + requests.output_tokens).max())
    inst = instance(hardware, model, calibration, tensor_parallel=tensor_parallel, engine=engine,
                    clocks_hz=(sm_clock_hz,), state=state, power_cap_w=power_cap_w, scheduler_config=scheduler_config,
                    max_context_tokens=ctx, weight_dtype=weight_dtype, activation_dtype=activation_dtype,
                    kv_dtype=kv_dtype)
    check_reachable(inst, requests, slo_ttft_s, slo_tpot_s)
    return simulate(inst, requests, scheduler_config, 0, slo_ttft_s, slo_tpot_s)


def check_reachable(inst: Instance, req: Requests, slo_ttft_s, slo_tpot_s) -> None:
    """Refuse SLOs below what the shortest request alone on the instance takes (no configuration of this
    scheduler can meet them): its prefill for TTFT, a batch-1 decode step for TPOT."""
    p = float(req.prompt_tokens.min())
    ttft = inst.table.prefill(0, 1, p)[0]
    tpot = inst.table.decode(0, 1, p)[0]
    if slo_ttft_s is not None and slo_ttft_s < ttft:
        raise SLOError(f"slo_ttft_s = {slo_ttft_s:g} s cannot be met: the shortest prompt ({p:.0f} tokens) alone "
                       f"takes {ttft:.4g} s to prefill on this instance")
    if slo_tpot_s is not None and slo_tpot_s < tpot:
        raise SLOError(f"slo_tpot_s = {slo_tpot_s:g} s cannot be met: one decode step alone takes {tpot:.4g} s "
                       f"on this instance")
