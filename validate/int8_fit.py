"""The int8 GEMM rate relative to fp8's, from ``int8_gemm.csv`` (``benchmarks/bench_int8_gemm.py``: cuBLASLt
``torch._int_mm`` and ``torch._scaled_mm`` fp8 timed at the same shapes, one after the other).

The calibration's 8-bit GEMM efficiency is fitted on fp8 cases; int8 shares its datasheet peak on Hopper but
not its kernels. ``gemm.int8_rate_frac`` = the median over compute-bound shapes (M ≥ ``MIN_M``) of
fp8 time / int8 time: a ratio of two times taken back to back at each shape, so the clock both ran at
cancels. ``hwperf calibrate`` applies it to the vendor section where the file exists.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hwspecs.calibration import Calibration

MIN_M = 2048
COLUMNS = ("dtype", "m", "n", "k", "measured_s")


def rate_frac(df: pd.DataFrame) -> float:
    """Median fp8/int8 time ratio over shapes with M ≥ MIN_M measured in both dtypes."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"int8_gemm.csv lacks column(s) {', '.join(missing)}")
    t = df[df["m"] >= MIN_M].pivot_table(index=["m", "n", "k"], columns="dtype", values="measured_s")
    t = t[["int8", "fp8"]].dropna() if {"int8", "fp8"} <= set(t.columns) else t.iloc[0:0]
    if t.empty:
        raise ValueError(f"int8_gemm.csv has no shape with M ≥ {MIN_M} measured in both int8 and fp8")
    if not (t > 0).all().all():
        raise ValueError("int8_gemm.csv: measured_s must be positive")
    return float((t["fp8"] / t["int8"]).median())


def fit_into(cal: Calibration, folder: Path) -> Calibration:
    """``cal`` with the vendor section's ``gemm.int8_rate_frac`` from ``folder/int8_gemm.csv``."""
    frac = rate_frac(pd.read_csv(Path(folder) / "int8_gemm.csv"))
    vendor = cal.params("vendor").with_values({"gemm.int8_rate_frac": frac})
    return Calibration.from_params(cal.hardware_id, vendor, cal.params("triton"), cal.provenance)
