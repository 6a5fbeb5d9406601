"""Calibration that refuses (issue 14): the corrupted-measurement gallery and each gate on its own."""

import hashlib

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import hwspecs
from faces.cli import app
from tests.calibration_damage import DAMAGES, HW, copy_measurements
from validate import gates

runner = CliRunner()
PROFILE = hwspecs.calibration_path(HW)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_gallery_refused_in_one_line_and_committed_profile_unchanged(tmp_path, damage):
    before = _sha(PROFILE)
    folder = copy_measurements(tmp_path / "m")
    DAMAGES[damage](folder)
    res = runner.invoke(app, ["calibrate", "-H", HW, "--measurements", str(folder)])  # default --out: the profile
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.output, res.output
    assert _sha(PROFILE) == before
    assert not list(PROFILE.parent.glob(".*.tmp"))


def test_force_writes_the_reasons_into_provenance(tmp_path):
    folder = copy_measurements(tmp_path / "m")
    DAMAGES["ten_rows"](folder)  # too few cases: the groups are left at defaults (and the fit is quick)
    out = tmp_path / "forced.yaml"
    res = runner.invoke(app, ["calibrate", "-H", HW, "--measurements", str(folder), "--out", str(out), "--force"])
    assert res.exit_code == 0, res.output
    assert "FORCED" in res.output
    notes = yaml.safe_load(out.read_text())["provenance"]["notes"]
    assert "FORCED past the calibration gates" in notes and "needs at least 8" in notes
    assert "left at defaults: vendor.gemm, vendor.attention_prefill, vendor.attention_decode, vendor.copy" in res.output


def test_min_cases_per_group():
    assert gates.min_cases("copy") == 4  # 2 fields, but at least MIN_CASES
    assert gates.min_cases("gemm") == 8  # 7 fields + 1
    reasons, defaults = gates.group_counts({("vendor", "gemm"): 7, ("vendor", "attention_prefill"): 20,
                                            ("vendor", "attention_decode"): 20, ("vendor", "copy"): 4,
                                            ("triton", "gemm"): 30})
    assert reasons == ["vendor gemm: 7 fit cases, needs at least 8"] and defaults == ["vendor.gemm"]
    reasons, defaults = gates.group_counts({("vendor", "gemm"): 30})
    assert len(reasons) == 3 and "vendor.copy" in defaults


def test_parameters_at_bounds_are_named():
    from hwspecs.calibration import EffectParams
    pinned = EffectParams().with_values({"gemm.efficiency_frac": 0.02, "gemm.latency_s": 0.0,
                                         "memory.copy_efficiency_frac": 1.2})
    out = gates.at_bounds({"vendor": pinned, "triton": EffectParams()},
                          {("vendor", "gemm"): 30, ("vendor", "copy"): 10, ("vendor", "host_copy"): 1})
    assert [o.split("=")[0] for o in out] == ["vendor memory.copy_efficiency_frac", "vendor gemm.efficiency_frac"]


def test_fit_quality_gate():
    assert gates.quality({"datasheet": 0.2, "calibrated": 0.05}) == []
    assert "not better" in gates.quality({"datasheet": 0.2, "calibrated": 0.2})[0]
    assert gates.quality({"datasheet": 0.2}) != []


def test_unit_sanity():
    rng = np.random.default_rng(1)
    ok = np.exp(rng.normal(-0.1, 0.2, 500))
    assert gates.unit_sanity(ok) == []
    assert "ms?" in gates.unit_sanity(ok * 1e3)[0]
    assert "shuffled" in gates.unit_sanity(rng.permutation(np.logspace(-6, -1, 500)) / np.logspace(-6, -1, 500))[0]


# ---- compare ----------------------------------------------------------------------------------------------

def test_compare_refuses_another_devices_measurements(tmp_path):
    res = runner.invoke(app, ["compare", "-H", "rtx-4090", "--measurements", str(copy_measurements(tmp_path / "m")),
                              "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "not the target rtx-4090" in res.output, res.output
    assert not (tmp_path / "out").exists()


def test_compare_drops_and_reports_rows_without_a_time(tmp_path):
    import pandas as pd
    folder = copy_measurements(tmp_path / "m")
    k = pd.read_csv(folder / "kernels.csv", comment="#")
    gemm = k.index[(k.kernel == "gemm") & (k.impl == "vendor")]
    bad = {gemm[0]: float("nan"), gemm[2]: 0.0, gemm[4]: -1e-3}
    for i, v in bad.items():
        k.loc[i, "median_s"] = v
    k.to_csv(folder / "kernels.csv", index=False)
    out = tmp_path / "out"
    res = runner.invoke(app, ["compare", "-H", HW, "--measurements", str(folder), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "dropped 3 rows" in res.output and all(k.loc[i, "case_id"] in res.output for i in bad)
    summary = pd.read_csv(out / "compare_summary.csv")
    assert np.isfinite(summary[["mape_frac", "max_abs_err_frac"]].to_numpy()).all()
    cases = pd.read_csv(out / "compare_cases.csv")
    assert not set(k.loc[list(bad), "case_id"]) & set(cases["case_id"])
    # n_cases counts only what was scored: the same as the number of finite-error held-out rows
    scored = cases[(cases.split == "score") & np.isfinite(cases.error_frac)]
    assert summary["n_cases"].sum() == len(scored)
