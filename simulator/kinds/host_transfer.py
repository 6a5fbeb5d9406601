"""Host↔device copies over the GPU's host link (PCIe): ``h2d`` and ``d2h``, pinned or pageable.

Pinned memory: the GPU's DMA engines at a fraction of the link (``link`` group). Pageable memory: the
driver stages through a pinned buffer, so the host's memcpy sets the rate (``host`` group) — one rate
for the first ``pageable_fast_bytes`` (source still in CPU caches, staging overlapped) and, host→device,
a slower one beyond (H100 host: 16.5 GB/s at 16 MB, 9.8 GB/s at 1 GB). ``transfer_s`` is the one
formula for kernel predictions and for context switching (where a slower drive may sit behind the link).
"""

from __future__ import annotations

from simulator.kinds.base import Op, OpKind, ShapeField, need

H2D, D2H = "h2d", "d2h"


def transfer_s(kind: str, pinned: bool, n_bytes, host_link_bytes_per_s: float, prm, xp,
               limit_bytes_per_s: float | None = None):
    """(latency_s, transfer_s) of one copy of ``n_bytes``; ``limit_bytes_per_s``: a slower device behind
    the link (an SSD)."""
    def rate(eff):
        r = host_link_bytes_per_s * eff
        return r if limit_bytes_per_s is None else min(r, limit_bytes_per_s)

    if pinned:
        return prm.link.pinned_latency_s, n_bytes / rate(prm.link.pinned_efficiency_frac)
    h = prm.host
    # Device→host pageable copies measured no slower for large sizes (the host writes into its own DRAM).
    small, large = ((h.h2d_pageable_efficiency_frac, h.h2d_pageable_large_efficiency_frac) if kind == H2D
                    else (h.d2h_pageable_efficiency_frac,) * 2)
    head = xp.minimum(n_bytes, h.pageable_fast_bytes)
    return h.pageable_latency_s, head / rate(small) + (n_bytes - head) / rate(large)


def transfer_op(kind: str, n_bytes, pinned=True) -> Op:
    """``n_bytes`` cross the host link once; the device side reads (d2h) or writes (h2d) them."""
    return Op(name=kind, kind=kind, scope="model", n_repeats=1, flops=0.0,
              act_write_bytes=n_bytes if kind == H2D else 0.0, act_read_bytes=n_bytes if kind == D2H else 0.0,
              compute_dtype="fp32", shape={"pinned": bool(pinned), "link_bytes": n_bytes})


def time(op: Op, hw, prm, xp, link_bytes_per_s, host_link_bytes_per_s):
    rate = need(host_link_bytes_per_s, "host transfers need host_link_bytes_per_s")
    lat, link = transfer_s(op.kind, op.shape["pinned"], op.shape["link_bytes"], rate, prm, xp)
    return 0.0, 0.0, lat, link


def _case_class(kind: OpKind, row: dict) -> str:
    """Pinned copies are DMA (the GPU's link), pageable ones the host's memcpy: scored apart."""
    pinned = kind.shape[1].from_cell(row.get("pinned"))
    return f"{kind.name}_{'pinned' if pinned in (None, True) else 'pageable'}"


def _kind(name: str, direction: str) -> OpKind:
    return OpKind(name=name, help=f"{direction} copy of bytes over the host link (pinned or pageable memory)",
                  stage="host_copy", build=lambda bytes, pinned: transfer_op(name, float(bytes), pinned), time=time,
                  case_class=_case_class, shape=(ShapeField("bytes", "int"), ShapeField("pinned", "bool", True)))


KINDS = (_kind(H2D, "host→device"), _kind(D2H, "device→host"))
