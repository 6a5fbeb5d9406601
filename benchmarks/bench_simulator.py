"""Speed of the analytical model on one core: median time of one predict() call (goal ≤ 0.5 ms) and sweep
throughput in scenario points per second (goal ≥ 2,000,000). Prints measured figures; run with
`python benchmarks/bench_simulator.py`. Not a test: CI machines are noisy."""

from __future__ import annotations

import os
import platform
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: numpy's elementwise work is single-threaded anyway

import simulator  # noqa: E402


def bench_predict(hw="h100-sxm5-80gb", model="llama-3-8b", n=2000) -> list[float]:
    simulator.predict(hw, model)  # warm caches (spec files, calibration lookup)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        simulator.predict(hw, model)
        times.append(time.perf_counter() - t0)
    return times


def bench_sweep(hw="h100-sxm5-80gb", model="llama-3-8b", repeats=5) -> list[float]:
    axes = dict(batch=list(range(1, 257)), prompt_tokens=list(range(128, 8193, 128)),
                output_tokens=list(range(16, 1025, 16)))
    n_points = 256 * 64 * 64
    simulator.sweep(hw, model, batch=[1], prompt_tokens=[128], output_tokens=[16])
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        df = simulator.sweep(hw, model, **axes)
        rates.append(n_points / (time.perf_counter() - t0))
        assert len(df) == n_points
    return rates


def main() -> None:
    print(f"python {platform.python_version()} on {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores visible")
    t = bench_predict()
    print(f"predict(h100-sxm5-80gb, llama-3-8b): median {statistics.median(t) * 1e3:.3f} ms, "
          f"p90 {sorted(t)[int(0.9 * len(t))] * 1e3:.3f} ms over {len(t)} calls (goal ≤ 0.5 ms)")
    r = bench_sweep()
    print(f"sweep 256 batches × 64 prompts × 64 outputs = {256 * 64 * 64:,} points: median "
          f"{statistics.median(r):,.0f} points/s, best {max(r):,.0f} over {len(r)} runs (goal ≥ 2,000,000)")


if __name__ == "__main__":
    main()
