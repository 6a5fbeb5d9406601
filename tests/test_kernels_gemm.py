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
    # interpreter's bf16 dot is wrong (it computes on raw bits) and this kernel has no upcast path.
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
    from torch.utils.flop_counter import FlopCounterMode

    for m, n, k in [(7, 13, 11), (1, 97, 257), (33, 1, 65)]:
        # FLOPs: what torch's own counter charges for the reference product.
        a, b = torch.randn(m, k), torch.randn(k, n)
        with FlopCounterMode(display=False) as counter:
            gemm.reference(a, b)
        assert counter.get_total_flops() == gemm.flops(m, n, k)
        # Bytes: the real sizes of the operands and of the output the kernel returns.
        for dtype in (torch.float16, FP8):
            a, b = make_operands(m, n, k, dtype, b_transposed=True, seed=m)
            c = gemm.matmul(a, b)
            real = sum(t.numel() * t.element_size() for t in (a, b, c))
            got = gemm.hbm_bytes(m, n, k, a.element_size(), c.element_size())
            assert got == real and isinstance(got, int), (m, n, k, dtype)


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


def test_autotune_candidates_are_the_tiles_the_model_times():
    # The model picks the autotuner's tile among TRITON_*_TILES; the kernel must offer exactly those.
    from simulator.kinds import gemm as kind

    tiles = lambda configs: [(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"]) for c in configs]  # noqa: E731
    pointer, persistent = gemm._gpu_configs(), gemm._tma_candidates()
    assert set(tiles(pointer)) == set(kind.TRITON_POINTER_TILES)
    assert set(tiles(persistent)) == set(kind.TRITON_PERSISTENT_TILES)
    # Every row of the tables became one distinct config: none dropped or merged.
    key = lambda c: (tuple(sorted(c.kwargs.items())), c.num_warps, c.num_stages)  # noqa: E731
    assert len({key(c) for c in pointer}) == len(pointer) == len(kind.TRITON_POINTER_CONFIGS)
    assert len({key(c) for c in persistent}) == len(persistent) == len(kind.TRITON_PERSISTENT_CONFIGS)
    assert all(c.pre_hook is gemm._set_tma_block_shapes for c in persistent)
    assert all(c.pre_hook is None and c.kwargs["GROUP_M"] == 8 for c in pointer)


def test_pruning_sizes_tiles_to_m(monkeypatch):
    # Decode-sized M gets thin tiles that waste at most half their rows; larger M only wide tiles.
    monkeypatch.setattr(gemm, "_AUTOTUNE", True)
    for m in (1, 2, 9, 16, 17, 32, 33, 64, 65, 128, 4096):
        kept = {c.kwargs["BLOCK_M"] for c in gemm._prune_configs(gemm._gpu_configs(), {"M": m})}
        if m <= 64:
            assert kept and max(kept) < 2 * max(m, 16) and min(kept) == 16, (m, kept)
        else:
            assert kept == {64, 128, 256}, (m, kept)


def _launched_kernel(monkeypatch, m, n, k, dtype):
    """Which kernel ``matmul`` launches for this shape where TMA is available (Hopper, aligned)."""
    launched = []
    monkeypatch.setattr(gemm, "_tma_eligible", lambda a, b, c: True)
    monkeypatch.setattr(gemm, "_launch_tma", lambda a, b, c: launched.append("persistent"))
    monkeypatch.setattr(gemm, "_launch_pointer", lambda a, b, c: launched.append("pointer"))
    # Broadcast views: full-size operands without the memory (nothing is launched).
    one = torch.zeros(1, 1, dtype=dtype, device=DEVICE)
    gemm.matmul(one.expand(m, k), one.expand(k, n))
    (kernel,) = launched
    return kernel


def test_model_times_the_kernel_matmul_launches(monkeypatch):
    # The model's persistent branch reads gemm.persistent_efficiency_frac; the pointer branch does
    # not. So that parameter moves the predicted time exactly where matmul launches the TMA kernel.
    import simulator
    from hwspecs.calibration import Calibration, EffectParams

    def t(frac, m, n, k, dtype):
        prm = EffectParams(impl="triton").with_values({"gemm.persistent_efficiency_frac": frac})
        cal = Calibration.from_params("h100-sxm5-80gb", prm, prm)
        return simulator.predict_kernel("h100-sxm5-80gb", "gemm", impl="triton", calibration=cal,
                                        m=m, n=n, k=k, dtype=dtype).time_s

    names = {torch.float16: "fp16", torch.bfloat16: "bf16", FP8: "fp8"}
    shapes = [(64, 57344, 16384, torch.bfloat16),   # M <= 64, 1.2e11 FLOP
              (65, 57344, 16384, torch.bfloat16),   # M > 64, 1.2e11 FLOP
              (3684, 3684, 3684, torch.float16),    # 0.99998e11 FLOP
              (3685, 3685, 3685, torch.float16),    # 1.0008e11 FLOP
              (4096, 4096, 4096, FP8),
              (4096, 4096, 4096, torch.bfloat16)]
    seen = set()
    for m, n, k, dtype in shapes:
        kernel = _launched_kernel(monkeypatch, m, n, k, dtype)
        seen.add(kernel)
        slow, fast = t(0.1, m, n, k, names[dtype]), t(1.0, m, n, k, names[dtype])
        if kernel == "persistent":
            assert slow > fast, (m, n, k, dtype)
        else:
            assert slow == fast, (m, n, k, dtype)
    assert seen == {"pointer", "persistent"}
