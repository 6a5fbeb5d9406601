"""Calibration profiles: the fitted effect parameters of the performance model.

``Hardware`` (the datasheet) is never mutated: a ``Calibration`` is a separate, optional input. Each
parameter below is one effect from DESIGN.md "What the model must capture"; its default is a public
measurement (see ../shared/reference/hardware.md §3, §6) so an uncalibrated device still gets a
realistic prediction. ``hwperf calibrate`` fits them per implementation ("vendor": cuBLAS / SDPA /
``copy_``; "triton": hwperf's own kernels) and writes ``hwspecs/calibration/<hardware-id>.yaml``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

IMPLS = ("vendor", "triton")
# Which kernels a profile describes. "library": cuBLAS / SDPA / copy_, whose dispatch heuristics we do not
# mirror (smooth decode occupancy, split-K fills small GEMM grids). "hwperf-triton": hwperf's own kernels,
# whose dispatch is known and mirrored in simulator.roofline: the decode split rule of
# kernels/attention_decode.py, and kernels/gemm.py's choice between its pointer kernel and its persistent
# TMA kernel (neither splits K).
KERNEL_FAMILIES = ("library", "hwperf-triton")


class EffectParams(BaseModel):
    """Effect parameters of one kernel implementation on one device. Fractions are of datasheet peaks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Achievable ceilings. GEMM: MAMF finder measured 0.80 of dense bf16 peak on H100 SXM, 0.87 on A100.
    gemm_efficiency_frac: float = Field(default=0.80, gt=0, le=1.2)
    # 8-bit GEMMs (fp8/int8) reach a lower fraction of their (doubled) peak: 0.70 vs 0.79 for bf16 on H100.
    gemm_8bit_efficiency_frac: float = Field(default=0.70, gt=0, le=1.2)
    # Output tile the GEMM library picks for large shapes; drives tile and wave quantization
    # (NVIDIA Matrix Multiplication Background guide, DU-09799-001 §3.1-3.2).
    gemm_tile_m: int = Field(default=128, gt=0)
    gemm_tile_n: int = Field(default=256, gt=0)
    # Skinny GEMMs (decode, M ≤ ~64) stream weights at 0.79-0.92 of HBM (vidur H100 profiles, H100 run).
    gemv_efficiency_frac: float = Field(default=0.80, gt=0, le=1.2)
    # Large device-to-device copies reach 0.89-0.90 of HBM spec on H100 (H100 run; STREAM on A100 0.85-0.97).
    memory_efficiency_frac: float = Field(default=0.88, gt=0, le=1.2)
    # Elementwise/norm kernels move bytes less efficiently than a pure copy.
    elementwise_efficiency_frac: float = Field(default=0.70, gt=0, le=1.2)
    # Fixed per-kernel time (launch + ramp + tail), seen by CUDA events; te42kyfo gpu-small-kernels fit ≈ 2-5 µs.
    # Copies and elementwise kernels use kernel_latency_s; GEMMs and attention (split-KV decode is two
    # kernels: partial attention + reduce) have their own floors.
    kernel_latency_s: float = Field(default=4.0e-6, ge=0)
    gemm_latency_s: float = Field(default=4.0e-6, ge=0)
    attention_latency_s: float = Field(default=6.0e-6, ge=0)
    attention_decode_latency_s: float = Field(default=6.0e-6, ge=0)
    # Sharpness of the compute↔memory knee: t = (t_c^p + t_m^p)^(1/p); p → ∞ is the plain max().
    roofline_knee_exponent: float = Field(default=4.0, ge=1)
    # Flash-attention forward reaches 0.35 (FA2) to 0.75 (FA3) of H100 dense peak on its matmuls; here the
    # fraction is of the tile work below (matmuls + softmax-equivalent), so it can exceed the matmul-only one ...
    attention_prefill_efficiency_frac: float = Field(default=0.60, gt=0, le=2.0)
    # ... the softmax/rescale work per score tile costs like this many extra head dims (so D=64 runs at a
    # lower FLOP rate than D=128), each 128-row query block pays this many extra key tiles (load Q,
    # write O) and causal diagonal tiles (masked) cost this fraction of a tile more.
    attention_softmax_overhead_dim: float = Field(default=64.0, ge=0)
    attention_q_block_overhead_tiles: float = Field(default=1.0, ge=0)
    attention_causal_diag_overhead_frac: float = Field(default=0.3, ge=0)
    # Decode attention streams KV at up to this fraction of HBM with many work units in flight (the
    # asymptote of the occupancy curve below; fitted 0.93-0.96 on H100 and H200) ...
    attention_decode_efficiency_frac: float = Field(default=0.92, gt=0, le=1.2)
    # ... split-KV (flash-decoding) gives each (sequence, kv-head) context / split_tokens splits, at
    # most attention_decode_splits; u = sequences × kv-heads × splits units reach u / (u + n_sms × ctas_per_sm)
    # of the bandwidth (half of it at n_sms × ctas_per_sm units; fitted 0.2-0.8 per SM on H100 and H200).
    attention_decode_split_tokens: float = Field(default=512.0, gt=0)
    attention_decode_splits: float = Field(default=16.0, gt=0)
    attention_decode_ctas_per_sm: float = Field(default=0.5, gt=0)
    # A paged (block-table) KV cache streams a little slower than a contiguous one: indirection, 16-token blocks.
    attention_decode_paged_frac: float = Field(default=0.95, gt=0, le=1.2)
    # ... and pays a fixed extra time per kernel (block-table loads ahead of the first KV tile; H100 run:
    # +1-5 µs at 2-34 MB, where the bandwidth fraction alone predicted paged ≈ contiguous).
    attention_decode_paged_latency_s: float = Field(default=2.0e-6, ge=0)
    # Host↔device over PCIe: pinned ≈ 0.87 of Gen5 x16 (55/63 GB/s), pageable far lower.
    h2d_pinned_efficiency_frac: float = Field(default=0.85, gt=0, le=1.2)
    h2d_pageable_efficiency_frac: float = Field(default=0.20, gt=0, le=1.2)
    # Pageable copies bounce through a staging buffer; device→host measured faster than host→device.
    d2h_pageable_efficiency_frac: float = Field(default=0.20, gt=0, le=1.2)
    # Beyond the first pageable_fast_bytes a pageable host→device copy moves at the "large" rate: the
    # host's memcpy from DRAM, not cache (H100 host: 16.5 GB/s at 16 MB, 9.8 GB/s at 256 MB-1 GB;
    # device→host measured no slower at large sizes).
    h2d_pageable_large_efficiency_frac: float = Field(default=0.16, gt=0, le=1.2)
    # Not fitted: with copies measured at 4× size steps the break point is not identifiable (any value
    # between two sizes fits equally); 64 MB sits between the H100 host's fast and slow sizes.
    pageable_fast_bytes: float = Field(default=64.0e6, ge=0)
    host_transfer_latency_s: float = Field(default=10.0e-6, ge=0)
    pageable_transfer_latency_s: float = Field(default=20.0e-6, ge=0)
    # Per-op host overhead: PyTorch eager ≈ 10.9 µs per torch op and a modelled op (e.g. RMSNorm, RoPE)
    # is ~2 eager torch ops → 20 µs; CUDA-graph replay ≈ 1.0 µs/kernel (H100 run).
    eager_launch_overhead_s: float = Field(default=20.0e-6, ge=0)
    graph_launch_overhead_s: float = Field(default=1.0e-6, ge=0)
    # Sustained compute-bound work at the power limit: H100 SXM bf16 GEMMs settle at 0.67-0.70 of peak
    # vs 0.83 burst, i.e. a clock ≈ 0.82 of boost; the clock decays with this time constant.
    sustained_clock_frac: float = Field(default=0.82, gt=0, le=1)
    power_throttle_time_constant_s: float = Field(default=0.5, gt=0)
    # Collective (all-reduce) bus bandwidth over NVLink: 0.78-0.82 of per-direction link rate.
    link_efficiency_frac: float = Field(default=0.80, gt=0, le=1.2)
    # hwperf's persistent TMA GEMM (16-bit, M > 64, ≥ 1e11 FLOP) keeps the tensor cores busier than its
    # pointer kernel: H100 run 720-790 TFLOP/s vs 480-610 for the pointer kernel at M = 512-2048.
    gemm_persistent_efficiency_frac: float = Field(default=0.80, gt=0, le=1.2)
    # ... and its autotuner picks among tiles whose K-step loads cost like this many extra rows/columns of
    # work (small tiles are slower per FLOP; the library's single fitted tile folds this into its efficiency).
    gemm_tile_overhead_dim: float = Field(default=16.0, ge=0)
    kernel_family: Literal[KERNEL_FAMILIES] = "library"


# hwperf's own kernels: their dispatch (decode splits, GEMM kernel choice) is known, not fitted.
TRITON_DEFAULTS = EffectParams(kernel_family="hwperf-triton")


class Provenance(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    date: str
    device_name: str
    driver: str
    torch: str
    triton: str
    git_sha: str
    method: str = Field(description="how the parameters were fitted")
    n_fit_cases: int = Field(ge=0)
    n_score_cases: int = Field(ge=0)
    notes: str = ""


class Calibration(BaseModel):
    """A fitted profile for one hardware id: effect parameters per kernel implementation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hardware_id: str
    provenance: Provenance | None = None
    vendor: EffectParams = EffectParams()
    triton: EffectParams = TRITON_DEFAULTS

    @field_validator("triton", mode="before")
    @classmethod
    def _triton_defaults(cls, value):
        """A triton section read from YAML starts from TRITON_DEFAULTS, not the vendor defaults (a profile
        written before a field existed then still describes hwperf's own kernels)."""
        if isinstance(value, dict):
            return {"kernel_family": TRITON_DEFAULTS.kernel_family, **value}
        return value

    def params(self, impl: str) -> EffectParams:
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
        return getattr(self, impl)


DEFAULT_CALIBRATION = Calibration(hardware_id="default")
