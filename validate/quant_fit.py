"""Fit and score the compressed-path kernels' parameters from ``quant_kernels.csv``:
``python -m validate.quant_fit [measurements_dir] [--write]``.

Rows: GPU time per case (the CUDA-graph twin where there is one, as calibration uses), split by size
into alternating fit / score halves per (kernel, bits). The ``attention_decode_quant`` and ``gemm_w4a16``
stages are fitted on the fit half (``validate.calibrate.fit_stage``, Triton impl, from the device's
committed profile) and scored on the other. Prints held-out MAPE per kernel and the quantized decode
kernel's achieved effective bandwidth (compressed bytes / s) against the bf16 Triton decode kernel at the
same batch and context. Writes ``quant_compare.csv``; ``--write`` puts the fitted groups into the device's
calibration profile's ``triton`` section (hwperf's kernels). The ``vendor`` section keeps the priors: no
library kernel of these paths is measured, and hwperf's Triton kernels are far slower than a tuned one
would be (their achieved bandwidth is printed), so the default predictions do not inherit them.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import hwspecs
from hwspecs.calibration import Calibration
from hwspecs.effects import QuantDecodeAttentionParams, W4A16GemmParams
from validate.calibrate import fit_stage, predict_rows, select_gpu_time_rows, split_fit_score
from validate.runner import DEFAULT_OUT_DIR, write_csv_atomic

STAGES = ("attention_decode_quant", "gemm_w4a16")


def load_rows(folder: Path) -> pd.DataFrame:
    df = pd.read_csv(folder / "quant_kernels.csv")
    quant = select_gpu_time_rows(df[df["kernel"].isin(STAGES)])
    quant = quant.assign(variant=quant["bits"].fillna(4).astype(int).astype(str))  # split per width too
    quant = split_fit_score(quant, by=("kernel", "impl", "variant"))
    return quant, df


def bandwidth_ratio(df: pd.DataFrame) -> pd.DataFrame:
    """Achieved effective bytes/s of each quantized decode case over the bf16 Triton decode kernel's at the
    same (batch, context), GPU time (graph rows where present)."""
    rows = select_gpu_time_rows(df[df["kernel"].isin(("attention_decode", "attention_decode_quant"))])
    rows = rows[rows["impl"] == "triton"]
    bf16 = rows[rows["kernel"] == "attention_decode"].set_index(["batch", "context"])["achieved_bytes_per_s"]
    q = rows[rows["kernel"] == "attention_decode_quant"].copy()
    q["bf16_bytes_per_s"] = [bf16.get((b, c), np.nan) for b, c in zip(q["batch"], q["context"])]
    q["bandwidth_ratio"] = q["achieved_bytes_per_s"] / q["bf16_bytes_per_s"]
    return q[["batch", "context", "bits", "median_s", "achieved_bytes_per_s", "bf16_bytes_per_s", "bandwidth_ratio"]]


def fit_params(hw, cal: Calibration, quant: pd.DataFrame):
    """(start, fitted) Triton params: the two groups start from their priors (so a refit does not depend on
    the profile's previous fit) and are fitted on the fit half of ``quant`` (``load_rows``)."""
    start = dataclasses.replace(cal.params("triton"), attention_decode_quant=QuantDecodeAttentionParams(),
                                gemm_w4a16=W4A16GemmParams())
    params = start
    for stage in STAGES:
        rows = quant[(quant["split"] == "fit") & (quant["kernel"] == stage)].to_dict("records")
        params = fit_stage(hw, rows, params, stage, "triton")
    return start, params


def with_fitted_groups(cal: Calibration, params) -> Calibration:
    """``cal`` with the two groups of ``params`` in its ``triton`` section (the vendor section keeps priors)."""
    groups = {s: getattr(params, s) for s in STAGES}
    new = cal.model_copy(update={"triton": cal.triton.model_copy(update=groups)})
    return Calibration.model_validate(new.model_dump())


def fit_into(cal: Calibration, folder: Path) -> Calibration:
    """``hwperf calibrate``'s last stage where ``folder`` has ``quant_kernels.csv``: ``cal`` with the
    compressed-path groups fitted from it (so a re-run of calibrate reproduces the committed profile)."""
    quant, _ = load_rows(folder)
    return with_fitted_groups(cal, fit_params(hwspecs.resolve_hardware(cal.hardware_id), cal, quant)[1])


def fit(folder: Path, hardware_id: str = "h200-sxm-141gb"):
    hw = hwspecs.resolve_hardware(hardware_id)
    cal = hwspecs.load_calibration(hardware_id)
    quant, raw = load_rows(folder)
    start, params = fit_params(hw, cal, quant)
    out = []
    for label, p in (("prior", start), ("fitted", params)):
        pred = predict_rows(hw, quant.to_dict("records"), Calibration.from_params(hw.id, p, p), "triton",
                            state="burst")
        out.append(quant.assign(params=label, predicted_s=pred, error_frac=pred / quant["median_s"] - 1.0))
    compare = pd.concat(out, ignore_index=True)
    return cal, params, compare, bandwidth_ratio(raw)


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--")]
    folder = Path(args[0]) if args else DEFAULT_OUT_DIR / "h200-sxm-141gb"
    cal, params, compare, bw = fit(folder)
    cols = ["case_id", "kernel", "bits", "batch", "context", "m", "n", "k", "split", "params", "median_s",
            "predicted_s", "error_frac", "state", "graph"]
    write_csv_atomic(folder / "quant_compare.csv", compare[cols].to_dict("records"), cols)
    summary = (compare.assign(abs_err=compare["error_frac"].abs())
               .groupby(["params", "kernel", "split"])["abs_err"].agg(["mean", "median", "max", "count"]))
    print("MAPE (mean |predicted/measured − 1|) by kernel and split:")
    print(summary.to_string(float_format=lambda x: f"{x:.3f}"))
    print("\nquantized decode: achieved effective bandwidth / bf16 Triton decode at the same shape")
    print(bw.groupby("bits")["bandwidth_ratio"].describe()[["mean", "min", "max"]].to_string(float_format="%.3f"))
    for stage in STAGES:
        print(stage, getattr(params, stage).model_dump())
    if "--write" in argv:
        print("wrote", hwspecs.write_calibration(with_fitted_groups(cal, params)))


if __name__ == "__main__":
    main(sys.argv[1:])
