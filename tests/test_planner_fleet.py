"""The fleet on a Dask LocalCluster reproduces the same rows run in-process."""

import numpy as np
import pytest

pytest.importorskip("dask.distributed")

from dask.distributed import Client, LocalCluster  # noqa: E402

from faces.fleet import FleetSpec, partitions, run_fleet, run_local  # noqa: E402
from simulator import serving  # noqa: E402
from simulator.serving import loadcurve  # noqa: E402
from simulator.serving.planner import RowWorkload, Server  # noqa: E402
from simulator.serving.policy import Policy  # noqa: E402


def test_partitions_cover_every_row_once():
    for n, k in ((10, 3), (7, 8), (1, 4)):
        rows = [r for p in partitions(n, k) for r in p]
        assert rows == list(range(n))


def test_dask_local_cluster_matches_in_process():
    inst = serving.instance("a100-sxm4-80gb", "llama-2-70b", tensor_parallel=8, clocks_hz=Policy().clocks_hz,
                            max_context_tokens=1280)
    curves = loadcurve.load_curves(inst, 1024, 256, 256)
    spec = FleetSpec(curves, 4, 50, 260e3, Server(), RowWorkload(duration_s=1800.0, peak_hour=0.25), Policy())
    ref_rows, ref_hist = run_local(spec)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        rows, summary = run_fleet(spec, n_workers=2, client=client)
    assert summary["n_servers"] == 200
    assert np.allclose(rows.drop(columns="row").to_numpy(float), ref_rows.drop(columns="row").to_numpy(float))
    assert rows.cap_events.sum() > 0  # the rows were capped: the policy ran inside the partitions
