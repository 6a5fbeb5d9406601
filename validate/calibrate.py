"""Fit the model's effect parameters to measurements, on a fit split; score on the held-out split.

Pure CPU code over the tidy CSVs that ``validate.measure`` writes (no torch import):
``kernels.csv`` (one row per kernel case), ``layers.csv`` (whole decoder blocks) and ``power.csv``.

Split: within each (kernel, impl) the cases are ordered by size and alternate fit / score, so every
scored shape lies between fitted ones but was never itself used for fitting.

Fit: stage by stage, soft-L1 least squares on log(predicted / measured) over the effect fields whose
schema (``hwspecs.effects``) names that stage, the others held, in the op-kind registry's order —
copies (latency floor, HBM ceiling) → host links → GEMM (ceiling, skinny-GEMM efficiency, knee; tile
from the starting grid) → prefill attention → decode attention (ceiling, occupancy) → whole layers
(eager and graph launch overheads, elementwise efficiency) → power (``validate.power_fit``: the
power model from steady NVML runs; eager per-call launch costs). Fields with no data keep their prior.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

import hwspecs
from hwspecs.calibration import DEFAULT_CALIBRATION, Calibration, EffectParams, Provenance
from hwspecs.effects import fit_bounds, stage_fields, stage_starts
from simulator.kinds import KINDS
from validate import gates
from validate.rows import (FITTED_KERNELS, KERNEL_STAGES, as_flag, kernel_shape,  # noqa: F401 - re-exported
                           layer_model, layer_result, predict_layer, predict_rows, select_gpu_time_rows)
from validate.power_fit import fit_clock_bound, fit_eager_calls, fit_power
from validate.readers import read_table

# Repeated timings of one case may differ by this much before the data is refused as too noisy.
REPEAT_TOLERANCE_FRAC = 0.05
# Scale of the soft-L1 loss on log(predicted / measured): residuals beyond ~5% count linearly, not squared.
SOFT_L1_SCALE = 0.05
class CalibrationRefused(ValueError):
    """The measurements cannot be trusted for this target; nothing is written."""


# ---- data ------------------------------------------------------------------------------------------------

def _size_key(row) -> float:
    return float(row["flops"] if row.get("flops", 0) and row["flops"] > 0 else row.get("hbm_bytes", 0) or 0)


def split_fit_score(df: pd.DataFrame, by=("kernel", "impl", "paged")) -> pd.DataFrame:
    """Add a ``split`` column: within each group (kernel variant), cases sorted by size alternate fit,
    score, fit, … Equal sizes are ordered by a hash of the case id, so that no variant that shares sizes
    with another (e.g. 32 vs 8 KV heads at the same bytes) lands wholly on one side."""
    df = df.copy()
    by = [c for c in by if c in df.columns]
    for c in by:
        df[c] = df[c].map(str)  # plain strings: NaN becomes "nan", a group like any other
    df["_size"] = [_size_key(r) for r in df.to_dict("records")]
    df["_tie"] = [hashlib.sha256(str(c).encode()).hexdigest() for c in df["case_id"]]
    df = df.sort_values([*by, "_size", "_tie"]).reset_index(drop=True)
    df["split"] = df.groupby(by).cumcount().map(lambda i: "fit" if i % 2 == 0 else "score")
    return df.drop(columns=["_size", "_tie"])


# Of the cases timed twice, at most this fraction may disagree (those are dropped); more → refuse.
MAX_NOISY_FRAC = 0.2
# Kernel kinds the model predicts (KV gather/scatter are measured for the record, not fitted).
def drop_noisy(df: pd.DataFrame, tolerance=REPEAT_TOLERANCE_FRAC, max_noisy_frac=MAX_NOISY_FRAC):
    """Drop cases whose repeated timings disagree by more than ``tolerance``; refuse the whole data set
    when more than ``max_noisy_frac`` of the repeated cases do. Returns (kept rows, dropped case ids)."""
    if "repeat_spread_frac" not in df.columns:
        return df, []
    spread = df["repeat_spread_frac"]
    repeated = spread.notna()
    noisy = spread > tolerance
    if repeated.sum() and noisy.sum() / repeated.sum() > max_noisy_frac:
        worst = df.loc[spread.idxmax()]
        raise CalibrationRefused(
            f"{int(noisy.sum())} of {int(repeated.sum())} repeated cases disagree between repeated timings by more "
            f"than {tolerance:.0%} (worst {worst['case_id']}: {spread.max():.1%}); re-measure on a quiet GPU")
    return df[~noisy].reset_index(drop=True), list(df.loc[noisy, "case_id"])


def prepare_kernels(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows calibration and comparison use, with their fit/score split (same for both)."""
    kept, dropped = drop_noisy(select_gpu_time_rows(df))
    return split_fit_score(kept), dropped


def prepare_layers(df: pd.DataFrame) -> pd.DataFrame:
    """Layer cases split per (mode, graph), ordered by tokens × context."""
    size = df["batch"] * df["seq"].fillna(1) * df["context"].fillna(1)
    return split_fit_score(df.assign(kernel="layer", impl="vendor", flops=0.0, hbm_bytes=size), by=("mode", "graph"))


def check_measurements(df: pd.DataFrame, hardware_id: str, what: str = "measurement") -> list[str]:
    """Refuse (raise) data without positive finite times; return the forcible reasons: another device, no
    hardware_id column (the device check is required), duplicated cases."""
    if df.empty:
        raise CalibrationRefused("no measurements to fit")
    times = pd.to_numeric(df["median_s"], errors="coerce")
    if not (np.isfinite(times) & (times > 0)).all():
        bad = df["case_id"][~(np.isfinite(times) & (times > 0))].iloc[0]
        raise CalibrationRefused(f"{what}: median_s must be a positive finite time for every case (first bad: {bad})")
    return gates.device(df, hardware_id, what) + gates.duplicates(df, what)


def refuse_or_note(reasons: list[str], force: bool, hardware_id: str) -> None:
    """Raise CalibrationRefused with every reason on one line, unless ``force``."""
    if reasons and not force:
        raise CalibrationRefused(f"refusing to calibrate {hardware_id}: {'; '.join(reasons)} "
                                 f"(--force writes the profile anyway, these reasons in its provenance)")


# ---- fitting ---------------------------------------------------------------------------------------------

def _moves(hw, rows, params: EffectParams, update: dict, impl, predict, base) -> bool:
    return not np.allclose(predict(hw, rows, params.with_values(update), impl), base, rtol=1e-9, atol=0.0)


def _visible(hw, rows, params: EffectParams, names, impl, predict) -> list[str]:
    """The fields among ``names`` that move at least one of these cases' predictions."""
    base = predict(hw, rows, params, impl)
    return [n for n in names if _moves(hw, rows, params, {n: params.get(n) * 1.1 + 1e-7}, impl, predict, base)]


def _distinct_starts(hw, rows, params: EffectParams, starts: list[dict], impl, predict) -> list[dict]:
    """``starts`` without those that differ only in fields these cases cannot see (e.g. the library GEMM
    tile or decode split size for hwperf's Triton kernels): those would repeat the same fit."""
    base = predict(hw, rows, params, impl)
    seen = [k for k in dict.fromkeys(k for st in starts for k in st)
            if any(_moves(hw, rows, params, {k: st[k]}, impl, predict, base) for st in starts if k in st)]
    distinct: dict[tuple, dict] = {}
    for start in starts:
        distinct.setdefault(tuple((k, v) for k, v in start.items() if k in seen), start)
    return list(distinct.values())


def _fit_group(hw, rows, params: EffectParams, names, impl, predict) -> EffectParams:
    """Least squares on log time ratios over ``names`` (dotted effect fields); returns the fitted params."""
    if not rows:
        return params
    # Fit only what these cases can see: a parameter that moves no prediction keeps its prior.
    names = _visible(hw, rows, params, names, impl, predict)
    if not names:
        return params
    measured = np.array([r["median_s"] for r in rows])
    x0 = np.array([params.get(n) for n in names], dtype=float)
    lo, hi = (np.array([fit_bounds(n)[i] for n in names]) for i in (0, 1))
    scale = np.where(x0 > 0, x0, 1e-6)

    def with_x(x):
        return params.with_values(dict(zip(names, (float(v) for v in x * scale))))

    def resid(x):
        return np.log(predict(hw, rows, with_x(x), impl) / measured)

    # soft-L1 loss: a few cases that a kernel's launcher or the host disturbed (tens of % off) must not
    # drag the fit away from the many that agree within a few %.
    res = least_squares(resid, np.clip(x0, lo, hi) / scale, bounds=(lo / scale, hi / scale), x_scale="jac",
                        diff_step=1e-3, max_nfev=300, loss="soft_l1", f_scale=SOFT_L1_SCALE)
    return with_x(res.x)


def _kernel_predict(hw, rows, params: EffectParams, impl):
    return predict_rows(hw, rows, Calibration.from_params(hw.id, params, params), impl)


def _layer_predict(hw, rows, params, impl):
    return np.array([predict_layer(hw, r, params) for r in rows])


def _soft_l1_cost(predicted, measured) -> float:
    r = np.log(predicted / measured)
    return float(np.mean(np.sqrt(1.0 + (r / SOFT_L1_SCALE) ** 2) - 1.0))  # the cost the fit minimises


def fit_stage(hw, rows: list[dict], params: EffectParams, stage: str, impl: str, predict=_kernel_predict):
    """Fit one stage's fields from every distinct starting point of its grid; keep the lowest cost."""
    measured = np.array([r["median_s"] for r in rows])
    best = None
    for start in _distinct_starts(hw, rows, params, [{}] + stage_starts(stage), impl, predict):
        cand = _fit_group(hw, rows, params.with_values(start), stage_fields(stage), impl, predict)
        cost = _soft_l1_cost(predict(hw, rows, cand, impl), measured)
        if best is None or cost < best[0]:
            best = (cost, cand)
    return best[1]


def fit_params(hw, kernels: pd.DataFrame, impl: str, start: EffectParams, layers: pd.DataFrame | None = None,
               power: pd.DataFrame | None = None, states: pd.DataFrame | None = None) -> EffectParams:
    """Fit one implementation's parameters from the ``split == "fit"`` rows, stage by stage."""
    params = start
    fit = kernels[(kernels["split"] == "fit") & (kernels["impl"] == impl)]
    for stage in KERNEL_STAGES:  # a group with fewer cases than gates.min_cases keeps its prior (refused unless forced)
        rows = fit[fit["kernel"].map(lambda k: KINDS[k].stage == stage)].to_dict("records")
        if len(rows) >= gates.min_cases(stage):
            params = fit_stage(hw, rows, params, stage, impl)
    if impl == "vendor" and states is not None:
        params = fit_burst_ceilings(hw, states, params)
    if layers is not None and impl == "vendor" and len(layers):
        rows = layers[layers["split"] == "fit"].to_dict("records")
        if len(rows) >= gates.min_cases("layers"):
            params = _fit_group(hw, rows, params, stage_fields("layers"), impl, _layer_predict)
    if impl == "vendor":
        fit_states = None if states is None else states[states["split"] == "fit"]
        params = fit_clock_bound(states, params, hw)  # first: γ is chosen by predicted clocks, which β shapes
        params = fit_power(hw, power, fit_states, params, gamma_by_prediction=True)
        params = fit_eager_calls(hw, states, params)
    return params


# The compute ceilings that states.csv's burst rows pin down (kernel → effect fields).
BURST_CEILINGS = {"gemm": ("gemm.efficiency_frac", "gemm.efficiency_8bit_frac"),
                  "attention_prefill": ("attention_prefill.efficiency_frac",)}


def fit_burst_ceilings(hw, states: pd.DataFrame, params: EffectParams) -> EffectParams:
    """Re-fit the compute ceilings on the burst rows of ``states.csv`` (fit split), the shape terms held.

    kernels.csv's short loops ran back to back and many compute-heavy cases ran below boost (H200: NVML
    read 1.47–1.98 GHz during them), so ceilings fitted there mix clocks. The burst rows were timed right
    after 2 s idle with the clock read at boost: they fix the ceiling at boost, which the sustained state
    then lowers through the power model. (A clock read once per kernels.csv case proved too noisy to
    correct each case by: at 300 W, far below the limit, some read 1.7 GHz.)"""
    burst = states[(states["state"] == "burst") & (states["split"] == "fit")]
    for kernel, names in BURST_CEILINGS.items():
        rows = burst[(burst["kernel"] == kernel) & (burst["impl"] == "vendor")].to_dict("records")
        params = _fit_group(hw, rows, params, list(names), "vendor", _kernel_predict)
    return params


@dataclass
class FitResult:
    calibration: Calibration
    kernels: pd.DataFrame  # with split column
    layers: pd.DataFrame | None
    defaults: list[str] = dataclasses.field(default_factory=list)  # fit groups left at their defaults
    at_bound: list[str] = dataclasses.field(default_factory=list)  # fitted parameters pinned at a fit bound
    held_out_mape: dict = dataclasses.field(default_factory=dict)  # {"datasheet": …, "calibrated": …}
    forced: list[str] = dataclasses.field(default_factory=list)  # gate reasons overridden by force=True


def read_measurements(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    folder = Path(folder)
    path = folder / "kernels.csv"
    if not path.is_file():
        raise CalibrationRefused(f"no kernels.csv in {folder}; run `hwperf validate` on the GPU first")
    kernels = read_table(path)  # typed: one-line errors naming file, row and column (validate.readers)
    layers = read_table(folder / "layers.csv") if (folder / "layers.csv").is_file() else None
    power = read_table(folder / "power.csv") if (folder / "power.csv").is_file() else None
    return kernels, layers, power


def read_states(folder: str | Path) -> pd.DataFrame | None:
    """``states.csv`` (burst / sustained / eager-call timings with power and clock), split fit / score
    by size within each (kernel, state); None when the folder has none."""
    path = Path(folder) / "states.csv"
    if not path.is_file():
        return None
    df = read_table(path)
    return split_fit_score(df.assign(impl=df["impl"].fillna("vendor")), by=("kernel", "state"))


def calibrate(hardware_id: str, kernels: pd.DataFrame, layers: pd.DataFrame | None = None,
              power: pd.DataFrame | None = None, environment: dict | None = None,
              states: pd.DataFrame | None = None, force: bool = False) -> FitResult:
    """Fit a Calibration for ``hardware_id`` (vendor first, then triton starting from vendor's values),
    through the gates of ``validate.gates``: any failing gate raises CalibrationRefused unless ``force``,
    which writes the reasons into the provenance instead."""
    hw = hwspecs.resolve_hardware(hardware_id)
    reasons = check_measurements(kernels, hw.id, "kernels.csv")
    kernels, dropped = prepare_kernels(kernels.drop_duplicates("case_id"))
    if kernels.empty:
        raise CalibrationRefused(f"no modelled kernel cases to fit (kernels: {', '.join(FITTED_KERNELS)})")
    if layers is not None and len(layers):
        reasons += check_measurements(layers, hw.id, "layers.csv")
        layers = prepare_layers(layers.drop_duplicates("case_id"))
    groups = gates.fit_groups(kernels, layers)
    too_few, defaults = gates.group_counts(groups)
    reasons += too_few + gates.unit_sanity(_datasheet_ratio(hw, kernels))
    refuse_or_note(reasons, force, hw.id)
    vendor = fit_params(hw, kernels, "vendor", EffectParams(impl="vendor"), layers, power, states)
    # Triton starts from vendor's fitted values; its dispatch rules are known (impl="triton"), not fitted.
    triton = fit_params(hw, kernels, "triton", dataclasses.replace(vendor, impl="triton"))
    bound = gates.at_bounds({"vendor": vendor, "triton": triton}, groups)
    if len(bound) >= gates.MAX_AT_BOUND:
        reasons.append(f"{len(bound)} fitted parameters sit at a fit bound (units? shuffled rows?): {', '.join(bound)}")
    cal = Calibration.from_params(hw.id, vendor, triton, _provenance(environment, kernels, layers, dropped, []))
    errors = _held_out_errors(hw.id, kernels, layers, cal)
    reasons += gates.quality(errors)
    refuse_or_note(reasons, force, hw.id)
    if reasons:
        cal = cal.model_copy(update={"provenance": _provenance(environment, kernels, layers, dropped, reasons)})
    return FitResult(cal, kernels, layers, defaults, bound, errors, reasons)


def _datasheet_ratio(hw, kernels: pd.DataFrame) -> np.ndarray:
    """Measured / datasheet-only predicted time of every kernel case."""
    parts = [part["median_s"].to_numpy() / predict_rows(hw, part.to_dict("records"), DEFAULT_CALIBRATION, impl)
             for impl, part in kernels.groupby("impl")]
    return np.concatenate(parts)


def _held_out_errors(hardware_id: str, kernels: pd.DataFrame, layers: pd.DataFrame | None, cal: Calibration) -> dict:
    """Held-out MAPE of the datasheet-only model and of ``cal`` (kernels and whole layers together)."""
    from validate.compare import compare_kernels, compare_layers

    sources = {"datasheet": None, "calibrated": cal}
    cases = [compare_kernels(hardware_id, kernels[kernels["split"] == "score"], sources)]
    if layers is not None and len(layers):
        cases.append(compare_layers(hardware_id, layers[layers["split"] == "score"], sources))
    return gates.held_out_error(pd.concat(cases, ignore_index=True))


def _provenance(environment, kernels, layers, dropped, forced: list[str]) -> Provenance:
    env = (environment or {}).get("environment", environment or {})
    notes = (f"kernel times are GPU times (CUDA-graph rows where measured); dropped as noisy (repeats differ "
             f"> {REPEAT_TOLERANCE_FRAC:.0%}): {', '.join(dropped) or 'none'}")
    if forced:
        notes += f"; FORCED past the calibration gates (--force): {'; '.join(forced)}"
    return Provenance(
        date=dt.date.today().isoformat(), device_name=str(env.get("gpu_name", kernels.get("gpu_name", pd.Series(["?"])).iloc[0])),
        driver=str(env.get("driver_version", env.get("driver", "unknown"))),
        torch=str(env.get("torch_version", env.get("torch", "unknown"))),
        triton=str(env.get("triton_version", env.get("triton", "unknown"))), git_sha=str(env.get("git_sha", "unknown")),
        method="per-effect least squares on log(pred/measured), interleaved fit/score split by size",
        n_fit_cases=int((kernels["split"] == "fit").sum() + (0 if layers is None else (layers["split"] == "fit").sum())),
        n_score_cases=int((kernels["split"] == "score").sum()
                          + (0 if layers is None else (layers["split"] == "score").sum())),
        notes=notes,
    )
