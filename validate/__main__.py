"""``python3 -m validate [--out DIR] [--hardware ID] [--quick]``: run the GPU measurements.

The same as ``hwperf validate`` for machines where only the source tree is present (the device
machine). Exit code 2 with a one-line message, no traceback, when there is no GPU or the GPU is not
the requested one. Prints a short table of headline numbers at the end (the only place in validate/
that formats prefixed units).
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m validate", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output folder (default validate/measurements/<id>)")
    parser.add_argument("--hardware", default=None, help="expected hardware id; refuse if the GPU differs")
    parser.add_argument("--quick", action="store_true", help="a tiny subset (seconds)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--power-run-s", type=float, default=None, help="seconds per power run")
    args = parser.parse_args(argv)

    from validate.run import run_all

    try:
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
