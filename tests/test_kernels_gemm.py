"""kernels.gemm against an fp64 torch reference, with a tolerance tied to torch's own error.

On a CPU these run under TRITON_INTERPRET=1 (tests/conftest.py) on small, ragged shapes; on a GPU
the same tests run compiled, plus the larger ``gpu``-marked cases.
"""

import pytest
import torch

from kernels import gemm

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FP8 = torch.float8_e4m3fn


@pytest.fixture
def poison(monkeypatch):
    """Make torch.empty return NaN-filled memory, so an element the kernel never writes fails."""
    real_empty = torch.empty

    def nan_empty(*args, **kwargs):
        t = real_empty(*args, **kwargs)
        if t.is_floating_point():
            t.fill_(float("nan"))
        return t

    monkeypatch.setattr(torch, "empty", nan_empty)


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    return ((x.double() - ref.double()).norm() / ref.double().norm()).item()


def make_operands(m, n, k, dtype, b_transposed, seed):
    g = torch.Generator(device="cpu").manual_seed(seed)
    a = torch.randn(m, k, generator=g).to(dtype).to(DEVICE)
    if b_transposed:  # an [N, K] weight used as W.t(): column-major B
        b = torch.randn(n, k, generator=g).to(dtype).to(DEVICE).t()
    else:
        b = torch.randn(k, n, generator=g).to(dtype).to(DEVICE)
    return a, b


def check(a, b, dtype):
    out = gemm.matmul(a, b)
    assert out.shape == (a.shape[0], b.shape[1])
    assert out.dtype == gemm.output_dtype(dtype)
    assert torch.isfinite(out).all(), "unwritten (NaN) or overflowed elements"
    exact = a.double() @ b.double()
    if dtype == FP8:
        # No torch fp8 matmul on every device: the floor is rounding the exact result to bf16.
        torch_err = rel_err(exact.to(torch.bfloat16), exact)
    else:
        torch_err = rel_err(a @ b, exact)
    assert rel_err(out, exact) <= 3 * torch_err + 1e-6
    # fp32 reference agrees with fp64 (sanity of the reference itself).
    assert rel_err(gemm.reference(a, b), exact) < 1e-5


SHAPES = [(1, 97, 257), (97, 257, 1025), (257, 64, 97), (33, 1, 65), (64, 130, 48)]


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_matmul_matches_reference(poison, m, n, k, dtype):
    a, b = make_operands(m, n, k, dtype, b_transposed=False, seed=hash((m, n, k)) % 2**31)
    check(a, b, dtype)


@pytest.mark.parametrize("m,n,k", [(1, 97, 257), (97, 65, 129)])
def test_matmul_transposed_b(poison, m, n, k):
    a, b = make_operands(m, n, k, torch.float16, b_transposed=True, seed=7 + m)
    assert not b.is_contiguous()
    check(a, b, torch.float16)


def _fp8_ok() -> bool:
    return DEVICE == "cpu" or torch.cuda.get_device_capability() >= (8, 9)


@pytest.mark.skipif(not _fp8_ok(), reason="fp8 needs compute capability >= 8.9")
@pytest.mark.parametrize("m,n,k", [(1, 97, 256), (97, 130, 320)])
def test_matmul_fp8(poison, m, n, k):
    a, b = make_operands(m, n, k, FP8, b_transposed=True, seed=11 + m)
    check(a, b, FP8)


@pytest.mark.skipif(DEVICE != "cpu", reason="the GPU runs this kernel through matmul's dispatch")
@pytest.mark.parametrize("m,n,k,b_transposed", [(300, 272, 200, False), (130, 520, 136, True)])
def test_tma_kernel_under_interpreter(m, n, k, b_transposed):
    # The persistent TMA kernel's tiling and ragged-edge handling, checked on CPU. fp16 only: the
    # interpreter's bf16 dot is wrong (toolchain.md pitfall 1) and this kernel has no upcast path.
    a, b = make_operands(m, n, k, torch.float16, b_transposed, seed=m)
    c = torch.full((m, n), float("nan"), dtype=torch.float16)
    gemm._launch_tma(a, b, c)
    exact = a.double() @ b.double()
    assert torch.isfinite(c).all()
    assert rel_err(c, exact) <= 3 * rel_err(a @ b, exact) + 1e-6


@pytest.mark.gpu
@pytest.mark.parametrize("m,n,k", [(1, 4096, 4096), (16, 6144, 4096), (1025, 1031, 4097),
                                   (257, 1024, 4096), (4096, 4096, 4096)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_matmul_gpu_shapes(poison, m, n, k, dtype):
    a, b = make_operands(m, n, k, dtype, b_transposed=(m % 2 == 1), seed=m + n)
    check(a, b, dtype)


@pytest.mark.gpu
@pytest.mark.skipif(not _fp8_ok(), reason="fp8 needs compute capability >= 8.9")
def test_matmul_fp8_gpu_large(poison):
    a, b = make_operands(2048, 4096, 4096, FP8, b_transposed=True, seed=3)
    check(a, b, FP8)


def test_flop_and_byte_counts():
    assert gemm.flops(2, 3, 5) == 60
    assert gemm.hbm_bytes(2, 3, 5, in_bytes=2, out_bytes=2) == (10 + 15) * 2 + 6 * 2
    # Counts agree with torch's own FLOP counter.
    from torch.utils.flop_counter import FlopCounterMode

    a, b = torch.randn(7, 11), torch.randn(11, 13)
    with FlopCounterMode(display=False) as counter:
        a @ b
    assert counter.get_total_flops() == gemm.flops(7, 13, 11)


def test_bad_inputs():
    a = torch.randn(4, 8).half().to(DEVICE)
    with pytest.raises(ValueError, match="inner dimensions"):
        gemm.matmul(a, torch.randn(9, 4).half().to(DEVICE))
    with pytest.raises(ValueError, match="a must be 2-D"):
        gemm.matmul(a[None], torch.randn(8, 4).half().to(DEVICE))
    with pytest.raises(ValueError, match="a.dtype"):
        gemm.matmul(a.float(), torch.randn(8, 4).to(DEVICE))
    with pytest.raises(ValueError, match="b.dtype"):
        gemm.matmul(a, torch.randn(8, 4).bfloat16().to(DEVICE))


def test_dispatch_and_tiles_mirrored_by_the_model():
    # simulator.roofline models hwperf's Triton GEMM with the kernel's own dispatch and autotune tiles;
    # the simulator may not import the kernel (no torch there), so this checks the two copies agree.
    from simulator import roofline as r

    assert r.TRITON_GEMM_PERSISTENT_MIN_FLOPS == gemm._TMA_MIN_FLOPS
    tiles = lambda configs: {(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"]) for c in configs}  # noqa: E731
    assert tiles(gemm._gpu_configs()) == set(r.TRITON_GEMM_POINTER_TILES)
    assert tiles(gemm._tma_candidates()) == set(r.TRITON_GEMM_PERSISTENT_TILES)
    for m in (1, 2, 9, 16, 17, 32, 33, 64, 65, 128, 4096):
        kept = gemm._prune_configs(gemm._gpu_configs(), {"M": m}) if gemm._AUTOTUNE else None
        if kept is not None:
            offered = {bm for bm, _ in r.TRITON_GEMM_POINTER_TILES if r.triton_gemm_tile_offered(float(m), bm)}
            assert {c.kwargs["BLOCK_M"] for c in kept} == offered, m


def test_persistent_kernel_only_where_matmul_dispatches_it():
    # The model's persistent branch: 16-bit, M > 64 and >= _TMA_MIN_FLOPS, as in gemm.matmul.
    import simulator
    from hwspecs.calibration import Calibration, EffectParams
    slow = EffectParams(kernel_family="hwperf-triton", gemm_persistent_efficiency_frac=0.1)
    fast = slow.model_copy(update={"gemm_persistent_efficiency_frac": 1.0})

    def t(prm, **shape):
        cal = Calibration(hardware_id="h100-sxm5-80gb", vendor=prm, triton=prm)
        return simulator.predict_kernel("h100-sxm5-80gb", "gemm", calibration=cal, impl="triton", **shape).time_s

    big = dict(m=4096, n=4096, k=4096, dtype="bf16")  # 1.4e11 FLOP
    assert gemm.flops(4096, 4096, 4096) >= gemm._TMA_MIN_FLOPS
    assert t(slow, **big) > 5 * t(fast, **big)
    for shape in (dict(m=64, n=57344, k=16384, dtype="bf16"),   # M <= 64: pointer kernel
                  dict(m=2048, n=2048, k=2048, dtype="bf16"),   # < 1e11 FLOP
                  dict(m=4096, n=4096, k=4096, dtype="fp8")):   # fp8: pointer kernel
        assert t(slow, **shape) == t(fast, **shape), shape
