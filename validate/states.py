"""Operating states: what a kernel or a layer step costs right after idle, under continuous load,
and as one eagerly timed call. Rows go to ``states.csv`` (:data:`STATE_COLUMNS`), the NVML samples
to ``states_trace.csv`` (:data:`TRACE_COLUMNS`); the cases are :mod:`validate.cases.states`.

A GPU runs a kernel at different speeds depending on what it did just before. Three states are
measured here, per case, in this order:

- ``eager_call`` (kernel cases whose GPU time is under :data:`EAGER_BELOW_S` only): after
  ``idle_s`` seconds of nothing (so the previous case's load has not left the clock throttled;
  ``start_sm_clock_hz`` / ``start_power_w`` as for burst), the way most people time a kernel:
  ``start.record(); fn(); end.record(); end.synchronize()`` per call, the GPU idle between calls,
  so the time includes the host's launch of the call (Python, the framework's dispatch, the
  driver) and the GPU's wake-up from an empty queue. Median over ``eager_calls`` calls after
  ``eager_warmup`` untimed ones, input sets rotated.
- ``burst``: right after ``idle_s`` seconds of nothing (a sleep; the SM clock and board power at
  its end are ``start_sm_clock_hz`` / ``start_power_w``), about ``burst_s`` seconds of back-to-back
  CUDA-graph replays, each replay between its own CUDA event pair. The GPU has thermal and power
  headroom and runs at (or ramps within a few ms to) its boost clock: what the first requests after
  a pause, a short benchmark or a freshly started job see.
- ``sustained``: the same replays back to back for ``warmup_s`` seconds of load (not timed; its
  samples are in the trace as state ``sustained_warmup``), then ``sustained_s`` seconds timed the
  same way while the load continues. Compute-bound work settles at the clock the board power
  limit (``power_limit_w``, 700 W on an H200 SXM) allows; memory-bound work usually keeps the
  boost clock. What a serving engine under steady traffic sees.

Timing: a case's calls are captured ``calls_per_replay`` times into one CUDA graph (enough calls
that one replay lasts at least ``replay_min_s``, a multiple of the number of input sets, which
are rotated so inputs smaller than 3x L2 are not served from L2 as in kernels.csv); per-call time
= replay time / calls per replay, so ``median_s``, ``p10_s``, ``p90_s`` are per call (per step for
layers) over the replays of the window; ``n_reps`` counts calls. Cases with ``graph=False`` (the
prefill layer step, eager as in layers.csv) replace a replay by that many eager calls. Replays are
queued in chunks of about ``chunk_s`` seconds with the host at most one chunk ahead, so the GPU
never waits on the host during a window.

NVML: a background thread reads the board power (the instantaneous POWER_INSTANT field where the
driver has it, which the H200's updates about every 100 ms; else the trailing ~1 s average) and
the SM clock every ``burst_interval_s`` (eager_call, burst) or ``interval_s`` (sustained);
``mean_power_w`` and ``mean_sm_clock_hz`` are sample means over the timed window (host time from
the first queued replay to the last completed one). ``mean_power_w`` is left empty for windows
shorter than ``power_min_window_s`` (0.3 s): the power field updates only about every 100 ms, so
a burst or eager-call window (tens of ms) reads what the board drew before it (on the H200 run of
2026-12-01 it read the idle ~120 W during 8192³ GEMM bursts). The SM clock reads current.

CUDA graphs and ``copy_``: a device-to-device ``copy_`` captured in a graph becomes a memcpy node;
on the H200 a 1 GiB one ran at 2.7 TB/s that way (794 µs) against 4.26 TB/s for the eager call in
kernels.csv (504 µs), while 64 MiB ran alike both ways. Copy cases are therefore timed as
back-to-back eager calls (``graph=False``), like kernels.csv.

``flops`` / ``hbm_bytes`` are the counts of kernels.csv (the kernels modules' minimum counts),
empty for layers.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable

import numpy as np

from validate.power import _Sampler

STATES: tuple[str, ...] = ("burst", "sustained", "eager_call")
STATE_KERNELS: tuple[str, ...] = ("gemm", "attention_prefill", "attention_decode", "copy", "layer")
STATE_SHAPE_COLUMNS: tuple[str, ...] = (
    "dtype", "m", "n", "k", "batch", "seq", "context", "n_q_heads", "n_kv_heads", "head_dim",
    "causal", "paged", "bytes", "mode", "graph", "model", "hidden", "ffn_hidden",
)
STATE_COLUMNS: tuple[str, ...] = (
    "case_id", "kernel", "impl", "state", *STATE_SHAPE_COLUMNS,
    "median_s", "p10_s", "p90_s", "n_reps", "mean_power_w", "mean_sm_clock_hz",
    "start_sm_clock_hz", "start_power_w", "power_limit_w", "flops", "hbm_bytes",
    "gpu_name", "hardware_id",
)
TRACE_COLUMNS: tuple[str, ...] = ("case_id", "state", "t_s", "power_w", "sm_clock_hz")
EAGER_BELOW_S = 100e-6  # eager_call rows only for kernels whose GPU time is shorter than this


@dataclasses.dataclass(frozen=True)
class StateConfig:
    """Durations (seconds) and counts of the three states; :meth:`quick` for smoke tests."""

    idle_s: float = 2.0
    burst_s: float = 0.04
    warmup_s: float = 8.0
    sustained_s: float = 1.0
    eager_calls: int = 500
    eager_warmup: int = 20
    replay_min_s: float = 200e-6
    max_calls_per_replay: int = 512
    chunk_s: float = 0.05
    interval_s: float = 0.02
    burst_interval_s: float = 0.005
    eager_below_s: float = EAGER_BELOW_S
    power_min_window_s: float = 0.3

    @classmethod
    def quick(cls) -> "StateConfig":
        return cls(idle_s=0.2, burst_s=0.01, warmup_s=0.3, sustained_s=0.1, eager_calls=50,
                   eager_warmup=5)


def eager_call_applies(kernel: str, gpu_time_s: float | None,
                       below_s: float = EAGER_BELOW_S) -> bool:
    """The eager_call rule: kernel cases (not layers) whose GPU time is under ``below_s``."""
    return kernel != "layer" and gpu_time_s is not None and gpu_time_s < below_s


def calls_per_replay(est_call_s: float, n_sets: int, cfg: StateConfig) -> int:
    """Calls captured in one replay: at least ``replay_min_s`` of work, a multiple of ``n_sets``
    (every input set used equally), at most ``max_calls_per_replay`` (rounded up to ``n_sets``)."""
    n_sets = max(1, n_sets)
    want = min(cfg.max_calls_per_replay, max(1, math.ceil(cfg.replay_min_s / max(est_call_s, 1e-8))))
    return n_sets * math.ceil(want / n_sets)


def quantiles(times_s) -> tuple[float, float, float]:
    """(median, p10, p90) of a sequence of seconds."""
    p10, med, p90 = np.quantile(np.asarray(times_s, dtype=np.float64), [0.1, 0.5, 0.9])
    return float(med), float(p10), float(p90)


def sample_means(samples, t0: float, t1: float,
                 power_min_window_s: float = 0.0) -> tuple[float | None, float | None]:
    """Mean power and mean SM clock of the (t, power, clock) samples with t0 <= t <= t1 (the one
    sample nearest the window where none falls inside it); power None for a window shorter than
    ``power_min_window_s`` (NVML's power reading lags by up to its update period)."""
    inside = [s for s in samples if t0 <= s[0] <= t1]
    if not inside and samples:
        inside = [min(samples, key=lambda s: abs(s[0] - 0.5 * (t0 + t1)))]
    if t1 - t0 < power_min_window_s:
        inside = [(t, None, c) for t, _, c in inside]
    powers = [p for _, p, _ in inside if p is not None]
    clocks = [c for _, _, c in inside if c is not None]
    return (float(np.mean(powers)) if powers else None,
            float(np.mean(clocks)) if clocks else None)


# ------------------------------------------------------------------------------ one prepared case

@dataclasses.dataclass
class Prepared:
    """A case ready to time: its closures, one replay (graph or eager batch) and its GPU time."""

    fns: list
    unit: Callable[[], Any]  # one replay
    calls_per_unit: int
    call_s: float  # GPU time of one call, from replays (per step for layers)
    graph: Any = None  # kept alive while replaying


def _events_s(torch, fn: Callable[[], Any], n: int) -> float:
    """Seconds per call of ``n`` back-to-back calls between one event pair."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(n):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e-3 / n


def prepare(torch, case, l2_bytes: int, cfg: StateConfig) -> Prepared:
    """Build the input sets, warm up, capture the replay (graph cases) and measure its GPU time."""
    from validate.timing import n_rotation_sets

    n_sets = n_rotation_sets(case.set_bytes, l2_bytes) if case.set_bytes else 1
    fns = case.make_fns(n_sets)
    side = torch.cuda.Stream()  # warm up on a side stream, as graph capture requires
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for fn in fns:
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    est = min(_events_s(torch, lambda: [fn() for fn in fns], 1) / len(fns) for _ in range(3))
    n = calls_per_replay(est, len(fns), cfg)

    def eager_unit():
        for i in range(n):
            fns[i % len(fns)]()

    if not case.graph:
        _events_s(torch, eager_unit, 1)
        return Prepared(fns, eager_unit, n, min(_events_s(torch, eager_unit, 1) for _ in range(3)) / n)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        eager_unit()
    graph.replay()
    torch.cuda.synchronize()
    call_s = min(_events_s(torch, graph.replay, 1) for _ in range(3)) / n
    return Prepared(fns, graph.replay, n, call_s, graph)


# -------------------------------------------------------------------------------------- timing

def time_replays(torch, prep: Prepared, n_units: int, chunk: int) -> tuple[list[float], float, float]:
    """``n_units`` replays back to back, one event pair each, queued ``chunk`` at a time with the
    host at most one chunk ahead; returns (per-call seconds, host t at first enqueue, host t at
    the end), host times on :func:`time.perf_counter`."""
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n_units)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n_units)]
    t0 = time.perf_counter()
    pending = None
    for lo in range(0, n_units, max(1, chunk)):
        hi = min(n_units, lo + max(1, chunk))
        for i in range(lo, hi):
            starts[i].record()
            prep.unit()
            ends[i].record()
        if pending is not None:
            pending.synchronize()
        pending = ends[hi - 1]
    pending.synchronize()
    t1 = time.perf_counter()
    per_call = [s.elapsed_time(e) * 1e-3 / prep.calls_per_unit for s, e in zip(starts, ends)]
    return per_call, t0, t1


def keep_busy(torch, prep: Prepared, seconds: float, chunk: int) -> int:
    """Replays back to back for ``seconds`` (host at most one chunk ahead); returns replays run."""
    t_end = time.perf_counter() + seconds
    done, pending = 0, None
    while time.perf_counter() < t_end:
        for _ in range(chunk):
            prep.unit()
        done += chunk
        marker = torch.cuda.Event()
        marker.record()
        if pending is not None:
            pending.synchronize()
        pending = marker
    if pending is not None:
        pending.synchronize()
    return done


def time_eager_calls(torch, fns: list, n_calls: int, n_warmup: int) -> tuple[list[float], float, float]:
    """``start.record(); fn(); end.record(); end.synchronize()`` per call (the GPU idle between
    calls), rotating over ``fns``; returns (seconds per timed call, host t0, host t1)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times: list[float] = []
    t0 = None
    for i in range(n_warmup + n_calls):
        if i == n_warmup:
            t0 = time.perf_counter()
        start.record()
        fns[i % len(fns)]()
        end.record()
        end.synchronize()
        if i >= n_warmup:
            times.append(start.elapsed_time(end) * 1e-3)
    return times, t0, time.perf_counter()


# ------------------------------------------------------------------------------------ one case

@dataclasses.dataclass
class StateRun:
    """One :func:`run_states` call: the GPU handles, what it collects, and its settings."""

    torch: Any
    env: Any
    nvml: Any
    cfg: StateConfig
    instant: bool = False  # NVML has the POWER_INSTANT field
    rows: list = dataclasses.field(default_factory=list)
    trace: list = dataclasses.field(default_factory=list)
    failures: list = dataclasses.field(default_factory=list)

    def power_now(self) -> float | None:
        return self.nvml.instant_power_w() if self.instant else self.nvml.power_w()

    def sampled(self, interval_s: float, body: Callable[[], Any]):
        """``body()`` with NVML sampled every ``interval_s`` on a thread; returns (body's result,
        samples [(t, power_w, sm_clock_hz)] with t in seconds since ``t_ref``, t_ref)."""
        if not self.nvml.available:
            return body(), [], time.perf_counter()
        sampler = _Sampler(self.nvml, interval_s, self.instant)
        sampler.start()
        try:
            result = body()
        finally:
            sampler.stop()
        return result, list(sampler.samples), sampler.t0

    def add_trace(self, case_id: str, samples, label: Callable[[float], str]) -> None:
        self.trace += [{"case_id": case_id, "state": label(t), "t_s": t, "power_w": p,
                        "sm_clock_hz": c} for t, p, c in samples]

    def add_row(self, case, state: str, times, calls_per_time: int, graph: bool, means,
                counts, start=(None, None)) -> dict:
        med, p10, p90 = quantiles(times)
        row = {"case_id": case.case_id, "kernel": case.kernel, "impl": case.impl, "state": state,
               **case.shape, "graph": graph, "median_s": med, "p10_s": p10, "p90_s": p90,
               "n_reps": len(times) * calls_per_time, "mean_power_w": means[0],
               "mean_sm_clock_hz": means[1], "start_sm_clock_hz": start[0],
               "start_power_w": start[1], "power_limit_w": self.nvml.power_limit_w(),
               "flops": counts[0], "hbm_bytes": counts[1], "gpu_name": self.env.gpu_name,
               "hardware_id": self.env.hardware_id}
        self.rows.append(row)
        return row


def _chunk(prep: Prepared, chunk_s: float) -> int:
    """Replays per queued chunk: about ``chunk_s`` of GPU work."""
    return max(1, math.ceil(chunk_s / max(prep.call_s * prep.calls_per_unit, 1e-7)))


def _replays_for(prep: Prepared, seconds: float, minimum: int = 5) -> int:
    return max(minimum, math.ceil(seconds / max(prep.call_s * prep.calls_per_unit, 1e-7)))


def _idle(run: StateRun) -> tuple[float | None, float | None]:
    """Let the queue drain, sleep ``idle_s``; returns (SM clock, power) at the end of the sleep."""
    run.torch.cuda.synchronize()
    time.sleep(run.cfg.idle_s)
    return run.nvml.sm_clock_hz(), run.power_now()


def eager_state(run: StateRun, case, prep: Prepared, counts) -> dict:
    """``idle_s`` of sleep, then one eagerly launched call at a time, each between its own event
    pair."""
    cfg = run.cfg
    start = _idle(run)
    (times, t0, t1), samples, ref = run.sampled(cfg.interval_s, lambda: time_eager_calls(
        run.torch, prep.fns, cfg.eager_calls, cfg.eager_warmup))
    run.add_trace(case.case_id, samples, lambda t: "eager_call")
    means = sample_means(samples, t0 - ref, t1 - ref, cfg.power_min_window_s)
    return run.add_row(case, "eager_call", times, 1, False, means, counts, start)


def burst_state(run: StateRun, case, prep: Prepared, counts) -> dict:
    """``idle_s`` of sleep, then ~``burst_s`` of replays."""
    cfg, torch = run.cfg, run.torch
    start = _idle(run)
    n = _replays_for(prep, cfg.burst_s)
    (times, t0, t1), samples, ref = run.sampled(cfg.burst_interval_s, lambda: time_replays(
        torch, prep, n, _chunk(prep, cfg.chunk_s)))
    run.add_trace(case.case_id, samples, lambda t: "burst")
    means = sample_means(samples, t0 - ref, t1 - ref, cfg.power_min_window_s)
    return run.add_row(case, "burst", times, prep.calls_per_unit, case.graph, means, counts, start)


def sustained_state(run: StateRun, case, prep: Prepared, counts) -> dict:
    """``warmup_s`` of back-to-back replays, then ``sustained_s`` of them timed."""
    cfg, torch = run.cfg, run.torch
    chunk = _chunk(prep, cfg.chunk_s)
    n = _replays_for(prep, cfg.sustained_s)

    def body():
        keep_busy(torch, prep, cfg.warmup_s, chunk)
        return time_replays(torch, prep, n, chunk)

    (times, t0, t1), samples, ref = run.sampled(cfg.interval_s, body)
    # the timed window's first replays were queued at t0; the load before it is warm-up
    run.add_trace(case.case_id, samples,
                  lambda t: "sustained" if t >= t0 - ref else "sustained_warmup")
    means = sample_means(samples, t0 - ref, t1 - ref, cfg.power_min_window_s)
    return run.add_row(case, "sustained", times, prep.calls_per_unit, case.graph, means, counts)


def _counts(case) -> tuple[int | None, int | None]:
    try:
        return case.counts()
    except Exception:  # a kernels module that does not import leaves the counts empty, as kernels.csv
        return None, None


def measure_case(run: StateRun, case) -> list[dict]:
    """All states of one case (eager_call first, only where :func:`eager_call_applies`)."""
    torch = run.torch
    n_before = len(run.rows)
    prep = prepare(torch, case, run.env.l2_bytes, run.cfg)
    counts = _counts(case)
    if eager_call_applies(case.kernel, prep.call_s, run.cfg.eager_below_s):
        eager_state(run, case, prep, counts)
    burst_state(run, case, prep, counts)
    sustained_state(run, case, prep, counts)
    return run.rows[n_before:]


# ----------------------------------------------------------------------------------- the section

def states_meta(cfg: StateConfig, instant: bool) -> dict:
    """How the states were measured, for the environment file."""
    return {"config": dataclasses.asdict(cfg), "states": list(STATES),
            "power_sample": "NVML POWER_INSTANT field" if instant else
            "nvmlDeviceGetPowerUsage (trailing ~1 s average on Hopper)",
            "method": "see the docstring of validate/states.py"}


def run_states(env, nvml, quick: bool = False, folder=None, progress=None,
               cfg: StateConfig | None = None, cases=None) -> StateRun:
    """Measure every state case (:func:`validate.cases.states.state_cases`) on the attached GPU.

    Writes ``states.csv`` and ``states_trace.csv`` into ``folder`` (if given) after every case, so
    a cut-off run keeps what it measured. A case that fails becomes a failure row (the columns of
    failures.csv) and the next case runs. Returns the :class:`StateRun` with rows, trace, failures.
    """
    import torch

    from validate.runner import Kernels

    cfg = cfg or (StateConfig.quick() if quick else StateConfig())
    if cases is None:
        from validate.cases.states import state_cases

        cases = state_cases(torch, Kernels(), quick=quick,
                            fp8_ok=torch.cuda.get_device_capability(0) >= (8, 9))
    run = StateRun(torch, env, nvml, cfg,
                   instant=nvml.available and nvml.instant_power_w() is not None)
    task = progress.add_task("states", total=len(cases)) if progress is not None else None
    for case in cases:
        try:
            measure_case(run, case)
        except Exception as exc:
            run.failures.append({"case_id": case.case_id, "kernel": case.kernel, "impl": case.impl,
                                 "stage": "states", "error": " ".join(
                                     f"{type(exc).__name__}: {exc}".split())[:600]})
        _settle(torch)
        if folder is not None:
            write_states(folder, run)
        if task is not None:
            progress.advance(task)
    return run


def _settle(torch) -> None:
    try:
        torch.cuda.synchronize()
    except Exception:  # a sticky CUDA error; the next cases will report it too
        pass
    torch.cuda.empty_cache()


def write_states(folder, run: StateRun) -> dict:
    """states.csv and states_trace.csv, atomically; returns {name: path}."""
    from pathlib import Path

    from validate.runner import write_csv_atomic

    folder = Path(folder)
    return {"states": write_csv_atomic(folder / "states.csv", run.rows, STATE_COLUMNS),
            "states_trace": write_csv_atomic(folder / "states_trace.csv", run.trace, TRACE_COLUMNS)}
