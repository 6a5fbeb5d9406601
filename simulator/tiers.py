"""Memory tiers as a path: HBM, host DDR, NVMe SSDs and CSDs, and the links between them.

A ``System`` spec (hwspecs) names the GPU, the host memory and the drives; each drive has its own host
link (PCIe generation × lanes) and its flash rates. A transfer between two tiers crosses a chain of hops
and, pipelined in chunks as DMA engines do, runs at the slowest hop's rate after the sum of their
latencies:

    time = Σ latency + bytes / min(hop rates)

Hops (rates per direction):
- GPU host link (e.g. PCIe 4.0 x16) at the calibrated pinned-DMA fraction (``link.pinned_efficiency_frac``);
- host DDR at ``DDR_STREAM_FRAC`` of channels × transfer rate × 8 bytes; a GPU↔drive transfer without
  peer-to-peer DMA bounces through DDR, which it then crosses twice (write, read): half that rate;
- the drives' host links (× number of drives of the tier, striped), at the pinned-DMA fraction too;
- the drives' sequential write (to the drive) or read (from it) rate, × drives.
With ``storage_p2p`` the GPU reaches drives directly (GPUDirect Storage; InstInfer's GPU↔CSD P2P).

Tier names: "hbm", "ddr", "nvme" (the system's ssd drives), "csd" (its csd drives).
"""

from __future__ import annotations

from dataclasses import dataclass

import hwspecs
from hwspecs.schema import Hardware, System

TIERS = ("hbm", "ddr", "nvme", "csd")
# Sustained DDR streaming as a fraction of channels × rate × 8 B (STREAM on server DDR4/DDR5 typically
# reaches ~0.75-0.85, a secondary figure; no measurement in this repository).
DDR_STREAM_FRAC = 0.8


class TierError(ValueError):
    """A tier the system does not have, or an unknown tier name."""


@dataclass(frozen=True)
class Hop:
    name: str
    bytes_per_s: float
    latency_s: float


@dataclass(frozen=True)
class TierPath:
    """The hops between two tiers, in order."""

    source: str
    destination: str
    hops: tuple[Hop, ...]

    @property
    def slowest(self) -> Hop:
        return min(self.hops, key=lambda h: h.bytes_per_s)

    @property
    def latency_s(self) -> float:
        return sum(h.latency_s for h in self.hops)

    def time_s(self, n_bytes):
        """Pipelined transfer of ``n_bytes``: the latencies, then the slowest hop's rate."""
        return self.latency_s + n_bytes / self.slowest.bytes_per_s


@dataclass(frozen=True)
class Tiers:
    """A system's tiers with what a path needs: the GPU, host memory and drives grouped by kind."""

    system_id: str
    gpu: Hardware
    ddr: object  # hwspecs HostMemory
    drives: dict  # "nvme"/"csd" → list of Storage specs
    p2p: bool

    @property
    def names(self) -> tuple[str, ...]:
        return ("hbm", "ddr") + tuple(t for t in ("nvme", "csd") if self.drives.get(t))

    def drive(self, tier: str):
        """(one drive's spec, count) of a drive tier."""
        self.check(tier)
        return self.drives[tier][0], len(self.drives[tier])

    def check(self, tier: str) -> str:
        if tier not in TIERS:
            raise TierError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
        if tier not in self.names:
            raise TierError(f"tier {tier!r} is not in system {self.system_id} (it has: {', '.join(self.names)})")
        return tier


def load_tiers(system) -> Tiers:
    """``system``: a System spec or id (a GPU id alone gives HBM + a default 8-channel DDR4 host)."""
    spec = hwspecs.load(system) if isinstance(system, str) else system
    if isinstance(spec, Hardware):
        return Tiers(spec.id, spec, hwspecs.load("ddr4-3200-8ch"), {}, False)
    if not isinstance(spec, System):
        raise TierError(f"system must be a system or gpu id, got {getattr(spec, 'kind', spec)!r}")
    drives: dict = {}
    for sid in spec.storage:
        d = hwspecs.load(sid)
        drives.setdefault("csd" if d.kind == "csd" else "nvme", []).append(d)
    return Tiers(spec.id, hwspecs.load(spec.accelerator), hwspecs.load(spec.host_memory), drives, spec.storage_p2p)


def _gpu_hop(t: Tiers, prm) -> Hop:
    link = hwspecs.load(t.gpu.host_link)
    return Hop(f"gpu {link.id}", link.bandwidth_bytes_per_s * prm.link.pinned_efficiency_frac,
               prm.link.pinned_latency_s)


def _ddr_hop(t: Tiers, crossings: int = 1) -> Hop:
    return Hop(f"ddr {t.ddr.id}" + (" (bounce)" if crossings > 1 else ""),
               t.ddr.bandwidth_bytes_per_s * DDR_STREAM_FRAC / crossings, 0.0)


def _drive_hops(t: Tiers, tier: str, to_drive: bool, prm) -> list[Hop]:
    d, n = t.drive(tier)
    link = hwspecs.load(d.host_link)
    rate = d.seq_write_bytes_per_s if to_drive else d.seq_read_bytes_per_s
    return [Hop(f"{n}x {d.id} {link.id}", n * link.bandwidth_bytes_per_s * prm.link.pinned_efficiency_frac,
                link.latency_s),
            Hop(f"{n}x {d.id} {'write' if to_drive else 'read'}", n * rate, d.read_latency_s)]


def tier_path(t: Tiers, source: str, destination: str, prm) -> TierPath:
    """The hops of a transfer from ``source`` to ``destination`` (any two different tiers)."""
    t.check(source)
    t.check(destination)
    if source == destination:
        raise TierError(f"source and destination are both {source!r}")
    pair = {source, destination}
    to_drive = destination in ("nvme", "csd")
    if pair == {"hbm", "ddr"}:
        hops = [_gpu_hop(t, prm), _ddr_hop(t)]
    elif "hbm" in pair:
        drive = destination if to_drive else source
        via = [] if t.p2p else [_ddr_hop(t, crossings=2)]
        hops = [_gpu_hop(t, prm), *via, *_drive_hops(t, drive, to_drive, prm)]
    elif "ddr" in pair:
        drive = destination if to_drive else source
        hops = [_ddr_hop(t), *_drive_hops(t, drive, to_drive, prm)]
    else:  # drive to drive, through host DDR (or P2P between drives)
        via = [] if t.p2p else [_ddr_hop(t, crossings=2)]
        hops = [*_drive_hops(t, source, False, prm), *via, *_drive_hops(t, destination, True, prm)]
    return TierPath(source, destination, tuple(hops))


def layerwise_s(transfer_s, compute_s, n_layers: int):
    """A transfer overlapped layer by layer with compute (layer l+1 moves while layer l computes, as
    FlexGen's and DeepSpeed's pipelines do): the slower stream, plus one layer of the faster to fill."""
    hi = transfer_s if transfer_s >= compute_s else compute_s
    lo = compute_s if transfer_s >= compute_s else transfer_s
    return hi + lo / n_layers
