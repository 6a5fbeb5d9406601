"""Time of one op on one device: a roofline that carries the effects that make real kernels slower.

    t = latency + max((t_compute^p + t_memory^p)^(1/p), t_link)

Each op kind (``simulator.kinds``) supplies its four terms from its own effect group: t_compute (FLOPs
over the dense peak × achievable fraction × clock fraction, with the kind's tile/wave model), t_memory
(bytes over HBM bandwidth × achievable fraction, with occupancy limits), t_link (host link or scale-up
link) and the latency floor. Here they are combined with the smooth knee (p = ``gemm.knee_exponent``;
p → ∞ is max()) and labelled with the bound that dominates.

Inputs may be numpy arrays (sweeps); outputs then are arrays of the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from hwspecs.calibration import EffectParams
from hwspecs.schema import Hardware
from simulator.kinds import KINDS, Op, xp_for


@dataclass(frozen=True)
class OpTime:
    compute_s: Any
    memory_s: Any
    latency_s: Any
    link_s: Any
    time_s: Any
    bound: Any  # "compute" | "memory" | "latency" | "link" (array of str for sweeps)
    clock_bound_frac: Any = 1.0  # the share of compute_s that scales with 1/clock (see clock_scale)


def clock_scale(clock_bound_frac, clock_frac):
    """Factor on compute time at ``clock_frac`` of boost: β/φ + (1 − β). β = 1: time ∝ 1/clock; a kernel
    partly paced by something the SM clock does not drive (L2, memory) has β < 1 (H200: cuBLAS GEMMs
    ran 18% slower at 26-34% lower clocks, β ≈ 0.55; flash attention 16% at 16%, β ≈ 1)."""
    return clock_bound_frac / clock_frac + (1.0 - clock_bound_frac)


_KNEE_STEPS = 4096  # table resolution: interpolation error ≤ 1.2e-7 of the result for every p in [1, 16]


@lru_cache(maxsize=8)
def _knee_table(p: float) -> tuple[np.ndarray, np.ndarray]:
    """f = (1 + r^p)^(1/p) at √r = k / _KNEE_STEPS, k = 0.._KNEE_STEPS, and its per-step slopes (0 past the
    end, for r = 1 exactly). Tabulated in √r because f − 1 ~ r^p / p has unbounded curvature at r = 0 for
    p < 2 (2.6e-6 interpolation error in r at p = 1.2; in √r it is smooth)."""
    s = np.linspace(0.0, 1.0, _KNEE_STEPS + 1)
    f = (1.0 + s ** (2.0 * p)) ** (1.0 / p)
    return f, np.append(np.diff(f), 0.0)


def knee(tc, tm, p, xp=np):
    """Smooth maximum of compute and memory time: (tc^p + tm^p)^(1/p) = top·f(r), f(r) = (1 + r^p)^(1/p),
    r = smaller / larger. Arrays read f from a table by linear interpolation in √r (≤ 1.2e-7 of the result):
    two powers per element dominated large sweeps; a square root and a table lookup cost 3× less."""
    if xp is not np:  # plain floats: no ufunc dispatch (a predict() evaluates ~50 of these)
        top, low = (tc, tm) if tc >= tm else (tm, tc)
        return top * (1.0 + (low / top) ** p) ** (1.0 / p) if top > 0 else 0.0
    top = np.maximum(tc, tm)
    x = np.minimum(tc, tm)  # a new array: the in-place steps below never touch the inputs
    if np.ndim(x) == 0 or x.dtype.kind != "f":
        r = x / np.where(top > 0, top, 1.0)
        return top * (1.0 + r ** p) ** (1.0 / p)
    f, slope = _knee_table(float(p))
    np.divide(x, top, out=x, where=top > 0)  # r; 0 where both are 0
    np.sqrt(x, out=x)
    x *= _KNEE_STEPS
    i = x.astype(np.intp)
    np.clip(i, 0, _KNEE_STEPS, out=i)  # only a non-finite input could leave [0, steps]
    x -= i
    x *= slope[i]
    x += f[i]
    x *= top
    return x


def bound_of(tc, tm, lat, link):
    """Which term dominates: link, then latency, then compute vs memory (arrays: element-wise)."""
    if isinstance(tc, np.ndarray):
        return np.where(link >= np.maximum(np.maximum(tc, tm), lat), "link",
                        np.where(lat >= np.maximum(tc, tm), "latency", np.where(tc >= tm, "compute", "memory")))
    top = max(tc, tm)
    return "link" if link >= max(top, lat) else "latency" if lat >= top else "compute" if tc >= tm else "memory"


def op_time(op: Op, hw: Hardware, prm: EffectParams, *, clock_frac=1.0, link_bytes_per_s: float | None = None,
            host_link_bytes_per_s: float | None = None, with_bound: bool = True, xp=None) -> OpTime:
    """Time of one execution of ``op`` on ``hw`` with effect parameters ``prm``.

    ``clock_frac``: sustained-clock fraction for compute (power limit; 1 = boost).
    ``link_bytes_per_s``: scale-up link rate per direction (collectives); ``host_link_bytes_per_s``: PCIe.
    ``with_bound=False`` skips labelling the bound (sweeps' inner loops need the time only).
    ``xp``: numpy or the scalar shim, when the caller knows (else read from the op's counts and shape).
    """
    if xp is None:
        xp = xp_for(op.flops, op.hbm_bytes, *op.shape.values())
    kind = KINDS.get(op.kind)
    if kind is None:
        raise ValueError(f"unknown op kind {op.kind!r}")
    tc, tm, lat, link = kind.time(op, hw, prm, xp, link_bytes_per_s, host_link_bytes_per_s)
    beta = kind.clock_bound(prm, op, hw, tc, xp)
    if not (isinstance(clock_frac, float) and clock_frac == 1.0):  # a lower clock slows the compute term
        tc = tc * clock_scale(beta, clock_frac)
    if xp is np and not with_bound:  # sweeps' inner loops: the terms keep their own (broadcastable) shapes
        body = knee(tc, tm, prm.gemm.knee_exponent, xp)
        return OpTime(tc, tm, lat, link, lat + (body if _is_zero(link) else np.maximum(body, link)), None, beta)
    if xp is np:
        zero = np.zeros_like(op.flops, dtype=float)
        tc, tm, lat, link = tc + zero, tm + zero, lat + zero, link + zero
    time = lat + xp.maximum(knee(tc, tm, prm.gemm.knee_exponent, xp), link)
    if xp is np:
        return OpTime(tc, tm, lat, link, time, bound_of(tc, tm, lat, link), beta)
    return OpTime(float(tc), float(tm), float(lat), float(link), float(time), bound_of(tc, tm, lat, link), beta)


def _is_zero(x) -> bool:
    return isinstance(x, float) and x == 0.0


def at_clock(t: OpTime, clock_frac, prm: EffectParams) -> OpTime:
    """``t`` (timed at the boost clock) re-timed with its compute term at ``clock_frac`` (``clock_scale``);
    no kind is re-evaluated."""
    if isinstance(clock_frac, float) and (clock_frac == 1.0 or (isinstance(t.compute_s, float) and t.compute_s == 0.0)):
        return t
    tc = t.compute_s * clock_scale(t.clock_bound_frac, clock_frac)
    xp = xp_for(tc, t.memory_s)
    time = t.latency_s + xp.maximum(knee(tc, t.memory_s, prm.gemm.knee_exponent, xp), t.link_s)
    bound = None if t.bound is None else bound_of(tc, t.memory_s, t.latency_s, t.link_s)
    return OpTime(tc, t.memory_s, t.latency_s, t.link_s, time, bound, t.clock_bound_frac)
