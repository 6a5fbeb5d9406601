"""Time hwperf's Triton kernels against the vendor path on the attached GPU.

    PYTHONUNBUFFERED=1 python3 benchmarks/bench_kernels.py [--out DIR] [--only gemm,prefill,...]

For each case: warm up (which also runs the autotuner), then ``triton.testing.do_bench`` (CUDA
events, median of repeats over >= 100 ms) for the Triton kernel and for the vendor path
(torch.matmul → cuBLAS, torch._scaled_mm for fp8, scaled_dot_product_attention, Tensor.copy_ /
index_select / sum / fill_). Inputs are random (never zeros) and larger than L2 where the case is
memory-bound. Writes a tidy CSV (SI units, one row per case × implementation) with a commented
environment header to ``DIR/kernels_<gpu>.csv``, rewritten after every case so a cut-off run keeps
what it measured, and prints a table with TFLOP/s and GB/s.
"""

import argparse
import csv
import datetime
import io
import math
import os
import re
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
import triton
from triton.testing import do_bench

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kernels import attention_decode, attention_prefill, gemm, kv_copy  # noqa: E402

COLUMNS = ["section", "case", "impl", "dtype", "time_s", "flops", "hbm_bytes",
           "achieved_flops_per_s", "achieved_bytes_per_s", "frac_of_vendor", "host_s_per_call",
           "config"]


def nvidia_smi(fields: str) -> str:
    try:
        return subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({exc})"


def git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Recorder:
    """Collects rows; rewrites the CSV (header + rows) after each case."""

    def __init__(self, out_dir: str):
        props = torch.cuda.get_device_properties(0)
        self.gpu = props.name
        slug = re.sub(r"[^a-z0-9]+", "-", props.name.lower()).strip("-")
        self.path = os.path.join(out_dir, f"kernels_{slug}.csv")
        self.env = {
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "gpu": props.name,
            "sm_count": props.multi_processor_count,
            "l2_bytes": getattr(props, "L2_cache_size", "unknown"),
            "memory_bytes": props.total_memory,
            "driver_and_clocks_at_start": nvidia_smi(
                "driver_version,pstate,clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,"
                "power.limit,temperature.gpu"),
            "torch": torch.__version__,
            "cuda_runtime": torch.version.cuda,
            "triton": triton.__version__,
            "git_sha": git_sha(),
            "timer": "triton.testing.do_bench(warmup=25 ms, rep=100 ms, median), CUDA events",
        }
        self.rows: list[dict] = []

    def note(self, key: str, value) -> None:
        self.env[key] = value

    def add(self, **row) -> None:
        self.rows.append(row)
        self.write()

    def write(self) -> None:
        buf = io.StringIO()
        for k, v in self.env.items():
            buf.write(f"# {k}: {v}\n")
        w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in self.rows:
            w.writerow({c: r.get(c, "") for c in COLUMNS})
        with open(self.path, "w") as f:
            f.write(buf.getvalue())


def timed(fn) -> float:
    """Median seconds of fn() after a warm-up call (which also autotunes)."""
    fn()
    torch.cuda.synchronize()
    return do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e-3


def graph_timed(fn) -> float:
    """Median seconds of a CUDA-graph replay of fn(): the GPU time without launch overhead."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return do_bench(graph.replay, warmup=25, rep=100, return_mode="median") * 1e-3


def host_time(fn, n=200) -> float:
    """Host seconds per call when launching n calls back to back (the launch-overhead floor)."""
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return (t1 - t0) / n


def fmt_row(r: dict) -> str:
    tf = r["achieved_flops_per_s"] / 1e12 if r.get("achieved_flops_per_s") else float("nan")
    gb = r["achieved_bytes_per_s"] / 1e9 if r.get("achieved_bytes_per_s") else float("nan")
    frac = r.get("frac_of_vendor", "")
    frac_s = f"{100 * frac:6.1f}%" if isinstance(frac, float) else "       "
    host = r.get("host_s_per_call", "")
    frac_s += f"  host {host * 1e6:5.0f} us" if isinstance(host, float) else ""
    return (f"{r['section']:8s} {r['case']:44s} {r['impl']:14s} {r['dtype']:9s} "
            f"{r['time_s'] * 1e3:9.4f} ms {tf:8.1f} TF/s {gb:8.1f} GB/s {frac_s}")


def pair(rec, section, case, dtype, flops, nbytes, triton_fn, vendor_fns, config_of=None,
         vendor_rate=None, variants=()):
    """Time Triton and vendor implementation(s); the first vendor is the reference for frac.

    ``variants``: extra (name, fn) Triton implementations, recorded like vendors but not used as
    the reference; a name ending in "(graph)" is timed as a CUDA-graph replay."""
    t_tri = timed(triton_fn)
    config = str(config_of()) if config_of else ""
    host = host_time(triton_fn) if t_tri < 200e-6 else ""
    if t_tri < 200e-6 and vendor_rate is None:
        # Short kernels: eager times include host launch overhead; a CUDA-graph replay of each
        # implementation gives the GPU-side comparison.
        variants = list(variants) + [("triton(graph)", triton_fn)] + [
            (f"{name}(graph)", fn) for name, fn in vendor_fns[:1]]
    vendor_rows = []
    for name, fn in list(vendor_fns) + list(variants):
        try:
            t_v = graph_timed(fn) if name.endswith("(graph)") else timed(fn)
        except Exception as exc:  # a backend that does not apply to this case: say so, go on
            print(f"  ({name} skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
            continue
        vendor_rows.append(dict(section=section, case=case, impl=name, dtype=dtype, time_s=t_v,
                                flops=flops, hbm_bytes=nbytes,
                                achieved_flops_per_s=flops / t_v if flops else "",
                                achieved_bytes_per_s=nbytes / t_v if nbytes else ""))
    tri = dict(section=section, case=case, impl="triton", dtype=dtype, time_s=t_tri, flops=flops,
               hbm_bytes=nbytes, achieved_flops_per_s=flops / t_tri if flops else "",
               achieved_bytes_per_s=nbytes / t_tri if nbytes else "", config=config,
               host_s_per_call=host)
    if vendor_rate is not None:  # memory-bound: fraction of a measured bandwidth
        tri["frac_of_vendor"] = (nbytes / t_tri) / vendor_rate
    elif vendor_rows and vendor_rows[0]["impl"] == vendor_fns[0][0]:
        tri["frac_of_vendor"] = vendor_rows[0]["time_s"] / t_tri
    graphs = {r["impl"]: r["time_s"] for r in vendor_rows if r["impl"].endswith("(graph)")}
    if "triton(graph)" in graphs and vendor_fns and f"{vendor_fns[0][0]}(graph)" in graphs:
        for r in vendor_rows:
            if r["impl"] == "triton(graph)":
                r["frac_of_vendor"] = graphs[f"{vendor_fns[0][0]}(graph)"] / r["time_s"]
    for r in [tri] + vendor_rows:
        rec.add(**r)
        print(fmt_row(r), flush=True)
    return tri


DT = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp8": torch.float8_e4m3fn}


def randn(*shape, dtype, scale=1.0):
    return (torch.randn(*shape, device="cuda", dtype=torch.float32) * scale).to(dtype)


# ------------------------------------------------------------------------------------------ GEMM

LLAMA_LAYERS = {  # name: (N, K) of y[M, N] = x[M, K] @ W[N, K]ᵀ
    "llama3-8b.qkv": (6144, 4096),
    "llama3-8b.o": (4096, 4096),
    "llama3-8b.gate_up": (28672, 4096),
    "llama3-8b.down": (4096, 14336),
    "llama3-70b.qkv": (10240, 8192),
    "llama3-70b.o": (8192, 8192),
    "llama3-70b.gate_up": (57344, 8192),
    "llama3-70b.down": (8192, 28672),
}


def bench_gemm(rec):
    def best():  # the config of whichever kernel matmul dispatched to last
        return (tma_best if dispatch["tma"] else ptr_best)()
    tma_best = lambda: gemm._matmul_tma_kernel.best_config
    ptr_best = lambda: gemm._matmul_kernel.best_config
    dispatch = {"tma": False}
    cases = [("square", n, n, n, dt, False) for n in (4096, 8192) for dt in ("bf16", "fp16")]
    for name, (n, k) in LLAMA_LAYERS.items():
        for m in (256, 1024, 4096, 8192):
            cases.append((name, m, n, k, "bf16", True))
    for name in ("llama3-8b.qkv", "llama3-8b.o", "llama3-8b.gate_up", "llama3-8b.down"):
        n, k = LLAMA_LAYERS[name]
        for m in (1, 16, 64):
            cases.append((name + ".decode", m, n, k, "bf16", True))
    for name, m, n, k, dt, weight_layout in cases:
        dtype = DT[dt]
        a = randn(m, k, dtype=dtype)
        b = randn(n, k, dtype=dtype).t() if weight_layout else randn(k, n, dtype=dtype)
        c = torch.empty((m, n), device="cuda", dtype=dtype)
        dispatch["tma"] = (m > 64 and gemm.flops(m, n, k) >= gemm._TMA_MIN_FLOPS
                           and gemm._tma_eligible(a, b, c))
        variants = []
        if m > 64 and not dispatch["tma"] and gemm._tma_eligible(a, b, c):
            tma = lambda: gemm._launch_tma(a, b, c)
            variants += [("triton-tma", tma), ("triton-tma(graph)", tma)]
        if dispatch["tma"] and m in (4096, 8192) and name in ("square", "llama3-8b.o",
                                                                "llama3-70b.gate_up"):
            # Same-run comparison with the pointer kernel and the warp-specialised TMA loop.
            variants.append(("triton-ptr", lambda: gemm._launch_pointer(a, b, c)))
            variants.append(("triton-tma-ws", lambda: gemm._launch_tma(a, b, c, True)))
        try:
            pair(rec, "gemm", f"{name} M={m} N={n} K={k}", dt, gemm.flops(m, n, k),
                 gemm.hbm_bytes(m, n, k, 2, 2),
                 lambda: gemm.matmul(a, b), [("torch.matmul", lambda: torch.matmul(a, b))],
                 config_of=best, variants=variants)
            err = (gemm.matmul(a, b).float() - torch.matmul(a, b).float()).norm() \
                / torch.matmul(a, b).float().norm()
            print(f"  rel. difference triton vs torch.matmul: {err.item():.2e}")
        except Exception as exc:  # keep measuring: record the pointer kernel instead
            print(f"  FAILED {name} M={m}: {type(exc).__name__}: {str(exc)[:300]}")
            dispatch["tma"] = False
            pair(rec, "gemm", f"{name} M={m} N={n} K={k} (pointer kernel)", dt,
                 gemm.flops(m, n, k), gemm.hbm_bytes(m, n, k, 2, 2),
                 lambda: gemm._launch_pointer(a, b, c),
                 [("torch.matmul", lambda: torch.matmul(a, b))], config_of=best)
        del a, b, c
    # fp8 e4m3: weight as W.t() (K-major), the layout torch._scaled_mm requires.
    for n in (4096, 8192):
        a = randn(n, n, dtype=torch.float8_e4m3fn)
        b = randn(n, n, dtype=torch.float8_e4m3fn).t()
        one = torch.ones((), device="cuda")
        dispatch["tma"] = gemm._tma_eligible(a, b, torch.empty((n, n), device="cuda",
                                                                dtype=torch.bfloat16))
        ref = torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16).float()
        err = (gemm.matmul(a, b).float() - ref).norm() / ref.norm()
        print(f"  rel. difference triton vs torch._scaled_mm: {err.item():.2e}")
        try:
            pair(rec, "gemm", f"square M={n} N={n} K={n}", "fp8", gemm.flops(n, n, n),
                 gemm.hbm_bytes(n, n, n, 1, 2), lambda: gemm.matmul(a, b),
                 [("torch._scaled_mm", lambda: torch._scaled_mm(
                     a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16))],
                 config_of=best)
        except Exception as exc:
            print(f"  FAILED fp8 {n}: {type(exc).__name__}: {str(exc)[:300]}")
        del a, b
    rec.note("clocks_after_gemm", nvidia_smi("clocks.sm,clocks.mem,power.draw,temperature.gpu"))
    torch.cuda.empty_cache()


# ------------------------------------------------------------------------------- prefill attention


def bench_prefill(rec):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    best = lambda: attention_prefill._attn_fwd_kernel.best_config
    cases = [(b, s, 32, 8, 128, causal, "bf16")
             for b, s in ((8, 1024), (4, 4096), (2, 8192), (1, 16384)) for causal in (True, False)]
    cases += [(4, 4096, 16, 16, 64, True, "bf16"), (4, 4096, 32, 8, 128, True, "fp16")]
    for b, s, hq, hkv, d, causal, dt in cases:
        dtype = DT[dt]
        q = randn(b, hq, s, d, dtype=dtype)
        k = randn(b, hkv, s, d, dtype=dtype)
        v = randn(b, hkv, s, d, dtype=dtype)
        # The vendor gets its KV heads expanded ahead of time (not timed).
        ke, ve = k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1)

        def sdpa(backend=None):
            if backend is None:
                return lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=causal)

            def run():
                with sdpa_kernel(backend):
                    return F.scaled_dot_product_attention(q, ke, ve, is_causal=causal)
            return run

        pair(rec, "prefill", f"B={b} S={s} Hq={hq} Hkv={hkv} D={d} causal={causal}", dt,
             attention_prefill.flops(b, s, hq, d, causal),
             attention_prefill.hbm_bytes(b, s, hq, hkv, d, 2),
             lambda: attention_prefill.attention(q, k, v, causal=causal),
             [("sdpa(default)", sdpa()), ("sdpa(flash)", sdpa(SDPBackend.FLASH_ATTENTION)),
              ("sdpa(cudnn)", sdpa(SDPBackend.CUDNN_ATTENTION))],
             config_of=best)
        del q, k, v, ke, ve
    torch.cuda.empty_cache()


# ------------------------------------------------------------------------ copy bandwidth and KV copy


def measure_copy_bandwidth(rec) -> float:
    """Device-to-device Tensor.copy_ of 1 GiB, counting bytes read + written."""
    n_bytes = 2**30
    src = randn(n_bytes // 2, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    t = timed(lambda: dst.copy_(src))
    bw = 2 * n_bytes / t
    r = dict(section="stream", case="copy 1 GiB", impl="Tensor.copy_", dtype="bf16", time_s=t,
             flops=0, hbm_bytes=2 * n_bytes, achieved_bytes_per_s=bw)
    rec.add(**r)
    print(fmt_row(r), flush=True)
    rec.note("copy_bandwidth_bytes_per_s", f"{bw:.4e}")
    return bw


def bench_stream(rec, copy_bw):
    n_bytes = 2**30
    src = randn(n_bytes // 2, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    pair(rec, "stream", "copy 1 GiB", "bf16", 0, kv_copy.stream_copy_hbm_bytes(n_bytes),
         lambda: kv_copy.stream_copy(src, dst), [("Tensor.copy_", lambda: dst.copy_(src))])
    pair(rec, "stream", "read 1 GiB", "bf16", 0, kv_copy.stream_read_hbm_bytes(n_bytes),
         lambda: kv_copy.stream_read(src), [("Tensor.sum", lambda: src.sum(dtype=torch.float32))])
    pair(rec, "stream", "write 1 GiB", "bf16", 0, kv_copy.stream_write_hbm_bytes(n_bytes),
         lambda: kv_copy.stream_write(dst, 0.5), [("Tensor.fill_", lambda: dst.fill_(0.5))])
    del src, dst
    # Paged cache of 32768 blocks × [16 tokens, 8 kv-heads, 128] bf16 (32 KiB a block, 1 GiB).
    n_blocks, block_shape = 32768, (16, 8, 128)
    cache = randn(n_blocks, *block_shape, dtype=torch.bfloat16)
    block_bytes = math.prod(block_shape) * 2
    for n_ids in (256, 8192):
        ids = torch.randperm(n_blocks, device="cuda")[:n_ids]
        ids32 = ids.to(torch.int32)
        staging = torch.empty((n_ids, *block_shape), device="cuda", dtype=torch.bfloat16)
        nb = kv_copy.blocks_hbm_bytes(n_ids, block_bytes)
        pair(rec, "kv_copy", f"gather {n_ids} x 32 KiB blocks", "bf16", 0, nb,
             lambda: kv_copy.gather_blocks(cache, ids32, out=staging),
             [("index_select", lambda: torch.index_select(cache, 0, ids, out=staging))])
        pair(rec, "kv_copy", f"scatter {n_ids} x 32 KiB blocks", "bf16", 0, nb,
             lambda: kv_copy.scatter_blocks(staging, cache, ids32),
             [("index_copy_", lambda: cache.index_copy_(0, ids, staging))])
    del cache, staging
    torch.cuda.empty_cache()


# -------------------------------------------------------------------------------- decode attention


def make_cache(b, ctx, hkv, d, dtype, paged, block_size=16):
    if not paged:
        k = randn(b, hkv, ctx, d, dtype=dtype)
        v = randn(b, hkv, ctx, d, dtype=dtype)
        return k, v, None
    per_seq = triton.cdiv(ctx, block_size)
    n_blocks = b * per_seq
    k = randn(n_blocks, block_size, hkv, d, dtype=dtype)
    v = randn(n_blocks, block_size, hkv, d, dtype=dtype)
    table = torch.randperm(n_blocks, device="cuda").to(torch.int32).view(b, per_seq)
    return k, v, table


def bench_decode(rec, copy_bw):
    best = lambda: attention_decode._decode_split_kernel.best_config
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    cases = [(32, 16384, 32, 8, 128, paged, None) for paged in (False, True)]
    cases += [(32, 16384, 32, 8, 128, False, s) for s in (1, 2, 3, 4, 6, 8, 16)]
    cases += [(b, ctx, 32, 8, 128, paged, None)
              for b, ctx in ((1, 16384), (8, 8192), (64, 4096), (128, 2048), (256, 1024))
              for paged in (False, True)]
    cases += [(32, 16384, 32, 32, 128, False, None), (32, 8192, 64, 8, 128, True, None),
              (32, 16384, 32, 8, 64, False, None)]
    cache_key = None
    for b, ctx, hq, hkv, d, paged, splits in cases:
        if cache_key != (b, ctx, hkv, d, paged):
            k = v = table = None
            torch.cuda.empty_cache()
            k, v, table = make_cache(b, ctx, hkv, d, torch.bfloat16, paged)
            cache_key = (b, ctx, hkv, d, paged)
        q = randn(b, hq, d, dtype=torch.bfloat16)
        lens = torch.full((b,), ctx, device="cuda", dtype=torch.int32)
        n_splits = splits or attention_decode.default_num_splits(b, hkv, ctx, sms)
        layout = "paged16" if paged else "contig"
        vendors = []
        if not paged and hq == hkv:
            vendors = [("sdpa(default)", lambda: F.scaled_dot_product_attention(
                q[:, :, None], k, v))]
        elif not paged:
            vendors = [("sdpa(enable_gqa)", lambda: F.scaled_dot_product_attention(
                q[:, :, None], k, v, enable_gqa=True))]
        run = lambda: attention_decode.decode_attention(q, k, v, lens, table,
                                                        num_splits=n_splits)
        small = b * ctx <= 8 * 8192
        pair(rec, "decode",
             f"B={b} ctx={ctx} Hq={hq} Hkv={hkv} D={d} {layout} splits={n_splits}"
             + ("" if splits else "(auto)"), "bf16",
             attention_decode.flops(b, ctx, hq, d),
             attention_decode.hbm_bytes(b, ctx, hq, hkv, d, 2),
             run, vendors, config_of=best, vendor_rate=copy_bw,
             variants=[("triton(graph)", run)] if small else [])
        if small and b == 1 and not paged:
            import cProfile
            import pstats
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(200):
                run()
            prof.disable()
            torch.cuda.synchronize()
            pstats.Stats(prof).sort_stats("tottime").print_stats(12)
    k = v = table = None
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "."), help="directory for the CSV")
    ap.add_argument("--only", default="gemm,prefill,stream,decode",
                    help="comma-separated sections: gemm, prefill, stream, decode")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_kernels.py needs a CUDA GPU")
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    rec = Recorder(args.out)
    sections = set(args.only.split(","))
    t0 = time.time()
    print(f"# {rec.env['gpu']}  torch {torch.__version__}  triton {triton.__version__}")
    print(f"# {rec.env['driver_and_clocks_at_start']}")
    copy_bw = measure_copy_bandwidth(rec)
    if "stream" in sections:
        bench_stream(rec, copy_bw)
    if "decode" in sections:
        bench_decode(rec, copy_bw)
    if "prefill" in sections:
        bench_prefill(rec)
    if "gemm" in sections:
        bench_gemm(rec)
    rec.note("clocks_at_end", nvidia_smi("clocks.sm,clocks.mem,power.draw,temperature.gpu"))
    rec.note("wall_s", f"{time.time() - t0:.0f}")
    rec.write()
    print(f"\nwrote {rec.path} ({len(rec.rows)} rows, {time.time() - t0:.0f} s)")
    print("\nSummary (triton rows; frac = vendor time / triton time, or / copy bandwidth):")
    for r in rec.rows:
        if r["impl"] == "triton":
            print(fmt_row(r))


if __name__ == "__main__":
    main()
