"""Fold an ``--states-set extra`` run into a full run's folder (``python -m validate.states_merge MAIN EXTRA``).

The extra set (:data:`validate.cases.states.EXTRA_BF16_GEMMS` …) adds shapes per kernel class so each
class has several held-out cases. Its rows for new cases are appended to the full run's
``states.csv``, ``states_trace.csv`` and ``dram_bytes.csv``; its repeats of full-set cases
(:data:`~validate.cases.states.EXTRA_REPEATS`) are not: they are compared with the first run's rows
in ``states_repeats.csv`` (run-to-run and, on a lent machine, board-to-board agreement). The extra
run's environment is kept as ``states_<case set>_environment.json`` (``states_extra_environment.json``, …). All outputs are written together
(``hwspecs.atomic.write_all``): a failure leaves the folder as it was.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from hwspecs.atomic import write_all
from validate.cases.states import EXTRA_REPEATS

REPEAT_QUANTITIES = ("median_s", "mean_power_w", "mean_sm_clock_hz")
FILES = ("states.csv", "states_trace.csv", "dram_bytes.csv")
OPTIONAL_FILES = ("dram_kernels.csv",)  # newer runs only: merged where the extra run has it


def repeats(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """One row per (repeated case, state, quantity): both runs' values and second / first − 1."""
    key = ["case_id", "state"]
    both = first[first["case_id"].isin(EXTRA_REPEATS)].merge(
        second[second["case_id"].isin(EXTRA_REPEATS)], on=key, suffixes=("_first", "_second"))
    rows = [{"case_id": r["case_id"], "state": r["state"], "quantity": q, "first_run": r[f"{q}_first"],
             "second_run": r[f"{q}_second"], "diff_frac": r[f"{q}_second"] / r[f"{q}_first"] - 1.0}
            for r in both.to_dict("records") for q in REPEAT_QUANTITIES
            if pd.notna(r[f"{q}_first"]) and pd.notna(r[f"{q}_second"])]
    return pd.DataFrame(rows, columns=["case_id", "state", "quantity", "first_run", "second_run", "diff_frac"])


def merged_tables(main: Path, extra: Path) -> dict[str, pd.DataFrame]:
    """The merged files' contents (nothing written): each of :data:`FILES` with the extra run's new
    cases appended, and ``states_repeats.csv``."""
    out = {}
    for name in FILES + tuple(n for n in OPTIONAL_FILES if (extra / n).is_file()):
        second = pd.read_csv(extra / name)
        first = pd.read_csv(main / name) if (main / name).is_file() else second.iloc[:0]
        new = second[~second["case_id"].isin(set(first["case_id"]))]
        if list(new.columns) != list(first.columns):
            raise ValueError(f"{extra / name}: columns differ from {main / name}")
        out[name] = pd.concat([first, new], ignore_index=True)
    again = repeats(pd.read_csv(main / "states.csv"), pd.read_csv(extra / "states.csv"))
    if len(again) or not (main / "states_repeats.csv").is_file():  # a run without repeats keeps the last check
        out["states_repeats.csv"] = again
    return out


def merge(main: Path | str, extra: Path | str) -> dict[str, pd.DataFrame]:
    main, extra = Path(main), Path(extra)
    tables = merged_tables(main, extra)
    env = json.loads((extra / "states_environment.json").read_text())
    items = [(main / name, lambda f, df=df: df.to_csv(f, index=False), False) for name, df in tables.items()]
    name = f"states_{env.get('case_set', 'extra')}_environment.json"  # extra, extra2: one file per merged run
    items.append((main / name, lambda f: json.dump(env, f, indent=2, sort_keys=True), False))
    write_all(items)
    return tables


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: python -m validate.states_merge MAIN_FOLDER EXTRA_FOLDER", file=sys.stderr)
        sys.exit(2)
    t = merge(sys.argv[1], sys.argv[2])
    print(t["states_repeats.csv"].to_string(index=False) if "states_repeats.csv" in t else "no repeats in this run")
