"""Sustained power: what the board draws, and what clock it holds, under steady load of each kind.

Four runs of ``run_s`` seconds each (default 6 s), in this order:

- ``compute``: back-to-back 8192³ bf16 GEMMs (cuBLAS) — compute bound; on an H100 at 700 W the SM
  clock typically sags below boost here, which is what the power model's "power" bound captures;
- ``memory``: back-to-back 2 GiB device-to-device copies — HBM bound;
- ``decode``: a Llama-3-8B decoder-layer decode step (batch 32, context 4096) replayed as a CUDA
  graph — what a serving loop's decode phase looks like;
- ``idle``: nothing queued (right after the loaded runs, so it includes the settle-down).

Each loaded run first warms up for ``warmup_s`` (not counted), then work is queued in chunks of
~50 ms with a synchronise after each, so the measured window ends within one chunk of ``run_s``.
A background thread samples NVML power (instantaneous where the driver offers the POWER_INSTANT
field, else the trailing ~1 s average) and the SM clock every ``interval_s``; the mean power comes
from the energy counter (joules / seconds over the window) where available.
"""

from __future__ import annotations

import threading
import time

import numpy as np

POWER_COLUMNS: tuple[str, ...] = (
    "run", "duration_s", "mean_power_w", "p90_power_w", "energy_j", "mean_sm_clock_hz",
    "achieved_flops_per_s", "achieved_bytes_per_s", "power_limit_w",
)
TRACE_COLUMNS: tuple[str, ...] = ("run", "t_s", "power_w", "sm_clock_hz")

GEMM_SIZE = 8192
COPY_BYTES = 2 * 2**30
DECODE_BATCH, DECODE_CONTEXT = 32, 4096


class _Sampler(threading.Thread):
    """Samples (t_s since start, power_w, sm_clock_hz) every ``interval_s`` until stopped."""

    def __init__(self, nvml, interval_s: float, instant: bool):
        super().__init__(daemon=True)
        self.nvml, self.interval_s, self.instant = nvml, interval_s, instant
        self.samples: list[tuple[float, float | None, float | None]] = []
        self._stop_event = threading.Event()
        self.t0 = time.perf_counter()

    def run(self):
        while not self._stop_event.is_set():
            t = time.perf_counter() - self.t0
            p = self.nvml.instant_power_w() if self.instant else self.nvml.power_w()
            self.samples.append((t, p, self.nvml.sm_clock_hz()))
            self._stop_event.wait(self.interval_s)

    def stop(self):
        self._stop_event.set()
        self.join()


def _sustain(torch, nvml, name, step, work_per_step, run_s, warmup_s, interval_s, instant):
    """Run ``step`` repeatedly for ``run_s`` s; returns (row, trace rows)."""
    flops_per_step, bytes_per_step = work_per_step
    n_steps = 0
    chunk = 1
    if step is not None:
        t_end = time.perf_counter() + warmup_s
        while time.perf_counter() < t_end:  # warm up and size a ~50 ms chunk
            ts = time.perf_counter()
            for _ in range(chunk):
                step()
            torch.cuda.synchronize()
            dt = time.perf_counter() - ts
            chunk = max(1, int(chunk * 0.05 / max(dt, 1e-6)))
    sampler = _Sampler(nvml, interval_s, instant) if nvml.available else None
    e0 = nvml.energy_j()
    t0 = time.perf_counter()
    if sampler:
        sampler.t0 = t0
        sampler.start()
    if step is None:
        time.sleep(run_s)
    else:
        while time.perf_counter() - t0 < run_s:
            for _ in range(chunk):
                step()
            n_steps += chunk
            torch.cuda.synchronize()
    t1 = time.perf_counter()
    e1 = nvml.energy_j()
    if sampler:
        sampler.stop()
    duration_s = t1 - t0
    samples = [s for s in (sampler.samples if sampler else []) if s[0] <= duration_s]
    powers = np.array([p for _, p, _ in samples if p is not None], dtype=float)
    clocks = np.array([c for _, _, c in samples if c is not None], dtype=float)
    energy_j = None if e0 is None or e1 is None else e1 - e0
    if energy_j is not None:
        mean_power_w = energy_j / duration_s
    else:
        mean_power_w = float(powers.mean()) if powers.size else None
    row = {
        "run": name,
        "duration_s": duration_s,
        "mean_power_w": mean_power_w,
        "p90_power_w": float(np.quantile(powers, 0.9)) if powers.size else None,
        "energy_j": energy_j,
        "mean_sm_clock_hz": float(clocks.mean()) if clocks.size else None,
        "achieved_flops_per_s": None if flops_per_step is None else
        flops_per_step * n_steps / duration_s,
        "achieved_bytes_per_s": None if bytes_per_step is None else
        bytes_per_step * n_steps / duration_s,
        "power_limit_w": nvml.power_limit_w(),
    }
    trace = [{"run": name, "t_s": t, "power_w": p, "sm_clock_hz": c} for t, p, c in samples]
    return row, trace


def _power_meta(nvml, run_s: float, warmup_s: float, interval_s: float, instant: bool) -> dict:
    """environment.json's account of how the power runs were sampled."""
    return {
        "run_s": run_s, "warmup_s": warmup_s, "interval_s": interval_s,
        "power_sample": "NVML POWER_INSTANT field" if instant else
        "nvmlDeviceGetPowerUsage (trailing ~1 s average on Hopper)",
        "mean_power_w": "energy counter difference / duration where available, else sample mean",
        "nvml_available": nvml.available,
    }


def _gemm_step_flops() -> float | None:
    """FLOPs of one GEMM_SIZE³ product, from the kernels module's count."""
    try:
        from kernels.gemm import flops as gemm_flops

        return gemm_flops(GEMM_SIZE, GEMM_SIZE, GEMM_SIZE)
    except Exception:  # counts come from the kernels module; without it, leave the rate empty
        return None


def _decode_graph(torch):
    """A Llama-3-8B decode step captured as a CUDA graph; returns (graph, step, layer).

    The step and layer are returned with the graph because the graph replays on their weights and
    KV cache: the caller keeps all three alive until it is done replaying.
    """
    from validate.layers import LLAMA_3_8B, LlamaLayer

    layer = LlamaLayer(LLAMA_3_8B)
    step, _, _ = layer.decode_step(DECODE_BATCH, DECODE_CONTEXT)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph, step, layer


def run_power(env, nvml, run_s: float = 6.0, warmup_s: float | None = None,
              interval_s: float = 0.05, progress=None) -> tuple[list[dict], list[dict], dict]:
    """Sustained compute / memory / decode / idle runs; returns (power rows, trace rows, metadata)."""
    import torch

    from validate.layers import LLAMA_3_8B

    warmup_s = warmup_s if warmup_s is not None else min(1.0, 0.2 * run_s)
    instant = nvml.available and nvml.instant_power_w() is not None
    meta = _power_meta(nvml, run_s, warmup_s, interval_s, instant)
    gemm_step_flops = _gemm_step_flops()

    rows, traces = [], []
    task = progress.add_task("power", total=4) if progress is not None else None

    def record(result):
        rows.append(result[0])
        traces.extend(result[1])
        if task is not None:
            progress.advance(task)

    a = torch.randn(GEMM_SIZE, GEMM_SIZE, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(GEMM_SIZE, GEMM_SIZE, device="cuda", dtype=torch.bfloat16)
    c = torch.empty_like(a)
    record(_sustain(torch, nvml, "compute", lambda: torch.matmul(a, b, out=c),
                    (gemm_step_flops, None), run_s, warmup_s, interval_s, instant))
    del a, b, c

    src = torch.randn(COPY_BYTES // 2, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    # Read + write per copy, the convention of validate.cases.copies' copy rows.
    record(_sustain(torch, nvml, "memory", lambda: dst.copy_(src), (None, 2 * COPY_BYTES),
                    run_s, warmup_s, interval_s, instant))
    del src, dst
    torch.cuda.empty_cache()

    graph, step, layer = _decode_graph(torch)
    record(_sustain(torch, nvml, "decode", graph.replay, (None, None), run_s, warmup_s,
                    interval_s, instant))
    meta["decode"] = {"model": LLAMA_3_8B.model, "batch": DECODE_BATCH, "context": DECODE_CONTEXT,
                      "graph": True}
    del graph, step, layer
    torch.cuda.empty_cache()

    record(_sustain(torch, nvml, "idle", None, (None, None), run_s, warmup_s, interval_s, instant))
    return rows, traces, meta
