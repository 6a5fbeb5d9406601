"""Validated hardware descriptions.

Every spec is a frozen pydantic model with ``extra="forbid"`` (a misspelled key is an error) and a
``sources`` map from field name to a URL/citation: every numeric field that is set must have a source.
Units are SI (bytes, bytes/s, FLOP/s, Hz, W, s). Rates are decimal (3.35e12), capacities exact bytes.
Peak FLOP/s are DENSE: datasheets that headline 2:4-sparse numbers are halved before they land here.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4")
Dtype = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4"]

# Bytes per element of each dtype (int4 packs two per byte). tf32 is stored as fp32.
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5,
}


# Physical ranges (wide: any accelerator, link or drive that exists or is on a roadmap sits well inside them;
# a value outside is a unit slip such as GB for bytes, or a typo). They also keep every product the model
# forms finite: memory_bytes 1e30 made max_concurrency wrap to -2^63, a bandwidth of 1e-300 gave inf.
CAPACITY_BYTES = dict(ge=2**20, le=2**60)          # 1 MiB .. 1 EiB
RATE_BYTES_PER_S = dict(ge=1e6, le=1e16)           # 1 MB/s .. 10 PB/s
PEAK_FLOPS_PER_S = (1e9, 1e19)                     # 1 GFLOP/s .. 10 EFLOP/s
CLOCK_HZ = dict(ge=1e7, le=1e11)                   # 10 MHz .. 100 GHz
POWER_W = dict(gt=0, le=1e5)
LATENCY_S = dict(ge=0, le=10.0)


class Spec(BaseModel):
    """Base for every spec: frozen, strict keys, every set number sourced, no booleans for numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, data):
        """YAML ``true`` is not a number: pydantic would read a bandwidth of ``true`` as 1 B/s."""
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                if field is None or field.annotation is bool:
                    continue
                values = value.values() if isinstance(value, dict) else [value]
                if any(isinstance(v, bool) for v in values):
                    raise ValueError(f"field '{name}' must be a number, not a boolean (got {value!r})")
        return data
    # Counts and conventions that are configuration, not measurements: no source needed.
    unsourced_fields: ClassVar[frozenset[str]] = frozenset({"n_accelerators", "bus_bytes", "n_nodes"})

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    sources: dict[str, str]

    @model_validator(mode="after")
    def _every_number_sourced(self):
        for field_name in type(self).model_fields:
            value = getattr(self, field_name)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if field_name == "peak_flops_per_s":
                for dtype in value:
                    key = f"peak_flops_per_s.{dtype}"
                    if key not in self.sources and field_name not in self.sources:
                        raise ValueError(f"{self.id}: '{key}' has no entry in 'sources'")
            elif numeric and field_name not in self.sources and field_name not in self.unsourced_fields:
                raise ValueError(f"{self.id}: field '{field_name}' has no entry in 'sources'")
        for field_name, value in self:
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{self.id}: field '{field_name}' must be finite, got {value}")
        return self


class Link(Spec):
    """A point-to-point link (PCIe generation × lanes, NVLink, Infinity Fabric). Bandwidth per direction."""

    kind: Literal["link"] = "link"
    bandwidth_bytes_per_s: float = Field(description="theoretical, per direction", **RATE_BYTES_PER_S)
    latency_s: float = Field(**LATENCY_S)
    full_duplex: bool = True


class HostMemory(Spec):
    """Host DRAM: channels × transfer rate × 8 bytes per transfer (64-bit channel)."""

    kind: Literal["host_memory"] = "host_memory"
    n_channels: int = Field(gt=0, le=4096)
    transfers_per_s: float = Field(description="MT/s × 1e6, e.g. DDR5-4800 → 4.8e9", **CLOCK_HZ)
    capacity_bytes: int = Field(**CAPACITY_BYTES)
    bus_bytes: int = Field(default=8, gt=0, le=1024, description="bytes per transfer per channel (64-bit)")

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.n_channels * self.transfers_per_s * self.bus_bytes


class Storage(Spec):
    """An NVMe SSD or a computational storage drive (CSD).

    A CSD adds in-storage compute: data can be processed over the internal flash channels
    (n_flash_channels × flash_channel_bytes_per_s) without crossing the host link.
    """

    kind: Literal["ssd", "csd"]
    capacity_bytes: int = Field(**CAPACITY_BYTES)
    host_link: str = Field(description="id of a Link spec, e.g. pcie-gen4-x4")
    seq_read_bytes_per_s: float = Field(**RATE_BYTES_PER_S)
    seq_write_bytes_per_s: float = Field(**RATE_BYTES_PER_S)
    read_latency_s: float = Field(gt=0, le=10.0)
    page_bytes: int | None = Field(default=None, gt=0, le=2**30)
    n_flash_channels: int | None = Field(default=None, gt=0, le=4096)
    flash_channel_bytes_per_s: float | None = Field(default=None, **RATE_BYTES_PER_S)
    compute_flops_per_s: float | None = Field(default=None, ge=PEAK_FLOPS_PER_S[0], le=PEAK_FLOPS_PER_S[1],
                                              description="in-storage, fp16")
    dram_bytes: int | None = Field(default=None, **CAPACITY_BYTES)
    power_w: float | None = Field(default=None, **POWER_W)

    @model_validator(mode="after")
    def _csd_fields(self):
        if self.kind == "csd":
            missing = [f for f in ("n_flash_channels", "flash_channel_bytes_per_s", "compute_flops_per_s")
                       if getattr(self, f) is None]
            if missing:
                raise ValueError(f"{self.id}: a csd needs {', '.join(missing)}")
        return self

    @property
    def internal_read_bytes_per_s(self) -> float:
        """Aggregate flash-channel bandwidth seen by in-storage compute (CSD), else the host-visible read rate."""
        if self.n_flash_channels and self.flash_channel_bytes_per_s:
            return self.n_flash_channels * self.flash_channel_bytes_per_s
        return self.seq_read_bytes_per_s


class Hardware(Spec):
    """One accelerator (GPU). Peaks are dense; fp32 is the non-tensor (vector) rate."""

    kind: Literal["gpu"] = "gpu"
    vendor: Literal["nvidia", "amd", "apple", "intel"]
    architecture: str = Field(description="family used for calibration transfer, e.g. hopper, ampere, ada, cdna3")
    peak_flops_per_s: dict[Dtype, float]
    memory_bytes: int = Field(**CAPACITY_BYTES)
    memory_type: str
    memory_bandwidth_bytes_per_s: float = Field(**RATE_BYTES_PER_S)
    l2_bytes: int = Field(gt=0, le=2**40)
    n_sms: int = Field(gt=0, le=100_000, description="SMs (NVIDIA) or CUs (AMD)")
    boost_clock_hz: float = Field(**CLOCK_HZ)
    tdp_w: float = Field(**POWER_W)
    idle_power_w: float = Field(**POWER_W)
    host_link: str = Field(description="id of a Link spec, e.g. pcie-gen5-x16")
    scaleup_link: str | None = Field(default=None, description="id of a Link spec (NVLink); None if absent")
    scaleup_bandwidth_bytes_per_s: float | None = Field(default=None, description="per GPU, per direction",
                                                        **RATE_BYTES_PER_S)

    @field_validator("peak_flops_per_s")
    @classmethod
    def _peaks_positive(cls, v: dict[str, float]) -> dict[str, float]:
        for dtype, rate in v.items():
            lo, hi = PEAK_FLOPS_PER_S
            if not (lo <= rate <= hi):
                raise ValueError(f"peak_flops_per_s.{dtype} must be from {lo:g} to {hi:g} FLOP/s, got {rate}")
        if "fp32" not in v:
            raise ValueError("peak_flops_per_s must include fp32")
        return v

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s for a dtype; raises a clear error when the device has no such unit."""
        if dtype not in self.peak_flops_per_s:
            have = ", ".join(self.peak_flops_per_s)
            raise ValueError(f"{self.id} has no {dtype} peak (it has: {have})")
        return self.peak_flops_per_s[dtype]


class System(Spec):
    """N accelerators + scale-up interconnect + host memory + storage devices, composed by id."""

    kind: Literal["system"] = "system"
    accelerator: str
    n_accelerators: int = Field(gt=0, le=1_000_000, description="in all nodes together")
    scaleup_link: str | None = None
    host_memory: str
    storage: list[str] = Field(default_factory=list)
    n_nodes: int = Field(default=1, gt=0, le=100_000, description="nodes joined by the scale-out link")
    scaleout_link: str | None = Field(default=None, description="id of the per-GPU NIC Link (InfiniBand/RoCE)")
    peer_access: bool = Field(default=True, description="GPUs read each other's memory directly (False: "
                                                        "PCIe transfers are staged through host memory)")
    storage_p2p: bool = Field(default=False, description="GPU↔drive peer-to-peer DMA (GPUDirect Storage, "
                                                         "InstInfer's P2P); False: bounce through host DDR")

    @model_validator(mode="after")
    def _nodes(self):
        if self.n_accelerators % self.n_nodes:
            raise ValueError(f"{self.id}: n_accelerators ({self.n_accelerators}) must be a multiple of n_nodes "
                             f"({self.n_nodes})")
        if self.n_nodes > 1 and self.scaleout_link is None:
            raise ValueError(f"{self.id}: n_nodes > 1 needs a scaleout_link")
        return self

    @property
    def gpus_per_node(self) -> int:
        return self.n_accelerators // self.n_nodes
