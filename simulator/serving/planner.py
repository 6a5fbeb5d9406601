"""``oversubscribe``: how many servers a row's power budget holds under POLCA's capping policy.

A row of identical servers (``Server``: GPUs, tensor parallelism, non-GPU power, rated power) runs a
diurnal, bursty inference load (``RowWorkload``); half the servers (by default) carry high-priority
work. For a server count n the row is simulated twice over the same arrivals — with the policy under the
budget, and uncapped (the baseline) — and n meets the SLOs when no power brake fired and each priority's
P50/P99 end-to-end latency rose by at most its limit (POLCA's: high priority 1% / 5%, low 5% / 50%).
The answer is the largest such n (binary search from the count the budget holds at rated power, "TDP
provisioning"), with the time spent above each threshold, the capping and brake events, the latency
impact per priority, and the row power over time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.serving.arrivals import diurnal_rate
from simulator.serving.loadcurve import LoadCurves, lookup
from simulator.serving.policy import Policy, PolicyError
from simulator.serving.row import RowStats, hist_percentile, simulate_row


class PlanError(ValueError):
    """A row that cannot be planned (budget below idle power, bad workload); the message names the field."""


def _nonneg(obj, names):
    for name in names:
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise PlanError(f"{type(obj).__name__.lower()} {name} must be a finite number ≥ 0, got {v!r}")


@dataclass(frozen=True)
class Server:
    """One inference server. Defaults: a DGX A100 (8× A100-80GB, 6.5 kW rated: POLCA, arXiv 2308.12908;
    Splitwise, arXiv 2311.18677). ``non_gpu_power_w``: CPUs, DRAM, NICs, NVSwitches and fans under inference,
    held constant — 2 kW is an assumption (POLCA: GPUs are about half of the server's rated power)."""

    n_gpus: int = 8
    tensor_parallel: int = 8
    non_gpu_power_w: float = 2000.0
    rated_power_w: float = 6500.0

    def __post_init__(self):
        _nonneg(self, ("n_gpus", "tensor_parallel", "non_gpu_power_w", "rated_power_w"))
        if self.tensor_parallel < 1 or self.n_gpus % self.tensor_parallel:
            raise PlanError(f"server tensor_parallel ({self.tensor_parallel}) must divide n_gpus ({self.n_gpus})")

    @property
    def instances(self) -> int:
        return self.n_gpus // self.tensor_parallel


@dataclass(frozen=True)
class RowWorkload:
    """Per-server offered load: at the diurnal peak each instance gets ``peak_load_frac`` of what it can
    serve uncapped; a 24-h cosine down to ``trough_frac`` of that (``arrivals.diurnal_rate``); bursts as a
    log-normal factor of coefficient of variation ``burst_cv`` redrawn every ``burst_period_s`` (linear in
    between); servers differ by a log-normal scale of cv ``server_spread_cv``. Counts per ``dt_s`` sample are
    Poisson. Production LLM traces are diurnal with bursts on top (Splitwise, arXiv 2311.18677, Fig. 2;
    POLCA Fig. 5)."""

    peak_load_frac: float = 0.7
    prompt_tokens: float = 1024.0
    output_tokens: float = 256.0
    trough_frac: float = 0.35
    peak_hour: float = 14.0
    burst_cv: float = 0.3
    burst_period_s: float = 60.0
    server_spread_cv: float = 0.1
    high_priority_frac: float = 0.5
    duration_s: float = 86400.0
    dt_s: float = 1.0
    seed: int = 0

    def __post_init__(self):
        _nonneg(self, ("peak_load_frac", "prompt_tokens", "output_tokens", "trough_frac", "peak_hour", "burst_cv",
                       "burst_period_s", "server_spread_cv", "high_priority_frac", "duration_s", "dt_s"))
        for name in ("prompt_tokens", "output_tokens", "duration_s", "dt_s", "burst_period_s"):
            if getattr(self, name) <= 0:
                raise PlanError(f"rowworkload {name} must be > 0")
        if self.trough_frac > 1 or self.high_priority_frac > 1:
            raise PlanError("rowworkload trough_frac and high_priority_frac must be at most 1")


@dataclass(frozen=True)
class PrioritySLO:
    """Largest allowed rise of P50/P99 end-to-end latency over the uncapped row (POLCA §6)."""

    high_p50_frac: float = 0.01
    high_p99_frac: float = 0.05
    low_p50_frac: float = 0.05
    low_p99_frac: float = 0.50

    def __post_init__(self):
        _nonneg(self, ("high_p50_frac", "high_p99_frac", "low_p50_frac", "low_p99_frac"))


def _lognormal(rng, cv, size):
    s2 = math.log1p(cv * cv)
    return rng.lognormal(-s2 / 2.0, math.sqrt(s2), size) if cv > 0 else np.ones(size)


def row_arrivals(w: RowWorkload, max_rate_per_server: float, n_servers: int):
    """(arrivals (servers, samples) as float counts, priority (servers,) 0 high / 1 low). Row i depends only
    on the seed and i's position, so a smaller row is the first rows of a larger one."""
    rng = np.random.default_rng(w.seed)
    n_t = int(round(w.duration_s / w.dt_s))
    t = np.arange(n_t) * w.dt_s
    priority = (rng.uniform(size=n_servers) >= w.high_priority_frac).astype(np.int64)
    scale = _lognormal(rng, w.server_spread_cv, n_servers)
    n_k = int(math.ceil(w.duration_s / w.burst_period_s)) + 2
    knots = _lognormal(rng, w.burst_cv, (n_servers, n_k))
    pos = t / w.burst_period_s
    k = pos.astype(np.int64)
    burst = knots[:, k] * (1.0 - (pos - k)) + knots[:, k + 1] * (pos - k)
    rate = (w.peak_load_frac * max_rate_per_server * diurnal_rate(t, 1.0, w.trough_frac, w.peak_hour)
            * scale[:, None] * burst)
    return rng.poisson(rate * w.dt_s).astype(float), priority


def idle_server_w(curves: LoadCurves, server: Server) -> float:
    return server.instances * float(lookup(curves.power_w, 0, np.array(0.0))) + server.non_gpu_power_w


def check_budget(budget_w, curves: LoadCurves, server: Server) -> float:
    if isinstance(budget_w, bool) or not isinstance(budget_w, (int, float)) or not math.isfinite(budget_w):
        raise PlanError(f"budget_w must be a number of watts, got {budget_w!r}")
    idle = idle_server_w(curves, server)
    if budget_w < idle:
        raise PlanError(f"budget_w ({budget_w:.0f} W) is below one server's idle power ({idle:.0f} W)")
    return float(budget_w)


def _impacts(capped: RowStats, base: RowStats) -> dict:
    out = {}
    for p, name in ((0, "high"), (1, "low")):
        for q in (50, 99):
            c, b = hist_percentile(capped.e2e_hist[p], q), hist_percentile(base.e2e_hist[p], q)
            out[f"{name}_p{q}_e2e_s"], out[f"{name}_p{q}_e2e_base_s"] = c, b
            out[f"{name}_p{q}_impact_frac"] = c / b - 1.0 if b == b and b > 0 else 0.0
    return out


def evaluate(curves, arrivals, priority, n, budget_w, server, policy, slo, dt_s) -> tuple[dict, RowStats]:
    """One server count: the capped and the baseline run, and whether the SLOs hold."""
    a, pr = arrivals[:n], priority[:n]
    kw = dict(budget_w=budget_w, inst_per_server=server.instances, non_gpu_w=server.non_gpu_power_w, dt_s=dt_s)
    capped = simulate_row(curves, a, pr, policy=policy, **kw)
    base = simulate_row(curves, a, pr, policy=None, **kw)
    frac = capped.row_power_w / budget_w
    row = {"n_servers": n, **_impacts(capped, base), "cap_events": capped.events["cap"],
           "brake_events": capped.events["brake"], "time_above_t1_frac": float(np.mean(frac > policy.t1_frac)),
           "time_above_t2_frac": float(np.mean(frac > policy.t2_frac)),
           "time_above_budget_frac": float(np.mean(frac > policy.brake_frac)),
           "time_capped_frac": float(np.mean(capped.stage > 0)), "peak_power_frac": float(frac.max()),
           "mean_power_frac": float(frac.mean()), "energy_j": capped.energy_j,
           "backlog_end_requests": capped.final_backlog}
    for s in range(4):
        row[f"time_stage{s}_frac"] = float(np.mean(capped.stage == s))
    limits = {"high_p50": slo.high_p50_frac, "high_p99": slo.high_p99_frac, "low_p50": slo.low_p50_frac,
              "low_p99": slo.low_p99_frac}
    row["meets_slo"] = bool(row["brake_events"] == 0 and all(
        not (row[f"{k}_impact_frac"] > v) for k, v in limits.items()))
    return row, capped


def check_policy_clocks(policy: Policy, boost_hz: float, min_hz: float) -> None:
    for name in ("low_t1_clock_hz", "low_t2_clock_hz", "high_t2_clock_hz", "brake_clock_hz"):
        v = getattr(policy, name)
        if not min_hz <= v <= boost_hz:
            raise PolicyError(f"policy {name} must be between {min_hz / 1e6:.0f} and {boost_hz / 1e6:.0f} MHz, "
                              f"got {v / 1e6:.0f} MHz")


def series_frame(stats: RowStats, budget_w: float, dt_s: float) -> pd.DataFrame:
    """Row power over time: the data for a chart (and the CLI's PNG)."""
    return pd.DataFrame({"t_s": np.arange(len(stats.row_power_w)) * dt_s, "row_power_w": stats.row_power_w,
                         "budget_frac": stats.row_power_w / budget_w, "stage": stats.stage, "brake": stats.brake})
