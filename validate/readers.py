"""Typed readers of a measurement folder: every CSV and JSON file checked once, on the way in.

A bad file gives one line naming the file, the data row (1 = the first row under the header) and the
column: a string in a number column, a missing column, an empty required cell, an ``impl`` that is not
one of the implementations, an unknown kernel name, a file cut mid-line, a JSON file that is not an
object. Good files come back exactly as ``pandas.read_csv`` reads them (calibration and comparison are
byte-identical on the committed data).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hwspecs.effects import IMPLS
from simulator.kinds import KINDS


class MeasurementError(ValueError):
    """A measurement file is malformed; the message names the file, row and column."""


# Per file: required columns (cells must be present), number columns (cells, where present, must parse),
# and columns with a closed set of values.
_TIMES = ("median_s", "p10_s", "p90_s")
# Kernels measured for the record but not modelled (the paged-KV gather/scatter of validate/runner.py).
RECORDED_ONLY = ("kv_gather", "kv_scatter")
_SHAPE = ("m", "n", "k", "batch", "seq", "context", "n_q_heads", "n_kv_heads", "head_dim", "bytes")
SCHEMAS = {
    "kernels.csv": dict(
        required=("case_id", "kernel", "impl", "median_s", "hardware_id"),
        numbers=(*_TIMES, *_SHAPE, "n_reps", "flops", "hbm_bytes", "achieved_flops_per_s", "achieved_bytes_per_s",
                 "sm_clock_hz", "power_w", "energy_j", "repeat_spread_frac"),
        choices={"impl": IMPLS, "kernel": (*KINDS, *RECORDED_ONLY)}),
    "layers.csv": dict(
        required=("case_id", "mode", "model", "hidden", "n_q_heads", "n_kv_heads", "head_dim", "ffn_hidden", "batch",
                  "median_s", "hardware_id"),
        numbers=(*_TIMES, "hidden", "n_q_heads", "n_kv_heads", "head_dim", "ffn_hidden", "batch", "seq", "context",
                 "n_reps", "sm_clock_hz", "power_w"),
        choices={"mode": ("prefill", "decode")}),
    "power.csv": dict(
        required=("run", "mean_power_w", "mean_sm_clock_hz"),
        numbers=("duration_s", "mean_power_w", "p90_power_w", "energy_j", "mean_sm_clock_hz", "achieved_flops_per_s",
                 "achieved_bytes_per_s", "power_limit_w"),
        choices={}),
    "states.csv": dict(
        required=("case_id", "kernel", "state", "median_s", "hardware_id"),
        numbers=(*_TIMES, *_SHAPE, "hidden", "ffn_hidden", "n_reps", "mean_power_w", "mean_sm_clock_hz",
                 "start_sm_clock_hz", "start_power_w", "power_limit_w", "flops", "hbm_bytes"),
        choices={"state": ("burst", "sustained", "eager_call"), "kernel": (*KINDS, "layer")}),
}


def _first_bad(series: pd.Series, ok) -> int | None:
    bad = ~series.map(ok)
    return int(bad.to_numpy().nonzero()[0][0]) if bad.any() else None


def _is_number(cell) -> bool:
    if pd.isna(cell):
        return True
    try:
        float(cell)
    except (TypeError, ValueError):
        return False
    return not isinstance(cell, bool)


def check_table(df: pd.DataFrame, name: str, where: str) -> pd.DataFrame:
    """Check a table read from ``where`` against SCHEMAS[name]; raises MeasurementError (one line)."""
    schema = SCHEMAS[name]
    for col in schema["required"]:
        if col not in df.columns:
            extra = " (the device check needs it)" if col == "hardware_id" else ""
            raise MeasurementError(f"{where}: missing column {col!r}{extra}")
        row = None if col in _TIMES else _first_bad(df[col], lambda v: not pd.isna(v) and str(v).strip() != "")
        if row is not None:  # (an empty time is judged by its user: calibrate refuses it, compare drops the row)
            raise MeasurementError(f"{where}: data row {row + 1}, column {col!r}: empty")
    for col in schema["numbers"]:
        if col in df.columns and not pd.api.types.is_numeric_dtype(df[col]):
            row = _first_bad(df[col], _is_number)
            if row is not None:
                raise MeasurementError(f"{where}: data row {row + 1}, column {col!r}: expected a number, got "
                                       f"{str(df[col].iloc[row])[:40]!r}")
    for col, allowed in schema["choices"].items():
        if col in df.columns:
            row = _first_bad(df[col], lambda v: str(v) in allowed)
            if row is not None:
                raise MeasurementError(f"{where}: data row {row + 1}, column {col!r}: {str(df[col].iloc[row])[:40]!r} "
                                       f"is not one of {', '.join(allowed)}")
    return df


def read_table(path: str | Path, name: str | None = None) -> pd.DataFrame:
    """One measurement CSV (``#`` comment lines allowed), checked: see the module docstring."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise MeasurementError(f"cannot read {path}: {e.strerror}") from None
    if raw and not raw.endswith(b"\n"):
        n = raw.count(b"\n")
        raise MeasurementError(f"{path}: ends mid-line (line {n + 1} is cut off); the file is truncated")
    try:
        df = pd.read_csv(path, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise MeasurementError(f"{path}: not a readable CSV: {' '.join(str(e).split())}") from None
    return check_table(df, name or path.name, str(path))


def read_json_object(path: str | Path) -> dict:
    """A JSON file that must hold an object (environment.json)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise MeasurementError(f"cannot read {path}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MeasurementError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise MeasurementError(f"{path}: expected a JSON object, got a {type(data).__name__}")
    env = data.get("environment", data)
    if not isinstance(env, dict):
        raise MeasurementError(f"{path}: 'environment' must be an object, got a {type(env).__name__}")
    return data
