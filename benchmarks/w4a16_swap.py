"""Candidate W4A16 kernel for skinny M (decode), to be measured: the int4 weights as the dot's first operand
(yᵀ = W · xᵀ), as ``quant_decode_tm.py`` does for the KV cache. Not measured on a GPU yet; run it there with

    python benchmarks/w4a16_swap.py OUT_DIR      # beside kernels.gemm_w4a16 and cuBLAS bf16

``kernels.gemm_w4a16`` multiplies x [M, K] by the dequantized weights as the second operand, so every fp16
nibble plane of a [BLOCK_N, BLOCK_K / 2] weight tile is stored to shared memory for the tensor cores; at
M ≤ 16 it reaches 0.78-1.23 TB/s of packed bytes (H200, 2026-12-01). With W first, Triton moves the layout
change above the unpacking: the packed bytes cross shared memory and the planes are built in registers in
the operand layout (``--ttgir`` prints what is stored, compiled for sm_90 without a GPU). The output tile
comes out transposed, [BLOCK_N, BLOCK_M], and is stored as such; M is padded to 16 (a warp-group dot's
N). Format, scales, K splits and byte counts are ``kernels.gemm_w4a16``'s.
"""

import csv
import json
import re
import sys
from pathlib import Path

import torch
import triton
import triton.language as tl

from kernels import gemm_w4a16 as w4
from kernels._common import INTERPRET


def _configs():
    if INTERPRET:
        return [triton.Config({"BLOCK_N": 32, "BLOCK_K": 32}, num_warps=4)]
    return [triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
            for bn in (64, 128, 256) for bk in (64, 128) for w in (4, 8) for s in (3, 4)]


@triton.autotune(configs=_configs(), key=["M", "N", "K", "SPLIT_K"], reset_to_zero=["y_ptr"])
@triton.jit
def _swap_kernel(x_ptr, w_ptr, s_ptr, y_ptr, M, N, K, k_per_split, stride_xm, stride_wn, stride_sn, stride_ym,
                 GROUP: tl.constexpr, DOT_F32: tl.constexpr, SPLIT_K: tl.constexpr, BLOCK_M: tl.constexpr,
                 BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """Program (n tile, k split): yᵀ[BLOCK_N, BLOCK_M] = Σ_k W[n, k] · x[m, k], the nibble planes of W against
    the matching halves of x (``kernels.gemm_w4a16``'s split), the group scale on the partial product."""
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    acc = tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32)
    for k0 in range(pid_k * k_per_split, (pid_k + 1) * k_per_split, BLOCK_K):
        x_even, x_odd, w_even, w_odd, scale = w4.k_step(x_ptr, w_ptr, s_ptr, offs_m, offs_n, M, N, stride_xm,
                                                        stride_wn, stride_sn, k0, GROUP, DOT_F32, BLOCK_M, BLOCK_K)
        part = tl.dot(w_even, tl.trans(x_even))
        part = tl.dot(w_odd, tl.trans(x_odd), part)
        acc += part * scale[:, None].to(tl.float32)
    y_ptrs = y_ptr + offs_m[None, :].to(tl.int64) * stride_ym + offs_n[:, None]
    mask = (offs_n < N)[:, None] & (offs_m < M)[None, :]
    if SPLIT_K == 1:
        tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        tl.atomic_add(y_ptrs, acc, mask=mask)


def gemm_w4a16_swap(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``w4.gemm_w4a16`` for M ≤ 64 with the weights as the first operand; same inputs, checks and splits."""
    M, N, K, group, splits = w4.check(x, packed, scales)
    if M > 64:
        raise ValueError(f"the swapped kernel is for skinny M (decode): M must be ≤ 64, got {M}")
    y = (torch.zeros if splits > 1 else torch.empty)((M, N), device=x.device,
                                                     dtype=torch.float32 if splits > 1 else x.dtype)

    def grid(meta):
        return (triton.cdiv(N, meta["BLOCK_N"]), splits)

    _swap_kernel[grid](x, packed, scales, y, M, N, K, K // splits, x.stride(0), packed.stride(0), scales.stride(0),
                       y.stride(0), GROUP=group, DOT_F32=INTERPRET and x.dtype == torch.bfloat16, SPLIT_K=splits,
                       BLOCK_M=max(16, triton.next_power_of_2(M)))
    return y if splits == 1 else y.to(x.dtype)


def ttgir_allocs(block_n: int = 128, block_k: int = 128) -> list[str]:
    """Compile for sm_90 here (no GPU needed); the tensor types stored to shared memory."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = _swap_kernel.fn
    sig = {n: "i32" for n in fn.arg_names}
    sig.update({"x_ptr": "*bf16", "w_ptr": "*u8", "s_ptr": "*fp16", "y_ptr": "*bf16"})
    consts = dict(GROUP=128, DOT_F32=False, SPLIT_K=1, BLOCK_M=16, BLOCK_N=block_n, BLOCK_K=block_k)
    sig.update({k: "constexpr" for k in consts})
    src = ASTSource(fn=fn, signature=sig, constexprs={(fn.arg_names.index(k),): v for k, v in consts.items()})
    ir = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, "num_stages": 3}).asm["ttgir"]
    return re.findall(r"local_alloc %\S+ : \(tensor<([0-9x]+\w+),", ir)


def main(out: Path):
    """CUDA-graph replay medians, burst: cuBLAS bf16, ``kernels.gemm_w4a16`` and this kernel at decode shapes."""
    rows = []
    for m, n, k in [(1, 4096, 4096), (1, 28672, 4096), (16, 28672, 4096), (16, 4096, 14336), (64, 6144, 4096)]:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5
        packed, scales = w4.quantize(w)
        exact = w4.reference(x, packed, scales)
        for name, run, nbytes in (("cublas_bf16", lambda: x @ w.t(), 2 * (m * k + n * k + m * n)),
                                  ("w4a16", lambda: w4.gemm_w4a16(x, packed, scales), w4.hbm_bytes(m, n, k)),
                                  ("w4a16_swap", lambda: gemm_w4a16_swap(x, packed, scales), w4.hbm_bytes(m, n, k))):
            err = ((run().float() - exact).norm() / exact.norm()).item()
            t = triton.testing.do_bench_cudagraph(run, rep=40) * 1e-3
            rows.append((name, m, n, k, t, nbytes / t, err))
            print(f"m{m} n{n} k{k} {name:12s} {t * 1e6:8.1f} us {nbytes / t / 1e9:6.0f} GB/s err {err:.1e}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "w4a16_swap.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("variant", "m", "n", "k", "median_s", "bytes_per_s", "rel_err")] + rows)


if __name__ == "__main__":
    if sys.argv[1:] == ["--ttgir"]:  # one JSON line (TRITON_INTERPRET unset)
        print(json.dumps(ttgir_allocs()))
    else:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("."))
