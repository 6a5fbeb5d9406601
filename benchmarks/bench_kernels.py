"""Triton kernels next to their vendor references: a report over ``hwperf validate``'s kernel cases.

    PYTHONUNBUFFERED=1 python3 benchmarks/bench_kernels.py [--out DIR] [--only gemm,prefill,...] [--quick]

The cases, their order, time budgets and timing are those of the validate run: the catalogue is
``validate/cases/``, the runner ``validate/runner.py`` and the timer ``validate/timing.py`` (CUDA
events, warm-up, a time budget per case, inputs rotated past L2, and a CUDA-graph row for kernels
faster than 300 µs). Nothing here times, writes or identifies the code on its own.

Options:

- ``--only``: comma-separated sections (default ``gemm,prefill,stream,decode``):
  ``gemm`` bf16 GEMMs (vendor, then Triton interleaved over M) and fp8 GEMMs;
  ``prefill`` prefill attention (vendor, then Triton); ``decode`` decode attention, contiguous and
  paged; ``stream`` device copy and KV-block gather/scatter; ``host`` host↔device copies (vendor
  only, so not in the default).
- ``--quick``: validate's quick subset (a few shapes, seconds).
- ``--out DIR`` (default ``$OUT`` or ``.``): writes ``DIR/kernels_<gpu>.csv`` with the columns of
  validate's ``kernels.csv`` (``validate.runner.write_csv_atomic``, rewritten after every section so
  a cut-off run keeps what it measured) and ``DIR/kernels_<gpu>.json`` (environment with git sha,
  section times, failures).

Prints, per shape, the achieved TFLOP/s (GEMM, attention prefill) or GB/s (decode, copies) of the
vendor path and of the Triton kernel, and Triton / vendor (= vendor time / Triton time); ``-graph``
rows are CUDA-graph replays, the GPU time without launch gaps.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from validate.cases import kernel_sections  # noqa: E402
from validate.runner import (KERNEL_COLUMNS, make_runner, run_sections,  # noqa: E402
                             write_csv_atomic, write_json_atomic)

SECTIONS_OF = {  # --only name -> validate.runner sections
    "gemm": ("gemm", "gemm_fp8", "gemm_triton"),
    "prefill": ("attention_prefill", "attention_prefill_triton"),
    "decode": ("attention_decode",),
    "stream": ("copy", "kv"),
    "host": ("host",),
}
DEFAULT_ONLY = "gemm,prefill,stream,decode"
# Reported in GB/s (the rest in TFLOP/s): memory-bound decode and the byte movers.
BYTES_BOUND = {"attention_decode", "copy", "h2d", "d2h", "kv_gather", "kv_scatter"}


def shape_key(row: dict) -> str:
    """The case id without its impl: the key that pairs a vendor row with its Triton row."""
    prefix = f"{row['kernel']}-{row['impl']}-"
    return row["kernel"] + "-" + row["case_id"][len(prefix):]


def _rate(kernel: str, row: dict | None) -> float:
    """Achieved rate in display units (TFLOP/s, or GB/s for byte movers); NaN without a row."""
    key = "achieved_bytes_per_s" if kernel in BYTES_BOUND else "achieved_flops_per_s"
    value = None if row is None else row.get(key)
    return math.nan if value is None else value / (1e9 if kernel in BYTES_BOUND else 1e12)


def report(rows: list[dict]) -> str:
    """One line per shape (and graph): vendor and Triton achieved rates and their ratio."""
    pairs: dict[str, dict[str, dict]] = {}
    for row in rows:
        pairs.setdefault(shape_key(row), {})[row["impl"]] = row
    lines = [f"{'case':64s} {'vendor':>10s} {'triton':>10s} {'unit':8s} {'triton/vendor':>13s}"]
    for key, by_impl in pairs.items():
        kernel = next(iter(by_impl.values()))["kernel"]
        vendor, triton = _rate(kernel, by_impl.get("vendor")), _rate(kernel, by_impl.get("triton"))
        ratio = triton / vendor if vendor > 0 else math.nan  # NaN compares False: no ratio
        ratio_s = "" if math.isnan(ratio) else f"{100 * ratio:.1f}%"
        unit = "GB/s" if kernel in BYTES_BOUND else "TFLOP/s"
        lines.append(f"{key:64s} {vendor:10.1f} {triton:10.1f} {unit:8s} {ratio_s:>13s}")
    return "\n".join(lines)


def sections_for(only: str) -> set[str]:
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SECTIONS_OF))
    if unknown:
        raise SystemExit(f"bench_kernels.py: unknown --only section(s) {unknown}; "
                         f"known: {', '.join(SECTIONS_OF)}")
    return {s for n in names for s in SECTIONS_OF[n]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "."), help="directory for the CSV")
    ap.add_argument("--only", default=DEFAULT_ONLY,
                    help=f"comma-separated sections: {', '.join(SECTIONS_OF)}")
    ap.add_argument("--quick", action="store_true", help="validate's quick subset (seconds)")
    args = ap.parse_args(argv)
    wanted = sections_for(args.only)
    from validate.env import NoGPUError

    try:
        runner = make_runner(quick=args.quick)
    except NoGPUError as exc:
        sys.exit(f"bench_kernels.py needs a CUDA GPU: {exc}")
    env = runner.env
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", env.gpu_name.lower()).strip("-")
    csv_path, json_path = out / f"kernels_{slug}.csv", out / f"kernels_{slug}.json"
    print(f"# {env.gpu_name}  torch {env.torch_version}  triton {env.triton_version}  "
          f"driver {env.driver_version}  git {env.git_sha}", flush=True)
    t0 = time.time()

    def after(name, groups):
        write_csv_atomic(csv_path, runner.rows, KERNEL_COLUMNS)
        print(f"# {name}: {len(groups)} shapes, {runner.section_s[name]:.1f} s, "
              f"{len(runner.rows)} rows, {len(runner.failures)} failures so far", flush=True)

    sections = [s for s in kernel_sections(runner.torch, runner.kern, runner.cfg) if s[0] in wanted]
    run_sections(runner, sections, after=after)
    write_csv_atomic(csv_path, runner.rows, KERNEL_COLUMNS)
    write_json_atomic(json_path, {"environment": env.to_dict(), "quick": args.quick,
                                  "sections": sorted(wanted), "section_s": runner.section_s,
                                  "kernel_import_errors": runner.kern.errors,
                                  "failures": runner.failures, "wall_s": time.time() - t0})
    print(report(runner.rows))
    print(f"\nwrote {csv_path} ({len(runner.rows)} rows, {len(runner.failures)} failures, "
          f"{time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
