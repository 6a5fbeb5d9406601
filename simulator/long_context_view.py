"""Fu's four long-context bounds (arXiv 2405.08944) for each context, KV-compression method and tier.

``long_context_table`` → one row per (context, method): the bounds of ``long_context_bounds`` (prefill,
decode step at full concurrency, concurrency, context switch over the host link) computed with the method
in force, plus one swap time per tier (``switching.swap``: out to the tier and back, over its path).
Contexts beyond the model's trained ``max_context_tokens`` are evaluated on a copy of the model with the
limit raised (Fu asks what 1M tokens would cost) and flagged ``beyond_trained_context``.
"""

from __future__ import annotations

import pandas as pd

from simulator.long_context import long_context_bounds
from simulator.switching import swap
from simulator.tiers import load_tiers
from workloads import kv_methods
from workloads.loader import resolve_model
from workloads.scenario import check_count


def long_context_table(hardware, model, contexts, calibration="auto", *, kv_methods_=(None,), system=None,
                       tiers=("ddr",), kv_dtype="bf16", weight_dtype="bf16", tensor_parallel=1) -> pd.DataFrame:
    """``kv_methods_``: method names or ``KVMethod``s (None: the dense ``kv_dtype`` cache); ``system``: a
    system id whose GPU and tiers are used (default: ``hardware`` with a DDR4 host); ``tiers``: swap tiers."""
    contexts = [check_count("context_tokens", c) for c in contexts]
    m = resolve_model(model)
    trained = m.max_context_tokens
    if max(contexts) > trained:
        m = m.model_copy(update={"max_context_tokens": max(contexts)})
    gpu = load_tiers(system).gpu if system is not None else hardware
    for tier in tiers:
        load_tiers(system if system is not None else hardware).check(tier)
    rows = []
    for method in kv_methods_:
        label = kv_methods.parse(method).label if method is not None else "none"
        for c in contexts:
            kv_methods.parse(method).check_context(c)
        b = long_context_bounds(gpu, m, contexts, calibration, kv_dtype=kv_dtype, weight_dtype=weight_dtype,
                                tensor_parallel=tensor_parallel, kv_method=method)
        b.insert(1, "kv_method", label)
        b["beyond_trained_context"] = b["context_tokens"] > trained
        for tier in tiers:
            b[f"swap_{tier}_s"] = [swap(gpu, m, c, calibration, system=system, tier=tier, kv_method=method,
                                        kv_dtype=kv_dtype, weight_dtype=weight_dtype,
                                        tensor_parallel=tensor_parallel).swap_s for c in contexts]
        rows.append(b)
    return pd.concat(rows, ignore_index=True)
