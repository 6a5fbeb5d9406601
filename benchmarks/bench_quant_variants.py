"""Which unpacking each compressed-path kernel should use on this GPU: bit-position sub-tiles ("split", the
default), per-element gathers or a load-once-and-reshape (``kernels.attention_decode_quant``,
``kernels.gemm_w4a16``), each checked against its torch reference and timed next
to the bf16 Triton decode kernel and cuBLAS bf16 at the same shapes. Prints achieved effective bandwidth
(compressed bytes / s) and FLOP/s, writes ``quant_variants.csv`` and ``quant_variant.env`` (the faster
unpacking per kernel, by geometric-mean time) into the folder given (default: the current one).

    python benchmarks/bench_quant_variants.py OUT_DIR
"""

import csv
import math
import sys
from pathlib import Path

import torch
import triton

from kernels import attention_decode as dec
from kernels import attention_decode_quant as adq
from kernels import gemm_w4a16 as w4

DECODE = [(8, 4096), (32, 16384), (64, 32768)]  # (batch, context), Llama-3-8B layout 32/8/128, group 32
GEMM = [(1, 4096, 4096), (16, 28672, 4096), (256, 6144, 4096), (4096, 4096, 14336)]


def ms(fn):
    """Median milliseconds of CUDA-graph replays (the first eager call autotunes, outside the capture)."""
    fn()
    torch.cuda.synchronize()
    return triton.testing.do_bench_cudagraph(fn, rep=40)


def check(out, exact, what, tol=2e-2):
    """A variant that is fast but wrong must not win: relative Frobenius error against the fp32 reference."""
    err = ((out.float() - exact).norm() / exact.norm()).item()
    if not err <= tol:
        raise AssertionError(f"{what}: relative error {err:.3g} > {tol}")


def decode_rows():
    rows = []
    for b, c in DECODE:
        q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16)
        lens = torch.full((b,), c, device="cuda", dtype=torch.int32)
        k = torch.randn(b, 8, c, 128, device="cuda", dtype=torch.bfloat16)
        v = torch.randn_like(k)
        t = ms(lambda: dec.decode_attention(q, k, v, lens))
        rows.append(("attention_decode", "bf16", b, c, 16, t, dec.hbm_bytes(b, c, 32, 8, 128, 2)))
        for bits in (8, 4, 2):
            kq, vq = adq.quantize(k, bits, 32), adq.quantize(v, bits, 32)
            exact = adq.reference(q, kq, vq, lens, bits)
            for unpack in adq.UNPACK_METHODS:
                check(adq.decode_attention_quant(q, kq, vq, lens, bits, unpack=unpack), exact, unpack)
                t = ms(lambda: adq.decode_attention_quant(q, kq, vq, lens, bits, unpack=unpack))
                rows.append(("attention_decode_quant", unpack, b, c, bits, t, adq.hbm_bytes(b, c, 32, 8, 128, bits, 32)))
        del k, v
    return rows


def gemm_rows():
    rows = []
    for m, n, k in GEMM:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5
        packed, scales = w4.quantize(w)
        rows.append(("gemm", "cublas_bf16", m, n, 16, ms(lambda: x @ w.t()), 2 * (m * k + n * k + m * n)))
        exact = w4.reference(x, packed, scales)
        for unpack in w4.UNPACK_METHODS:
            check(w4.gemm_w4a16(x, packed, scales, unpack=unpack), exact, unpack)
            t = ms(lambda: w4.gemm_w4a16(x, packed, scales, unpack=unpack))
            rows.append(("gemm_w4a16", unpack, m, n, 4, t, w4.hbm_bytes(m, n, k)))
    return rows


def best(rows, kernel):
    by = {}
    for r in rows:
        if r[0] == kernel:
            by.setdefault(r[1], []).append(math.log(r[5]))
    return min(by, key=lambda v: sum(by[v]) / len(by[v]))


def main(out: Path):
    rows = decode_rows() + gemm_rows()
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "quant_variants.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["kernel", "variant", "batch_or_m", "context_or_n", "bits", "median_s", "hbm_bytes",
                     "achieved_bytes_per_s"])
        for r in rows:
            wr.writerow([*r[:5], r[5] / 1e3, r[6], r[6] / (r[5] / 1e3)])
            print(f"{r[0]:24s} {r[1]:12s} {r[2]:6d} {r[3]:6d} {r[4]:3d} {r[5] * 1e3:9.1f} us "
                  f"{r[6] / (r[5] / 1e3) / 1e9:8.0f} GB/s")
    env = {"attention_decode_quant": best(rows, "attention_decode_quant"), "gemm_w4a16": best(rows, "gemm_w4a16")}
    (out / "quant_variant.env").write_text(
        f"export HWPERF_QUANT_DECODE_UNPACK={env['attention_decode_quant']}\n"
        f"export HWPERF_W4A16_UNPACK={env['gemm_w4a16']}\n")
    print("faster:", env)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("."))
