"""W8A8 INT8 GEMMs on this GPU against hwperf's prediction: ``torch._int_mm`` (cuBLASLt int8 × int8 → int32)
and, for reference, fp8 ``torch._scaled_mm`` (bf16 out) at Llama-3-8B's layer shapes and squares, each timed
by CUDA-graph replay right after the previous case, int8 then fp8 at each shape, and predicted by
``simulator.predict_kernel("gemm", dtype=..., state="burst")`` with the device's calibration. The cases run
back to back, so the large ones reach the power limit and run below the boost clock (H200: fp8 15-19%
slower than its burst prediction): use the int8/fp8 ratio at each shape, which ``validate.int8_fit`` turns
into ``gemm.int8_rate_frac``, not the absolute times. Writes ``int8_gemm.csv`` into OUT_DIR and prints MAPE.

    python benchmarks/bench_int8_gemm.py HARDWARE_ID OUT_DIR
"""

import csv
import sys
from pathlib import Path

import torch
import triton

import simulator

SHAPES = [(m, n, 4096) for m in (32, 256, 2048, 8192) for n in (4096, 6144, 28672)] + \
    [(m, 4096, 14336) for m in (32, 256, 2048, 8192)] + [(4096, 4096, 4096), (8192, 8192, 8192)]


def us(fn):
    fn()
    torch.cuda.synchronize()
    return triton.testing.do_bench_cudagraph(fn, rep=30) * 1e3


def main(hw: str, out: Path):
    rows = []
    one = torch.ones((), device="cuda")
    for m, n, k in SHAPES:
        a8 = torch.randint(-64, 64, (m, k), device="cuda", dtype=torch.int8)
        b8 = torch.randint(-64, 64, (n, k), device="cuda", dtype=torch.int8).t()  # column-major, as cuBLASLt wants
        ref = a8[:64].float() @ b8.float()
        assert torch.equal(torch._int_mm(a8[:64] if m > 64 else a8, b8)[:64].float(), ref[: min(m, 64)])
        af, bf = a8.to(torch.float8_e4m3fn), b8.to(torch.float8_e4m3fn)
        for dtype, fn in (("int8", lambda: torch._int_mm(a8, b8)),
                          ("fp8", lambda: torch._scaled_mm(af, bf, one, one, out_dtype=torch.bfloat16))):
            t = us(fn) * 1e-6
            p = simulator.predict_kernel(hw, "gemm", m=m, n=n, k=k, dtype=dtype, state="burst").time_s
            rows.append((dtype, m, n, k, t, p, p / t - 1.0, 2.0 * m * n * k / t))
            print(f"{dtype:5s} {m:6d} {n:6d} {k:6d} measured {t * 1e6:9.1f} us predicted {p * 1e6:9.1f} us "
                  f"{100 * (p / t - 1):+6.1f}%  {2 * m * n * k / t / 1e12:6.0f} TOP/s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "int8_gemm.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dtype", "m", "n", "k", "measured_s", "predicted_s", "error_frac", "achieved_ops_per_s"])
        w.writerows(rows)
    for dtype in ("int8", "fp8"):
        errs = [abs(r[6]) for r in rows if r[0] == dtype]
        print(f"{dtype}: MAPE {100 * sum(errs) / len(errs):.1f}% over {len(errs)} shapes (burst, graph replay)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "h200-sxm-141gb", Path(sys.argv[2] if len(sys.argv) > 2 else "."))
