"""Gates a calibration must pass before it may replace a profile (issue 14: "Calibration that refuses").

Before the fit: the device check (every row names the target in ``hardware_id``), no duplicated case,
enough cases in each fitted group (more cases than the group has fields, and at least ``MIN_CASES``).
After the fit: parameters pinned at a fit bound (a unit slip — times in ms pin every efficiency at its
0.02 floor; shuffled times pin them at 1.2) are reported and, from ``MAX_AT_BOUND`` on, refused; and
the held-out error must beat the datasheet-only model's. Each gate returns reasons (strings); the caller
refuses on any, unless forced, and then writes the reasons into the profile's provenance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hwspecs.effects import fit_bounds, stage_fields
from simulator.kinds import KINDS



class GateError(ValueError):
    """Measurements that a comparison or calibration must not use (another device, …)."""


MIN_CASES = 4
# Unit sanity before any fit: measured / datasheet-only predicted time per case. On the committed H100 and
# H200 data no case is off by 4x (5%-95% range 0.57-1.07); times in ms are all ~900x off, shuffled times
# ~60% of cases.
RATIO_LIMIT = 4.0
MAX_OFF_FRAC = 0.1
# Fit groups a profile cannot do without: the vendor kernels every model pass runs.
REQUIRED_GROUPS = (("vendor", "gemm"), ("vendor", "attention_prefill"), ("vendor", "attention_decode"),
                   ("vendor", "copy"))
# Parameters at a fit bound (a lower bound of 0 is a real "no such cost", not counted) before refusing.
MAX_AT_BOUND = 2
BOUND_TOLERANCE_FRAC = 1e-3  # of the bound range


def min_cases(stage: str) -> int:
    """Fit cases a stage needs: more than its fitted fields (least squares), and at least MIN_CASES."""
    return max(MIN_CASES, len(stage_fields(stage)) + 1)


def device(df: pd.DataFrame, hardware_id: str, what: str) -> list[str]:
    if "hardware_id" not in df.columns:
        return [f"{what} has no hardware_id column: the device check cannot run"]
    seen = sorted(set(df["hardware_id"].dropna().astype(str)))
    if seen != [hardware_id]:
        return [f"{what} rows are from {', '.join(seen) or 'an unknown device'}, not the target {hardware_id}"]
    return []


def duplicates(df: pd.DataFrame, what: str) -> list[str]:
    dup = df["case_id"][df["case_id"].duplicated()]
    if len(dup):
        return [f"{what}: {len(dup)} duplicated case ids (first {dup.iloc[0]!r}): the same case would sit on both "
                f"sides of the fit / held-out split"]
    return []


def fit_groups(kernels: pd.DataFrame, layers: pd.DataFrame | None) -> dict[tuple[str, str], int]:
    """Fit-split cases per (impl, stage), layers as ("vendor", "layers")."""
    fit = kernels[kernels["split"] == "fit"]
    counts = fit.groupby([fit["impl"], fit["kernel"].map(lambda k: KINDS[k].stage)]).size()
    out = {(str(i), str(s)): int(n) for (i, s), n in counts.items()}
    if layers is not None and len(layers):
        out[("vendor", "layers")] = int((layers["split"] == "fit").sum())
    return out


def group_counts(groups: dict[tuple[str, str], int]) -> tuple[list[str], list[str]]:
    """(refusal reasons, groups left at their defaults). A group with a few cases but fewer than it needs
    is refused (a cut or filtered file), as is a missing required group; other absent groups keep defaults."""
    reasons, defaults = [], []
    for (impl, stage), n in sorted(groups.items()):
        if n < min_cases(stage):
            reasons.append(f"{impl} {stage}: {n} fit cases, needs at least {min_cases(stage)}")
            defaults.append(f"{impl}.{stage}")
    for impl, stage in REQUIRED_GROUPS:
        if (impl, stage) not in groups:
            reasons.append(f"{impl} {stage}: no cases (a profile needs {', '.join(s for _, s in REQUIRED_GROUPS)})")
            defaults.append(f"{impl}.{stage}")
    return reasons, defaults


def at_bounds(fitted: dict[str, object], groups: dict[tuple[str, str], int]) -> list[str]:
    """'impl field=value (bound lo..hi)' for every fitted field of a fitted group pinned at a bound."""
    out = []
    for (impl, stage), n in sorted(groups.items()):
        if n < min_cases(stage):
            continue
        for name in stage_fields(stage):
            lo, hi = fit_bounds(name)
            v = float(fitted[impl].get(name))
            tol = BOUND_TOLERANCE_FRAC * (hi - lo)
            if (lo != 0.0 and v <= lo + tol) or v >= hi - tol:
                out.append(f"{impl} {name}={v:.4g} (fit bound {lo:g}..{hi:g})")
    return list(dict.fromkeys(out))


def unit_sanity(ratio: np.ndarray) -> list[str]:
    """``ratio``: measured / datasheet-only predicted time of each kernel case."""
    off = (ratio > RATIO_LIMIT) | (ratio < 1.0 / RATIO_LIMIT)
    if off.mean() > MAX_OFF_FRAC:
        med = float(np.median(ratio))
        hint = " (times in ms?)" if 300 < med < 3000 else " (times in µs?)" if med > 3e5 else \
            " (rows shuffled or mislabelled?)"
        return [f"{int(off.sum())} of {len(ratio)} kernel cases are more than {RATIO_LIMIT:g}x off the datasheet-only "
                f"model (median measured/predicted {med:.3g}){hint}"]
    return []


def held_out_error(cases: pd.DataFrame) -> dict[str, float]:
    """MAPE per source over the held-out cases (finite, positive times only)."""
    scored = cases[(cases["split"] == "score") & np.isfinite(cases["error_frac"])]
    return {str(src): float(g["error_frac"].abs().mean()) for src, g in scored.groupby("source")}


def quality(errors: dict[str, float]) -> list[str]:
    cal, sheet = errors.get("calibrated"), errors.get("datasheet")
    if cal is None or sheet is None:
        return ["no held-out cases to score the fit on"]
    if not cal < sheet:
        return [f"held-out error {cal:.1%} is not better than the datasheet-only model's {sheet:.1%}"]
    return []
