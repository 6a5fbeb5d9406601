"""Measured rows as the model sees them: which kernels are fitted, the CSV flag and shape codecs, one
row per case as GPU time, and the model's prediction of each kernel or decoder-layer row. Shared by
calibration (``validate.calibrate``) and comparison (``validate.compare``), so neither imports the other's
internals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import simulator
from hwspecs.calibration import EffectParams
from simulator import engine
from simulator.kinds import KINDS
from workloads.model import ModelSpec

# Fit stages of the measured kernel kinds, in registry order (copies → host links → GEMM → attention);
# then whole layers and the power run. Each stage fits the effect fields whose schema names it.
KERNEL_STAGES = tuple(dict.fromkeys(k.stage for k in KINDS.values() if k.stage not in ("layers", "collective")))


_TRUE = ("true", "1", "1.0")  # how a boolean cell reads back from CSV


def as_flag(value) -> bool:
    """A CSV cell (bool, "True", 1.0, NaN …) as a bool."""
    return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE


FITTED_KERNELS = tuple(k for k in KINDS if KINDS[k].stage in KERNEL_STAGES)


def select_gpu_time_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One row per case, as GPU time: where a CUDA-graph twin (``<case>-graph``) exists it replaces the
    eager row, whose time for short kernels includes the host's launch cost (Triton's launcher costs
    50-140 µs of CPU per call); kernel predictions are GPU times, launch overhead is modelled per step."""
    df = df[df["kernel"].isin(FITTED_KERNELS)].copy()
    graph = df["graph"].map(as_flag) if "graph" in df else pd.Series(False, index=df.index)
    has_twin = df["case_id"].isin(df.loc[graph, "case_id"].str.removesuffix("-graph"))
    return df[graph | ~has_twin].reset_index(drop=True)


def kernel_shape(row) -> dict:
    """predict_kernel keyword arguments of a measurement row, read by the row's op kind."""
    return KINDS[row["kernel"]].shape_from_row(row)


def predict_rows(hw, rows: list[dict], calibration, impl: str, state="burst") -> np.ndarray:
    """GPU times of measured kernel rows; kernels.csv rows are short timed loops: the "burst" state."""
    return np.array([simulator.predict_kernel(hw, r["kernel"], calibration=calibration, impl=impl, state=state,
                                              **kernel_shape(r)).time_s for r in rows])


def layer_model(row) -> ModelSpec:
    """A one-layer ModelSpec with the measured block's dimensions."""
    return ModelSpec(id=f"layer-{row['model']}", name=str(row["model"]), n_layers=1, hidden=int(row["hidden"]),
                     n_q_heads=int(row["n_q_heads"]), n_kv_heads=int(row["n_kv_heads"]),
                     head_dim=int(row["head_dim"]), ffn_hidden=int(row["ffn_hidden"]), vocab_size=1)


def layer_result(hw, row, params: EffectParams, state="burst") -> engine.PhaseResult:
    """One measured decoder block as ``engine.layer`` predicts it: the block's mode, size and launch mode.
    layers.csv rows are short timed loops ("burst"), each run at the SM clock NVML read during it
    (``sm_clock_hz``, where below boost): the long prefill loops throttled (H200: 1.49-1.98 GHz), and timed
    at boost their slowdown was fitted as slow elementwise kernels (elementwise efficiency 0.14 instead of
    0.17 on the H200) and put the prefill layers' burst time 4.8% slow."""
    clock = row.get("sm_clock_hz")
    locked = (float(clock) if state == "burst" and clock is not None and np.isfinite(clock)
              and 0 < clock < hw.boost_clock_hz else None)
    s = engine.make_setup(hw, layer_model(row), params, state=state, sm_clock_hz=locked)
    tokens = int(row["seq"]) if row["mode"] == "prefill" else int(row["context"])
    return engine.layer(s, row["mode"], int(row["batch"]), tokens, as_flag(row.get("graph")))


def predict_layer(hw, row, params: EffectParams, state="burst") -> float:
    """Time of one measured decoder block (see ``layer_result``)."""
    return float(layer_result(hw, row, params, state).time_s)
