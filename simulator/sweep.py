"""``sweep``: the cartesian product of Scenario fields, evaluated as numpy arrays."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from simulator import decode, engine, fit, memory
from simulator.api import resolve, setup
from simulator.engine import Setup
from workloads.scenario import DEFAULT_SCENARIO, Scenario, check_activation_dtype, check_count

_NUMERIC_AXES = ("batch", "prompt_tokens", "output_tokens")
_CATEGORICAL_AXES = ("weight_dtype", "activation_dtype", "kv_dtype", "cuda_graph", "tensor_parallel",
                     "kv_block_tokens", "state", "power_cap_w", "sm_clock_hz", "memory_utilization_frac",
                     "prefill_chunk_tokens")


def _axis_values(axes: dict) -> dict:
    unknown = set(axes) - set(Scenario.model_fields)
    if unknown:
        raise ValueError(f"unknown sweep axis {', '.join(sorted(unknown))}; axes are Scenario fields: "
                         f"{', '.join(Scenario.model_fields)}")
    values = {}
    for name in Scenario.model_fields:
        v = axes.get(name, getattr(DEFAULT_SCENARIO, name))
        v = list(v) if isinstance(v, (list, tuple, range, np.ndarray, pd.Series)) else [v]
        if not v:
            raise ValueError(f"sweep axis {name} is empty")
        values[name] = v
    for name in (*_NUMERIC_AXES, "tensor_parallel", "kv_block_tokens"):
        values[name] = [check_count(name, x) for x in values[name]]
    for name in ("weight_dtype", "kv_dtype"):
        values[name] = [fit.check_storage_dtype(name, x) for x in values[name]]
    values["activation_dtype"] = [check_activation_dtype(x) for x in values["activation_dtype"]]
    for name in ("state", "power_cap_w", "sm_clock_hz", "memory_utilization_frac", "prefill_chunk_tokens"):  # each value checked as a Scenario field is
        for x in values[name]:
            Scenario(**{name: x})
    return values


def sweep(hardware, model, calibration="auto", **axes) -> pd.DataFrame:
    """Cartesian product of Scenario fields (lists of values; scalars allowed) → one row per point.

    Numeric axes (batch, prompt_tokens, output_tokens) are evaluated as numpy arrays in one pass per
    combination of the categorical axes (dtypes, cuda_graph, tensor_parallel, kv_block_tokens, …). Points
    that cannot run get ``fits = False`` and ``limit`` names why ("memory": weights or the batch exceed
    the usable memory; "context": beyond the model's max_context_tokens; "" when it fits); their times
    are still the model's estimate. Columns: the scenario fields, ttft_s, tpot_s, e2e_s,
    decode_tokens_per_s, hbm_bytes, flops, peak_memory_bytes, max_concurrency, fits, limit.
    """
    values = _axis_values(axes)
    hw, m, prm, _ = resolve(hardware, model, calibration)
    b, p, t = (np.asarray(values[n], dtype=float) for n in _NUMERIC_AXES)
    frames = []
    for combo in itertools.product(*(values[n] for n in _CATEGORICAL_AXES)):
        cat = dict(zip(_CATEGORICAL_AXES, combo))
        s = setup(hw, m, prm, cat["weight_dtype"], cat["activation_dtype"], cat["kv_dtype"], cat["tensor_parallel"],
                  state=cat["state"], power_cap_w=cat["power_cap_w"], sm_clock_hz=cat["sm_clock_hz"])
        fit.check_gpu_count(hardware, s.tp)
        frames.append(_sweep_block(s, b, p, t, bool(cat["cuda_graph"]), cat, cat))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _sweep_block(s: Setup, b, p, t, cuda_graph, fields, cat) -> pd.DataFrame:
    """One categorical combination over the (batch × prompt × output) grid. Each quantity is evaluated
    on the axes it depends on and broadcast: prefill on (B, P), decode coefficients on B, the decode
    integral and memory on the full grid."""
    B, P, T = b[:, None, None], p[None, :, None], t[None, None, :]
    shape = (len(b), len(p), len(t))
    pf = engine.prefill(s, b[:, None], p[None, :], with_bound=False)
    co = decode.decode_coeffs(s, B, with_bound=False)
    dt = decode.decode_total(s, co, P, T, cuda_graph)
    dec, steps = dt.time_s, dt.steps
    if (steps <= 0).any():  # T = 1: no decode step; TPOT is the first step's time
        first = decode.decode_step_at(s, decode.decode_coeffs(s, b[:, None], with_bound=False), p[None, :] + 1.0,
                                      cuda_graph).time_s[..., None]
        tpot = np.where(steps > 0, dec / np.maximum(steps, 1.0), first)
    else:
        tpot = dec / steps
    frac, chunk, block_tokens = (fields[k] for k in ("memory_utilization_frac", "prefill_chunk_tokens",
                                                     "kv_block_tokens"))
    mem = memory.memory_breakdown(s, B, P, T, block_tokens, frac, chunk)
    mem_fits = (mem["peak_memory_bytes"] <= s.hw.memory_bytes) & (
        memory.weight_bytes_per_gpu(s) <= memory.usable_bytes(s, frac))
    ctx_fits = P + T <= s.model.max_context_tokens
    n = int(np.prod(shape))

    def flat(x):
        return np.broadcast_to(x, shape).reshape(n)

    cols = {"batch": flat(B).astype(np.int64), "prompt_tokens": flat(P).astype(np.int64),
            "output_tokens": flat(T).astype(np.int64)}
    for k, v in cat.items():
        # Constant columns as categoricals: building a million-row string column costs more than the model.
        cols[k] = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), [v]) if isinstance(v, str) else np.full(n, v)
    ttft3 = pf.time_s[..., None]
    cols.update({
        "ttft_s": flat(ttft3), "tpot_s": flat(tpot), "e2e_s": flat(ttft3 + dec),
        "decode_tokens_per_s": flat(B / tpot), "hbm_bytes": flat(pf.hbm_bytes[..., None] + dt.hbm_bytes),
        "flops": flat(pf.flops[..., None] + dt.flops), "peak_memory_bytes": flat(mem["peak_memory_bytes"]),
        "prefill_power_w": flat(np.asarray(pf.power_w)[..., None]),
        "decode_power_w": flat(np.where(dec > 0, dt.energy_j / np.where(dec > 0, dec, 1.0), np.nan)),
        "energy_per_output_token_j": flat((np.asarray(pf.energy_j)[..., None] + dt.energy_j) / (B * T)),
        "max_concurrency": flat(memory.max_concurrency(s, P, T, block_tokens, frac, chunk)),
        "fits": flat(mem_fits & ctx_fits),
        "limit": flat(np.where(~ctx_fits, "context", np.where(~mem_fits, "memory", ""))),
    })
    return pd.DataFrame(cols)
