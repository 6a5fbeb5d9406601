"""Timing of GPU callables with CUDA events, in the spirit of ``triton.testing.do_bench``.

Method (warm up, synchronise, take medians of many runs, record the achieved rate and the device state):

- Each callable is warmed up first (compilation, autotuning, cuBLAS handle creation stay out).
- A short calibration run estimates one call's time; the number of repetitions then fills a fixed
  time budget per case (default 50 ms), within fixed minimum and maximum counts.
- Eager timing queues batches of back-to-back calls (~1 ms of work, at least one pass over the
  input sets) with one CUDA event pair per batch and takes quantiles of batch time / calls. For
  small kernels the GPU then waits on the host between launches, so the per-call time is the eager
  issue rate a serving loop without graphs pays (events between single calls would add their own
  host cost and make such kernels flip between launch-bound and GPU-bound from run to run).
- Graph timing captures ``n_inner`` calls in one CUDA graph and times whole replays, so launch gaps
  vanish and per-call time = replay time / ``n_inner``.
- Inputs smaller than the L2 cache would be measured from L2, not HBM: the caller passes several
  input sets (see :func:`n_rotation_sets`) and calls rotate among them.
- Around the timed loop NVML is read: SM clock while the queue is still busy, board power at the
  end (NVML's trailing ~1 s average on Hopper, so it mixes in what ran just before) and the total
  energy counter before and after (joules over the timed region's wall time, launch gaps included;
  only for loops of at least ``ENERGY_MIN_WALL_S``, since the counter advances in ~100 ms steps).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Sequence

import numpy as np


# NVML's energy counter advances in steps (seen on an H100: 0 J or 12-30 J jumps over 10-50 ms
# loops, i.e. ~100 ms updates), so energy is only reported for loops at least this long.
ENERGY_MIN_WALL_S = 1.0


@dataclasses.dataclass(frozen=True)
class Timing:
    """Quantiles of per-call device time (seconds) plus device state read around the timed loop."""

    median_s: float
    p10_s: float
    p90_s: float
    n_reps: int
    graph: bool
    sm_clock_hz: float | None = None
    power_w: float | None = None
    energy_j: float | None = None
    wall_s: float | None = None


def n_rotation_sets(set_bytes: int, l2_bytes: int, max_sets: int = 256) -> int:
    """How many distinct input sets to rotate through so successive calls miss in L2.

    Sets whose footprint already exceeds 3x L2 need no rotation; smaller ones are replicated until
    the cycle spans 3x L2 (LRU-like replacement then evicts a set before it is reused), capped at
    ``max_sets``.
    """
    if set_bytes <= 0:
        return 1
    target = 3 * max(l2_bytes, 1)
    if set_bytes >= target:
        return 1
    return int(min(max_sets, math.ceil(target / set_bytes)))


def _quantiles(times_s: Sequence[float]) -> tuple[float, float, float]:
    arr = np.asarray(times_s, dtype=np.float64)
    p10, med, p90 = np.quantile(arr, [0.1, 0.5, 0.9])
    return float(med), float(p10), float(p90)


def _estimate_call_s(torch, fns: Sequence[Callable[[], object]], n: int) -> float:
    """Mean time of ``n`` back-to-back calls (one event pair around all), seconds."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(n):
        fns[i % len(fns)]()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e-3 / n


def bench(
    fns: Sequence[Callable[[], object]],
    *,
    budget_s: float = 0.05,
    warmup_s: float = 0.01,
    batch_s: float = 1e-3,
    min_batches: int = 5,
    max_batches: int = 1000,
    nvml=None,
) -> Timing:
    """Eager timing: batches of back-to-back calls, one CUDA event pair per batch.

    ``fns`` are zero-argument closures, one per input set (all doing the same work); calls rotate
    over them. A batch holds at least one pass over the sets and about ``batch_s`` of work, so a
    per-call event never sits between two calls: a launch-bound kernel shows the host issue rate
    an eager loop really achieves, not the cost of recording events. Returns quantiles over batches
    of per-call time (batch time / calls per batch); ``n_reps`` counts calls.
    """
    import torch

    fns = list(fns)
    n_sets = len(fns)
    fns[0]()  # compile / autotune / handle creation
    torch.cuda.synchronize()
    est_s = _estimate_call_s(torch, fns, min(n_sets, 3))
    n_warm = int(min(1000, max(1, warmup_s / max(est_s, 1e-7))))
    _estimate_call_s(torch, fns, n_warm)
    est_s = _estimate_call_s(torch, fns, max(n_sets, min(100, int(batch_s / max(est_s, 1e-7)))))
    per_batch = max(1, math.ceil(batch_s / max(est_s, 1e-7)))
    per_batch = n_sets * math.ceil(per_batch / n_sets)
    n_batches = int(min(max_batches, max(min_batches, budget_s / (per_batch * max(est_s, 1e-7)))))

    def one_batch():
        for i in range(per_batch):
            fns[i % n_sets]()

    return _timed_repeats(torch, nvml, n_batches, one_batch, per_batch, graph=False)


def bench_graph(
    fns: Sequence[Callable[[], object]],
    *,
    budget_s: float = 0.05,
    min_calls_per_graph: int = 20,
    min_reps: int = 5,
    max_reps: int = 500,
    nvml=None,
) -> Timing:
    """CUDA-graph timing: capture ``n_inner`` rotating calls, time replays, report per-call time.

    ``n_inner`` is a multiple of ``len(fns)`` (every input set used equally) and at least
    ``min_calls_per_graph``. Fails (raises) for callables that synchronise or allocate host memory.
    """
    import torch

    fns = list(fns)
    # Warm up on a side stream, as graph capture requires for lazily initialised libraries.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for fn in fns[: min(len(fns), 3)]:
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()

    n_inner = len(fns) * max(1, math.ceil(min_calls_per_graph / len(fns)))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(n_inner):
            fns[i % len(fns)]()
    graph.replay()
    torch.cuda.synchronize()

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    graph.replay()
    end.record()
    end.synchronize()
    est_replay_s = start.elapsed_time(end) * 1e-3
    n_reps = int(min(max_reps, max(min_reps, budget_s / max(est_replay_s, 1e-7))))

    timing = _timed_repeats(torch, nvml, n_reps, graph.replay, n_inner, graph=True)
    del graph
    return timing


def _timed_repeats(torch, nvml, n_reps: int, body: Callable[[], object], calls_per_rep: int, graph: bool) -> Timing:
    """``n_reps`` runs of ``body`` (``calls_per_rep`` calls each), one CUDA event pair per run, NVML
    readings around the loop; quantiles of per-call time."""
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n_reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n_reps)]
    state = _DeviceReadings(nvml)
    state.begin()
    for i in range(n_reps):
        starts[i].record()
        body()
        ends[i].record()
    state.busy()
    torch.cuda.synchronize()
    state.end()
    times_s = [s.elapsed_time(e) * 1e-3 / calls_per_rep for s, e in zip(starts, ends)]
    med, p10, p90 = _quantiles(times_s)
    return state.timing(med, p10, p90, n_reps * calls_per_rep, graph=graph)


class _DeviceReadings:
    """NVML readings around one timed loop (all None without NVML)."""

    def __init__(self, nvml):
        self.nvml = nvml if (nvml is not None and nvml.available) else None
        self.e0 = self.e1 = self.clock = self.power = None
        self.t0 = self.t1 = None

    def begin(self):
        if self.nvml:
            self.e0 = self.nvml.energy_j()
        self.t0 = time.perf_counter()

    def busy(self):
        # Read while the queued work is (normally) still running, so the clock is the loaded one.
        if self.nvml:
            self.clock = self.nvml.sm_clock_hz()

    def end(self):
        self.t1 = time.perf_counter()
        if self.nvml:
            self.e1 = self.nvml.energy_j()
            self.power = self.nvml.power_w()

    def timing(self, med, p10, p90, n_reps, graph) -> Timing:
        energy = None
        wall_s = self.t1 - self.t0
        if self.e0 is not None and self.e1 is not None and wall_s >= ENERGY_MIN_WALL_S:
            energy = self.e1 - self.e0
        return Timing(
            median_s=med,
            p10_s=p10,
            p90_s=p90,
            n_reps=n_reps,
            graph=graph,
            sm_clock_hz=self.clock,
            power_w=self.power,
            energy_j=energy,
            wall_s=wall_s,
        )
