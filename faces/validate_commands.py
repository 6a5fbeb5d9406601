"""``hwperf validate | calibrate | compare``: measure on a GPU, fit a calibration, score it.

Registered on the main CLI by ``simulator.cli``; imports nothing heavy at import time (torch only inside
``validate``, which needs a GPU).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

import hwspecs

MEASUREMENTS = Path(__file__).parent / "measurements"


def run_calibrate(hardware_id: str, measurements: Path, out: Path | None = None):
    """Fit from ``measurements`` and write the calibration atomically; refusals raise before any write."""
    from validate.calibrate import calibrate, read_measurements

    kernels, layers, power = read_measurements(measurements)
    env_path = Path(measurements) / "environment.json"
    env = json.loads(env_path.read_text()) if env_path.is_file() else {}
    res = calibrate(hardware_id, kernels, layers, power, env)
    path = hwspecs.write_calibration(res.calibration, out)
    return res, path


def run_compare(hardware_id: str, measurements: Path, out_dir: Path, calibration=None, transfer_from: str | None = None):
    """Per-case and summary tables (CSV) and a PNG for datasheet-only vs calibrated (and optionally
    transferred) predictions. Returns (cases, summary)."""
    import pandas as pd

    from validate.calibrate import prepare_kernels, prepare_layers, read_measurements
    from validate.compare import compare_kernels, compare_layers, plot, summarize

    hw = hwspecs.resolve_hardware(hardware_id)
    kernels, layers, _ = read_measurements(measurements)
    kernels, _ = prepare_kernels(kernels)
    cal = calibration or hwspecs.load_calibration(hw.id)
    sources = {"datasheet": None}
    if cal is not None:
        sources["calibrated"] = cal
    if transfer_from:
        src = hwspecs.load_calibration(transfer_from)
        if src is None:
            raise ValueError(f"--transfer-from: no committed calibration for {transfer_from!r}")
        sources["transfer"] = hwspecs.Calibration(hardware_id=hw.id, vendor=src.vendor, triton=src.triton)
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
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(cases, out_dir / "compare_cases.csv")
    _write_csv(summary, out_dir / "compare_summary.csv")
    shown = cases if split is None else cases[(cases["split"] == "score") | (cases["source"] == "transfer")]
    plot(shown, out_dir / "compare.png",
         f"{hw.id}: predicted vs measured ({'held-out cases' if split else 'all cases'})")
    return cases, summary


def _write_csv(df, path: Path) -> None:
    hwspecs.write_atomic(path, lambda fh: df.to_csv(fh, index=False))


def register(app: typer.Typer, friendly, UserError) -> None:
    @app.command()
    @friendly
    def validate(hardware: Optional[str] = typer.Option(None, "--hardware", "-H",
                                                         help="expected hardware id; refuse if the GPU differs"),
                 out: Optional[Path] = typer.Option(None, "--out", help="folder (default validate/measurements/<id>)"),
                 quick: bool = typer.Option(False, "--quick", help="a small subset, seconds")):
        """Run every kernel and its vendor reference on this machine's GPU and record measurements."""
        try:
            from validate.measure import run_all
        except ImportError as e:
            raise UserError(f"validate needs torch with CUDA on a GPU machine ({e})") from None
        run_all(out, hardware_id=hardware, quick=quick)

    @app.command()
    @friendly
    def calibrate(hardware: str = typer.Option(..., "--hardware", "-H", help="hardware id to calibrate"),
                  measurements: Optional[Path] = typer.Option(None, help="folder with kernels.csv (default "
                                                              "validate/measurements/<id>)"),
                  out: Optional[Path] = typer.Option(None, help="calibration YAML (default hwspecs/calibration/<id>.yaml)")):
        """Fit the effect parameters from measurements and write the calibration (atomically)."""
        res, path = run_calibrate(hardware, measurements or MEASUREMENTS / hardware, out)
        typer.echo(f"wrote {path} ({res.calibration.provenance.n_fit_cases} fit cases, "
                   f"{res.calibration.provenance.n_score_cases} held out)")

    @app.command()
    @friendly
    def compare(hardware: str = typer.Option(..., "--hardware", "-H"),
                measurements: Optional[Path] = typer.Option(None),
                out: Optional[Path] = typer.Option(None, help="output folder (default the measurements folder)"),
                transfer_from: Optional[str] = typer.Option(None, help="also score another device's calibration "
                                                            "applied to this one, e.g. h100-sxm5-80gb"),
                rerun_of: Optional[Path] = typer.Option(None, help="another run's measurements folder for the same "
                                                        "GPU model: also print how much the two runs disagree")):
        """Predicted vs measured per case and per kernel class (held-out split), plus a PNG plot."""
        folder = measurements or MEASUREMENTS / hardware
        _, summary = run_compare(hardware, folder, out or folder, transfer_from=transfer_from)
        tables = [summary]
        if rerun_of is not None:
            from validate.calibrate import read_measurements
            from validate.compare import rerun_difference

            first, second = read_measurements(rerun_of), read_measurements(folder)
            tables.append(rerun_difference(first[:2], second[:2]))
        with __import__("pandas").option_context("display.width", 200, "display.max_rows", 200):
            for table in tables:
                typer.echo(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
