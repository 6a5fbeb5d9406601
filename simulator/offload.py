"""Decode with the KV cache off the GPU: FlexGen-style streaming and InstInfer-style in-storage attention.

- FlexGen (Sheng et al., arXiv 2303.06865): KV (and optionally weights) live on host DDR or an SSD; each
  decode step streams every layer's KV of the batch to the GPU over the tier path (``simulator.tiers``)
  while the previous layer computes (layer-wise overlap, ``tiers.layerwise_s``), and writes the new
  token's K and V back. The GPU runs the whole step, attention included, on what arrived.
- InstInfer (Pan et al., arXiv 2409.04992): KV and decode attention live in CSDs. The GPU runs QKV/O
  projections and the MLP; per layer, only q goes to the drives and the attention output comes back
  (peer-to-peer over each drive's PCIe link), plus the new token's K and V. Attention in the drives takes
  max(KV bytes read / (drives × internal flash bandwidth), FLOPs / (drives × in-storage FLOP/s)); SparF
  reads ``sparse_frac`` of the KV (flash-page granular; 1/8 in the paper). The GPU waits while the
  drives attend (no overlap within a step).
- recompute (vLLM, Kwon et al., arXiv 2309.06180): everything on the GPU; requests beyond what HBM holds
  wait and run in later rounds (preempted requests are recomputed, not swapped).

``offload_throughput`` runs B requests of P + T tokens to completion each way and reports output tokens/s.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from simulator import engine, memory
from simulator.api import resolve, setup
from simulator.kinds.attention_prefill import flops as attention_flops
from simulator.tiers import TierError, layerwise_s, load_tiers, tier_path
from workloads.scenario import check_count

METHODS = ("flexgen", "instinfer", "recompute")
# Decode steps are evaluated at this many contexts (midpoints) and summed: attention is near-linear in c.
_NODES = 8


def _kv_per_layer(s, batch, context):
    return batch * float(memory.kv_bytes_per_sequence(s, context, 1)) / s.model.n_layers


def flexgen_step_s(s, t, batch, context, kv_tier="nvme", weights_tier=None) -> float:
    """One decode step with the batch's KV on ``kv_tier`` (and weights on ``weights_tier``, or in HBM)."""
    L = s.model.n_layers
    load = tier_path(t, kv_tier, "hbm", s.prm).time_s(_kv_per_layer(s, batch, context))
    store = tier_path(t, "hbm", kv_tier, s.prm).time_s(_kv_per_layer(s, batch, 1))
    if weights_tier is not None:
        load += tier_path(t, weights_tier, "hbm", s.prm).time_s(memory.weight_bytes_per_gpu(s) / L)
    gpu = float(engine.decode_step(s, batch, context).time_s)
    return layerwise_s(L * (load + store), gpu, L)


def instinfer_step_s(s, t, batch, context, sparse_frac=1.0, n_csd=None) -> float:
    """One decode step with attention in the system's CSDs (``n_csd`` of them, default all)."""
    drive, have = t.drive("csd")
    n = have if n_csd is None else check_count("n_csd", n_csd)
    if n > have:
        raise TierError(f"n_csd ({n}) exceeds the {have} CSDs of system {t.system_id}")
    m, L = s.model, s.model.n_layers
    step = engine.decode_step(s, batch, context)
    attn_gpu = sum(tm.time_s * op.n_repeats for op, tm in step.pairs if op.name == "attention")
    gpu = float(step.time_s) - attn_gpu
    hq = m.n_q_heads // s.tp
    flash = _kv_per_layer(s, batch, context) * sparse_frac / (n * drive.internal_read_bytes_per_s)
    compute = attention_flops(batch, 1, context, hq, m.head_dim, False) * sparse_frac / (n * drive.compute_flops_per_s)
    q_and_o = 2.0 * batch * hq * m.head_dim * 2.0  # bf16 q out, attention output back
    link = tier_path(t, "hbm", "csd", s.prm)
    moved = link.time_s((q_and_o + _kv_per_layer(s, batch, 1)) * n_csd_share(n, have))
    return gpu + L * (max(flash, compute) + moved)


def n_csd_share(n: int, have: int) -> float:
    """The tier path stripes over all the system's CSDs; using n of them, each link carries have/n more."""
    return have / n


def _decode_sum(step_at, prompt_tokens, output_tokens) -> float:
    """Σ over the T − 1 decode steps at contexts P+1 … P+T−1 by the midpoint rule on ``_NODES`` nodes."""
    steps = output_tokens - 1
    if steps <= 0:
        return 0.0
    edges = np.linspace(prompt_tokens + 1, prompt_tokens + output_tokens, _NODES + 1)
    return float(sum(step_at(int(round((a + b) / 2))) * (b - a) for a, b in zip(edges, edges[1:])))


def _run_s(s, t, method, batch, prompt_tokens, output_tokens, **kw) -> float:
    """Seconds to run ``batch`` requests of P + T tokens to completion with ``method``."""
    if method == "recompute":
        k = int(memory.max_concurrency(s, prompt_tokens, output_tokens, 1))
        if k < 1:
            raise memory.DoesNotFitError(f"not one {prompt_tokens + output_tokens}-token request fits beside "
                                         f"{s.model.id}'s weights on {s.hw.id}")
        rounds, per = math.ceil(batch / k), min(batch, k)
        prefill = float(engine.prefill(s, per, prompt_tokens).time_s)
        dec = _decode_sum(lambda c: float(engine.decode_step(s, per, c).time_s), prompt_tokens, output_tokens)
        return rounds * (prefill + dec)
    tier = kw.get("kv_tier", "nvme") if method == "flexgen" else "csd"
    d, n = t.drive(tier) if tier in ("nvme", "csd") else (t.ddr, 1)
    need = batch * float(memory.kv_bytes_per_sequence(s, prompt_tokens + output_tokens, 1))
    if need > d.capacity_bytes * n:
        raise memory.DoesNotFitError(f"{batch} requests' KV ({need / 1e9:.0f} GB) exceed tier {tier!r} "
                                     f"({d.capacity_bytes * n / 1e9:.0f} GB)")
    # Prefill on the GPU; its KV goes to the tier layer by layer, beside the next layer's compute.
    pf = float(engine.prefill(s, batch, prompt_tokens).time_s)
    out = tier_path(t, "hbm", tier, s.prm).time_s(need * prompt_tokens / (prompt_tokens + output_tokens))
    prefill = layerwise_s(out, pf, s.model.n_layers)
    if method == "flexgen":
        step = lambda c: flexgen_step_s(s, t, batch, c, tier, kw.get("weights_tier"))  # noqa: E731
    else:
        step = lambda c: instinfer_step_s(s, t, batch, c, kw.get("sparse_frac", 1.0), kw.get("n_csd"))  # noqa: E731
    return prefill + _decode_sum(step, prompt_tokens, output_tokens)


def offload_throughput(system, model, batches, prompt_tokens=1024, output_tokens=1024, calibration="auto", *,
                       methods=METHODS, kv_tier="nvme", weights_tier=None, sparse_frac=1.0, n_csd=None,
                       kv_method=None, kv_dtype="fp16", weight_dtype="fp16") -> pd.DataFrame:
    """Output tokens/s of B requests of P + T tokens, for each batch and method: one row per (batch,
    method, n_csd). ``kv_tier``: FlexGen's KV tier ("ddr" or "nvme"); ``weights_tier``: where FlexGen keeps
    the weights (None: HBM); ``sparse_frac``: InstInfer's SparF share of KV read (1: dense attention)."""
    t = load_tiers(system)
    hw, m, prm, _ = resolve(t.gpu, model, calibration)
    act = "fp16" if weight_dtype == "fp16" else "bf16"
    s = setup(hw, m, prm, weight_dtype, act, kv_dtype, 1, kv_method=kv_method)
    memory.check_weights_fit(s)
    prompt_tokens, output_tokens = check_count("prompt_tokens", prompt_tokens), check_count("output_tokens",
                                                                                             output_tokens)
    rows = []
    for b in np.atleast_1d(batches):
        b = check_count("batch", b)
        for method in methods:
            if method not in METHODS:
                raise ValueError(f"methods must be among {', '.join(METHODS)}, got {method!r}")
            kw = {"kv_tier": kv_tier, "weights_tier": weights_tier, "sparse_frac": sparse_frac, "n_csd": n_csd}
            total = _run_s(s, t, method, b, prompt_tokens, output_tokens, **kw)
            rows.append({"batch": b, "method": method, "n_csd": n_csd if method == "instinfer" else None,
                         "sparse_frac": sparse_frac if method == "instinfer" else None,
                         "kv_tier": kv_tier if method == "flexgen" else ("csd" if method == "instinfer" else "hbm"),
                         "total_s": total, "output_tokens_per_s": b * output_tokens / total})
    return pd.DataFrame(rows)
