"""Measure the compressed-path kernels on the attached GPU: ``python -m validate.quant_run [out_dir]``.

Runs :mod:`validate.cases.quant` (quantized-KV decode attention with the bf16 decode kernel at the same
shapes, and the W4A16 GEMM) through the standard runner (rotated input sets so L2 is not measured, CUDA
events, medians, a CUDA-graph row for short kernels), and writes ``quant_kernels.csv``,
``quant_failures.csv`` and ``quant_environment.json`` into ``out_dir`` (default
``validate/measurements/<hardware_id>/``). Each row names its operating state: "burst" when the SM clock
read during the case was within 3% of the maximum clock and the board power below 90% of its limit,
else "sustained"; the clock and power columns give the numbers. Nothing changes clocks or power limits.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from validate.cases.quant import quant_decode_groups, w4a16_groups
from validate.runner import (DEFAULT_OUT_DIR, FAILURE_COLUMNS, KERNEL_COLUMNS, make_runner, run_sections,
                             write_csv_atomic, write_json_atomic)

QUANT_COLUMNS = (*KERNEL_COLUMNS[:KERNEL_COLUMNS.index("median_s")], "bits", "group_size",
                 *KERNEL_COLUMNS[KERNEL_COLUMNS.index("median_s"):], "state")
SECTION_BUDGET_S = {"attention_decode_quant": 150.0, "gemm_w4a16": 150.0}
BURST_CLOCK_FRAC = 0.97
BURST_POWER_FRAC = 0.90


def state_of(row: dict, max_clock_hz, power_limit_w) -> str:
    clock, power = row.get("sm_clock_hz"), row.get("power_w")
    if not clock or not max_clock_hz:
        return "unknown"
    near_limit = bool(power and power_limit_w and power >= BURST_POWER_FRAC * power_limit_w)
    return "burst" if clock >= BURST_CLOCK_FRAC * max_clock_hz and not near_limit else "sustained"


def main(out_dir: str | None = None, quick: bool = False) -> Path:
    runner = make_runner(None, quick=quick)
    runner.cfg = dataclasses.replace(runner.cfg, case_budget_s=0.03,
                                     section_budget_s={**runner.cfg.section_budget_s, **SECTION_BUDGET_S})
    env = runner.env
    folder = Path(out_dir) if out_dir else DEFAULT_OUT_DIR / env.hardware_id
    folder.mkdir(parents=True, exist_ok=True)
    torch, kern, cfg = runner.torch, runner.kern, runner.cfg
    t0 = time.time()
    sections = [("attention_decode_quant", lambda: quant_decode_groups(torch, kern, cfg)),
                ("gemm_w4a16", lambda: w4a16_groups(torch, kern, cfg))]

    def flush(name, groups):
        limit = runner.nvml.power_limit_w()
        for r in runner.rows:
            r["state"] = state_of(r, env.max_sm_clock_hz, limit)
        write_csv_atomic(folder / "quant_kernels.csv", runner.rows, QUANT_COLUMNS)
        write_csv_atomic(folder / "quant_failures.csv", runner.failures, FAILURE_COLUMNS)
        print(f"{name}: {len(runner.rows)} rows, {len(runner.failures)} failures, {time.time() - t0:.0f} s",
              flush=True)

    run_sections(runner, sections, after=flush)
    meta = {**env.to_dict(), "power_limit_w": runner.nvml.power_limit_w(), "wall_s": time.time() - t0,
            "method": "validate.quant_run: runner.bench (CUDA events, rotated inputs, median), CUDA-graph row "
                      "below 300 us; state per row from the NVML SM clock and power read during the case"}
    write_json_atomic(folder / "quant_environment.json", meta)
    return folder


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--quick"]
    main(args[0] if args else None, quick="--quick" in sys.argv)
