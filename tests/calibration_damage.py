"""The corrupted-measurement gallery of issue 14: each damage applied to a copy of the committed H100 data.

``DAMAGES`` maps a name to a function that damages a copied measurements folder in place; the test
(tests/test_calibration_gates.py) and benchmarks/fuzz.py both use it.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
HW = "h100-sxm5-80gb"
SOURCE = ROOT / "validate" / "measurements" / HW


def copy_measurements(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("kernels.csv", "layers.csv", "power.csv", "environment.json"):
        shutil.copy(SOURCE / name, dest / name)
    return dest


def _edit(folder: Path, name: str, fn) -> None:
    df = pd.read_csv(folder / name, comment="#")
    fn(df).to_csv(folder / name, index=False)


def _shuffle(df):
    rng = np.random.default_rng(0)
    return df.assign(median_s=rng.permutation(df["median_s"].to_numpy()))


def _lines(folder: Path, name: str, keep) -> None:
    lines = (folder / name).read_text().splitlines(keepends=True)
    (folder / name).write_text("".join(keep(lines)))


DAMAGES = {
    "impl_cuda": lambda f: _edit(f, "kernels.csv", lambda d: d.assign(impl="cuda")),
    "one_row": lambda f: _lines(f, "kernels.csv", lambda ls: ls[:2]),
    "ten_rows": lambda f: _lines(f, "kernels.csv", lambda ls: ls[:11]),
    "times_in_ms": lambda f: _edit(f, "kernels.csv", lambda d: d.assign(
        median_s=d.median_s * 1e3, p10_s=d.p10_s * 1e3, p90_s=d.p90_s * 1e3)),
    "times_shuffled": lambda f: _edit(f, "kernels.csv", _shuffle),
    "file_duplicated": lambda f: _lines(f, "kernels.csv", lambda ls: ls + ls[1:]),
    "no_hardware_id": lambda f: _edit(f, "kernels.csv", lambda d: d.drop(columns="hardware_id")),
    "other_device": lambda f: _edit(f, "kernels.csv", lambda d: d.assign(hardware_id="h200-sxm-141gb")),
    "cut_mid_line": lambda f: (f / "kernels.csv").write_bytes((f / "kernels.csv").read_bytes()[:-25]),
    "string_median": lambda f: _edit(f, "kernels.csv", lambda d: d.assign(
        median_s=d.median_s.astype(object).where(d.index != 7, "fast"))),
    "string_clock_in_power": lambda f: _edit(f, "power.csv", lambda d: d.assign(
        mean_sm_clock_hz=d.mean_sm_clock_hz.astype(object).where(d.index != 1, "1980 MHz"))),
    "environment_a_list": lambda f: (f / "environment.json").write_text(json.dumps([1, 2, 3])),
    "unknown_kernels_only": lambda f: _edit(f, "kernels.csv", lambda d: d.assign(kernel="flash_mystery")),
    "missing_median_column": lambda f: _edit(f, "kernels.csv", lambda d: d.drop(columns="median_s")),
    "nan_times": lambda f: _edit(f, "kernels.csv", lambda d: d.assign(
        median_s=d.median_s.where(d.index % 50 != 3, np.nan))),
}
