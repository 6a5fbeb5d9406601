"""Speed of the serving simulation and the row planner. Prints measured figures; not a test.

- serving: iterations per second of the continuous-batching scheduler (Llama-2-70B TP8 on A100, one hour
  of Poisson arrivals), step-table build time, simulated seconds per wall second;
- row planner, one core: simulated server-seconds per wall second (goal ≥ 10,000,000), for the study's
  53-server row over a day and for a wide 2,000-server row, both with POLCA's policy active;
- distributed: the same fleet of rows on a Dask LocalCluster with 1 and with 2 single-threaded workers.

Run with ``python benchmarks/bench_serving.py [--skip-dask]``.
"""

from __future__ import annotations

import os
import platform
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from simulator import serving  # noqa: E402
from simulator.serving import loadcurve, planner, row  # noqa: E402
from simulator.serving.planner import RowWorkload, Server  # noqa: E402
from simulator.serving.policy import Policy  # noqa: E402


def bench_serving():
    t0 = time.perf_counter()
    cfg = serving.SchedulerConfig()
    inst = serving.instance("a100-sxm4-80gb", "llama-2-70b", tensor_parallel=8, engine="vllm-0.6",
                            clocks_hz=Policy().clocks_hz, max_context_tokens=1280)
    build = time.perf_counter() - t0
    req = serving.poisson(2.5, 3600.0, 1024, 256, seed=0)
    t1 = time.perf_counter()
    r = serving.simulate(inst, req, cfg)
    loop = time.perf_counter() - t1
    n_it = r.summary["iterations"]
    print(f"serving: {n_it:,} iterations for {r.summary['makespan_s']:.0f} simulated s ({len(req):,} requests) in "
          f"{loop:.2f} s: {n_it / loop:,.0f} iterations/s, {r.summary['makespan_s'] / loop:,.0f} simulated s per "
          f"wall s; step tables for 5 clocks built in {build:.2f} s")
    return inst


def bench_row(curves, n_servers, hours, budget_per_server_w, repeats=3):
    w = RowWorkload(duration_s=hours * 3600.0, peak_hour=hours / 2.0)
    arrivals, priority = planner.row_arrivals(w, float(curves.max_rate_per_s[0]), n_servers)
    best, st = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        st = row.simulate_row(curves, arrivals, priority, budget_w=budget_per_server_w * n_servers, policy=Policy(),
                              inst_per_server=1, non_gpu_w=2000.0)
        best = min(best, time.perf_counter() - t0)
    rate = n_servers * w.duration_s / best
    print(f"row planner: {n_servers} servers x {hours} h with the policy ({st.events['cap']} cap decisions): "
          f"{best:.3f} s, {rate:,.0f} server-seconds per wall second (goal 10,000,000)")
    return rate


def bench_dask(curves):
    from faces.fleet import FleetSpec, run_fleet
    spec = FleetSpec(curves, 16, 53, 260e3, Server(), RowWorkload(duration_s=6 * 3600.0, peak_hour=3.0), Policy())
    base = None
    for workers in (1, 2):
        _, s = run_fleet(spec, n_workers=workers)
        base = base or s["compute_s"]
        print(f"dask fleet: {s['n_servers']} servers x 6 h on {workers} worker(s): compute {s['compute_s']:.2f} s "
              f"(wall incl. cluster start {s['wall_s']:.2f} s), {s['server_seconds_per_s']:,.0f} server-s/s, "
              f"speed-up {base / s['compute_s']:.2f}x")


def main() -> int:
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores visible "
          f"(one used except by Dask)")
    inst = bench_serving()
    curves = loadcurve.load_curves(inst, 1024, 256, 256)
    bench_row(curves, 53, 24, 6500.0 * 40 / 53)
    bench_row(curves, 2000, 2, 6500.0 * 40 / 53)
    if "--skip-dask" not in sys.argv:
        bench_dask(curves)
    return 0


if __name__ == "__main__":
    sys.exit(main())
