"""A fleet of rows on Dask: the row planner's kernel (``simulator.serving.row.simulate_row``) run per row,
partitioned over workers of a local Dask cluster (``hwperf fleet``; the benchmark measures 1 → 2 workers).

Rows are independent power domains (each has its own budget and capping policy), so a fleet partitions
by rows with no communication but the results: each partition generates its rows' arrivals from the seed
and the row index (nothing large crosses the wire) and returns one summary row per row plus latency
histograms, which add up. Dask rather than Ray: the work is numpy over arrays with a map over partitions
and a reduce of small results — what ``dask.distributed``'s futures do with a local cluster started in
one call (``LocalCluster``), pip-installable, with no separate object store or runtime; Ray's actor
model and shared-memory store buy nothing for this embarrassingly parallel map. The simulator itself
stays pure numpy: only this edge module imports Dask.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from simulator.serving.loadcurve import LoadCurves
from simulator.serving.planner import RowWorkload, Server, row_arrivals
from simulator.serving.policy import Policy
from simulator.serving.row import HIST_BINS, hist_percentile, simulate_row


@dataclass(frozen=True)
class FleetSpec:
    """``n_rows`` rows of ``servers_per_row`` servers, each row budgeted ``budget_w``."""

    curves: LoadCurves
    n_rows: int
    servers_per_row: int
    budget_w: float
    server: Server
    workload: RowWorkload
    policy: Policy


def run_rows(spec: FleetSpec, rows: range):
    """The per-partition kernel: simulate rows ``rows``; (one summary dict per row, e2e histogram (2, bins))."""
    out, hist = [], np.zeros((2, HIST_BINS))
    for r in rows:
        w = replace(spec.workload, seed=spec.workload.seed * 1_000_003 + r)
        arrivals, priority = row_arrivals(w, float(spec.curves.max_rate_per_s[0]) * spec.server.instances,
                                          spec.servers_per_row)
        st = simulate_row(spec.curves, arrivals, priority, budget_w=spec.budget_w, policy=spec.policy,
                          inst_per_server=spec.server.instances, non_gpu_w=spec.server.non_gpu_power_w,
                          dt_s=w.dt_s)
        frac = st.row_power_w / spec.budget_w
        out.append({"row": r, "peak_power_frac": float(frac.max()), "mean_power_frac": float(frac.mean()),
                    "time_capped_frac": float(np.mean((st.stage > 0) | st.brake)), "cap_events": st.events["cap"],
                    "brake_events": st.events["brake"], "energy_j": st.energy_j})
        hist += st.e2e_hist
    return out, hist


def partitions(n_rows: int, n_parts: int) -> list[range]:
    step = max(1, math.ceil(n_rows / max(n_parts, 1)))
    return [range(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


def _reduce(results):
    rows = pd.DataFrame([r for part, _ in results for r in part]).sort_values("row", ignore_index=True)
    hist = sum(h for _, h in results)
    return rows, hist


def run_fleet(spec: FleetSpec, n_workers: int = 2, client=None, partitions_per_worker: int = 4):
    """Run the fleet on a Dask cluster (``client``, or a LocalCluster of ``n_workers`` single-threaded
    processes started here). Returns (per-row DataFrame, summary dict with wall time and P50/P99)."""
    from dask.distributed import Client, LocalCluster

    t0 = time.perf_counter()
    own = client is None
    if own:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        parts = partitions(spec.n_rows, n_workers * partitions_per_worker)
        t1 = time.perf_counter()
        futures = client.map(run_rows, [spec] * len(parts), parts, pure=False)
        rows, hist = _reduce(client.gather(futures))
        compute_s = time.perf_counter() - t1
    finally:
        if own:
            client.close()
            cluster.close()
    server_s = spec.n_rows * spec.servers_per_row * spec.workload.duration_s
    summary = {"n_rows": spec.n_rows, "n_servers": spec.n_rows * spec.servers_per_row, "n_workers": n_workers,
               "compute_s": compute_s, "wall_s": time.perf_counter() - t0,
               "server_seconds_per_s": server_s / compute_s, "brake_events": int(rows.brake_events.sum()),
               "time_capped_frac": float(rows.time_capped_frac.mean()),
               "high_p99_e2e_s": hist_percentile(hist[0], 99), "low_p99_e2e_s": hist_percentile(hist[1], 99)}
    return rows, summary


def run_local(spec: FleetSpec):
    """The same partitions in this process (the reference the distributed run must reproduce)."""
    return _reduce([run_rows(spec, p) for p in partitions(spec.n_rows, 1)])
