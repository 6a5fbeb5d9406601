"""Fit an engine profile's host times to a published (or the user's) end-to-end latency table.

A row is one benchmark point: hardware, model, tensor_parallel, batch, prompt_tokens, output_tokens and
the measured ``e2e_s`` (whole request) and/or ``ttft_s`` and ``tpot_s``. The kernels' own time comes from
the engine model with the base profile's kernel effects (fused elementwise ops, CUDA-graph decode); what
the engine adds is linear in the two host times of ``EngineProfile`` — per iteration a, per sequence in
the iteration b — over the request's T iterations (one prefill, T − 1 decode steps):

    e2e − kernels_e2e = T·a + T·batch·b,   ttft − kernels_ttft = a + batch·b,   tpot − kernels_tpot = a + batch·b

so (a, b) is a weighted least-squares fit (weights 1/measured: relative error), kept ≥ 0, on the rows
marked for fitting; the others are the held-out check.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator import decode, engine
from simulator.api import resolve, setup
from simulator.serving.api import _effects
from workloads.engine_profile import EngineProfile

KEYS = ("hardware", "model", "tensor_parallel", "batch", "prompt_tokens", "output_tokens")
TARGETS = ("e2e_s", "ttft_s", "tpot_s")


class TableError(ValueError):
    """An engine benchmark table with a missing column or a bad value; the message names it."""


def check_table(df: pd.DataFrame) -> pd.DataFrame:
    missing = [k for k in KEYS if k not in df.columns]
    if missing:
        raise TableError(f"engine table needs columns {', '.join(missing)}")
    if not any(t in df.columns for t in TARGETS):
        raise TableError("engine table needs a measured column: e2e_s, or ttft_s and tpot_s")
    if len(df) < 3:
        raise TableError(f"engine table has {len(df)} rows; fitting two host times needs at least 3")
    for k in ("tensor_parallel", "batch", "prompt_tokens", "output_tokens") + tuple(t for t in TARGETS if t in df):
        v = pd.to_numeric(df[k], errors="coerce")
        if v.isna().any() or (v <= 0).any():
            raise TableError(f"engine table column {k} must hold positive numbers")
    return df


def kernel_times(df: pd.DataFrame, profile: EngineProfile, calibration="auto") -> pd.DataFrame:
    """Per row: the kernels' TTFT, mean TPOT and E2E (s) with the profile's kernel effects, no host time."""
    out = []
    for r in df.itertuples(index=False):
        hw, m, prm, _ = resolve(r.hardware, r.model, calibration)
        s = setup(hw, m, _effects(prm, profile), "bf16", "bf16", "bf16", int(r.tensor_parallel))
        pf = engine.prefill(s, int(r.batch), int(r.prompt_tokens))
        dec = decode.decode_total(s, decode.decode_coeffs(s, int(r.batch)), int(r.prompt_tokens),
                                  int(r.output_tokens), profile.cuda_graph)
        steps = max(int(r.output_tokens) - 1, 1)
        out.append({"kernel_ttft_s": float(pf.time_s), "kernel_tpot_s": float(dec.time_s) / steps,
                    "kernel_e2e_s": float(pf.time_s) + float(dec.time_s)})
    return pd.DataFrame(out, index=df.index)


def _design(df: pd.DataFrame, k: pd.DataFrame):
    """Rows of the least-squares system: (coefficients of a and b, residual to explain, measured)."""
    A, y, meas = [], [], []
    T, B = df.output_tokens.to_numpy(float), df.batch.to_numpy(float)
    for col, scale in (("e2e_s", T), ("ttft_s", np.ones_like(T)), ("tpot_s", np.ones_like(T))):
        if col in df:
            A.append(np.stack([scale, scale * B], 1))
            y.append(df[col].to_numpy(float) - k[f"kernel_{col}"].to_numpy())
            meas.append(df[col].to_numpy(float))
    return np.concatenate(A), np.concatenate(y), np.concatenate(meas)


def fit_host_times(df: pd.DataFrame, k: pd.DataFrame, fit_rows) -> tuple[float, float]:
    """(iteration_fixed_s, per_sequence_s) ≥ 0 minimising relative error on ``fit_rows`` (boolean mask)."""
    A, y, meas = _design(df[fit_rows], k[fit_rows])
    w = 1.0 / meas
    sol, *_ = np.linalg.lstsq(A * w[:, None], y * w, rcond=None)
    if sol.min() >= 0:
        return float(sol[0]), float(sol[1])
    best = None  # one of the two at zero: fit the other alone
    for j in (0, 1):
        x = max(float(np.dot(A[:, j] * w, y * w) / np.dot(A[:, j] * w, A[:, j] * w)), 0.0)
        sol = np.zeros(2)
        sol[j] = x
        err = float(np.sum(((A @ sol - y) * w) ** 2))
        best = min(best or (err, sol), (err, sol), key=lambda e: e[0])
    return float(best[1][0]), float(best[1][1])


def predict_table(df: pd.DataFrame, k: pd.DataFrame, a: float, b: float) -> pd.DataFrame:
    """Predicted columns (``pred_e2e_s`` …) and relative errors (``err_e2e_frac`` …) for every row."""
    out = df.copy()
    T, B = df.output_tokens.to_numpy(float), df.batch.to_numpy(float)
    host = {"e2e_s": T * (a + b * B), "ttft_s": a + b * B, "tpot_s": a + b * B}
    for col in TARGETS:
        if col in df:
            out[f"pred_{col}"] = k[f"kernel_{col}"].to_numpy() + host[col]
            out[f"kernel_err_{col[:-2]}_frac"] = k[f"kernel_{col}"].to_numpy() / df[col].to_numpy(float) - 1.0
            out[f"err_{col[:-2]}_frac"] = out[f"pred_{col}"] / df[col].to_numpy(float) - 1.0
    return out
