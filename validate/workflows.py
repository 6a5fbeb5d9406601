"""Calibrate and compare over a measurements folder: the work behind ``hwperf calibrate`` and
``hwperf compare``, callable without the CLI (faces/validate_commands.py is only their command line).

Imports nothing heavy at import time: pandas, scipy and matplotlib load inside the functions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import hwspecs

# Where ``hwperf validate`` writes and calibrate / compare read by default: validate/measurements/<id>/.
MEASUREMENTS_DIR = Path(__file__).resolve().parent / "measurements"


def run_calibrate(hardware_id: str, measurements: Path, out: Path | None = None, force: bool = False):
    """Fit from ``measurements`` and write the calibration atomically. Every gate of ``validate.gates``
    must pass (else CalibrationRefused, nothing written) unless ``force``: then the profile is written with
    the reasons in its provenance. Returns (FitResult, path)."""
    from validate.calibrate import calibrate, read_measurements, read_states
    from validate.readers import read_json_object

    hwspecs.check_target(out if out is not None else hwspecs.calibration_path(hardware_id))  # refuse early
    kernels, layers, power = read_measurements(measurements)
    env_path = Path(measurements) / "environment.json"
    env = read_json_object(env_path) if env_path.is_file() else {}
    res = calibrate(hardware_id, kernels, layers, power, env, states=read_states(measurements), force=force)
    if (Path(measurements) / "quant_kernels.csv").is_file():  # hwperf's compressed-path kernels, measured
        from validate.quant_fit import fit_into

        res = dataclasses.replace(res, calibration=fit_into(res.calibration, Path(measurements)))
    if (Path(measurements) / "int8_gemm.csv").is_file():  # cuBLASLt int8 GEMMs beside fp8 ones
        from validate import int8_fit

        res = dataclasses.replace(res, calibration=int8_fit.fit_into(res.calibration, Path(measurements)))
    path = hwspecs.write_calibration(res.calibration, out)
    return res, path


def fit_report(res) -> list[str]:
    """What ``hwperf calibrate`` prints after writing: held-out error, defaults kept, bounds hit, overrides."""
    err = res.held_out_mape
    lines = [f"held-out MAPE: calibrated {err.get('calibrated', float('nan')):.1%}, "
             f"datasheet-only {err.get('datasheet', float('nan')):.1%}"]
    if res.defaults:
        lines.append(f"left at defaults: {', '.join(res.defaults)}")
    if res.at_bound:
        lines.append(f"at a fit bound: {', '.join(res.at_bound)}")
    if res.forced:
        lines.append(f"FORCED past {len(res.forced)} gate(s); the reasons are in the profile's provenance")
    return lines


def run_compare(hardware_id: str, measurements: Path, out_dir: Path, calibration=None, transfer_from: str | None = None):
    """Per-case and summary tables (CSV) and a PNG for datasheet-only vs calibrated (and optionally
    transferred) predictions. Returns (cases, summary)."""
    import pandas as pd

    from validate import gates
    from validate.calibrate import prepare_kernels, prepare_layers, read_measurements
    from validate.compare import compare_kernels, compare_layers, render_plot, summarize

    hw = hwspecs.resolve_hardware(hardware_id)
    kernels, layers, _ = read_measurements(measurements)
    wrong = gates.device(kernels, hw.id, "kernels.csv") + ([] if layers is None else gates.device(layers, hw.id, "layers.csv"))
    if wrong:
        raise gates.GateError(f"compare: {'; '.join(wrong)}; compare a device with its own measurements")
    kernels, dropped = _scorable(kernels)
    if layers is not None:
        layers, dropped_layers = _scorable(layers)
        dropped += dropped_layers
    kernels, _ = prepare_kernels(kernels)
    cal = calibration or hwspecs.load_calibration(hw.id)
    sources = {"datasheet": None}
    if cal is not None:
        sources["calibrated"] = cal
    if transfer_from:
        src = hwspecs.load_calibration(transfer_from)
        if src is None:
            raise ValueError(f"--transfer-from: no committed calibration for {transfer_from!r}")
        # The whole profile, host and power groups included, as if the H100 sat in this machine.
        sources["transfer"] = src.model_copy(update={"hardware_id": hw.id, "provenance": None})
    cases = compare_kernels(hw.id, kernels, sources)
    if layers is not None and len(layers):
        layers = prepare_layers(layers)
        cases = pd.concat([cases, compare_layers(hw.id, layers, sources)], ignore_index=True)
    # A calibration fitted elsewhere (transfer) never saw these cases: score all of them.
    split = None if "calibrated" not in sources else "score"
    summary = summarize(cases, split=split)
    if "transfer" in sources and split == "score":
        summary = pd.concat([summary[summary.source != "transfer"],
                             summarize(cases[cases.source == "transfer"], split=None)], ignore_index=True)
    states = _compare_states(hw.id, measurements, sources)
    from validate.dram_compare import dram_tables

    dram = dram_tables(hw.id, measurements)  # ncu's DRAM bytes vs the model's (no calibration enters)
    if dram is not None:
        states = [*(states or ()), ("compare_dram_cases.csv", dram[0]), ("compare_dram_summary.csv", dram[1])]
    shown = cases if split is None else cases[(cases["split"] == "score") | (cases["source"] == "transfer")]
    png = render_plot(shown, f"{hw.id}: predicted vs measured ({'held-out cases' if split else 'all cases'})")
    # Everything is computed: only now are the outputs written, all together (hwspecs.write_all).
    outputs = [*((out_dir / name, df) for name, df in states or ()), (out_dir / "compare_cases.csv", cases), (out_dir / "compare_summary.csv", summary)]
    hwspecs.write_all([*((path, _csv_writer(df), False) for path, df in outputs),
                       (out_dir / "compare.png", lambda fh: fh.write(png), True)])
    summary.attrs["dropped"] = dropped
    return cases, summary


def _scorable(df):
    """(rows with a positive finite median_s, case ids of the rows dropped for having none)."""
    import numpy as np
    import pandas as pd

    t = pd.to_numeric(df["median_s"], errors="coerce")
    ok = np.isfinite(t) & (t > 0)
    return df[ok].reset_index(drop=True), [str(c) for c in df.loc[~ok, "case_id"]]


def _compare_states(hardware_id: str, measurements: Path, sources: dict):
    """Burst / sustained / eager-call time, power and clock (``states.csv``), when the run has them:
    [(path name, table)] for the cases and the summary, or None."""
    from validate.calibrate import read_states
    from validate.compare_states import compare_states, summarize_states

    states = read_states(measurements)
    if states is None:
        return None
    cases = compare_states(hardware_id, states, sources)
    scored = cases if "calibrated" not in sources else cases[(cases["split"] == "score") | (cases["source"] == "transfer")]
    return [("compare_states_cases.csv", cases), ("compare_states_summary.csv", summarize_states(scored, split=None))]


def rerun_difference(first_measurements: Path, second_measurements: Path):
    """Per-class disagreement between two runs of ``hwperf validate`` on the same GPU model."""
    from validate.calibrate import read_measurements
    from validate.compare import rerun_difference as difference

    first, second = read_measurements(first_measurements), read_measurements(second_measurements)
    return difference(first[:2], second[:2])


def _csv_writer(df):
    return lambda fh: df.to_csv(fh, index=False)
