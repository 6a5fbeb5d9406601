"""Swapping requests between memory tiers, and what time-sharing a GPU costs (Fu, arXiv 2405.08944).

- ``swap``: one request's KV (as stored: a KV method's data, scales and residual window included) from
  HBM to any tier and back, over the tier path (``simulator.tiers``), against recomputing it by prefill —
  inside a running batch (its FLOPs at the tensor rate; a serving engine re-prefills a preempted request
  with other work, so the weights stream anyway; vLLM's recompute preemption) and as a pass of its own;
  plus what a layer-wise pipelined swap-in adds to one decode step of the running batch. Swap costs a
  fixed latency per transfer and bytes/link per token; batched recompute costs FLOPs per token, growing
  with context (attention): recompute wins below a crossover context, swap above it.
- ``time_sharing``: N users of context C share one GPU that holds K of them at once; every ``slice_s``
  of decoding, the min(K, N − K) resident users that have had their turn are swapped out and as many
  waiting ones swapped in (or recomputed, whichever is cheaper); the fraction of time lost to switching
  is switch / (slice + switch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator import engine, memory
from simulator.api import resolve, setup
from simulator.tiers import layerwise_s, load_tiers, tier_path
from workloads.scenario import check_count


@dataclass(frozen=True)
class Swap:
    """One request swapped out to ``tier`` and back in. Times in seconds, rates in bytes/s."""

    context_tokens: int
    kv_bytes: float
    tier: str
    out_path: str
    in_path: str
    slowest_out_bytes_per_s: float
    slowest_in_bytes_per_s: float
    swap_out_s: float
    swap_in_s: float
    swap_s: float
    recompute_s: float  # the context's prefill FLOPs inside a running batch (weights already streaming)
    recompute_alone_s: float  # a prefill pass of its own (weights streamed for it)
    cheaper: str
    swap_in_added_to_step_s: float  # layer-wise pipelined swap-in beside one decode step of the batch


def _setup(hardware, model, calibration, system, kv_method, kv_dtype, weight_dtype, tensor_parallel):
    hw, m, prm, _ = resolve(hardware if system is None else load_tiers(system).gpu, model, calibration)
    s = setup(hw, m, prm, weight_dtype, "bf16", kv_dtype, tensor_parallel, kv_method=kv_method)
    return s, load_tiers(system if system is not None else hw)


def swap(hardware, model, context_tokens, calibration="auto", *, system=None, tier="ddr", kv_method=None,
         kv_dtype="bf16", weight_dtype="bf16", tensor_parallel=1, running_batch=1) -> Swap:
    """``hardware``: a GPU id (tiers HBM and a default DDR4 host) unless ``system`` names one (then its GPU).
    ``running_batch``: users decoding while the swap-in streams (for the layer-wise overlap figure)."""
    context_tokens = check_count("context_tokens", context_tokens)
    s, t = _setup(hardware, model, calibration, system, kv_method, kv_dtype, weight_dtype, tensor_parallel)
    if s.kv_method is not None:
        s.kv_method.check_context(context_tokens)
    kv = float(memory.kv_bytes_per_sequence(s, context_tokens, 1))
    out_p, in_p = tier_path(t, "hbm", tier, s.prm), tier_path(t, tier, "hbm", s.prm)
    out_s, in_s = out_p.time_s(kv), in_p.time_s(kv)
    pf = engine.prefill(s, 1, context_tokens)
    recompute = float(sum(t.compute_s * op.n_repeats for op, t in pf.pairs))
    step = float(engine.decode_step(s, check_count("running_batch", running_batch), context_tokens).time_s)
    added = layerwise_s(in_s, step, s.model.n_layers) - step
    return Swap(context_tokens, kv, tier, " → ".join(h.name for h in out_p.hops),
                " → ".join(h.name for h in in_p.hops), out_p.slowest.bytes_per_s, in_p.slowest.bytes_per_s,
                out_s, in_s, out_s + in_s, recompute, float(pf.time_s),
                "swap" if out_s + in_s < recompute else "recompute", added)


def time_sharing(hardware, model, context_tokens, n_users, slice_s, calibration="auto", *, system=None,
                 tier="ddr", kv_method=None, kv_dtype="bf16", weight_dtype="bf16",
                 tensor_parallel=1) -> pd.DataFrame:
    """One row per (context, users): resident users K, users switched per slice, the switch time by swap
    and by recompute, the cheaper, and ``lost_frac`` = switch / (slice + switch)."""
    if not (isinstance(slice_s, (int, float)) and np.isfinite(slice_s) and slice_s > 0):
        raise ValueError(f"slice_s must be a positive number of seconds, got {slice_s!r}")
    s, t = _setup(hardware, model, calibration, system, kv_method, kv_dtype, weight_dtype, tensor_parallel)
    memory.check_weights_fit(s)
    rows = []
    for c in np.atleast_1d(context_tokens):
        c = check_count("context_tokens", c)
        sw = swap(t.gpu, model, c, calibration, system=system, tier=tier, kv_method=kv_method, kv_dtype=kv_dtype,
                  weight_dtype=weight_dtype, tensor_parallel=tensor_parallel)
        k = int(memory.max_concurrency(s, c, 1, 1, prefill_chunk_tokens=min(c, 8192)))
        for n in np.atleast_1d(n_users):
            n = check_count("n_users", n)
            moved = max(0, min(k, n - k))
            by_swap = moved * sw.swap_s
            by_recompute = moved * sw.recompute_s
            switch = min(by_swap, by_recompute)
            rows.append({"context_tokens": c, "n_users": n, "resident_users": k, "switched_users": moved,
                         "slice_s": float(slice_s), "swap_s": by_swap, "recompute_s": by_recompute,
                         "cheaper": "none" if moved == 0 else ("swap" if by_swap <= by_recompute else "recompute"),
                         "switch_s": switch, "lost_frac": switch / (slice_s + switch)})
    return pd.DataFrame(rows)
