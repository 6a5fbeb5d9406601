"""KV-cache block copies and stream (bandwidth) kernels in Triton.

Anatomy: ``@triton.jit`` kernels → launchers (checks, allocate, launch) → torch references; the
``*_hbm_bytes`` functions give the counts that turn a measured time into an achieved bandwidth.
Nothing runs at import.

- ``gather_blocks`` / ``scatter_blocks``: move whole blocks of a paged KV cache
  [n_blocks, block_size, Hkv, D] (any trailing shape) to / from a contiguous staging buffer on the
  same device. This is the device half of swapping a request out / in; the host half
  (``staging.copy_(pinned_host_tensor)``) is a DMA the caller issues, since Triton programs cannot
  address host memory.
- ``stream_copy``, ``stream_read``, ``stream_write``: the three STREAM-style bandwidth probes.

Copies move raw bits (tensors are viewed as same-width integers), so they are bit-exact for every
dtype, NaN payloads and fp8 included.
"""


import torch
import triton
import triton.language as tl

from kernels._common import require_gpu
from simulator.kinds import copy as _copy_kind

_BITS_DTYPE = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_READ_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# Elements per program of the flat stream kernels: 16 KiB of 2-byte data, 64 B per thread at
# 8 warps, i.e. four 16-byte loads in flight per thread.
_STREAM_BLOCK = 8192
_STREAM_WARPS = 8
# Most elements of one block row a single program copies (8 KiB of 2-byte data at 4 warps).
_ROW_BLOCK = 4096


@triton.jit
def _copy_rows_kernel(
    src_ptr, dst_ptr, ids_ptr,
    row_elems,
    GATHER: tl.constexpr, BLOCK: tl.constexpr,
):
    """Program (i, chunk) copies elements [chunk·BLOCK, (chunk+1)·BLOCK) of row i.
    GATHER: dst row i ← src row ids[i]. Otherwise (scatter): dst row ids[i] ← src row i."""
    i = tl.program_id(0)
    chunk = tl.program_id(1)
    row = tl.load(ids_ptr + i).to(tl.int64)
    offs = chunk * BLOCK + tl.arange(0, BLOCK)
    mask = offs < row_elems
    if GATHER:
        src_row, dst_row = row, i.to(tl.int64)
    else:
        src_row, dst_row = i.to(tl.int64), row
    x = tl.load(src_ptr + src_row * row_elems + offs, mask=mask)
    tl.store(dst_ptr + dst_row * row_elems + offs, x, mask=mask)


@triton.jit
def _stream_copy_kernel(src_ptr, dst_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(dst_ptr + offs, tl.load(src_ptr + offs, mask=mask), mask=mask)


@triton.jit
def _stream_write_kernel(dst_ptr, value_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    value = tl.load(value_ptr)
    tl.store(dst_ptr + offs, value, mask=offs < n)


@triton.jit
def _stream_read_kernel(src_ptr, partial_ptr, n, n_tiles, BLOCK: tl.constexpr):
    """Persistent: program p sums tiles p, p + P, p + 2P, … in fp32 and writes one partial."""
    pid = tl.program_id(0)
    n_programs = tl.num_programs(0)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    # int64 offsets, advanced by a stride, so buffers past 2^31 elements index correctly.
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    for _ in range(pid, n_tiles, n_programs):
        acc += tl.load(src_ptr + offs, mask=offs < n, other=0.0).to(tl.float32)
        offs += n_programs * BLOCK
    tl.store(partial_ptr + pid, tl.sum(acc, 0))


def _bits(t: torch.Tensor) -> torch.Tensor:
    """Same memory viewed as a same-width integer tensor: copies of it are bit-exact."""
    return t.view(_BITS_DTYPE[t.element_size()])


def _check_device(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor")
    require_gpu(name, t)
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous, got strides {t.stride()}")
    if t.element_size() not in _BITS_DTYPE:
        raise ValueError(f"{name}.dtype {t.dtype} has unsupported element size {t.element_size()}")


def _check_blocks(cache, block_ids, staging, staging_name):
    _check_device("cache", cache)
    _check_device(staging_name, staging)
    if cache.ndim < 2:
        raise ValueError(f"cache must be [n_blocks, ...] with >= 2 dims, got {tuple(cache.shape)}")
    if not isinstance(block_ids, torch.Tensor):
        raise TypeError("block_ids must be a torch.Tensor")
    if block_ids.ndim != 1 or block_ids.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"block_ids must be 1-D int32/int64, got {block_ids.dtype} "
                         f"{tuple(block_ids.shape)}")
    for name, t in ((staging_name, staging), ("block_ids", block_ids)):
        if t.device != cache.device:
            raise ValueError(f"{name} must be on cache's device {cache.device}, got {t.device}")
    want = (block_ids.shape[0],) + tuple(cache.shape[1:])
    if tuple(staging.shape) != want:
        raise ValueError(f"{staging_name} must have shape {want} (len(block_ids), "
                         f"*cache.shape[1:]), got {tuple(staging.shape)}")
    if staging.dtype != cache.dtype:
        raise ValueError(f"{staging_name}.dtype must equal cache.dtype ({cache.dtype}), got "
                         f"{staging.dtype}")


def _launch_rows(src, dst, block_ids, gather):
    n_ids = block_ids.shape[0]
    if n_ids == 0:
        return
    row_elems = src[0].numel()
    block = min(_ROW_BLOCK, triton.next_power_of_2(row_elems))
    _copy_rows_kernel[(n_ids, triton.cdiv(row_elems, block))](
        _bits(src), _bits(dst), block_ids, row_elems, GATHER=gather, BLOCK=block, num_warps=4,
    )


def gather_blocks(cache: torch.Tensor, block_ids: torch.Tensor,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """out[i] = cache[block_ids[i]]: pack the listed blocks into a contiguous buffer (swap-out).

    Args:
        cache: [n_blocks, *block_shape] (e.g. [n_blocks, block_size, Hkv, D]), contiguous, any dtype.
        block_ids: [n] int32/int64 on cache's device, each in [0, n_blocks) (not checked: it would
            need a device sync).
        out: optional [n, *block_shape] contiguous buffer of cache's dtype on cache's device.
    Returns:
        out, bit-identical to ``cache[block_ids]``.
    """
    if out is None:
        if not isinstance(cache, torch.Tensor) or cache.ndim < 2:
            raise ValueError("cache must be a torch.Tensor [n_blocks, ...] with >= 2 dims")
        if not isinstance(block_ids, torch.Tensor) or block_ids.ndim != 1:
            raise ValueError("block_ids must be a 1-D int32/int64 tensor")
        out = torch.empty((block_ids.shape[0],) + tuple(cache.shape[1:]),
                          dtype=cache.dtype, device=cache.device)
    _check_blocks(cache, block_ids, out, "out")
    _launch_rows(cache, out, block_ids, gather=True)
    return out


def scatter_blocks(src: torch.Tensor, cache: torch.Tensor, block_ids: torch.Tensor) -> None:
    """cache[block_ids[i]] = src[i]: unpack a contiguous buffer into the cache (swap-in).

    Args:
        src: [n, *block_shape] contiguous, cache's dtype and device.
        cache: [n_blocks, *block_shape] contiguous; written in place.
        block_ids: [n] int32/int64, distinct, each in [0, n_blocks) (not checked).
    """
    _check_blocks(cache, block_ids, src, "src")
    _launch_rows(src, cache, block_ids, gather=False)


def stream_copy(src: torch.Tensor, dst: torch.Tensor) -> None:
    """dst ← src, bit-exact. Both contiguous, same dtype and number of elements, one device."""
    _check_device("src", src)
    _check_device("dst", dst)
    if dst.dtype != src.dtype or dst.numel() != src.numel() or dst.device != src.device:
        raise ValueError(f"dst must match src in dtype, numel and device: src {src.dtype} "
                         f"{src.numel()} {src.device}, dst {dst.dtype} {dst.numel()} {dst.device}")
    n = src.numel()
    if n:
        _stream_copy_kernel[(triton.cdiv(n, _STREAM_BLOCK),)](
            _bits(src).view(-1), _bits(dst).view(-1), n, BLOCK=_STREAM_BLOCK,
            num_warps=_STREAM_WARPS)


def stream_write(dst: torch.Tensor, value: float) -> None:
    """dst[...] = value (rounded to dst.dtype exactly as ``torch.full`` rounds it)."""
    _check_device("dst", dst)
    n = dst.numel()
    if n:
        bits = _bits(torch.full((1,), value, dtype=dst.dtype, device=dst.device))
        _stream_write_kernel[(triton.cdiv(n, _STREAM_BLOCK),)](
            _bits(dst).view(-1), bits, n, BLOCK=_STREAM_BLOCK, num_warps=_STREAM_WARPS)


def _num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def stream_read(src: torch.Tensor) -> torch.Tensor:
    """Sum of all elements, accumulated in fp32: reads src once. Returns a 0-d fp32 tensor.

    src: contiguous float16 / bfloat16 / float32. The result exists so the reads cannot be
    optimised away; its rounding differs from ``src.sum()`` by fp32 summation order.
    """
    _check_device("src", src)
    if src.dtype not in _READ_DTYPES:
        raise ValueError(f"src.dtype must be one of {_READ_DTYPES}, got {src.dtype}")
    n = src.numel()
    n_tiles = triton.cdiv(n, _STREAM_BLOCK)
    # Persistent grid: a few programs per SM, each streaming many tiles.
    n_programs = max(1, min(n_tiles, 4 * _num_sms(src.device)))
    partial = torch.empty(n_programs, dtype=torch.float32, device=src.device)
    _stream_read_kernel[(n_programs,)](src.view(-1), partial, n, n_tiles, BLOCK=_STREAM_BLOCK,
                                       num_warps=_STREAM_WARPS)
    return partial.sum()


def gather_reference(cache: torch.Tensor, block_ids: torch.Tensor) -> torch.Tensor:
    """torch indexing: cache[block_ids]."""
    return cache[block_ids.long()]


def scatter_reference(src: torch.Tensor, cache: torch.Tensor, block_ids: torch.Tensor) -> None:
    """torch indexing: cache[block_ids] = src."""
    cache[block_ids.long()] = src


def blocks_hbm_bytes(n_blocks: int, block_bytes: int, id_bytes: int = 4) -> int:
    """gather/scatter: each block read once and written once, plus the ids read."""
    return 2 * n_blocks * block_bytes + n_blocks * id_bytes


def stream_copy_hbm_bytes(n_bytes: int) -> int:
    """copy: n_bytes read + n_bytes written (the model's copy count, simulator.kinds.copy)."""
    return int(_copy_kind.hbm_bytes(n_bytes))


def stream_read_hbm_bytes(n_bytes: int) -> int:
    """read: n_bytes read (the partial sums are a few KiB, not counted)."""
    return n_bytes


def stream_write_hbm_bytes(n_bytes: int) -> int:
    """write: n_bytes written."""
    return n_bytes
