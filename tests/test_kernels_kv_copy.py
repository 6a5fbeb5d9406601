"""kernels.kv_copy: block gather/scatter and stream copies are bit-exact; stream_read sums right.

On a CPU these run under TRITON_INTERPRET=1; on a GPU the same tests run compiled, plus the larger
``gpu``-marked cases.
"""

import pytest
import torch

from kernels import kv_copy as kc

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float8_e4m3fn]


def random_bits(g, shape, dtype):
    """Random bit patterns (NaN and inf payloads included): bit-exactness must hold for all."""
    n_bytes = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
    raw = torch.randint(0, 256, (n_bytes,), generator=g, dtype=torch.uint8)
    return raw.view(dtype).view(shape).to(DEVICE)


def same_bits(x, y):
    return x.shape == y.shape and torch.equal(x.view(torch.uint8), y.view(torch.uint8))


def poisoned_like(t):
    return torch.full_like(t.view(torch.uint8), 0xFF).view(t.dtype)  # all-ones bits: NaN


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block_shape,n_blocks,n_ids", [((16, 2, 64), 37, 11), ((3, 5), 9, 9),
                                                         ((257,), 20, 1)])
def test_gather_scatter_bit_exact(dtype, block_shape, n_blocks, n_ids):
    g = torch.Generator().manual_seed(n_blocks * 13 + n_ids)
    cache = random_bits(g, (n_blocks, *block_shape), dtype)
    ids = torch.randperm(n_blocks, generator=g)[:n_ids].to(torch.int32).to(DEVICE)

    out = poisoned_like(cache[:n_ids])
    assert kc.gather_blocks(cache, ids, out=out) is out
    assert same_bits(out, kc.gather_reference(cache, ids))
    assert same_bits(kc.gather_blocks(cache, ids.long()), kc.gather_reference(cache, ids))

    src = random_bits(g, (n_ids, *block_shape), dtype)
    got, want = cache.clone(), cache.clone()
    kc.scatter_blocks(src, got, ids)
    kc.scatter_reference(src, want, ids)
    assert same_bits(got, want)  # listed blocks replaced, all others untouched


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 97, 8193, 20011])
def test_stream_copy_and_write(dtype, n):
    g = torch.Generator().manual_seed(n)
    src = random_bits(g, (n,), dtype)
    dst = poisoned_like(src)
    kc.stream_copy(src, dst)
    assert same_bits(dst, src)
    kc.stream_write(dst, -1.75)
    assert same_bits(dst, torch.full_like(dst, -1.75))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("n", [1, 1025, 100003])
def test_stream_read_sum(dtype, n):
    g = torch.Generator().manual_seed(n + 1)
    src = torch.randn(n, generator=g).to(dtype).to(DEVICE)
    got = kc.stream_read(src)
    exact = src.double().sum()
    # fp32 accumulation of n values: error well under sqrt(n) · 2^-24 · Σ|x|.
    assert abs(got.item() - exact.item()) <= 1e-6 * src.double().abs().sum().item() + 1e-6


@pytest.mark.gpu
def test_large_gpu_copies():
    g = torch.Generator().manual_seed(0)
    cache = random_bits(g, (4096, 16, 8, 128), torch.bfloat16)  # 128 MiB paged cache
    ids = torch.randperm(4096, generator=g)[:1000].to(DEVICE)
    assert same_bits(kc.gather_blocks(cache, ids), kc.gather_reference(cache, ids))
    src = random_bits(g, (2**27 + 3,), torch.float16)
    dst = poisoned_like(src)
    kc.stream_copy(src, dst)
    assert same_bits(dst, src)


def test_byte_counts():
    assert kc.blocks_hbm_bytes(10, 4096) == 2 * 10 * 4096 + 10 * 4
    assert kc.stream_copy_hbm_bytes(100) == 200
    assert kc.stream_read_hbm_bytes(100) == 100
    assert kc.stream_write_hbm_bytes(100) == 100
    # Against real tensors: a stream copy reads src and writes dst; a gather reads the listed blocks
    # and the ids and writes the staging buffer.
    src = torch.zeros(1000, dtype=torch.bfloat16, device=DEVICE)
    dst = torch.empty_like(src)
    size = lambda *ts: sum(t.numel() * t.element_size() for t in ts)  # noqa: E731
    assert kc.stream_copy_hbm_bytes(size(src)) == size(src, dst)
    cache = torch.zeros(9, 16, 2, 64, dtype=torch.float16, device=DEVICE)
    ids = torch.tensor([4, 1, 7], dtype=torch.int32, device=DEVICE)
    out = kc.gather_blocks(cache, ids)
    read = size(cache[ids.long()], ids)
    assert kc.blocks_hbm_bytes(len(ids), size(cache[0]), ids.element_size()) == read + size(out)


def test_bad_inputs():
    cache = torch.randn(8, 4, 2).half().to(DEVICE)
    ids = torch.tensor([1, 2], dtype=torch.int32, device=DEVICE)
    with pytest.raises(ValueError, match="out must have shape"):
        kc.gather_blocks(cache, ids, out=torch.empty(3, 4, 2, dtype=torch.half, device=DEVICE))
    with pytest.raises(ValueError, match="out.dtype"):
        kc.gather_blocks(cache, ids, out=torch.empty(2, 4, 2, device=DEVICE))
    with pytest.raises(ValueError, match="block_ids"):
        kc.gather_blocks(cache, ids.float())
    with pytest.raises(ValueError, match="src must have shape"):
        kc.scatter_blocks(torch.randn(2, 4).half().to(DEVICE), cache, ids)
    with pytest.raises(ValueError, match="contiguous"):
        kc.gather_blocks(cache.transpose(1, 2), ids)
    with pytest.raises(ValueError, match="dst must match src"):
        kc.stream_copy(cache, torch.empty(3, device=DEVICE, dtype=torch.half))
    with pytest.raises(ValueError, match="src.dtype"):
        kc.stream_read(torch.ones(4, dtype=torch.int32, device=DEVICE))
