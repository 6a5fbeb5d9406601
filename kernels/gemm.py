"""Dense GEMM, C = A @ B, in Triton: the matrix-multiply workload of every linear layer.

Anatomy (as in Triton's matmul tutorial): ``_matmul_kernel`` → ``matmul`` (checks, allocates,
launches) → ``reference`` (fp32 torch). ``flops`` and ``hbm_bytes`` give the counts that turn a
measured time into an achieved rate. Nothing runs at import.

Each program computes one BLOCK_M × BLOCK_N tile of C, stepping through K in BLOCK_K slices with an
fp32 accumulator. Tiles are visited in groups of GROUP_M rows ("grouped ordering") so that programs
running at the same time share A row-panels and B column-panels in L2. The autotuner picks from
large tiles for prefill-sized M and thin tiles (BLOCK_M 16..64) for decode-sized M (1..64).

On Hopper (sm_90), for fp16/bf16 problems with M > 64 and at least TRITON_PERSISTENT_MIN_FLOPS with
16-byte-aligned operands, ``matmul`` runs a second kernel, ``_matmul_tma_kernel``: persistent (one
program per SM walks the tiles in grouped order) and fed by the bulk tensor copy engine (TMA
descriptors, which also zero-fill ragged edges), as in Triton's persistent-matmul tutorial. Measured
on an H100 with Triton 3.6 (benchmarks/results/kernels_nvidia-h100-80gb-hbm3.csv): 88-109% of cuBLAS
for fp16/bf16 M >= 4096, where the pointer kernel reached 74-94% in the same run. Smaller problems
and fp8 run the pointer kernel: its host launch costs about half the TMA launch (~70 vs ~140 us per
call on that host: Triton encodes the descriptors at every launch), which dominates GEMMs under
~150 us, and on fp8 it measured faster (93-95% of torch._scaled_mm vs 79%).

The dispatch rule, both kernels' autotune candidates and the FLOP/byte counts live once, torch-free,
in ``simulator.kinds.gemm``: the performance model reads the same rules, so it times the kernel and
tile that actually run.

Set HWPERF_AUTOTUNE=0 to skip autotuning (one config per kernel and shape class): for quick GPU
test runs, where tuning every test shape costs minutes.
"""

import torch
import triton
import triton.language as tl

from kernels._common import AUTOTUNE as _AUTOTUNE
from kernels._common import INTERPRET as _INTERPRET
from kernels._common import require_gpu
from simulator.kinds import gemm as _gemm_kind

try:  # host-side TMA descriptors (Triton >= 3.4)
    from triton.tools.tensor_descriptor import TensorDescriptor as _TensorDescriptor
except ImportError:
    _TensorDescriptor = None

_FP8 = torch.float8_e4m3fn
_SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, _FP8)
# Tile-rows per group of the grouped ordering (both kernels): an L2 reuse knob, not a tile shape,
# so the model does not need it.
_GROUP_M = 8


def _gpu_configs() -> list[triton.Config]:
    """Candidate tiles for sm_80/sm_90, from the table the model reads (TRITON_POINTER_CONFIGS, which
    says why each group is there). Shared memory per stage = (BM + BN) · BK · in_bytes."""
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": _GROUP_M},
                      num_warps=warps, num_stages=stages)
        for bm, bn, bk, warps, stages in _gemm_kind.TRITON_POINTER_CONFIGS
    ]


def _prune_configs(configs, named_args, **kwargs):
    """Keep thin tiles for small M and wide tiles for large M (the rule the model applies when it
    picks the autotuner's tile): halves autotuning time."""
    m = named_args["M"]
    kept = [c for c in configs if _gemm_kind.triton_tile_offered(m, c.kwargs["BLOCK_M"])]
    kept = kept or configs
    return kept if _AUTOTUNE else kept[:1]


if _INTERPRET:
    # The interpreter cannot benchmark configs (autotuning times them through a GPU driver): one config.
    _CONFIGS = [
        triton.Config({"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 32, "GROUP_M": 4}, num_warps=4)
    ]
    _PRUNE = None
else:
    _CONFIGS = _gpu_configs()
    _PRUNE = {"early_config_prune": _prune_configs}


@triton.autotune(configs=_CONFIGS, key=["M", "N", "K"], prune_configs_by=_PRUNE)
@triton.heuristics({"EVEN_K": lambda args: args["K"] % args["BLOCK_K"] == 0})
@triton.jit
def _matmul_kernel(
    a_ptr, b_ptr, c_ptr,
    M, N, K,
    stride_am, stride_ak,
    stride_bk, stride_bn,
    stride_cm, stride_cn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    EVEN_K: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    # Grouped ordering: program ids walk down GROUP_M tile-rows before moving right, so a wave of
    # programs touches GROUP_M A-panels and few B-panels instead of one A-panel and all of B.
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m

    # Row/column indices wrap modulo M/N so loads stay in bounds without masks; the wrapped rows
    # compute values that the masked store below discards.
    offs_am = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)) % M
    offs_bn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N
    offs_am = tl.max_contiguous(tl.multiple_of(offs_am, BLOCK_M), BLOCK_M)
    offs_bn = tl.max_contiguous(tl.multiple_of(offs_bn, BLOCK_N), BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + offs_am[:, None] * stride_am + offs_k[None, :] * stride_ak
    b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_bn[None, :] * stride_bn

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        if EVEN_K:
            a = tl.load(a_ptrs)
            b = tl.load(b_ptrs)
        else:
            # Ragged K: zero-fill the slice past K so it adds nothing to the dot product.
            k_left = K - k * BLOCK_K
            a = tl.load(a_ptrs, mask=offs_k[None, :] < k_left, other=0.0)
            b = tl.load(b_ptrs, mask=offs_k[:, None] < k_left, other=0.0)
        if DOT_F32:
            # Interpreter only: it computes bf16 on raw bits, so bf16 dots come out wrong; upcast first.
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc)
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk

    offs_cm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_cn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    c_ptrs = c_ptr + offs_cm[:, None] * stride_cm + offs_cn[None, :] * stride_cn
    c_mask = (offs_cm[:, None] < M) & (offs_cn[None, :] < N)
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=c_mask)


def _set_tma_block_shapes(nargs):
    bm, bn, bk = nargs["BLOCK_M"], nargs["BLOCK_N"], nargs["BLOCK_K"]
    nargs["a_desc"].block_shape = [bm, bk]
    nargs["b_desc"].block_shape = [bn, bk] if nargs["B_KMAJOR"] else [bk, bn]
    nargs["c_desc"].block_shape = [bm, bn // 2] if nargs["EPILOGUE_SUBTILE"] else [bm, bn]


def _tma_candidates() -> list[triton.Config]:
    """Hopper persistent-TMA candidates, from TRITON_PERSISTENT_CONFIGS (the table the model reads);
    the pre-hook sets descriptor block shapes per config."""
    return [
        triton.Config({"BLOCK_M": _gemm_kind.TRITON_PERSISTENT_BLOCK_M, "BLOCK_N": bn, "BLOCK_K": bk,
                       "GROUP_M": _GROUP_M, "EPILOGUE_SUBTILE": subtile},
                      num_warps=warps, num_stages=stages, pre_hook=_set_tma_block_shapes)
        for bn, bk, warps, stages, subtile in _gemm_kind.TRITON_PERSISTENT_CONFIGS
    ]


def _tma_configs() -> list[triton.Config]:
    configs = _tma_candidates()
    return configs if _AUTOTUNE and not _INTERPRET else configs[:1]


@triton.jit
def _tile_coords(tile_id, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    """Grouped ordering (see _matmul_kernel) for a persistent loop's tile index."""
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = tile_id // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((tile_id % num_pid_in_group) % group_size_m)
    pid_n = (tile_id % num_pid_in_group) // group_size_m
    return pid_m, pid_n


@triton.autotune(configs=_tma_configs(), key=["M", "N", "K", "B_KMAJOR"])
@triton.jit
def _matmul_tma_kernel(
    a_desc, b_desc, c_desc,
    M, N, K,
    B_KMAJOR: tl.constexpr, NUM_SMS: tl.constexpr, WARP_SPECIALIZE: tl.constexpr, FLATTEN: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    EPILOGUE_SUBTILE: tl.constexpr,
):
    """Persistent: program p computes tiles p, p + NUM_SMS, … . TMA loads zero-fill past M, N, K
    and TMA stores clip there, so ragged shapes need no masks."""
    start_pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    k_tiles = tl.cdiv(K, BLOCK_K)
    num_tiles = num_pid_m * num_pid_n
    # The epilogue recomputes its tile's coordinates from a second counter so the pipeliner can
    # overlap the next tile's loads with this tile's store (as in Triton's persistent tutorial).
    tile_id_c = start_pid - NUM_SMS
    for tile_id in tl.range(start_pid, num_tiles, NUM_SMS, flatten=FLATTEN,
                            warp_specialize=WARP_SPECIALIZE):
        pid_m, pid_n = _tile_coords(tile_id, num_pid_m, num_pid_n, GROUP_M)
        offs_m = pid_m * BLOCK_M
        offs_n = pid_n * BLOCK_N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for ki in range(k_tiles):
            offs_k = ki * BLOCK_K
            a = a_desc.load([offs_m, offs_k])
            if B_KMAJOR:
                b = b_desc.load([offs_n, offs_k]).T
            else:
                b = b_desc.load([offs_k, offs_n])
            acc = tl.dot(a, b, acc)

        tile_id_c += NUM_SMS
        pid_m, pid_n = _tile_coords(tile_id_c, num_pid_m, num_pid_n, GROUP_M)
        offs_cm = pid_m * BLOCK_M
        offs_cn = pid_n * BLOCK_N
        if EPILOGUE_SUBTILE:
            # Store two [BLOCK_M, BLOCK_N/2] halves: half the shared memory for the epilogue.
            acc = tl.permute(tl.reshape(acc, (BLOCK_M, 2, BLOCK_N // 2)), (0, 2, 1))
            acc0, acc1 = tl.split(acc)
            c_desc.store([offs_cm, offs_cn], acc0.to(c_desc.dtype))
            c_desc.store([offs_cm, offs_cn + BLOCK_N // 2], acc1.to(c_desc.dtype))
        else:
            c_desc.store([offs_cm, offs_cn], acc.to(c_desc.dtype))


def output_dtype(in_dtype: torch.dtype) -> torch.dtype:
    """fp16 → fp16, bf16 → bf16, fp8 e4m3 → bf16."""
    return torch.bfloat16 if in_dtype == _FP8 else in_dtype


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C = A @ B with fp32 accumulation.

    Args:
        a: [M, K], float16 / bfloat16 / float8_e4m3fn, any strides (row-major is fastest).
        b: [K, N], same dtype and device as ``a``, any strides: a transposed view of an [N, K]
            weight (``w.t()``) is fine and is the natural layout for fp8.
    Returns:
        c: [M, N], contiguous; dtype float16 for float16 inputs, bfloat16 for bfloat16 and
        float8_e4m3fn inputs (fp8 needs compute capability ≥ 8.9, i.e. Ada/Hopper).
    """
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise TypeError("a and b must be torch.Tensor")
    if a.ndim != 2:
        raise ValueError(f"a must be 2-D [M, K], got shape {tuple(a.shape)}")
    if b.ndim != 2:
        raise ValueError(f"b must be 2-D [K, N], got shape {tuple(b.shape)}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(
            f"inner dimensions differ: a is {tuple(a.shape)} (K={a.shape[1]}), "
            f"b is {tuple(b.shape)} (K={b.shape[0]})"
        )
    if a.dtype not in _SUPPORTED_DTYPES:
        raise ValueError(f"a.dtype must be one of {_SUPPORTED_DTYPES}, got {a.dtype}")
    if b.dtype != a.dtype:
        raise ValueError(f"b.dtype must equal a.dtype ({a.dtype}), got {b.dtype}")
    if a.device != b.device:
        raise ValueError(f"a and b must be on one device, got {a.device} and {b.device}")
    require_gpu("a", a)
    if a.dtype == _FP8 and a.device.type == "cuda":
        cc = torch.cuda.get_device_capability(a.device)
        if cc < (8, 9):
            raise ValueError(f"float8_e4m3fn needs compute capability >= 8.9, device has {cc}")
    M, K = a.shape
    N = b.shape[1]
    if M == 0 or N == 0 or K == 0:
        raise ValueError(f"M, N, K must be >= 1, got M={M}, N={N}, K={K}")

    c = torch.empty((M, N), device=a.device, dtype=output_dtype(a.dtype))
    # The dispatch rule lives in simulator.kinds.gemm, so the model times the kernel that runs here.
    sixteen_bit = a.dtype in (torch.float16, torch.bfloat16)
    if _gemm_kind.triton_uses_persistent(M, N, K, sixteen_bit) and _tma_eligible(a, b, c):
        _launch_tma(a, b, c)
    else:
        _launch_pointer(a, b, c)
    return c


def _launch_pointer(a, b, c):
    M, K = a.shape
    N = b.shape[1]
    grid = lambda meta: (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"]),)
    _matmul_kernel[grid](
        a, b, c,
        M, N, K,
        a.stride(0), a.stride(1),
        b.stride(0), b.stride(1),
        c.stride(0), c.stride(1),
        DOT_F32=_INTERPRET and a.dtype == torch.bfloat16,
    )


def _tma_eligible(a, b, c) -> bool:
    """TMA needs sm_90+, a unit inner stride, 16-byte-aligned base and outer strides; fp16/bf16."""
    if _TensorDescriptor is None or _INTERPRET or a.device.type != "cuda":
        return False
    if torch.cuda.get_device_capability(a.device)[0] < 9:
        return False

    def ok(t):  # 2-D view with one unit stride; the other stride and the base 16-byte aligned
        inner = 1 if t.stride(1) == 1 else (0 if t.stride(0) == 1 else None)
        if inner is None:
            return False
        outer = t.stride(1 - inner)
        return (outer * t.element_size()) % 16 == 0 and t.data_ptr() % 16 == 0

    if a.dtype == _FP8:
        return False  # measured slower than the pointer kernel (module docstring)
    return ok(a) and a.stride(1) == 1 and ok(b) and ok(c)


def _launch_tma(a, b, c, warp_specialize: bool = False):
    M, K = a.shape
    N = b.shape[1]
    b_kmajor = b.stride(0) == 1 and b.stride(1) != 1  # b is W.t() of a row-major W [N, K]
    # Block shapes are placeholders; the autotuner's pre-hook sets them per config.
    a_desc = _TensorDescriptor.from_tensor(a, [1, 1])
    b_desc = _TensorDescriptor.from_tensor(b.t() if b_kmajor else b, [1, 1])
    c_desc = _TensorDescriptor.from_tensor(c, [1, 1])
    n_sms = (torch.cuda.get_device_properties(a.device).multi_processor_count
             if a.device.type == "cuda" else 4)  # 4 under the interpreter: exercises the loop
    grid = lambda meta: (
        min(n_sms, triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"])),)
    _matmul_tma_kernel[grid](
        a_desc, b_desc, c_desc, M, N, K,
        B_KMAJOR=b_kmajor, NUM_SMS=n_sms, WARP_SPECIALIZE=warp_specialize,
        FLATTEN=not warp_specialize,
    )


def reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """fp32 torch reference: A @ B computed from fp32 copies of the inputs, returned in fp32."""
    return a.float() @ b.float()


def flops(m: int, n: int, k: int) -> int:
    """FLOPs of C[m,n] = A[m,k] @ B[k,n]: one multiply-add (2 FLOPs) per (m, n, k) triple.
    The model's formula (simulator.kinds.gemm), so measured and modelled rates count alike."""
    return int(_gemm_kind.flops(m, n, k))


def hbm_bytes(m: int, n: int, k: int, in_bytes: int, out_bytes: int) -> int:
    """Fewest HBM bytes: A (m·k) and B (k·n) read once at in_bytes each, C (m·n) written once
    (the model's formula, simulator.kinds.gemm)."""
    return int(_gemm_kind.hbm_bytes(m, n, k, in_bytes, out_bytes))
