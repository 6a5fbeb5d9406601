"""Effect parameters of the performance model, grouped by what owns them.

Each group is one part of the machine (a kernel class, the memory system, the links, the host, the power
limit). Each field carries its default (a public measurement where one exists; the comment says which),
its validation range, and how calibration fits it — so the fitter's tables are read from this schema,
never retyped:

    fit_field(default, fit=(lo, hi), stage="gemm", starts=(...), **range)

- ``fit``: bounds of the least-squares fit (absent: never fitted, the default is used as given);
- ``stage``: the measurement cases that see it — an op kind's stage (``simulator.kinds``), "layers"
  (whole decoder blocks) or "power" (the sustained-power run); default: the group's own name;
- ``starts``: a starting grid for effects with discrete steps (tiles, split counts): calibration fits
  from every combination of a stage's starts and keeps the best. A field with ``starts`` and no ``fit``
  is discrete: chosen among its starts, not fitted.

Where each group sits in a profile: ``gemm``, ``attention_prefill``, ``attention_decode``, ``memory``,
``link`` and ``launch`` describe a GPU running one kernel implementation (``impl`` "vendor" or "triton");
``host`` describes the machine the GPU sits in (eager launch issue rate, pageable copies through the
host's memcpy), ``power`` the device's power limit — one of each per device, shared by both impls.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

IMPLS = ("vendor", "triton")


def fit_field(default, *, fit: tuple[float, float] | None = None, stage: str | None = None,
              starts: tuple | None = None, **rng) -> Any:
    """A pydantic Field whose ``json_schema_extra`` carries its fit bounds, stage and starting grid."""
    extra = {k: v for k, v in (("fit", fit), ("stage", stage), ("starts", starts)) if v is not None}
    return Field(default=default, json_schema_extra=extra, **rng)


LATENCY_FIT = (0.0, 50e-6)
FRAC_FIT = (0.02, 1.2)


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    NAME: ClassVar[str] = ""  # the group's key in a profile; also its default fit stage


class GemmParams(_Group):
    """GEMMs (cuBLAS, or hwperf's Triton GEMM: pointer kernel and persistent TMA kernel)."""

    NAME: ClassVar[str] = "gemm"
    # MAMF finder measured 0.80 of dense bf16 peak on H100 SXM, 0.87 on A100.
    efficiency_frac: float = fit_field(0.80, fit=FRAC_FIT, gt=0, le=1.2)
    # hwperf's persistent TMA GEMM (16-bit, M > 64, ≥ 1e11 FLOP) keeps the tensor cores busier than its
    # pointer kernel: H100 run 720-790 TFLOP/s vs 480-610 for the pointer kernel at M = 512-2048.
    persistent_efficiency_frac: float = fit_field(0.80, fit=FRAC_FIT, gt=0, le=1.2)
    # Small autotuned tiles pay for their K-step loads like this many extra rows/columns of work.
    tile_overhead_dim: float = fit_field(16.0, fit=(0.0, 256.0), ge=0)
    # 8-bit GEMMs (fp8/int8) reach a lower fraction of their (doubled) peak: 0.70 vs 0.79 for bf16 on H100.
    efficiency_8bit_frac: float = fit_field(0.70, fit=FRAC_FIT, gt=0, le=1.2)
    # int8 GEMMs' compute rate over fp8's at the same shape (1 where the datasheet peaks are equal). Not fitted
    # by the main stages (no int8 case in kernels.csv): ``validate.int8_fit`` sets it from int8_gemm.csv
    # (benchmarks/bench_int8_gemm.py). H200 cuBLASLt torch._int_mm: 0.71 of _scaled_mm fp8 at M ≥ 2048.
    int8_rate_frac: float = Field(default=1.0, gt=0, le=1.5)
    # Skinny GEMMs (decode, M ≤ ~64) stream weights at 0.79-0.92 of HBM (vidur H100 profiles, H100 run).
    gemv_efficiency_frac: float = fit_field(0.80, fit=FRAC_FIT, gt=0, le=1.2)
    # Sharpness of every op's compute↔memory knee, t = (t_c^p + t_m^p)^(1/p) (p → ∞ is max()); fitted
    # on GEMMs, the one kind whose cases cross the ridge point in both directions.
    knee_exponent: float = fit_field(4.0, fit=(1.0, 16.0), ge=1)
    # Fixed per-kernel time (launch + ramp + tail) seen by CUDA events.
    latency_s: float = fit_field(4.0e-6, fit=LATENCY_FIT, ge=0)
    # The share of compute time that scales with 1/SM clock (the rest is paced by L2 and memory, which the
    # power limit does not slow), of the time the GEMM's DRAM traffic leaves (simulator.kinds.base.dram_paced:
    # β·(1 − DRAM share)). H200 run (2026-12-01, states.csv): cuBLAS GEMMs 17-22% slower at 26-49% lower
    # clocks, β_i 0.19 (128×4096×14336, mostly DRAM) to 0.75; fitted 0.72-0.84 of the non-DRAM time (55 and
    # 43 cases).
    clock_bound_frac: float = fit_field(0.8, stage="power", ge=0, le=1)
    # (BLOCK_M, BLOCK_N) the library picks for large shapes: tile and wave quantization (NVIDIA Matrix
    # Multiplication Background guide, DU-09799-001 §3.1-3.2). Discrete: chosen among these starts.
    tile: tuple[int, int] = fit_field((128, 256), starts=((128, 128), (128, 256), (256, 128), (64, 128), (64, 256)))


class PrefillAttentionParams(_Group):
    """Flash-attention forward as 128 × 128 tiles (SDPA's flash backend, or hwperf's Triton kernel)."""

    NAME: ClassVar[str] = "attention_prefill"
    # FA2 reaches 0.35, FA3 0.75 of H100 dense peak on its matmuls (Shah et al., arXiv 2407.08608); this
    # fraction is of the tile work below (matmuls + softmax-equivalent), so it can exceed the matmul-only one.
    # Decode attention's (small) compute term uses it too.
    efficiency_frac: float = fit_field(0.60, fit=(0.02, 2.0), gt=0, le=2.0)
    # Softmax/rescale work per score tile costs like this many extra head dims (D=64 runs slower per FLOP).
    softmax_overhead_dim: float = fit_field(64.0, fit=(0.0, 512.0), ge=0)
    # Each 128-row query block pays this many extra key tiles (load Q, write O) ...
    q_block_overhead_tiles: float = fit_field(1.0, fit=(0.0, 16.0), ge=0)
    # ... and causal diagonal (masked) tiles cost this fraction of a tile more.
    causal_diag_overhead_frac: float = fit_field(0.3, fit=(0.0, 4.0), ge=0)
    latency_s: float = fit_field(6.0e-6, fit=LATENCY_FIT, ge=0)
    # Share of compute time that scales with 1/SM clock (H200 run: 16% slower at 16% lower clocks → 0.92).
    clock_bound_frac: float = fit_field(0.9, stage="power", ge=0, le=1)


class DecodeAttentionParams(_Group):
    """Split-KV decode attention (flash-decoding): one query token per sequence over the cache."""

    NAME: ClassVar[str] = "attention_decode"
    # KV streams at up to this fraction of HBM with many work units in flight (the occupancy curve's
    # asymptote; fitted 0.93-0.96 on H100 and H200, no public figure — the default is rounded from those).
    efficiency_frac: float = fit_field(0.92, fit=FRAC_FIT, gt=0, le=1.2)
    # Library kernels: context / split_tokens splits per (sequence, kv-head), at most ``splits``.
    split_tokens: float = fit_field(512.0, fit=(16.0, 65536.0), starts=(128.0, 512.0, 2048.0), gt=0)
    splits: float = fit_field(16.0, fit=(1.0, 256.0), starts=(4.0, 16.0, 64.0), gt=0)
    # u work units reach u / (u + n_sms × ctas_per_sm) of the bandwidth (fitted 0.2-0.8 per SM on H100/H200).
    ctas_per_sm: float = fit_field(0.5, fit=(0.05, 64.0), starts=(0.5, 2.0), gt=0)
    latency_s: float = fit_field(6.0e-6, fit=LATENCY_FIT, ge=0)
    # A paged (block-table) KV cache streams a little slower than a contiguous one ...
    paged_frac: float = fit_field(0.95, fit=FRAC_FIT, gt=0, le=1.2)
    # ... and pays a fixed extra time (block-table loads; H100 run: +1-5 µs at 2-34 MB).
    paged_latency_s: float = fit_field(2.0e-6, fit=LATENCY_FIT, ge=0)


class QuantDecodeAttentionParams(_Group):
    """Decode attention over a compressed KV cache (hwperf's Triton kernel; ``simulator.kinds.
    attention_decode_quant``): the KV stream at ``attention_decode``'s bandwidth times a per-width factor,
    the unpacking + dequantization on the CUDA cores at a per-width fraction of the fp32 rate (narrower
    codes cost different shift/mask work per element). Defaults: no public figure; streams as fast per
    byte as bf16 and dequantization at half the fp32 rate, until fitted."""

    NAME: ClassVar[str] = "attention_decode_quant"
    stream_8bit_frac: float = fit_field(1.0, fit=FRAC_FIT, gt=0, le=1.2)
    stream_4bit_frac: float = fit_field(1.0, fit=FRAC_FIT, gt=0, le=1.2)
    stream_2bit_frac: float = fit_field(1.0, fit=FRAC_FIT, gt=0, le=1.2)
    dequant_8bit_frac: float = fit_field(0.5, fit=(0.005, 1.2), gt=0, le=1.2)
    dequant_4bit_frac: float = fit_field(0.5, fit=(0.005, 1.2), gt=0, le=1.2)
    dequant_2bit_frac: float = fit_field(0.5, fit=(0.005, 1.2), gt=0, le=1.2)
    extra_latency_s: float = fit_field(0.0, fit=LATENCY_FIT, ge=0)

    def _by_width(self, bits, name: str) -> float:
        """The width's field; other widths (3-bit KIVI/KVQuant) use the nearest measured width above them;
        an uncompressed 16-bit stream (H2O's kept tokens, MiniCache) reads like the bf16 kernel: 1."""
        if bits >= 16:
            return 1.0
        width = 2 if bits <= 2 else 4 if bits <= 4 else 8
        return getattr(self, f"{name}_{width}bit_frac")

    def stream_frac(self, bits) -> float:
        return self._by_width(bits, "stream")

    def dequant_frac(self, bits) -> float:
        return self._by_width(bits, "dequant")


class W4A16GemmParams(_Group):
    """hwperf's W4A16 Triton GEMM (``simulator.kinds.gemm_w4a16``). Defaults: the bf16 GEMM's 0.80 of peak
    and GEMV's 0.80 of HBM until fitted; no public figure for the dequantization rate (0.5 of fp32)."""

    NAME: ClassVar[str] = "gemm_w4a16"
    efficiency_frac: float = fit_field(0.80, fit=FRAC_FIT, gt=0, le=1.2)
    stream_frac: float = fit_field(0.80, fit=FRAC_FIT, gt=0, le=1.2)
    dequant_frac: float = fit_field(0.5, fit=(0.01, 1.2), gt=0, le=1.2)
    latency_s: float = fit_field(4.0e-6, fit=LATENCY_FIT, ge=0)


class MemoryParams(_Group):
    """Bandwidth-bound kernels that are not attention: device copies and elementwise/norm kernels."""

    NAME: ClassVar[str] = "memory"
    # Large device-to-device copies reach 0.89-0.90 of HBM spec on H100 (H100 run; STREAM on A100 0.85-0.97).
    copy_efficiency_frac: float = fit_field(0.88, fit=FRAC_FIT, stage="copy", gt=0, le=1.2)
    # Per-kernel floor of copies and elementwise kernels (te42kyfo gpu-small-kernels fit ≈ 2-5 µs).
    latency_s: float = fit_field(4.0e-6, fit=LATENCY_FIT, stage="copy", ge=0)
    # Elementwise/norm kernels move bytes less efficiently than a pure copy; seen only inside whole layers.
    elementwise_efficiency_frac: float = fit_field(0.70, fit=FRAC_FIT, stage="layers", gt=0, le=1.2)


class LinkParams(_Group):
    """The GPU's links: DMA over the host link (pinned copies) and collectives over the scale-up link."""

    NAME: ClassVar[str] = "link"
    # Pinned host↔device DMA ≈ 0.87 of PCIe Gen5 x16 (55 of 63 GB/s per direction).
    pinned_efficiency_frac: float = fit_field(0.85, fit=FRAC_FIT, stage="host_copy", gt=0, le=1.2)
    pinned_latency_s: float = fit_field(10.0e-6, fit=(0.0, 200e-6), stage="host_copy", ge=0)
    # Collective bus bandwidth over NVLink: 0.78-0.82 of the per-direction link rate (nccl-tests busbw).
    collective_efficiency_frac: float = fit_field(0.80, gt=0, le=1.2)
    # Collectives' floor; the copy-kernel floor until multi-GPU runs fit it (stage "collective").
    collective_latency_s: float = fit_field(4.0e-6, ge=0)


class LaunchParams(_Group):
    """Back-to-back kernels of one step replayed from a CUDA graph leave a small gap each."""

    NAME: ClassVar[str] = "launch"
    graph_gap_s: float = fit_field(1.0e-6, fit=(0.0, 20e-6), stage="layers", ge=0)  # H100 run ≈ 1 µs


class HostParams(_Group):
    """The machine around the GPU: how fast its CPU issues eager kernels and copies pageable memory.
    Measured with the GPU, but a property of the host: it does not transfer between machines."""

    NAME: ClassVar[str] = "host"
    # PyTorch eager ≈ 10.9 µs per torch op; a modelled op (RMSNorm, RoPE) is ~2 torch ops → 20 µs.
    eager_launch_overhead_s: float = fit_field(20.0e-6, fit=(0.0, 200e-6), stage="layers", ge=0)
    # Pageable copies bounce through a pinned staging buffer at the host's memcpy rate (fractions of the
    # host link): the first ``pageable_fast_bytes`` at one rate, host→device beyond at a slower one
    # (H100 host: 16.5 GB/s at 16 MB, 9.8 GB/s at 256 MB-1 GB); device→host measured no slower at size.
    h2d_pageable_efficiency_frac: float = fit_field(0.20, fit=FRAC_FIT, stage="host_copy", gt=0, le=1.2)
    d2h_pageable_efficiency_frac: float = fit_field(0.20, fit=FRAC_FIT, stage="host_copy", gt=0, le=1.2)
    h2d_pageable_large_efficiency_frac: float = fit_field(0.16, fit=FRAC_FIT, stage="host_copy", gt=0, le=1.2)
    # One eager call timed with CUDA events around it waits for the host to issue it: per call, by kernel
    # family (H200 host, states.csv eager_call rows: cuBLAS 12 µs, SDPA 17 µs, copy_ 6.5 µs; Triton 3.6's
    # launcher 50-140 µs on the H100 host, benchmarks/results/).
    eager_call_cublas_s: float = fit_field(12.0e-6, fit=(0.0, 500e-6), stage="eager_call", ge=0)
    eager_call_sdpa_s: float = fit_field(17.0e-6, fit=(0.0, 500e-6), stage="eager_call", ge=0)
    eager_call_copy_s: float = fit_field(7.0e-6, fit=(0.0, 500e-6), stage="eager_call", ge=0)
    eager_call_triton_s: float = fit_field(60.0e-6, fit=(0.0, 500e-6), stage="eager_call", ge=0)
    # Not fitted: at 4× size steps the break point is not identifiable (any value between two sizes fits).
    pageable_fast_bytes: float = fit_field(64.0e6, ge=0)
    pageable_latency_s: float = fit_field(20.0e-6, fit=(0.0, 500e-6), stage="host_copy", ge=0)


class PowerParams(_Group):
    """Board power and the clock it allows (DVFS under the power limit).

        P(φ) = P_idle + P_active·φ^(1+γ)·busy + (φ^γ·(E_tensor·FLOPs + E_stage·bytes_staged) + E_dram·bytes) / t

    φ = SM clock / boost clock; γ: energy per operation scales with V², V rising with the clock
    (so tensor power at a fixed FLOP rate scales as φ^γ, clock-tree power as φ^(1+γ)); busy: the fraction
    of the time kernels run. E_tensor = ``tensor_power_frac`` × TDP / dense peak (energy per FLOP at
    boost), E_dram = ``dram_power_frac`` × TDP / HBM bandwidth — relative to the datasheet, so a prior
    transfers across devices of one family. Under load the clock settles at the highest φ whose P(φ)
    stays within the power limit ("sustained"); right after idle it runs at boost ("burst").
    Defaults: rounded from the fit to an H200's NVML runs at its 700 W limit (hwperf measurement,
    2026-12-01, validate/measurements/h200-sxm-141gb/power.csv and states.csv: 21 kernels and layers held
    at the limit, e.g. bf16 8192³ GEMMs 694 W at 1473 MHz, decode attention 666-693 W at 1980 MHz).
    """

    NAME: ClassVar[str] = "power"
    # None: the datasheet's idle_power_w. NVML idle right after load reads higher (H200: 126-163 W).
    idle_power_w: float | None = fit_field(None, stage="power", gt=0)
    active_power_frac: float = fit_field(0.03, stage="power", ge=0, le=2)
    tensor_power_frac: float = fit_field(2.0, stage="power", ge=0, le=5)
    # Energy of an 8-bit (fp8, int8) tensor FLOP relative to a bf16 one. Prior 0.5: Hopper's fp8 peak is
    # twice bf16's within one TDP. Fitted where 8-bit cases were measured (H200: an fp8 8192³ GEMM ran
    # 1.8× the FLOP/s of bf16 at the same ~695 W and a lower clock, 1330 vs 1461 MHz).
    tensor_8bit_energy_frac: float = fit_field(0.5, stage="power", ge=0, le=2)
    # Energy of a prefill-attention FLOP relative to a GEMM's at the same dtype: flash attention also computes
    # exp, max and the rescale of every score on the SMs' FMA and special-function units between its two
    # tensor-core products (FlashAttention-3, arXiv 2407.08608: the exponentials are the bottleneck beside the
    # matmuls). Prior 1 (no extra); fitted where prefill-attention cases were measured: 1.2 on an H200 (hwperf
    # measurement 2026-12-01, states.csv: SDPA held at its 700 W limit at 1.66-1.75 GHz).
    attention_flop_energy_frac: float = fit_field(1.0, stage="power", ge=0, le=5)
    dram_power_frac: float = fit_field(0.7, stage="power", ge=0, le=5)
    # SM work per DRAM byte of decode attention (simulator.power.STAGED_KINDS: KV bytes staged through shared
    # memory into the tensor cores and the softmax), × TDP / HBM bandwidth like dram_power_frac, scaling as
    # φ^γ. Prior: rounded from the H200 fits, 0.13-0.16 (hwperf measurement 2026-12-01: decode attention held
    # the 700 W limit at 1.74-1.89 GHz and 4.4 TB/s; copies and GEMVs at the same rate drew 565-634 W at boost).
    stage_power_frac: float = fit_field(0.15, stage="power", ge=0, le=5)
    voltage_exponent: float = fit_field(2.5, stage="power", ge=0, le=4)
    # Of the energy per DRAM byte, the HBM devices' own part (the rest — L2, crossbar, load/store units —
    # runs on the GPU's clock and voltage and scales like tensor work): HBM2 3.9 pJ/bit (O'Connor et al.,
    # "Fine-Grained DRAM", MICRO 2017) = 31 pJ/byte. Why decode barely slows under a power cap
    # (Splitwise, arXiv 2311.18677; POLCA, arXiv 2308.12908): lowering the clock sheds most of its power.
    hbm_device_j_per_byte: float = fit_field(31e-12, ge=0)
    # The lowest clock the power manager settles at, as a fraction of boost (H100/H200 NVML minimum
    # supported graphics clock 345 MHz ≈ 0.17; a power-capped GPU stays far above it).
    min_clock_frac: float = fit_field(0.17, gt=0, le=1)


KERNEL_GROUPS = (GemmParams, PrefillAttentionParams, DecodeAttentionParams, MemoryParams, LinkParams,
                 LaunchParams, QuantDecodeAttentionParams, W4A16GemmParams)
DEVICE_GROUPS = (HostParams, PowerParams)
ALL_GROUPS = KERNEL_GROUPS + DEVICE_GROUPS


def _extra(group: type[_Group], name: str) -> dict:
    return group.model_fields[name].json_schema_extra or {}


def stage_fields(stage: str) -> list[str]:
    """Dotted paths ("gemm.efficiency_frac") of the continuously fitted fields a stage's cases see."""
    return [f"{g.NAME}.{n}" for g in ALL_GROUPS for n in g.model_fields
            if "fit" in _extra(g, n) and _extra(g, n).get("stage", g.NAME) == stage]


def fit_bounds(path: str) -> tuple[float, float]:
    group, name = path.split(".")
    return tuple(_extra(_GROUP_BY_NAME[group], name)["fit"])


def stage_starts(stage: str) -> list[dict]:
    """Every combination of the starting grids of a stage's fields ({path: value}); [] when it has none."""
    paths = [f"{g.NAME}.{n}" for g in ALL_GROUPS for n in g.model_fields
             if "starts" in _extra(g, n) and _extra(g, n).get("stage", g.NAME) == stage]
    grids = [_extra(_GROUP_BY_NAME[p.split(".")[0]], p.split(".")[1])["starts"] for p in paths]
    return [dict(zip(paths, combo)) for combo in itertools.product(*grids)] if paths else []


_GROUP_BY_NAME = {g.NAME: g for g in ALL_GROUPS}
