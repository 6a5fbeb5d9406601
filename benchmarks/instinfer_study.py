"""An InstInfer-like study (Pan et al., arXiv 2409.04992, HPCA'25): OPT-13B fp16, 1024-token prompts and
1024 output tokens, on an RTX A6000 with DDR4, an NVMe SSD and InstInfer-like CSDs (hwspecs system
``instinfer-a6000``): output tokens/s vs batch for FlexGen with the KV on the SSD, InstInfer with 1 and 2
CSDs (dense attention, and SparF reading 1/8 of the KV), and vLLM-style recompute (requests beyond what
HBM holds wait for a later round).

    PYTHONPATH=. python benchmarks/instinfer_study.py    # writes benchmarks/results/instinfer_study.csv

The paper reports InstInfer up to 11.1x FlexGen's throughput on this kind of testbed (secondary reading of
its abstract); the printed ratios are hwperf's first-principles figures to set beside it.
"""

from pathlib import Path

import pandas as pd

from hwspecs import write_atomic
from simulator.offload import offload_throughput

SYSTEM, MODEL, P, T = "instinfer-a6000", "opt-13b", 1024, 1024
BATCHES = (16, 32, 64, 128, 256)
OUT = Path(__file__).resolve().parent / "results" / "instinfer_study.csv"


def study() -> pd.DataFrame:
    runs = [("flexgen_ssd", dict(methods=("flexgen",), kv_tier="nvme")),
            ("recompute", dict(methods=("recompute",)))]
    for n in (1, 2):
        runs += [(f"instinfer_{n}csd_dense", dict(methods=("instinfer",), n_csd=n, sparse_frac=1.0)),
                 (f"instinfer_{n}csd_sparf", dict(methods=("instinfer",), n_csd=n, sparse_frac=0.125))]
    frames = []
    for label, kw in runs:
        d = offload_throughput(SYSTEM, MODEL, BATCHES, P, T, **kw)
        frames.append(d.assign(config=label))
    return pd.concat(frames, ignore_index=True)


def main():
    d = study()
    wide = d.pivot(index="batch", columns="config", values="output_tokens_per_s")
    ratio = wide.div(wide["flexgen_ssd"], axis=0)
    text = d[["config", "batch", "total_s", "output_tokens_per_s"]].to_csv(index=False, float_format="%.6g")
    write_atomic(OUT, lambda fh: fh.write(text))
    pd.set_option("display.width", 160)
    print(f"{MODEL} fp16, {P}+{T} tokens, {SYSTEM}: output tokens/s")
    print(wide.round(2).to_string())
    print("\nratio to FlexGen (KV on the SSD)")
    print(ratio.round(2).to_string())
    print(f"\nwrote {OUT}")


if __name__ == "__main__":
    main()
