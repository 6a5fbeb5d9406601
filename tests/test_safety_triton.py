"""The Triton mirror follows kernels/gemm.py's capability and dtype rules (issue 14, "Triton mirror off the kernel")."""

import pytest

import simulator
from simulator.kinds import gemm

N = K = 8192
M_SWITCH = gemm.TRITON_PERSISTENT_MIN_FLOPS / (2 * N * K)  # the persistent kernel's FLOP threshold, as M


def _switch_jump(hw: str) -> float:
    """Relative time step across the persistent-kernel threshold (one row of M apart), H100's fitted
    Triton parameters applied to ``hw`` (persistent and pointer efficiencies differ there)."""
    t = [simulator.predict_kernel(hw, "gemm", impl="triton", m=m, n=N, k=K, state="burst",
                                  calibration="transfer:h100-sxm5-80gb").time_s
         for m in (int(M_SWITCH) - 1, int(M_SWITCH) + 1)]
    return t[1] / t[0] - 1.0


def test_no_persistent_path_without_tma():
    assert abs(_switch_jump("a100-sxm4-80gb")) < 1e-3  # Ampere (sm_80): the pointer kernel on both sides
    assert abs(_switch_jump("rtx-4090")) < 1e-3  # Ada (sm_89)
    assert _switch_jump("h100-sxm5-80gb") < -0.05  # Hopper: the persistent kernel takes over, faster


@pytest.mark.parametrize("dtype", ["fp32", "tf32", "int8"])
def test_triton_gemm_dtypes_the_kernel_does_not_run_are_refused(dtype):
    with pytest.raises(ValueError, match=f"not dtype '{dtype}'"):
        simulator.predict_kernel("h100-sxm5-80gb", "gemm", impl="triton", m=512, n=512, k=512, dtype=dtype)
    assert simulator.predict_kernel("h100-sxm5-80gb", "gemm", impl="vendor", m=512, n=512, k=512,
                                    dtype=dtype).time_s > 0


def test_triton_fp8_needs_sm89():
    with pytest.raises(ValueError, match="compute capability >= 8.9"):
        simulator.predict_kernel("a100-sxm4-80gb", "gemm", impl="triton", m=512, n=512, k=512, dtype="fp8")
    for hw in ("rtx-4090", "h100-sxm5-80gb"):
        assert simulator.predict_kernel(hw, "gemm", impl="triton", m=512, n=512, k=512, dtype="fp8").time_s > 0


def test_mirror_matches_the_kernels_dispatch_constants():
    import inspect

    kernel_src = inspect.getsource(__import__("kernels.gemm", fromlist=["_tma_eligible"])._tma_eligible)
    assert "get_device_capability(a.device)[0] < 9" in kernel_src  # the rule TMA_ARCHITECTURES mirrors
    assert set(gemm.TRITON_DTYPES) == {"fp16", "bf16", "fp8"}
