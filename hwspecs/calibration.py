"""Calibration profiles: the fitted effect parameters of the performance model, per device.

``Hardware`` (the datasheet) is never mutated: a ``Calibration`` is a separate, optional input. A profile
holds one ``KernelProfile`` per implementation (``impl`` "vendor": cuBLAS / SDPA / ``copy_``; "triton":
hwperf's own kernels) and, once per device, the ``host`` and ``power`` groups (see ``hwspecs.effects``
for every field, its default and source). ``Calibration.params(impl)`` gives the model one
``EffectParams`` bundle. ``hwperf calibrate`` fits them and writes ``hwspecs/calibration/<id>.yaml``.

Profiles written before the groups existed (one flat section per impl, ``kernel_family``) still load:
``migrate_flat`` maps every old field to its group (host and power from the vendor section).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from hwspecs.effects import (IMPLS, DecodeAttentionParams, GemmParams, HostParams, LaunchParams, LinkParams,
                             MemoryParams, PowerParams, PrefillAttentionParams, QuantDecodeAttentionParams,
                             W4A16GemmParams)

__all__ = ["IMPLS", "Calibration", "EffectParams", "KernelProfile", "Provenance", "DEFAULT_CALIBRATION",
           "check_device", "check_whole", "migrate_flat", "missing_fields"]


class KernelProfile(BaseModel):
    """The GPU-side groups of one kernel implementation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gemm: GemmParams = GemmParams()
    attention_prefill: PrefillAttentionParams = PrefillAttentionParams()
    attention_decode: DecodeAttentionParams = DecodeAttentionParams()
    memory: MemoryParams = MemoryParams()
    link: LinkParams = LinkParams()
    launch: LaunchParams = LaunchParams()
    attention_decode_quant: QuantDecodeAttentionParams = QuantDecodeAttentionParams()
    gemm_w4a16: W4A16GemmParams = W4A16GemmParams()


@dataclass(frozen=True)
class EffectParams:
    """Everything the model reads for one prediction: the impl, its kernel groups, the host and power.
    ``with_values({"gemm.efficiency_frac": 0.7})`` returns a copy with dotted fields replaced."""

    impl: str = "vendor"
    gemm: GemmParams = GemmParams()
    attention_prefill: PrefillAttentionParams = PrefillAttentionParams()
    attention_decode: DecodeAttentionParams = DecodeAttentionParams()
    memory: MemoryParams = MemoryParams()
    link: LinkParams = LinkParams()
    launch: LaunchParams = LaunchParams()
    attention_decode_quant: QuantDecodeAttentionParams = QuantDecodeAttentionParams()
    gemm_w4a16: W4A16GemmParams = W4A16GemmParams()
    host: HostParams = HostParams()
    power: PowerParams = PowerParams()

    def get(self, path: str):
        group, name = path.split(".")
        return getattr(getattr(self, group), name)

    def with_values(self, values: dict) -> "EffectParams":
        by_group: dict[str, dict] = {}
        for path, v in values.items():
            group, name = path.split(".")
            by_group.setdefault(group, {})[name] = v
        return replace(self, **{g: getattr(self, g).model_copy(update=u) for g, u in by_group.items()})

    def kernel_profile(self) -> KernelProfile:
        return KernelProfile(**{g: getattr(self, g) for g in KernelProfile.model_fields})


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
    """A fitted profile for one hardware id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hardware_id: str
    provenance: Provenance | None = None
    host: HostParams = HostParams()
    power: PowerParams = PowerParams()
    vendor: KernelProfile = KernelProfile()
    triton: KernelProfile = KernelProfile()
    _params: dict = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data):
        if isinstance(data, dict) and isinstance(data.get("power"), dict) and set(data["power"]) & _DROPPED_POWER:
            warnings.warn(f"calibration {data.get('hardware_id', '?')}: power.sustained_clock_frac and "
                          "throttle_time_constant_s are replaced by the power model; ignored", stacklevel=2)
            data = {**data, "power": {k: v for k, v in data["power"].items() if k not in _DROPPED_POWER}}
        if isinstance(data, dict) and _is_flat(data):
            warnings.warn(f"calibration {data.get('hardware_id', '?')} is in the pre-group (flat) format; "
                          "read through migrate_flat — rewrite it with `hwperf calibrate`", stacklevel=2)
            return migrate_flat(data)
        return data

    def params(self, impl: str) -> EffectParams:
        """The model's parameter bundle for ``impl`` (built once per profile)."""
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
        if impl not in self._params:
            prof = getattr(self, impl)
            self._params[impl] = EffectParams(impl=impl, host=self.host, power=self.power,
                                              **{g: getattr(prof, g) for g in KernelProfile.model_fields})
        return self._params[impl]

    @classmethod
    def from_params(cls, hardware_id: str, vendor: EffectParams, triton: EffectParams,
                    provenance: Provenance | None = None) -> "Calibration":
        """A profile from two bundles; host and power come from ``vendor`` (they are fitted there)."""
        return cls(hardware_id=hardware_id, provenance=provenance, host=vendor.host, power=vendor.power,
                   vendor=vendor.kernel_profile(), triton=triton.kernel_profile())



# ---- the pre-group format -----------------------------------------------------------------------------

# old flat field → dotted path in the grouped schema (kernel_family is dropped: impl says it).
_FLAT = {
    "gemm_efficiency_frac": "gemm.efficiency_frac", "gemm_8bit_efficiency_frac": "gemm.efficiency_8bit_frac",
    "gemm_persistent_efficiency_frac": "gemm.persistent_efficiency_frac",
    "gemm_tile_overhead_dim": "gemm.tile_overhead_dim", "gemv_efficiency_frac": "gemm.gemv_efficiency_frac",
    "roofline_knee_exponent": "gemm.knee_exponent", "gemm_latency_s": "gemm.latency_s",
    "attention_prefill_efficiency_frac": "attention_prefill.efficiency_frac",
    "attention_softmax_overhead_dim": "attention_prefill.softmax_overhead_dim",
    "attention_q_block_overhead_tiles": "attention_prefill.q_block_overhead_tiles",
    "attention_causal_diag_overhead_frac": "attention_prefill.causal_diag_overhead_frac",
    "attention_latency_s": "attention_prefill.latency_s",
    "attention_decode_efficiency_frac": "attention_decode.efficiency_frac",
    "attention_decode_split_tokens": "attention_decode.split_tokens",
    "attention_decode_splits": "attention_decode.splits",
    "attention_decode_ctas_per_sm": "attention_decode.ctas_per_sm",
    "attention_decode_latency_s": "attention_decode.latency_s",
    "attention_decode_paged_frac": "attention_decode.paged_frac",
    "attention_decode_paged_latency_s": "attention_decode.paged_latency_s",
    "memory_efficiency_frac": "memory.copy_efficiency_frac", "kernel_latency_s": "memory.latency_s",
    "elementwise_efficiency_frac": "memory.elementwise_efficiency_frac",
    "h2d_pinned_efficiency_frac": "link.pinned_efficiency_frac", "host_transfer_latency_s": "link.pinned_latency_s",
    "link_efficiency_frac": "link.collective_efficiency_frac", "graph_launch_overhead_s": "launch.graph_gap_s",
    "eager_launch_overhead_s": "host.eager_launch_overhead_s",
    "h2d_pageable_efficiency_frac": "host.h2d_pageable_efficiency_frac",
    "d2h_pageable_efficiency_frac": "host.d2h_pageable_efficiency_frac",
    "h2d_pageable_large_efficiency_frac": "host.h2d_pageable_large_efficiency_frac",
    "pageable_fast_bytes": "host.pageable_fast_bytes", "pageable_transfer_latency_s": "host.pageable_latency_s",
}
# kernel_family: impl says it; tile_m/n become gemm.tile; the sustained clock fraction and its time constant
# gave way to the power model (hwspecs.effects.PowerParams), which settles the clock itself.
_DROPPED = {"kernel_family", "gemm_tile_m", "gemm_tile_n", "sustained_clock_frac", "power_throttle_time_constant_s"}
_DROPPED_POWER = {"sustained_clock_frac", "throttle_time_constant_s"}


def _is_flat(data: dict) -> bool:
    return any(isinstance(data.get(impl), dict) and set(data[impl]) & (set(_FLAT) | _DROPPED) for impl in IMPLS)


def _grouped(section: dict, impl: str) -> dict:
    unknown = set(section) - set(_FLAT) - _DROPPED
    if unknown:
        raise ValueError(f"unknown calibration field(s) {', '.join(f'{impl}.{u}' for u in sorted(unknown))}")
    out: dict[str, dict] = {}
    for old, value in section.items():
        if old in _FLAT:
            group, name = _FLAT[old].split(".")
            out.setdefault(group, {})[name] = value
    if "gemm_tile_m" in section or "gemm_tile_n" in section:
        out.setdefault("gemm", {})["tile"] = (section.get("gemm_tile_m", 128), section.get("gemm_tile_n", 256))
    return out


def migrate_flat(data: dict) -> dict:
    """A flat (pre-group) profile as a grouped one: the same numbers under their new names."""
    out = {k: v for k, v in data.items() if k not in IMPLS}
    for impl in IMPLS:
        grouped = _grouped(dict(data.get(impl) or {}), impl)
        if impl == "vendor":
            out["host"], out["power"] = grouped.get("host", {}), grouped.get("power", {})
        out[impl] = {g: v for g, v in grouped.items() if g not in ("host", "power")}
    return out


# ---- wholeness -----------------------------------------------------------------------------------------

def missing_fields(data: dict, model: type[BaseModel] = Calibration, prefix: str = "") -> list[str]:
    """Dotted names of the fields a profile mapping leaves out (each would silently take its default).
    ``provenance`` is metadata, not a parameter: it may be absent."""
    out = []
    for name, info in model.model_fields.items():
        if model is Calibration and name == "provenance":
            continue
        if name not in data:
            out.append(prefix + name)
        elif isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel) and isinstance(data[name], dict):
            out += missing_fields(data[name], info.annotation, f"{prefix}{name}.")
    return out


def check_whole(data: dict, where: str) -> list[str]:
    """A profile must name every field, or say ``partial: true`` (then a warning names what defaulted);
    a flat (pre-group) profile is partial by design. Returns the defaulted fields; raises ValueError for
    a partial profile that does not say so (a truncated file loaded as defaults before issue 14)."""
    partial = data.get("partial", False)
    if not isinstance(partial, bool):
        raise ValueError(f"{where}: field 'partial' must be true or false, got {partial!r}")
    flat = _is_flat(data)
    missing = missing_fields({k: v for k, v in data.items() if k != "partial"} if not flat else migrate_flat(data))
    if missing and not (partial or flat):
        raise ValueError(f"{where}: incomplete calibration, {len(missing)} field(s) missing (first: "
                         f"{', '.join(missing[:3])}); a truncated file? Re-run `hwperf calibrate`, or add "
                         f"`partial: true` to use the defaults for them")
    if missing:
        warnings.warn(f"{where}: partial calibration{' (flat format)' if flat else ''}; defaults used for "
                      f"{len(missing)} field(s): {', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}",
                      stacklevel=3)
    return missing


def check_device(calibration: Calibration, hardware_id: str) -> Calibration:
    """Refuse a profile fitted on another device (the public defaults, "default", apply anywhere)."""
    if calibration.hardware_id not in (hardware_id, "default"):
        raise ValueError(f"calibration is for {calibration.hardware_id}, not {hardware_id}; to apply another "
                         f"device's profile ask for the transfer explicitly: calibration='transfer:"
                         f"{calibration.hardware_id}' (or 'transfer' for the architecture-family prior)")
    return calibration


DEFAULT_CALIBRATION = Calibration(hardware_id="default")
