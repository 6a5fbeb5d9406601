"""``python3 -m validate [--out DIR] [--hardware ID] [--quick] [--only-states]``: run the GPU measurements.

The same as ``hwperf validate`` for machines where only the source tree is present (the device
machine). Exit code 2 with a one-line message, no traceback, when there is no GPU or the GPU is not
the requested one. Prints a short table of headline numbers at the end (the only place in validate/
that formats prefixed units). ``--only-states`` runs only the operating states and DRAM bytes
(:func:`validate.run.run_states_only`) and prints a table of them.
"""

from __future__ import annotations

import argparse
import sys

from validate.env import HardwareMismatchError, NoGPUError

# (headline key suffix → display unit, divisor)
_UNITS = (("_flops_per_s", "TFLOP/s", 1e12), ("_bytes_per_s", "GB/s", 1e9), ("_power_w", "W", 1.0),
          ("_clock_hz", "MHz", 1e6))


def format_headline(headline: dict) -> str:
    lines = []
    for key, value in headline.items():
        if value is None:
            continue
        for suffix, unit, div in _UNITS:
            if key.endswith(suffix):
                lines.append(f"  {key:<48} {value / div:10.1f} {unit}")
                break
    return "\n".join(lines)


def format_states(rows: list[dict]) -> str:
    """One line per case: burst / sustained / eager-call µs, sustained W and MHz."""
    cases: dict[str, dict] = {}
    for r in rows:
        cases.setdefault(r["case_id"], {})[r["state"]] = r

    def us(row):
        return f"{row['median_s'] * 1e6:10.1f}" if row else f"{'':>10}"

    def num(row, key, div):
        return f"{row[key] / div:7.0f}" if row and row.get(key) is not None else f"{'':>7}"

    lines = [f"  {'case':<58} {'burst us':>10} {'sust. us':>10} {'sust. W':>7} {'MHz':>7} "
             f"{'eager us':>10}"]
    for case_id, by in cases.items():
        s = by.get("sustained")
        lines.append(f"  {case_id:<58} {us(by.get('burst'))} {us(s)} {num(s, 'mean_power_w', 1)} "
                     f"{num(s, 'mean_sm_clock_hz', 1e6)} {us(by.get('eager_call'))}")
    return "\n".join(lines)


def _only_states(args) -> int:
    from validate.run import run_states_only

    folder, rows, meta = run_states_only(args.out, hardware_id=args.hardware, quick=args.quick,
                                         progress=not args.no_progress,
                                         dram_timeout_s=args.dram_timeout_s, case_set=args.states_set)
    print(f"wrote {folder}: {len(rows)} state rows, {meta.get('n_dram_rows', 0)} DRAM rows, "
          f"{len(meta.get('states_failures', []))} failures; DRAM: "
          f"{meta.get('dram', {}).get('error') or meta.get('dram', {}).get('note') or 'ok'}")
    print(format_states(rows))
    print(format_dram(folder / "dram_bytes.csv"))
    return 0


def format_dram(path) -> str:
    """dram_bytes.csv as a table (MB = 1e6 bytes); empty when the file is absent."""
    import csv
    from pathlib import Path

    if not Path(path).is_file():
        return ""

    def mb(text):
        return f"{float(text) / 1e6:10.1f}" if text else f"{'':>10}"

    lines = [f"  {'case':<58} {'read MB':>10} {'write MB':>10} {'kernels':>7} {'min MB':>10}"]
    with open(path) as fh:
        for r in csv.DictReader(fh):
            lines.append(f"  {r['case_id']:<58} {mb(r['dram_read_bytes'])} {mb(r['dram_write_bytes'])} "
                         f"{r['n_kernels']:>7} {mb(r['hbm_bytes'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m validate", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output folder (default validate/measurements/<id>)")
    parser.add_argument("--hardware", default=None, help="expected hardware id; refuse if the GPU differs")
    parser.add_argument("--quick", action="store_true", help="a tiny subset (seconds)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--power-run-s", type=float, default=None, help="seconds per power run")
    parser.add_argument("--only-states", action="store_true",
                        help="only the burst/sustained/eager-call states and DRAM bytes")
    parser.add_argument("--states-set", choices=("full", "extra", "extra2"), default=None,
                        help="with --only-states: the case set (extra, extra2: more shapes per class, to "
                             "merge with a full run by validate.states_merge)")
    parser.add_argument("--dram-timeout-s", type=float, default=300.0,
                        help="with --only-states: seconds the Nsight Compute run may take")
    args = parser.parse_args(argv)

    from validate.run import run_all

    try:
        if args.only_states:
            return _only_states(args)
        result = run_all(args.out, hardware_id=args.hardware, quick=args.quick,
                         progress=not args.no_progress, power_run_s=args.power_run_s)
    except (NoGPUError, HardwareMismatchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {result.out_dir}: {result.n_kernel_rows} kernel rows, "
          f"{result.n_failures} failure rows")
    print(format_headline(result.headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
