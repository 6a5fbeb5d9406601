"""A POLCA-like study: how many 8×A100-80GB inference servers a 40-server row's power budget holds.

POLCA (Patel et al., arXiv 2308.12908, ASPLOS 2024) oversubscribed a production inference row by 30% more
servers under the same power budget with no power-brake events and a high-priority P99 latency impact
below 5%, using two thresholds (80%/89%) with 5% hysteresis and per-priority clock caps. This script asks
hwperf's planner the same question: a row budgeted for 40 DGX A100s at their 6.5 kW rating (260 kW),
Llama-2-70B on 8 GPUs per server (vLLM 0.6 profile), a production-like diurnal trace with bursts (24 h of
1-s samples, half the servers high priority), POLCA's policy and SLOs. Writes
``benchmarks/results/polca_study.{txt,csv,png}``; run with ``python benchmarks/polca_study.py`` (~1-2 min).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd  # noqa: E402

import hwspecs  # noqa: E402
from faces.serving_commands import write_power_png  # noqa: E402
from simulator.serving.oversubscribe import oversubscribe  # noqa: E402
from simulator.serving.planner import PrioritySLO, RowWorkload, Server  # noqa: E402
from simulator.serving.policy import Policy  # noqa: E402

OUT = Path(__file__).parent / "results"
POLCA = {"extra_servers_frac": 0.30, "brake_events": 0, "high_p99_impact_frac_below": 0.05}


def sensitivity(policy, budget):
    lines = []
    for non_gpu_w in (1500.0, 2500.0):
        p = oversubscribe("dgx-a100-80gb", "llama-2-70b", budget, server=Server(non_gpu_power_w=non_gpu_w),
                          workload=RowWorkload(), policy=policy, slo=PrioritySLO(), engine="vllm-0.6")
        s = p.summary
        base = p.evaluations.iloc[0]
        lines.append(f"  non-GPU {non_gpu_w:.0f} W: 40-server peak {base.peak_power_frac:.1%} of budget; planner "
                     f"{s['n_servers_max']} servers ({s['extra_servers_frac']:+.1%}), {s['brake_events']} brakes, "
                     f"high P99 {s['high_p99_impact_frac']:+.2%}, low P99 {s['low_p99_impact_frac']:+.2%}")
    return lines


def main() -> int:
    t0 = time.perf_counter()
    policy, budget = Policy(), 40 * 6500.0
    plan = oversubscribe("dgx-a100-80gb", "llama-2-70b", budget, server=Server(), workload=RowWorkload(),
                         policy=policy, slo=PrioritySLO(), engine="vllm-0.6")
    wall = time.perf_counter() - t0
    s = plan.summary
    cols = ["n_servers", "meets_slo", "brake_events", "cap_events", "peak_power_frac", "mean_power_frac",
            "time_above_t1_frac", "time_above_t2_frac", "time_capped_frac", "high_p50_impact_frac",
            "high_p99_impact_frac", "low_p50_impact_frac", "low_p99_impact_frac"]
    table = plan.evaluations[cols]
    lines = [
        "POLCA-like study: 40 x DGX A100 (8x A100-80GB, 6.5 kW rated) row, budget 260 kW, Llama-2-70B TP8,",
        "engine vllm-0.6, diurnal trace (peak 70% of capacity at 14:00, trough 35%, bursts cv 0.3 / 60 s),",
        "24 h of 1-s samples, half the servers high priority, POLCA policy (80%/89%, 5% hysteresis, 1275/1110/1305",
        "MHz caps, 2-s telemetry, 40-s capping latency, brake above 100%), SLOs high P50/P99 +1%/+5%, low +5%/+50%.",
        "",
        pd.DataFrame(table).to_string(index=False, float_format=lambda x: f"{x:.4f}"),
        "",
        f"TDP provisioning: {s['n_servers_tdp']} servers; planner: {s['n_servers_max']} servers "
        f"({s['extra_servers_frac']:+.1%}), {s['brake_events']} brake events, {s['cap_events']} capping events",
        f"at {s['n_servers_max']} servers: peak {s['peak_power_frac']:.1%} / mean {s['mean_power_frac']:.1%} of budget; "
        f"above T1 {s['time_above_t1_frac']:.1%}, above T2 {s['time_above_t2_frac']:.2%} of the day",
        f"latency impact vs uncapped: high P50 {s['high_p50_impact_frac']:+.2%}, P99 {s['high_p99_impact_frac']:+.2%}; "
        f"low P50 {s['low_p50_impact_frac']:+.2%}, P99 {s['low_p99_impact_frac']:+.2%}",
        "POLCA (published): +30% servers, no brake events, high-priority P99 impact < 5%",
        f"wall time {wall:.1f} s on one core",
        "",
        "sensitivity to the assumed non-GPU server power (constant draw):",
        *sensitivity(policy, budget),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.mkdir(exist_ok=True)
    hwspecs.write_atomic(OUT / "polca_study.txt", lambda fh: fh.write(text))
    hwspecs.write_atomic(OUT / "polca_study.csv", lambda fh: plan.evaluations.to_csv(fh, index=False))
    write_power_png(OUT / "polca_study.png", plan.series, policy,
                    f"{s['n_servers_max']} DGX A100 under a 40-server (260 kW) budget, Llama-2-70B, POLCA policy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
