"""Human-readable units for the CLI and the app — the one place prefixed units (ms, GB, TFLOP/s) appear."""

from __future__ import annotations

import math

from pydantic import ValidationError


def seconds(x_s: float) -> str:
    if not math.isfinite(x_s):
        return str(x_s)
    if x_s >= 1.0:
        return f"{x_s:.3f} s"
    if x_s >= 1e-3:
        return f"{x_s * 1e3:.3f} ms"
    return f"{x_s * 1e6:.2f} µs"


def seconds_short(x_s: float) -> str:
    """Three significant figures: 3.88 s, 17.9 ms, 412 µs (narrow tables)."""
    if not math.isfinite(x_s):
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(x_s) >= scale or unit == "µs":
            return f"{x_s / scale:.3g} {unit}"
    return f"{x_s:.3g} s"


def size(x_bytes: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(x_bytes) >= scale:
            return f"{x_bytes / scale:.2f} {unit}"
    return f"{x_bytes:.0f} B"


def gib(x_bytes: float) -> str:
    """Memory capacities in GiB (2^30 bytes), as GPU memory is sold and nvidia-smi reports it."""
    return f"{x_bytes / 2**30:.1f} GiB"


def rate(x_per_s: float, unit: str) -> str:
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x_per_s) >= scale:
            return f"{x_per_s / scale:.1f} {prefix}{unit}/s"
    return f"{x_per_s:.1f} {unit}/s"


def error_line(err: Exception) -> str:
    """One line naming the field(s) and what is allowed — for the CLI and the app."""
    if isinstance(err, ValidationError):
        parts = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "input"
            got = e.get("input")
            parts.append(f"{loc}: {e['msg']} (got {got!r})" if not isinstance(got, dict) else f"{loc}: {e['msg']}")
        return "; ".join(parts)
    return " ".join(str(err).split())
