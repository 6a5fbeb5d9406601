"""Predicted vs measured in each operating state: time (burst, sustained, eager single call), and for
sustained runs the board power and the settled SM clock, per kernel class and for whole decoder layers.

Rows of ``states.csv`` (``validate.states``) carry a fit / score split (``calibrate.read_states``): the
power group and the eager call costs are fitted on "fit" rows; every summary here is over "score"
rows unless asked otherwise. Errors are signed relative errors (predicted − measured) / measured.
"""

from __future__ import annotations

import math

import pandas as pd

import hwspecs
import simulator
from hwspecs.calibration import DEFAULT_CALIBRATION, Calibration
from validate.rows import as_flag, kernel_shape, layer_result

QUANTITIES = ("time_s", "power_w", "clock_hz")


def _predict_kernel_row(hw, row: dict, cal: Calibration):
    """(time_s, power_w, clock_hz) of a kernel row in its state (eager_call: one eager call after idle)."""
    eager = row["state"] == "eager_call"
    kp = simulator.predict_kernel(hw, row["kernel"], calibration=cal, impl=row.get("impl") or "vendor",
                                  state="burst" if eager else row["state"], launch="eager" if eager else "graph",
                                  **kernel_shape(row))
    return kp.time_s, kp.power_w, kp.clock_hz


def _predict_layer_row(hw, row: dict, cal: Calibration):
    r = layer_result(hw, row, cal.params("vendor"), row["state"])
    return float(r.time_s), float(r.power_w), float(r.clock_hz)


def predict_state_row(hw, row: dict, cal: Calibration):
    """(time_s, power_w, clock_hz) the model predicts for one states.csv row (kernel or layer step)."""
    return (_predict_layer_row if row["kernel"] == "layer" else _predict_kernel_row)(hw, row, cal)


def _class(row: dict) -> str:
    if row["kernel"] != "layer":
        return f"{row['kernel']}_{row['state']}"
    mode = "prefill" if row["mode"] == "prefill" else f"decode_{'graph' if as_flag(row.get('graph')) else 'eager'}"
    return f"layer_{mode}_{row['state']}"


def compare_states(hardware_id: str, states: pd.DataFrame, calibrations: dict[str, Calibration | None]) -> pd.DataFrame:
    """One row per (case, state, quantity, source): measured, predicted, error_frac. Power and clock are
    scored for sustained rows only (shorter windows than NVML's ~100 ms power update have no power)."""
    hw = hwspecs.resolve_hardware(hardware_id)
    out = []
    for label, cal in calibrations.items():
        cal = cal if cal is not None else DEFAULT_CALIBRATION
        for row in states.to_dict("records"):
            predicted = predict_state_row(hw, row, cal)
            measured = (row["median_s"], row.get("mean_power_w"), row.get("mean_sm_clock_hz"))
            for q, m, p in zip(QUANTITIES, measured, predicted):
                if q != "time_s" and row["state"] != "sustained":
                    continue
                if m is None or not math.isfinite(float(m)) or float(m) <= 0:
                    continue
                out.append((row["case_id"], _class(row), row.get("impl", "vendor"), row["state"],
                            row.get("split", "score"), label, q, float(m), float(p)))
    df = pd.DataFrame(out, columns=["case_id", "kernel", "impl", "state", "split", "source", "quantity",
                                    "measured", "predicted"])
    df["error_frac"] = (df["predicted"] - df["measured"]) / df["measured"]
    return df


def summarize_states(cases: pd.DataFrame, split: str | None = "score") -> pd.DataFrame:
    """MAPE, median, p90 and max absolute relative error per (class, quantity, source)."""
    df = cases if split is None else cases[cases["split"] == split]
    g = df.assign(abs_err=df["error_frac"].abs()).groupby(["kernel", "quantity", "source"])["abs_err"]
    return pd.DataFrame({"n_cases": g.size(), "mape_frac": g.mean(), "median_abs_err_frac": g.median(),
                         "p90_abs_err_frac": g.quantile(0.9), "max_abs_err_frac": g.max()}).reset_index()


def by_quantity(cases: pd.DataFrame, split: str | None = "score") -> pd.DataFrame:
    """The headline: MAPE per (state, quantity, source) over every class."""
    df = cases if split is None else cases[cases["split"] == split]
    g = df.assign(abs_err=df["error_frac"].abs()).groupby(["state", "quantity", "source"])["abs_err"]
    return pd.DataFrame({"n_cases": g.size(), "mape_frac": g.mean(), "max_abs_err_frac": g.max()}).reset_index()


__all__ = ["QUANTITIES", "by_quantity", "compare_states", "predict_state_row", "summarize_states"]
