"""Long context: what a context switch costs (swap vs recompute), and Fu's four bounds (arXiv 2405.08944)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

import hwspecs
from simulator import engine, fit, kv_compression, memory
from simulator.api import resolve, setup
from simulator.kinds.base import xp_for
from simulator.kinds.host_transfer import D2H, H2D, transfer_s
from workloads.scenario import check_count, check_flag


@dataclass(frozen=True)
class ContextSwitch:
    """Swap one request's KV out to a tier and another's in, vs recomputing it by prefill."""

    context_tokens: int
    kv_bytes: float
    tier: str
    tier_bytes_per_s: float
    swap_out_s: float
    swap_in_s: float
    swap_s: float
    recompute_s: float
    cheaper: str


def _tier_rates(tier: str, storage) -> tuple[float | None, float | None]:
    """(write, read) rate of the device behind the host link; None for host DDR (the link is the limit)."""
    if tier == "host":
        return None, None
    if tier != "ssd":
        raise ValueError(f"tier must be one of host, ssd, ddr, nvme, csd, got {tier!r}")
    dev = hwspecs.load(storage or "nvme-gen4-ssd")
    if dev.kind not in ("ssd", "csd"):
        raise ValueError(f"storage must be an ssd or csd id, got {dev.id} ({dev.kind})")
    return dev.seq_write_bytes_per_s, dev.seq_read_bytes_per_s


def _check_fits(s, context_tokens: int) -> None:
    """One request of ``context_tokens`` must fit beside the weights, within the model's context."""
    fit.check_context(s.model, context_tokens)
    memory.check_step_fits(s, "context_switch", 1, 0, context_tokens)


def context_switch(hardware, model, context_tokens, calibration="auto", *, kv_dtype="bf16", weight_dtype="bf16",
                   activation_dtype="bf16", tensor_parallel=1, tier="host", storage=None,
                   pinned=True, kv_method=None, system=None, check_fit=True) -> ContextSwitch:
    """Cost of swapping one request's KV cache (``context_tokens``) out and another's in.

    tier "host": host DDR over the GPU's host link (pinned or pageable). tier "ssd": an NVMe SSD or CSD
    id (``storage``, default nvme-gen4-ssd) behind the host link — the slower of link and drive.
    Swap = out + in, one after the other (Fu, arXiv 2405.08944); recompute = prefill of the context.
    ``kv_method``: the request's KV is swapped compressed, metadata and residual window included.
    tier "ddr", "nvme" or "csd": over that tier's path in ``system`` (``simulator.tiers``; default: the
    GPU with a DDR4 host), recompute as a prefill pass of its own (``simulator.switching.swap``).
    Raises DoesNotFitError when the model's weights and one request of ``context_tokens`` do not fit in
    the GPU's memory or the model's context (there would be nothing to swap in), unless ``check_fit`` is
    False.
    """
    check_fit = check_flag("check_fit", check_fit)
    if tier in ("ddr", "nvme", "csd"):
        from simulator.switching import swap  # tiers as a path
        if check_fit and hardware is not None:  # None: the system's GPU, which swap resolves
            hw, m, prm, _ = resolve(hardware, model, calibration)
            _check_fits(setup(hw, m, prm, weight_dtype, activation_dtype, kv_dtype, tensor_parallel,
                              kv_method=kv_method), check_count("context_tokens", context_tokens))
        sw = swap(hardware, model, context_tokens, calibration, system=system, tier=tier, kv_method=kv_method,
                  kv_dtype=kv_dtype, weight_dtype=weight_dtype, tensor_parallel=tensor_parallel)
        return ContextSwitch(sw.context_tokens, sw.kv_bytes, tier, sw.slowest_in_bytes_per_s, sw.swap_out_s,
                             sw.swap_in_s, sw.swap_s, sw.recompute_alone_s,
                             "swap" if sw.swap_s < sw.recompute_alone_s else "recompute")
    context_tokens = check_count("context_tokens", context_tokens)
    pinned = check_flag("pinned", pinned)
    hw, m, prm, _ = resolve(hardware, model, calibration)
    s = setup(hw, m, prm, weight_dtype, activation_dtype, kv_dtype, tensor_parallel, kv_method=kv_method)
    if check_fit:
        _check_fits(s, context_tokens)
    kv = float(memory.kv_bytes_per_sequence(s, context_tokens, 1))
    out_rate, in_rate = _tier_rates(tier, storage)

    def transfer(kind, device_bytes_per_s):
        """(effective rate, time) across the host link, or the slower drive behind it."""
        lat, body = transfer_s(kind, pinned, kv, s.host_link_bytes_per_s, prm, xp_for(kv), device_bytes_per_s)
        return kv / body, lat + body

    _, out_s = transfer(D2H, out_rate)
    rate, in_s = transfer(H2D, in_rate)
    recompute = float(engine.prefill(s, 1, context_tokens).time_s)
    swap = out_s + in_s
    return ContextSwitch(context_tokens, kv, tier, rate, out_s, in_s, swap, recompute,
                         "swap" if swap < recompute else "recompute")


def long_context_bounds(hardware, model, context_tokens, calibration="auto", *, kv_dtype="bf16",
                        weight_dtype="bf16", activation_dtype="bf16", tensor_parallel=1,
                        concurrent_users=None, kv_method=None) -> pd.DataFrame:
    """Fu's four bounds (arXiv 2405.08944) for each context length: prefill time (FLOP/s-bound),
    decode step time at full concurrency (HBM-bound), concurrency (HBM capacity), and context-switch
    time over the host link. One row per context length."""
    many = isinstance(context_tokens, (list, tuple, range, np.ndarray, pd.Series))
    lengths = list(context_tokens) if many else [context_tokens]  # anything else is checked as one count
    if not lengths:
        raise ValueError("context_tokens is empty: give at least one context length")
    lengths = [check_count("context_tokens", c) for c in lengths]
    if concurrent_users is not None:
        concurrent_users = check_count("concurrent_users", concurrent_users)
    hw, m, prm, _ = resolve(hardware, model, calibration)
    s = setup(hw, m, prm, weight_dtype, activation_dtype, kv_dtype, tensor_parallel, kv_method=kv_method)
    fit.check_gpu_count(hardware, s.tp)
    memory.check_weights_fit(s)
    rows = []
    for c in lengths:
        fit.check_context(m, c)
        conc = int(memory.max_concurrency(s, c, 1, 1))
        users = concurrent_users or conc  # none fit: no decode step to time (decode_step_s NaN)
        if s.kv_method is not None:
            s.kv_method.check_context(c)
        cs = context_switch(hw, m, c, calibration, kv_dtype=kv_dtype, weight_dtype=weight_dtype,
                            activation_dtype=activation_dtype, tensor_parallel=tensor_parallel, kv_method=kv_method,
                            check_fit=False)  # the bounds report a context none can hold as such
        per_token = m.kv_bytes_per_token(kv_dtype) * float(kv_compression.resident_frac(s, c))
        rows.append({"context_tokens": c, "kv_bytes_per_token": per_token, "kv_bytes_per_user": per_token * c,
                     "kv_bytes_per_user_per_gpu": cs.kv_bytes, "max_concurrency": conc,
                     "prefill_s": float(engine.prefill(s, 1, c).time_s), "decode_users": users,
                     "decode_step_s": float(engine.decode_step(s, users, c).time_s) if users else float("nan"),
                     "context_switch_s": cs.swap_s,
                     "recompute_s": cs.recompute_s, "cheaper_switch": cs.cheaper})
    return pd.DataFrame(rows)
