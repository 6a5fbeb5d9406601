"""validate.states_merge: an extra states run folded into a full run's folder."""

import hashlib
import json

import pandas as pd
import pytest

from validate.cases.states import EXTRA_REPEATS
from validate.states_merge import merge

REPEAT = EXTRA_REPEATS[0]


def _folder(path, rows, env):
    path.mkdir()
    states = pd.DataFrame(rows)
    states.to_csv(path / "states.csv", index=False)
    states[["case_id", "state"]].assign(t_s=0.0).to_csv(path / "states_trace.csv", index=False)
    states[["case_id"]].drop_duplicates().assign(dram_read_bytes=1.0).to_csv(path / "dram_bytes.csv", index=False)
    (path / "states_environment.json").write_text(json.dumps(env))
    return path


def _row(case_id, state, t, w=600.0, f=1.5e9):
    return {"case_id": case_id, "state": state, "median_s": t, "mean_power_w": w, "mean_sm_clock_hz": f}


def test_new_cases_appended_and_repeats_compared(tmp_path):
    main = _folder(tmp_path / "main", [_row(REPEAT, "burst", 1.0), _row("a", "burst", 2.0)], {"run": 1})
    extra = _folder(tmp_path / "extra", [_row(REPEAT, "burst", 1.1, 660.0), _row("b", "burst", 3.0)], {"run": 2})
    tables = merge(main, extra)
    states = pd.read_csv(main / "states.csv")
    assert list(states["case_id"]) == [REPEAT, "a", "b"]  # the repeat is not appended twice
    assert states.loc[states.case_id == REPEAT, "median_s"].item() == 1.0  # the first run's value stays
    assert list(pd.read_csv(main / "dram_bytes.csv")["case_id"]) == [REPEAT, "a", "b"]
    rep = pd.read_csv(main / "states_repeats.csv").set_index("quantity")
    assert rep.loc["median_s", "diff_frac"] == pytest.approx(0.1)
    assert rep.loc["mean_power_w", "diff_frac"] == pytest.approx(0.1)
    assert rep.loc["mean_sm_clock_hz", "diff_frac"] == pytest.approx(0.0)
    assert json.loads((main / "states_extra_environment.json").read_text()) == {"run": 2}
    assert len(tables["states_repeats.csv"]) == 3


def test_mismatched_columns_leave_the_folder_untouched(tmp_path):
    main = _folder(tmp_path / "main", [_row("a", "burst", 2.0)], {"run": 1})
    extra = _folder(tmp_path / "extra", [_row("b", "burst", 3.0)], {"run": 2})
    pd.read_csv(extra / "states.csv").assign(surprise=1).to_csv(extra / "states.csv", index=False)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in main.iterdir()}
    with pytest.raises(ValueError, match="columns differ"):
        merge(main, extra)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in main.iterdir()} == before


def test_a_run_without_repeats_keeps_the_repeat_check_and_its_own_environment(tmp_path):
    main = _folder(tmp_path / "main", [_row(REPEAT, "burst", 1.0, 650.0), _row("a", "burst", 2.0)], {"run": 1})
    first = _folder(tmp_path / "extra", [_row(REPEAT, "burst", 1.1, 660.0), _row("b", "burst", 3.0)], {"run": 2})
    merge(main, first)
    checked = pd.read_csv(main / "states_repeats.csv")
    second = _folder(tmp_path / "extra2", [_row("c", "burst", 4.0)], {"run": 3, "case_set": "extra2"})
    merge(main, second)
    pd.testing.assert_frame_equal(pd.read_csv(main / "states_repeats.csv"), checked)
    assert json.loads((main / "states_extra2_environment.json").read_text())["run"] == 3
    assert json.loads((main / "states_extra_environment.json").read_text()) == {"run": 2}
    assert list(pd.read_csv(main / "states.csv")["case_id"]) == [REPEAT, "a", "b", "c"]


def test_per_kernel_names_are_merged_where_the_extra_run_has_them(tmp_path):
    main = _folder(tmp_path / "main", [_row("a", "burst", 2.0)], {"run": 1})
    extra = _folder(tmp_path / "extra", [_row("b", "burst", 3.0)], {"run": 2})
    pd.DataFrame([{"case_id": "b", "kernel_name": "nvjet_256x128", "dram_read_bytes": 1.0,
                   "dram_write_bytes": 2.0}]).to_csv(extra / "dram_kernels.csv", index=False)
    merge(main, extra)
    assert list(pd.read_csv(main / "dram_kernels.csv")["kernel_name"]) == ["nvjet_256x128"]
