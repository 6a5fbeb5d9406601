"""``simulator.serving.oversubscribe``: the row planner's entry point (see ``planner`` for the method).

    from simulator import serving
    plan = serving.oversubscribe("dgx-a100-80gb", "llama-2-70b", budget_w=40 * 6500)
    plan.summary["n_servers_max"], plan.evaluations, plan.series  # tidy DataFrames
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

import hwspecs
from simulator.api import resolve
from simulator.serving.api import SLOError, instance
from simulator.serving.loadcurve import LoadCurves, load_curves
from simulator.serving.planner import (PlanError, PrioritySLO, RowWorkload, Server, check_budget,
                                       check_policy_clocks, evaluate, idle_server_w, row_arrivals, series_frame)
from simulator.serving.policy import Policy
from simulator.serving.scheduler import SchedulerConfig


@dataclass(frozen=True)
class PlanResult:
    summary: dict  # the answer at n_servers_max, flat, SI units
    evaluations: pd.DataFrame  # one row per server count tried
    series: pd.DataFrame  # row power over time at n_servers_max: t_s, row_power_w, budget_frac, stage, brake
    curves: LoadCurves


def _server_for(hardware, server: Server):
    """(GPU id, Server): a system id sets the GPU and its count."""
    spec = hwspecs.load(hardware) if isinstance(hardware, str) else hardware
    if getattr(spec, "kind", None) == "system":
        tp = min(server.tensor_parallel, spec.n_accelerators)
        return spec.accelerator, Server(spec.n_accelerators, tp, server.non_gpu_power_w, server.rated_power_w)
    return hardware, server


def _search(run, n_tdp: int, n_hi: int):
    """Largest n in [1, n_hi] with run(n) feasible, assuming feasibility falls with n; None if none."""
    start = max(1, min(n_tdp, n_hi))
    if run(start):
        lo, hi = start, n_hi + 1  # lo feasible, hi infeasible (or beyond the range)
    else:
        lo, hi = 0, start
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if run(mid) else (lo, mid)
    return lo or None


def oversubscribe(hardware="dgx-a100-80gb", model="llama-2-70b", budget_w=260_000.0, calibration="auto", *,
                  server: Server = Server(), workload: RowWorkload = RowWorkload(), policy: Policy = Policy(),
                  slo: PrioritySLO = PrioritySLO(), engine="vllm-0.6", n_servers=None,
                  scheduler_config: SchedulerConfig = SchedulerConfig()) -> PlanResult:
    """Largest server count a row's ``budget_w`` holds under ``policy`` with no brake and every priority
    within its latency SLO (or, with ``n_servers``, that one count evaluated)."""
    for name, obj, cls in (("server", server, Server), ("workload", workload, RowWorkload), ("policy", policy, Policy),
                           ("slo", slo, PrioritySLO)):
        if not isinstance(obj, cls):
            raise PlanError(f"{name} must be a serving.{cls.__name__}, got {type(obj).__name__}")
    gpu, server = _server_for(hardware, server)
    hw, _, prm, _ = resolve(gpu, model, calibration)
    check_policy_clocks(policy, hw.boost_clock_hz, prm.power.min_clock_frac * hw.boost_clock_hz)
    ctx = int(math.ceil(workload.prompt_tokens + workload.output_tokens))
    inst = instance(gpu, model, calibration, tensor_parallel=server.tensor_parallel, engine=engine,
                    clocks_hz=policy.clocks_hz, scheduler_config=scheduler_config, max_context_tokens=max(ctx, 2))
    curves = load_curves(inst, workload.prompt_tokens, workload.output_tokens, scheduler_config.max_num_seqs)
    budget_w = check_budget(budget_w, curves, server)
    n_tdp = int(budget_w // server.rated_power_w)
    n_hi = int(budget_w // idle_server_w(curves, server))
    if n_servers is not None:
        n_hi = int(n_servers)
        if n_hi < 1:
            raise PlanError(f"n_servers must be ≥ 1, got {n_servers!r}")
    arrivals, priority = row_arrivals(workload, float(curves.max_rate_per_s[0]) * server.instances, n_hi)
    rows, stats = {}, {}

    def run(n):
        rows[n], stats[n] = evaluate(curves, arrivals, priority, n, budget_w, server, policy, slo, workload.dt_s)
        return rows[n]["meets_slo"]

    if n_servers is not None:
        run(n_hi)
        best = n_hi
    else:
        best = _search(run, n_tdp, n_hi)
        if best is None:
            raise SLOError(f"no server count meets the SLOs under {budget_w:.0f} W: even 1 server has "
                           f"{_why(rows[min(rows)])}; loosen the SLO or the policy")
    ev = pd.DataFrame([rows[n] for n in sorted(rows)])
    summary = {"n_servers_tdp": n_tdp, "n_servers_max": best, "extra_servers": best - n_tdp,
               "extra_servers_frac": (best - n_tdp) / n_tdp if n_tdp else math.nan, "budget_w": budget_w,
               "idle_server_w": idle_server_w(curves, server), "max_rate_per_instance_per_s": float(curves.max_rate_per_s[0]),
               **rows[best]}
    return PlanResult(summary, ev, series_frame(stats[best], budget_w, workload.dt_s), curves)


def _why(row: dict) -> str:
    if row["brake_events"]:
        return f"{row['brake_events']} power-brake events"
    worst = max((k for k in row if k.endswith("_impact_frac")), key=lambda k: row[k])
    return f"{worst} = {row[worst]:.1%}"
