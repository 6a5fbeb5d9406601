"""Predicted DRAM bytes (``KernelPrediction.dram_bytes``: tile re-reads past L2 included) against Nsight
Compute's counts in ``dram_bytes.csv`` (:mod:`validate.dram`), per kernel case and per class.

Classes: GEMMs by dtype (``gemm_bf16``, ``gemm_fp8``), prefill and decode attention, and copies where ncu
saw a kernel: a device ``copy_`` runs the driver's memcpy, which ncu does not profile (no count, skipped),
so ``--states-set dram`` measures the Triton stream copy instead. Layer steps are sums of kernels each
profiled from flushed caches (an upper bound) and are not scored.

Two errors per case, both (predicted − measured) / measured:

- ``total``: read + written bytes. ncu counts a write when the line leaves L2; output lines still dirty in L2
  when the kernel ends are not counted (H200, 2026-12-01: 5-13 MB short of the output, a whole 8 MB output
  read as 0 bytes written). A serving stream writes them back during the next kernel, so the model keeps them,
  and ``total`` overstates the error of kernels with small outputs.
- ``read``: read bytes only (predicted: the DRAM bytes less the op's output, ``Op.act_write_bytes``), which
  the L2's write-back does not blur.

``python -m validate.dram_compare MEASUREMENTS_FOLDER`` prints both tables; ``hwperf compare`` writes them as
``compare_dram_cases.csv`` and ``compare_dram_summary.csv``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import hwspecs
import simulator
from simulator import kinds
from validate.rows import kernel_shape

SCORED_KERNELS = ("gemm", "attention_prefill", "attention_decode", "copy")
CASE_COLUMNS = ("case_id", "class", "measured_read_bytes", "measured_write_bytes", "predicted_read_bytes",
                "predicted_write_bytes", "minimum_bytes", "total_error_frac", "read_error_frac")


def _class(row: dict) -> str:
    return f"gemm_{row['dtype']}" if row["kernel"] == "gemm" else str(row["kernel"])


def compare_dram(hardware_id: str, ncu: pd.DataFrame) -> pd.DataFrame:
    """One row per scored kernel case of ``dram_bytes.csv`` with both counts (:data:`CASE_COLUMNS`)."""
    hw = hwspecs.resolve_hardware(hardware_id)
    rows = []
    for r in ncu.to_dict("records"):
        read, written = r.get("dram_read_bytes"), r.get("dram_write_bytes")
        if r["kernel"] not in SCORED_KERNELS or not (np.isfinite(read) and np.isfinite(written)) or read <= 0:
            continue
        shape = kernel_shape(r)
        kp = simulator.predict_kernel(hw, r["kernel"], calibration=None, state="burst", **shape)
        out = float(kinds.get(r["kernel"]).op(**shape).act_write_bytes)
        pred_read = kp.dram_bytes - out
        rows.append((r["case_id"], _class(r), read, written, pred_read, out, kp.hbm_bytes,
                     kp.dram_bytes / (read + written) - 1.0, pred_read / read - 1.0))
    return pd.DataFrame(rows, columns=list(CASE_COLUMNS))


def summarize_dram(cases: pd.DataFrame) -> pd.DataFrame:
    """Per class: cases, MAPE and worst absolute error of the total and of the reads."""
    out = []
    for cls, g in cases.groupby("class", sort=True):
        tot, rd = g["total_error_frac"].abs(), g["read_error_frac"].abs()
        out.append((cls, len(g), tot.mean(), tot.max(), rd.mean(), rd.max()))
    return pd.DataFrame(out, columns=["class", "n_cases", "total_mape_frac", "total_max_abs_err_frac",
                                      "read_mape_frac", "read_max_abs_err_frac"])


def dram_tables(hardware_id: str, folder: Path | str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(cases, summary) for the measurements in ``folder``; None without a ``dram_bytes.csv``."""
    path = Path(folder) / "dram_bytes.csv"
    if not path.is_file():
        return None
    cases = compare_dram(hardware_id, pd.read_csv(path))
    return cases, summarize_dram(cases)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m validate.dram_compare MEASUREMENTS_FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    ncu = folder / "dram_bytes.csv"
    if not ncu.is_file():
        print(f"error: no dram_bytes.csv in {folder}", file=sys.stderr)
        return 2
    hw_id = str(pd.read_csv(ncu)["hardware_id"].iloc[0])
    cases, summary = dram_tables(hw_id, folder)
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(cases.drop(columns=["minimum_bytes"]).to_string(index=False))
        print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
