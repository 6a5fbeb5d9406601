"""kernels.attention_prefill and kernels.attention_decode against fp64 torch references.

Tolerance: a small multiple of torch's own error when it computes the same attention in the same
low precision. On a CPU these run under TRITON_INTERPRET=1 on small, ragged shapes; on a GPU the
same tests run compiled, plus the larger ``gpu``-marked cases.
"""

import pytest
import torch
import torch.nn.functional as F

from kernels import attention_decode as dec
from kernels import attention_prefill as pre

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float16, torch.bfloat16]


@pytest.fixture
def poison(monkeypatch):
    """Make torch.empty/empty_like return NaN-filled memory: unwritten outputs then fail."""
    real_empty, real_empty_like = torch.empty, torch.empty_like

    def nan_fill(t):
        if t.is_floating_point():
            t.fill_(float("nan"))
        return t

    monkeypatch.setattr(torch, "empty", lambda *a, **k: nan_fill(real_empty(*a, **k)))
    monkeypatch.setattr(torch, "empty_like", lambda *a, **k: nan_fill(real_empty_like(*a, **k)))


def rel_err(x, ref):
    return ((x.double() - ref.double()).norm() / ref.double().norm()).item()


def randn(g, *shape, dtype):
    return torch.randn(*shape, generator=g).to(dtype).to(DEVICE)


# ---------------------------------------------------------------- prefill


def check_prefill(b, hq, hkv, s, d, causal, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = randn(g, b, hq, s, d, dtype=dtype), randn(g, b, hkv, s, d, dtype=dtype), \
        randn(g, b, hkv, s, d, dtype=dtype)
    out = pre.attention(q, k, v, causal=causal)
    assert out.shape == q.shape and out.dtype == dtype
    assert torch.isfinite(out).all(), "unwritten (NaN) elements"
    exact = pre.reference(q, k, v, causal=causal, dtype=torch.float64)
    group = hq // hkv
    own = F.scaled_dot_product_attention(q, k.repeat_interleave(group, 1),
                                         v.repeat_interleave(group, 1), is_causal=causal)
    assert rel_err(out, exact) <= 3 * rel_err(own, exact) + 1e-6
    assert rel_err(pre.reference(q, k, v, causal=causal), exact) < 1e-5


@pytest.mark.parametrize(
    "b,hq,hkv,s,d,causal",
    [
        (1, 2, 1, 97, 64, True),     # GQA, ragged S
        (2, 2, 2, 33, 128, False),   # MHA, D=128, non-causal tail tile
        (1, 4, 1, 1, 64, True),      # MQA, one token
        (1, 1, 1, 70, 128, True),    # S just past two tiles
    ],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_prefill_matches_reference(poison, b, hq, hkv, s, d, causal, dtype):
    check_prefill(b, hq, hkv, s, d, causal, dtype, seed=s * 31 + hq)


def test_prefill_custom_scale(poison):
    g = torch.Generator().manual_seed(5)
    q, k, v = (randn(g, 1, 2, 40, 64, dtype=torch.float16) for _ in range(3))
    out = pre.attention(q, k, v, causal=False, sm_scale=0.3)
    exact = pre.reference(q, k, v, causal=False, sm_scale=0.3, dtype=torch.float64)
    own = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    assert rel_err(out, exact) <= 3 * rel_err(own, exact) + 1e-6


@pytest.mark.gpu
@pytest.mark.parametrize("s,causal", [(1025, True), (1025, False), (4096, True)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_prefill_gpu_shapes(poison, s, causal, dtype):
    check_prefill(2, 8, 2, s, 128, causal, dtype, seed=s)
    check_prefill(1, 4, 4, s, 64, causal, dtype, seed=s + 1)


def test_prefill_counts():
    assert pre.flops(1, 8, 2, 64, causal=False) == 4 * 2 * 64 * 64
    assert pre.flops(1, 8, 2, 64, causal=True) == 2 * 2 * 64 * 64
    assert pre.hbm_bytes(2, 10, 8, 2, 64, 2) == (2 * 8 + 2 * 2) * 2 * 10 * 64 * 2
    from torch.utils.flop_counter import FlopCounterMode

    for b, hq, hkv, s, d in [(2, 4, 2, 33, 64), (1, 2, 1, 97, 128)]:
        g = torch.Generator().manual_seed(s)
        q, k, v = randn(g, b, hq, s, d, dtype=torch.float16), randn(g, b, hkv, s, d, dtype=torch.float16), \
            randn(g, b, hkv, s, d, dtype=torch.float16)
        # FLOPs: torch's counter on the dense reference; causal counts half of that score matrix.
        with FlopCounterMode(display=False) as counter:
            pre.reference(q.cpu(), k.cpu(), v.cpu(), causal=False)
        dense = counter.get_total_flops()
        assert pre.flops(b, s, hq, d, causal=False) == dense
        assert pre.flops(b, s, hq, d, causal=True) * 2 == dense
        # Bytes: the real sizes of q, k, v and the output the kernel returns.
        out = pre.attention(q, k, v, causal=True)
        real = sum(t.numel() * t.element_size() for t in (q, k, v, out))
        got = pre.hbm_bytes(b, s, hq, hkv, d, q.element_size())
        assert got == real and isinstance(got, int)


def test_prefill_bad_inputs():
    q = torch.randn(1, 4, 16, 64).half().to(DEVICE)
    kv = torch.randn(1, 3, 16, 64).half().to(DEVICE)
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        pre.attention(q, kv, kv)
    with pytest.raises(ValueError, match="head_dim"):
        x = torch.randn(1, 2, 16, 96).half().to(DEVICE)
        pre.attention(x, x, x)
    with pytest.raises(ValueError, match="q.dtype"):
        x = torch.randn(1, 2, 16, 64).to(DEVICE)
        pre.attention(x, x, x)
    with pytest.raises(ValueError, match="k.dtype"):
        pre.attention(q, q.bfloat16(), q)
    with pytest.raises(ValueError, match="must match q"):
        pre.attention(q, q[:, :, :8], q[:, :, :8])
    with pytest.raises(ValueError, match="4-D"):
        pre.attention(q[0], q[0], q[0])


# ---------------------------------------------------------------- decode


def make_decode(b, hq, hkv, s_max, d, dtype, paged, seed, block_size=16):
    g = torch.Generator().manual_seed(seed)
    q = randn(g, b, hq, d, dtype=dtype)
    lens = torch.randint(1, s_max + 1, (b,), generator=g, dtype=torch.int32)
    lens[0] = s_max  # the longest sequence fills the cache
    if paged:
        per_seq = -(-s_max // block_size)
        n_blocks = b * per_seq + 3  # a few blocks no sequence uses
        k = randn(g, n_blocks, block_size, hkv, d, dtype=dtype)
        v = randn(g, n_blocks, block_size, hkv, d, dtype=dtype)
        table = torch.randperm(n_blocks, generator=g)[: b * per_seq].view(b, per_seq)
        table = table.to(torch.int32).to(DEVICE)
    else:
        k = randn(g, b, hkv, s_max, d, dtype=dtype)
        v = randn(g, b, hkv, s_max, d, dtype=dtype)
        table = None
    return q, k, v, lens.to(DEVICE), table


def check_decode(args, num_splits=None):
    q, k, v, lens, table = args
    out = dec.decode_attention(q, k, v, lens, table, num_splits=num_splits)
    assert out.shape == q.shape and out.dtype == q.dtype
    assert torch.isfinite(out).all(), "unwritten (NaN) elements"
    exact = dec.reference(q, k, v, lens, table, dtype=torch.float64)
    own = dec.reference(q, k, v, lens, table, dtype=q.dtype)  # torch in the same precision
    assert rel_err(out, exact) <= 3 * rel_err(own, exact) + 1e-6


@pytest.mark.parametrize(
    "b,hq,hkv,s_max,d,paged,num_splits",
    [
        (3, 4, 2, 300, 64, False, None),   # GQA, heuristic splits
        (2, 8, 1, 97, 128, True, None),    # MQA, paged, ragged last page
        (3, 4, 4, 257, 64, True, 3),       # MHA, paged, explicit splits
        (2, 2, 1, 200, 128, False, 1),     # one split: kernel writes o directly
        (1, 2, 2, 1, 64, False, 4),        # one token; splits past the end are empty
    ],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_decode_matches_reference(poison, b, hq, hkv, s_max, d, paged, num_splits, dtype):
    args = make_decode(b, hq, hkv, s_max, d, dtype, paged, seed=s_max * 7 + b)
    check_decode(args, num_splits)


def test_decode_paged_block_size_not_tile_multiple(poison):
    # block_size 8 (smaller than any BLOCK_N) with a shuffled block table
    check_decode(make_decode(2, 4, 2, 75, 64, torch.float16, True, seed=3, block_size=8))


def test_decode_zero_length_gives_zeros(poison):
    q, k, v, lens, table = make_decode(2, 2, 1, 40, 64, torch.float16, False, seed=9)
    lens[1] = 0
    out = dec.decode_attention(q, k, v, lens, num_splits=2)
    assert torch.equal(out[1].float().cpu(), torch.zeros_like(out[1].float().cpu()))


@pytest.mark.gpu
@pytest.mark.parametrize("paged", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_decode_gpu_shapes(poison, paged, dtype):
    check_decode(make_decode(4, 32, 8, 4097, 128, dtype, paged, seed=1))
    check_decode(make_decode(3, 16, 16, 1025, 64, dtype, paged, seed=2), num_splits=7)


def test_decode_default_splits():
    # Small batch: split to fill the SMs; big batch: one split; never below 512 tokens a split.
    assert dec.default_num_splits(1, 8, 16384, n_sms=132) == 32
    assert dec.default_num_splits(256, 8, 16384, n_sms=132) == 1
    assert dec.default_num_splits(1, 1, 600, n_sms=132) == 1


class _Recorder:
    """Stands in for a Triton kernel: records the grids it is launched on, runs nothing."""

    def __init__(self):
        self.grids = []

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.grids.append(grid)


def test_model_charges_the_merge_where_the_kernel_launches_it(monkeypatch):
    # The model adds memory.latency_s for the reduce kernel when its split rule gives > 1 split; the
    # kernel launches that reduce kernel when it splits. Both must see the same shape (kv-heads, not
    # q-heads; the context) and the same SM count, on H100's 132 SMs.
    import hwspecs
    import simulator
    from hwspecs.calibration import Calibration, EffectParams

    n_sms = hwspecs.load("h100-sxm5-80gb").n_sms
    monkeypatch.setattr(dec, "_num_sms", lambda device: n_sms)

    def merge_s(**shape):
        t = []
        for lat in (0.0, 1.0):
            prm = EffectParams(impl="triton").with_values({"memory.latency_s": lat})
            cal = Calibration.from_params("h100-sxm5-80gb", prm, prm)
            t.append(simulator.predict_kernel("h100-sxm5-80gb", "attention_decode", impl="triton",
                                              calibration=cal, dtype="fp16", **shape).time_s)
        return t[1] - t[0]

    seen = set()
    for b, hq, hkv, ctx, d in [(1, 32, 8, 16384, 128), (64, 32, 8, 4096, 64), (256, 32, 8, 16384, 128),
                               (1, 8, 1, 600, 64), (2, 8, 8, 1024, 64), (2, 8, 8, 1023, 64)]:
        split, reduce = _Recorder(), _Recorder()
        monkeypatch.setattr(dec, "_decode_split_kernel", split)
        monkeypatch.setattr(dec, "_decode_reduce_kernel", reduce)
        q = torch.zeros(b, hq, d, dtype=torch.float16, device=DEVICE)
        kv = torch.zeros(1, 1, 1, d, dtype=torch.float16, device=DEVICE).expand(b, hkv, ctx, d)
        lens = torch.full((b,), ctx, dtype=torch.int32, device=DEVICE)
        dec.decode_attention(q, kv, kv, lens)
        (grid,) = split.grids
        merged = bool(reduce.grids)
        assert merged == (grid[2] > 1) and grid[:2] == (b, hkv)
        seen.add(merged)
        want = 1.0 if merged else 0.0
        got = merge_s(batch=b, context=ctx, n_q_heads=hq, n_kv_heads=hkv, head_dim=d)
        assert got == pytest.approx(want, abs=1e-9), (b, hq, hkv, ctx, grid)
    assert seen == {True, False}


def test_decode_counts():
    assert dec.flops(2, 100, 8, 64) == 4 * 2 * 8 * 100 * 64
    assert dec.hbm_bytes(2, 100, 8, 2, 64, 2) == (2 * 2 * 2 * 100 * 64 + 2 * 2 * 8 * 64) * 2
    from torch.utils.flop_counter import FlopCounterMode

    for b, hq, hkv, ctx, d in [(2, 4, 2, 37, 64), (1, 8, 1, 100, 128)]:
        # Every sequence fills the cache, so the cache tensors are exactly what is read.
        q, k, v, _, _ = make_decode(b, hq, hkv, ctx, d, torch.float16, False, seed=ctx)
        lens = torch.full((b,), ctx, dtype=torch.int32, device=DEVICE)
        with FlopCounterMode(display=False) as counter:
            dec.reference(q.cpu(), k.cpu(), v.cpu(), lens.cpu())
        assert dec.flops(b, ctx, hq, d) == counter.get_total_flops()
        out = dec.decode_attention(q, k, v, lens)
        real = sum(t.numel() * t.element_size() for t in (q, k, v, out))
        got = dec.hbm_bytes(b, ctx, hq, hkv, d, q.element_size())
        assert got == real and isinstance(got, int)


def test_decode_bad_inputs():
    q, k, v, lens, table = make_decode(2, 4, 2, 32, 64, torch.float16, True, seed=0)
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        dec.decode_attention(q[:, :3], k, v, lens, table)
    with pytest.raises(ValueError, match="context_lens"):
        dec.decode_attention(q, k, v, lens.long(), table)
    with pytest.raises(ValueError, match="block_table"):
        dec.decode_attention(q, k, v, lens, table[:1])
    with pytest.raises(ValueError, match="k_cache.dtype"):
        dec.decode_attention(q, k.bfloat16(), v, lens, table)
    with pytest.raises(ValueError, match="head_dim"):
        dec.decode_attention(torch.randn(2, 4, 80).half().to(DEVICE), k, v, lens, table)
    with pytest.raises(ValueError, match="contiguous k_cache"):
        dec.decode_attention(q, k, v, lens)  # paged cache without a block table
    with pytest.raises(ValueError, match="num_splits"):
        dec.decode_attention(q, k, v, lens, table, num_splits=0)
