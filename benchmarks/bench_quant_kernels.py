"""The compressed-path kernels' achieved bandwidth next to their 16-bit counterparts on this GPU.

Times (CUDA-graph replay, median, burst: one short run) ``kernels.attention_decode_quant`` at 8/4/2 bits
beside the bf16 Triton decode kernel (``kernels.attention_decode``) and ``kernels.gemm_w4a16`` beside
cuBLAS bf16, at the same shapes, each checked against its torch reference first. Effective bandwidth is
the bytes the kernel must move (compressed codes + scales/zero-points, queries/activations, outputs) per
second; ``vs_bf16`` is that over the bf16 decode kernel's bandwidth at the same (batch, context) — for the
GEMMs, over the bf16 decode kernel's best. Writes ``quant_kernels_bench.csv`` into OUT_DIR.

    python benchmarks/bench_quant_kernels.py OUT_DIR
"""

import csv
import sys
from pathlib import Path

import torch
import triton

from kernels import attention_decode as dec
from kernels import attention_decode_quant as adq
from kernels import gemm_w4a16 as w4

DECODE = [(8, 4096), (32, 16384), (64, 32768)]  # (batch, context), Llama-3-8B layout 32/8/128, group 32
GEMM = [(1, 4096, 4096), (16, 28672, 4096), (64, 6144, 4096), (256, 6144, 4096), (4096, 4096, 14336)]


def us(fn):
    """Median microseconds of CUDA-graph replays (the first eager call autotunes, outside the capture)."""
    fn()
    torch.cuda.synchronize()
    return triton.testing.do_bench_cudagraph(fn, rep=40) * 1e3


def check(out, exact, what, tol=2e-2):
    """A kernel that is fast but wrong must not be reported: relative Frobenius error vs the fp32 reference."""
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
        t = us(lambda: dec.decode_attention(q, k, v, lens))
        ref_bw = dec.hbm_bytes(b, c, 32, 8, 128, 2) / t
        rows.append(("attention_decode", "bf16", b, c, 16, t, dec.hbm_bytes(b, c, 32, 8, 128, 2), ref_bw))
        for bits in (8, 4, 2):
            kq, vq = adq.quantize(k, bits, 32), adq.quantize(v, bits, 32)
            check(adq.decode_attention_quant(q, kq, vq, lens, bits), adq.reference(q, kq, vq, lens, bits), bits)
            t = us(lambda: adq.decode_attention_quant(q, kq, vq, lens, bits))
            rows.append(("attention_decode_quant", f"int{bits}", b, c, bits, t,
                         adq.hbm_bytes(b, c, 32, 8, 128, bits, 32), ref_bw))
        del k, v
    return rows


def gemm_rows(ref_bw):
    rows = []
    for m, n, k in GEMM:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5
        packed, scales = w4.quantize(w)
        rows.append(("gemm", "cublas_bf16", m, n, 16, us(lambda: x @ w.t()), 2 * (m * k + n * k + m * n), ref_bw))
        check(w4.gemm_w4a16(x, packed, scales), w4.reference(x, packed, scales), (m, n, k))
        rows.append(("gemm_w4a16", "int4", m, n, 4, us(lambda: w4.gemm_w4a16(x, packed, scales)),
                     w4.hbm_bytes(m, n, k), ref_bw))
    return rows


def main(out: Path):
    rows = decode_rows()
    rows += gemm_rows(max(r[7] for r in rows))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "quant_kernels_bench.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["kernel", "variant", "batch_or_m", "context_or_n", "bits", "median_s", "hbm_bytes",
                     "achieved_bytes_per_s", "vs_bf16_decode"])
        for kernel, variant, bm, cn, bits, t, nbytes, ref in rows:
            bw = nbytes / t  # bytes per µs = MB/s
            wr.writerow([kernel, variant, bm, cn, bits, t * 1e-6, nbytes, bw * 1e6, bw / ref])
            print(f"{kernel:24s} {variant:12s} {bm:6d} {cn:6d} {t:9.1f} us {bw / 1e3:7.0f} GB/s "
                  f"{100 * bw / ref:5.0f}% of bf16 decode")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("."))
