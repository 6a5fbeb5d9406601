"""W4A16 GEMM: y[M, N] = x[M, K] @ dequant(W)[N, K]ᵀ with int4 weights and per-group fp16 scales, in Triton.

Anatomy: ``_w4a16_kernel`` → ``gemm_w4a16`` (checks, allocates, launches) → ``quantize`` / ``dequantize`` /
``reference`` (torch). ``flops`` and ``hbm_bytes`` turn a measured time into achieved rates.

Format (GPTQ/AWQ-style weight-only int4, symmetric as ``simulator/quant.py`` counts it): W is stored like
``nn.Linear`` ([N, K]); each row's K is cut into groups of ``group_size`` (default 128) with one fp16
scale; codes c ∈ [0, 15] with w = (c − 8) · scale, packed two per byte along K (element k in byte k // 2,
low nibble first). Layouts: w_packed [N, K / 2] uint8, scales [N, K / group_size] fp16.

Each program owns a BLOCK_M × BLOCK_N output tile and walks K in BLOCK_K steps (BLOCK_K divides the group
size, so one scale per row per step): load the packed [BLOCK_N, BLOCK_K / 2] bytes, unpack in registers,
scale, and feed the tensor cores in x's dtype with fp32 accumulation. HBM traffic: x, the packed weights
and scales once per M tile, y once.
"""

import torch
import triton
import triton.language as tl

from kernels._common import AUTOTUNE
from kernels._common import INTERPRET as _INTERPRET
from kernels._common import codes_as_float, require_gpu
from simulator.kinds import gemm_w4a16 as _kind

GROUP_SIZE = _kind.GROUP_SIZE


def _gpu_configs() -> list[triton.Config]:
    return [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
            for bm, bn, bk, w, s in _kind.TRITON_CONFIGS]


def _prune(configs, named_args, **kwargs):
    """Skinny M (decode) only tries the smallest M tile: larger ones just multiply padding."""
    m = named_args["M"]
    small = [c for c in configs if c.kwargs["BLOCK_M"] <= max(16, triton.next_power_of_2(m))]
    return small or configs[:1]


if _INTERPRET:
    _CONFIGS = [triton.Config({"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 32}, num_warps=4)]
elif not AUTOTUNE:
    _CONFIGS = _gpu_configs()[:1]
else:
    _CONFIGS = _gpu_configs()


@triton.jit
def k_step(x_ptr, w_ptr, s_ptr, offs_m, offs_n, M, N, stride_xm, stride_wn, stride_sn, k0, GROUP: tl.constexpr,
           DOT_F32: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    """One BLOCK_K step's operands for rows ``offs_m`` of x and ``offs_n`` of W: x's even and odd elements
    [BLOCK_M, BLOCK_K / 2], the weights' low and high nibble planes [BLOCK_N, BLOCK_K / 2] as signed codes
    c − 8 in x's dtype (exact; no conversion before the dot), and the rows' group scale [BLOCK_N] (BLOCK_K
    divides the group). fp32 under the interpreter, which has no 16-bit dot or bf16 arithmetic."""
    wt = tl.float16 if DOT_F32 else x_ptr.dtype.element_ty
    n_ok = offs_n < N
    x = tl.load(x_ptr + offs_m[:, None].to(tl.int64) * stride_xm + (k0 + tl.arange(0, BLOCK_K))[None, :],
                mask=(offs_m < M)[:, None], other=0.0)
    packed = tl.load(w_ptr + offs_n[:, None].to(tl.int64) * stride_wn + (k0 // 2 + tl.arange(0, BLOCK_K // 2))[None, :],
                     mask=n_ok[:, None], other=0).to(tl.int16)
    scale = tl.load(s_ptr + offs_n.to(tl.int64) * stride_sn + k0 // GROUP, mask=n_ok, other=0.0)
    x_even, x_odd = tl.split(tl.reshape(x, (BLOCK_M, BLOCK_K // 2, 2)))
    w_even = codes_as_float(packed, 0, 4, 8.0, wt)
    w_odd = codes_as_float(packed, 4, 4, 8.0, wt)
    if DOT_F32:
        x_even, x_odd, w_even, w_odd = x_even.to(tl.float32), x_odd.to(tl.float32), w_even.to(tl.float32), \
            w_odd.to(tl.float32)
    return x_even, x_odd, w_even, w_odd, scale


# reset_to_zero: split-K adds into y, and the autotuner runs every config on the same y.
@triton.autotune(configs=_CONFIGS, key=["M", "N", "K", "SPLIT_K"],
                 prune_configs_by={"early_config_prune": _prune}, reset_to_zero=["y_ptr"])
@triton.jit
def _w4a16_kernel(x_ptr, w_ptr, s_ptr, y_ptr, M, N, K, k_per_split,
                  stride_xm, stride_wn, stride_sn, stride_ym,
                  GROUP: tl.constexpr, DOT_F32: tl.constexpr, SPLIT_K: tl.constexpr,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """Program (m tile, n tile, k split). SPLIT_K > 1: each split adds its partial sum into an fp32 y.

    Byte j of a weight row holds elements 2j (low nibble) and 2j + 1 (high), so the program loads the
    [BLOCK_N, BLOCK_K / 2] bytes once, turns each nibble plane into a tile in x's dtype
    (``kernels._common.codes_as_float``, in ``k_step``) and
    multiplies it by the matching half of x (x[:, 0::2] and x[:, 1::2], split from one contiguous load):
    no interleaving shuffles, no conversions. Skinny tiles (BLOCK_M ≤ 32) apply the group scale to the
    [BLOCK_M, BLOCK_N] partial product instead of the weights (fewer multiplies).
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_k = tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    k_lo = pid_k * k_per_split
    for k0 in range(k_lo, k_lo + k_per_split, BLOCK_K):
        x_even, x_odd, w_even, w_odd, scale = k_step(x_ptr, w_ptr, s_ptr, offs_m, offs_n, M, N, stride_xm,
                                                     stride_wn, stride_sn, k0, GROUP, DOT_F32, BLOCK_M, BLOCK_K)
        if BLOCK_M <= 32:
            part = tl.dot(x_even, tl.trans(w_even))
            part = tl.dot(x_odd, tl.trans(w_odd), part)
            acc += part * scale[None, :].to(tl.float32)
        else:
            s_col = scale[:, None].to(w_even.dtype)
            acc = tl.dot(x_even, tl.trans(w_even * s_col), acc)
            acc = tl.dot(x_odd, tl.trans(w_odd * s_col), acc)
    y_ptrs = y_ptr + offs_m[:, None].to(tl.int64) * stride_ym + offs_n[None, :]
    mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
    if SPLIT_K == 1:
        tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        tl.atomic_add(y_ptrs, acc, mask=mask)


def split_k(m: int, n: int, k: int, n_sms: int) -> int:
    """K splits for skinny M: enough (n-tile × split) programs for two per SM with the kernel's smallest
    N tile; each split at least 512 of K; a power of two dividing K's 128-steps."""
    return int(_kind.triton_split_k(m, n, k, n_sms))


def quantize(w: torch.Tensor, group_size: int = GROUP_SIZE):
    """w [N, K] float → (packed [N, K/2] uint8, scales [N, K/group_size] fp16), symmetric int4."""
    N, K = w.shape
    if K % group_size or group_size % 2:
        raise ValueError(f"group_size ({group_size}) must be even and divide K ({K})")
    g = w.float().unflatten(1, (K // group_size, group_size))
    scale = (g.abs().amax(-1) / 7.0).clamp_min(1e-8).half()
    codes = (g / scale.float()[..., None]).round().clamp(-8, 7).to(torch.int32) + 8
    codes = codes.flatten(1).unflatten(1, (K // 2, 2))
    packed = (codes[..., 0] | (codes[..., 1] << 4)).to(torch.uint8)
    return packed, scale


def dequantize(packed: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """[N, K] fp32 weights the kernel multiplies by."""
    c = torch.stack([packed.to(torch.int32) & 15, packed.to(torch.int32) >> 4], -1).flatten(1)
    group = c.shape[1] // scales.shape[1]
    return ((c - 8).float().unflatten(1, (-1, group)) * scales.float()[..., None]).flatten(1)


def check(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor) -> tuple[int, int, int, int, int]:
    """Validate a W4A16 call; (M, N, K, group size, K splits)."""
    if x.ndim != 2 or x.dtype not in (torch.float16, torch.bfloat16) or x.stride(1) != 1:
        raise ValueError(f"x must be [M, K] fp16/bf16 with unit stride in K, got {x.dtype} {tuple(x.shape)}")
    require_gpu("x", x)
    M, K = x.shape
    if packed.dtype != torch.uint8 or packed.ndim != 2 or packed.shape[1] * 2 != K or packed.stride(1) != 1:
        raise ValueError(f"packed must be uint8 [N, K/2 = {K // 2}], got {packed.dtype} {tuple(packed.shape)}")
    N = packed.shape[0]
    if scales.dtype != torch.float16 or scales.shape[0] != N or scales.ndim != 2 or K % scales.shape[1]:
        raise ValueError(f"scales must be fp16 [N={N}, K/group], got {scales.dtype} {tuple(scales.shape)}")
    group = K // scales.shape[1]
    step = 32 if _INTERPRET else 128  # the largest BLOCK_K: a K step never straddles two groups
    if group % step:
        raise ValueError(f"group_size must be a multiple of {step}, got {group}")
    n_sms = torch.cuda.get_device_properties(x.device).multi_processor_count if x.is_cuda else 4
    return M, N, K, group, split_k(M, N, K, n_sms)


def gemm_w4a16(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """y = x @ dequant(packed, scales)ᵀ. x: [M, K] fp16/bf16 (unit stride in K); packed: [N, K/2] uint8;
    scales: [N, K/G] fp16 with G a multiple of 128 (the largest BLOCK_K). Returns [M, N]. Skinny M splits
    K (``split_k``) into an fp32 buffer then casts."""
    M, N, K, group, splits = check(x, packed, scales)
    y = (torch.zeros if splits > 1 else torch.empty)((M, N), device=x.device,
                                                     dtype=torch.float32 if splits > 1 else x.dtype)

    def grid(meta):
        return (triton.cdiv(M, meta["BLOCK_M"]), triton.cdiv(N, meta["BLOCK_N"]), splits)

    _w4a16_kernel[grid](x, packed, scales, y, M, N, K, K // splits, x.stride(0), packed.stride(0), scales.stride(0),
                        y.stride(0), GROUP=group, DOT_F32=_INTERPRET and x.dtype == torch.bfloat16, SPLIT_K=splits)
    return y if splits == 1 else y.to(x.dtype)


def reference(x, packed, scales, dtype=torch.float32) -> torch.Tensor:
    return x.to(dtype) @ dequantize(packed, scales).to(dtype).t()


def flops(m: int, n: int, k: int) -> int:
    return int(_kind.flops(m, n, k))


def hbm_bytes(m: int, n: int, k: int, group_size: int = GROUP_SIZE) -> int:
    """x read once, packed weights + scales read once, y written once (bf16)."""
    return int(_kind.hbm_bytes(m, n, k, group_size))
