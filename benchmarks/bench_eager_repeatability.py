"""How repeatable is an eager (host-bound) decode-layer timing? Needs a CUDA GPU.

An eager decode step of one Llama block is ~20 torch ops whose host issue time exceeds the GPU time at
small batch, so its measured time is the host's. The 2026-11-22 and -29 H200 runs of ``hwperf validate``
disagreed by 25% on average on these cases, where CUDA-graph replays of the same steps agreed within 2%.
This times a few of them several times, as ``validate.layers`` does (``validate.timing.bench``), under
three host settings, and prints each setting's spread between repeats:

- ``default``: as ``hwperf validate`` runs;
- ``gc_off``: Python's cyclic garbage collector disabled during timing (each step allocates ~30 tensors);
- ``gc_off_pinned``: and the process pinned to one CPU core.

    python benchmarks/bench_eager_repeatability.py [--repeats 5] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics

CASES = ((1, 512), (8, 4096), (32, 512), (32, 16384))


@contextlib.contextmanager
def host_setting(name: str):
    gc_was = gc.isenabled()
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        if name in ("gc_off", "gc_off_pinned"):
            gc.collect()
            gc.disable()
        if name == "gc_off_pinned" and affinity:
            os.sched_setaffinity(0, {min(affinity)})
        yield
    finally:
        if gc_was:
            gc.enable()
        if affinity:
            os.sched_setaffinity(0, affinity)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--csv", default=None)
    args = ap.parse_args()

    import pandas as pd
    import torch

    from validate.layers import LLAMA_3_8B, LlamaLayer
    from validate.timing import bench, bench_graph

    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    layer = LlamaLayer(LLAMA_3_8B)
    rows = []
    for batch, context in CASES:
        step, _, _ = layer.decode_step(batch, context)
        graph_s = bench_graph([step], budget_s=0.05, min_calls_per_graph=1).median_s
        for setting in ("default", "gc_off", "gc_off_pinned"):
            for rep in range(args.repeats):
                with host_setting(setting):
                    t = bench([step], budget_s=0.2, warmup_s=0.05)
                rows.append({"batch": batch, "context": context, "setting": setting, "repeat": rep,
                             "median_s": t.median_s, "p10_s": t.p10_s, "p90_s": t.p90_s, "graph_median_s": graph_s})
        step = None
        torch.cuda.empty_cache()
    df = pd.DataFrame(rows)
    if args.csv:
        df.to_csv(args.csv, index=False)
    g = df.groupby(["batch", "context", "setting"])["median_s"]
    summary = pd.DataFrame({
        "mean_us": g.mean() * 1e6,
        "min_us": g.min() * 1e6,
        "max_us": g.max() * 1e6,
        "spread_frac": (g.max() - g.min()) / g.min(),
        "graph_us": df.groupby(["batch", "context", "setting"])["graph_median_s"].first() * 1e6,
    })
    print(summary.round(3).to_string())
    print("mean spread by setting:",
          {s: round(statistics.mean(v), 3) for s, v in summary.groupby(level="setting")["spread_frac"]})


if __name__ == "__main__":
    main()
