"""``hwperf validate | calibrate | compare``: measure on a GPU, fit a calibration, score it.

Registered on the main CLI by ``faces.cli``. Only the command line lives here; the work is in validate/
(validate.measure, validate.workflows), which imports torch only inside ``validate`` (needs a GPU).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from validate import workflows
from validate.cases.states import CASE_SETS


def register(app: typer.Typer, friendly, UserError) -> None:
    @app.command()
    @friendly
    def validate(hardware: Optional[str] = typer.Option(None, "--hardware", "-H",
                                                         help="expected hardware id; refuse if the GPU differs"),
                 out: Optional[Path] = typer.Option(None, "--out", help="folder (default validate/measurements/<id>)"),
                 quick: bool = typer.Option(False, "--quick", help="a small subset, seconds"),
                 only_states: bool = typer.Option(False, "--only-states",
                                                  help="only burst/sustained/eager-call states and DRAM bytes"),
                 states_set: Optional[str] = typer.Option(None, "--states-set",
                                                          help="with --only-states: full (default), extra or "
                                                          "extra2 (more cases per class, to merge into a full "
                                                          "run with python -m validate.states_merge), or "
                                                          "dram (fp8 GEMMs with bf16 twins swept in K and M, "
                                                          "Triton copies: for their ncu DRAM bytes)"),
                 multi_gpu: bool = typer.Option(False, "--multi-gpu", help="collectives (1 KB-1 GB) and tensor-"
                                                "parallel Llama-3-8B-shaped layers over every visible GPU, one "
                                                "process each (validate/multi_gpu.py)")):
        """Run every kernel and its vendor reference on this machine's GPU and record measurements."""
        if multi_gpu:
            from validate import multi_gpu as mg
            mg.main([*(["--quick"] if quick else []), *(["--out", str(out)] if out else [])])
            return
        try:
            from validate.measure import run_all
            from validate.run import run_states_only
        except ImportError as e:
            raise UserError(f"validate needs torch with CUDA on a GPU machine ({e})") from None
        if states_set is not None and (not only_states or states_set not in CASE_SETS):
            raise UserError(f"--states-set must be one of {', '.join(CASE_SETS)}, with --only-states; "
                            f"got {states_set!r}")
        if only_states:
            folder, rows, _ = run_states_only(out, hardware_id=hardware, quick=quick, case_set=states_set)
            typer.echo(f"wrote {folder}: {len(rows)} state rows")
        else:
            run_all(out, hardware_id=hardware, quick=quick)

    @app.command()
    @friendly
    def calibrate(hardware: str = typer.Option(..., "--hardware", "-H", help="hardware id to calibrate"),
                  measurements: Optional[Path] = typer.Option(None, help="folder with kernels.csv (default "
                                                              "validate/measurements/<id>)"),
                  out: Optional[Path] = typer.Option(None, help="calibration YAML (default hwspecs/calibration/<id>.yaml)"),
                  force: bool = typer.Option(False, "--force", help="write even if a gate refuses (reasons go into "
                                             "the profile's provenance)"),
                  as_json: bool = typer.Option(False, "--json", help="print where it wrote and the case counts as JSON")):
        """Fit the effect parameters from measurements and write the calibration (atomically), if every
        gate passes: device, duplicates, cases per group, parameters at bounds, held-out error vs datasheet."""
        res, path = workflows.run_calibrate(hardware, measurements or workflows.MEASUREMENTS_DIR / hardware, out,
                                            force=force)
        if as_json:
            typer.echo(json.dumps({"path": str(Path(path).resolve()),
                                   "n_fit_cases": res.calibration.provenance.n_fit_cases,
                                   "n_score_cases": res.calibration.provenance.n_score_cases}))
            return
        typer.echo(f"wrote {path} ({res.calibration.provenance.n_fit_cases} fit cases, "
                   f"{res.calibration.provenance.n_score_cases} held out)")
        for line in workflows.fit_report(res):
            typer.echo(line)

    @app.command()
    @friendly
    def compare(hardware: str = typer.Option(..., "--hardware", "-H", help="hardware id whose measurements to score"),
                measurements: Optional[Path] = typer.Option(None, help="folder with kernels.csv (default "
                                                            "validate/measurements/<id>)"),
                out: Optional[Path] = typer.Option(None, help="output folder (default the measurements folder)"),
                transfer_from: Optional[str] = typer.Option(None, help="also score another device's calibration "
                                                            "applied to this one, e.g. h100-sxm5-80gb"),
                rerun_of: Optional[Path] = typer.Option(None, help="another run's measurements folder for the same "
                                                        "GPU model: also print how much the two runs disagree"),
                as_json: bool = typer.Option(False, "--json", help="print the summary as JSON records")):
        """Predicted vs measured per case and per kernel class (held-out split), plus a PNG plot."""
        import pandas as pd

        folder = measurements or workflows.MEASUREMENTS_DIR / hardware
        # The rerun's difference is computed first: a bad --rerun-of folder fails before anything is written.
        rerun = None if rerun_of is None else workflows.rerun_difference(rerun_of, folder)
        _, summary = workflows.run_compare(hardware, folder, out or folder, transfer_from=transfer_from)
        tables = [summary] if rerun is None else [summary, rerun]
        dest = (out or folder).resolve()
        if as_json:
            typer.echo(json.dumps({"folder": str(dest), "summary": summary.to_dict(orient="records"),
                                   "rerun_difference": None if rerun is None else rerun.to_dict(orient="records")}))
            return
        with pd.option_context("display.width", 200, "display.max_rows", 200):
            for table in tables:
                typer.echo(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        dropped = summary.attrs.get("dropped")
        if dropped:
            typer.echo(f"dropped {len(dropped)} rows with no positive finite median_s: {', '.join(dropped[:10])}"
                       + (" …" if len(dropped) > 10 else ""), err=True)
        typer.echo(f"wrote compare_cases.csv, compare_summary.csv and compare.png to {dest}", err=True)
