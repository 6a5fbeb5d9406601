"""``sweep``: the cartesian product of Scenario fields, evaluated as numpy arrays.

``sweep`` returns one DataFrame and refuses a grid whose result would not fit in memory;
``sweep_chunks`` yields the same rows, in the same order, in slices of at most ``CHUNK_POINTS`` points,
so a grid of any size streams (``hwperf sweep --csv`` writes it chunk by chunk).
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Iterator

import numpy as np

from simulator import decode, engine, fit, memory
from simulator.lazy import lazy_module
from simulator.api import resolve, setup
from simulator.engine import Setup
from workloads.scenario import DEFAULT_SCENARIO, Scenario, check_activation_dtype, check_count, check_flag

pd = lazy_module("pandas")  # on first sweep: importing simulator stays light

_NUMERIC_AXES = ("batch", "prompt_tokens", "output_tokens")
_CATEGORICAL_AXES = ("weight_dtype", "activation_dtype", "kv_dtype", "cuda_graph", "tensor_parallel",
                     "kv_block_tokens", "state", "power_cap_w", "sm_clock_hz", "memory_utilization_frac",
                     "prefill_chunk_tokens")
# Points evaluated in one numpy pass. Measured on the 2-core dev machine (llama-3-8b, 1e6 points): ~610 B of
# peak working memory per point in a pass, 182 B per row of the result, ~5 µs per point.
CHUNK_POINTS = 250_000
WORK_BYTES_PER_POINT = 650
ROW_BYTES = 200


class SweepTooLargeError(ValueError):
    """A sweep whose result would not fit in memory; the message says how to stream it instead."""


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
    values["cuda_graph"] = [check_flag("cuda_graph", x) for x in values["cuda_graph"]]
    for name in ("state", "power_cap_w", "sm_clock_hz", "memory_utilization_frac", "prefill_chunk_tokens"):
        for x in values[name]:  # each value checked as a Scenario field is
            Scenario(**{name: x})
    return values


def n_points(values: dict) -> int:
    return math.prod(len(v) for v in values.values())


def memory_budget_bytes() -> int:
    """Half the memory the OS reports free (at least a quarter of physical memory): what one sweep may hold."""
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        free, total = os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 8 GB
        return 4 * 10**9
    return int(max(free, total / 4) / 2)


def _check_size(n: int) -> None:
    need = n * 2 * ROW_BYTES + min(n, CHUNK_POINTS) * WORK_BYTES_PER_POINT  # rows, their concatenation, one pass
    budget = memory_budget_bytes()
    if need > budget:
        raise SweepTooLargeError(
            f"sweep of {n:,} points needs about {need / 1e9:.1f} GB but {budget / 1e9:.1f} GB of memory is available "
            f"to it; narrow the axes, or stream it: simulator.sweep_chunks (API) or `hwperf sweep --csv FILE` (CLI)")


def sweep(hardware, model, calibration="auto", **axes) -> pd.DataFrame:
    """Cartesian product of Scenario fields (lists of values; scalars allowed) → one row per point.

    Numeric axes (batch, prompt_tokens, output_tokens) are evaluated as numpy arrays in one pass per
    combination of the categorical axes (dtypes, cuda_graph, tensor_parallel, kv_block_tokens, …). Points
    that cannot run get ``fits = False`` and ``limit`` names why ("memory": weights or the batch exceed
    the usable memory; "context": beyond the model's max_context_tokens; "" when it fits); their times
    are still the model's estimate. Columns: the scenario fields, ttft_s, tpot_s, e2e_s,
    decode_tokens_per_s, hbm_bytes, flops, peak_memory_bytes, max_concurrency, fits, limit. Raises
    SweepTooLargeError when the result would not fit in memory (``sweep_chunks`` streams any size).
    """
    _check_size(n_points(_axis_values(axes)))
    frames = list(sweep_chunks(hardware, model, calibration, **axes))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


_LIMITS = ("", "context", "memory")


def _slices(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _grid_chunks(b, p, t, chunk_points: int) -> Iterator[tuple]:
    """(b, p, t) sub-grids of at most ``chunk_points`` points whose rows, in order, are the full grid's."""
    if len(p) * len(t) <= chunk_points:
        for sl in _slices(len(b), max(chunk_points // (len(p) * len(t)), 1)):
            yield b[sl], p, t
        return
    for i in range(len(b)):
        if len(t) <= chunk_points:
            for sl in _slices(len(p), max(chunk_points // len(t), 1)):
                yield b[i:i + 1], p[sl], t
        else:
            for j in range(len(p)):
                for sl in _slices(len(t), chunk_points):
                    yield b[i:i + 1], p[j:j + 1], t[sl]


def sweep_chunks(hardware, model, calibration="auto", chunk_points: int = CHUNK_POINTS, **axes) -> Iterator[pd.DataFrame]:
    """The rows of ``sweep`` as DataFrames of at most ``chunk_points`` rows, in ``sweep``'s order; memory
    stays bounded whatever the grid's size (axes are checked before the first chunk)."""
    chunk_points = check_count("chunk_points", chunk_points)
    values = _axis_values(axes)
    hw, m, prm, _ = resolve(hardware, model, calibration)
    b, p, t = (np.asarray(values[n], dtype=float) for n in _NUMERIC_AXES)
    setups = []
    for combo in itertools.product(*(values[n] for n in _CATEGORICAL_AXES)):  # all set up (checked) first
        cat = dict(zip(_CATEGORICAL_AXES, combo))
        s = setup(hw, m, prm, cat["weight_dtype"], cat["activation_dtype"], cat["kv_dtype"], cat["tensor_parallel"],
                  state=cat["state"], power_cap_w=cat["power_cap_w"], sm_clock_hz=cat["sm_clock_hz"])
        fit.check_gpu_count(hardware, s.tp)
        setups.append((cat, s))
    for cat, s in setups:
        for bc, pc, tc in _grid_chunks(b, p, t, chunk_points):
            yield _sweep_block(s, bc, pc, tc, bool(cat["cuda_graph"]), cat, cat)


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
        # why a point does not fit ("" if it does), as a categorical: a million-row string column costs more
        # to build than the model (context is checked first)
        "limit": pd.Categorical.from_codes(flat(np.where(~ctx_fits, 1, np.where(~mem_fits, 2, 0))).astype(np.int8),
                                           _LIMITS),
    })
    return pd.DataFrame(cols)
