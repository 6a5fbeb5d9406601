"""``compare_configs``: several deployments side by side — hardware, model, precision, parallelism.

One row per configuration with the figures a capacity planner compares: TTFT, TPOT, output tokens/s per
GPU, output tokens per dollar (from a GPU-hour price), memory, max concurrency, J/token, and how far to
trust each row (calibration source and its measured error). A configuration that cannot run gets
``fits = False`` and ``limit``: the one-line reason (weights or batch too large, context, TP degree …).

Throughput counts the static batch end to end: ``output_tokens_per_s`` = batch × output tokens / e2e_s
(prefill included); per GPU it is divided by the replica's GPUs (``Scenario.n_gpus``). Cost: output tokens per US dollar =
output tokens/s per GPU × 3600 / price per GPU-hour.
"""

from __future__ import annotations

import itertools
import math

import hwspecs
from hwspecs.prices import gpu_hour_price
from simulator.api import predict
from simulator.lazy import lazy_module
from workloads.scenario import Scenario

pd = lazy_module("pandas")

COLUMNS = ["hardware", "model", "batch", "prompt_tokens", "output_tokens", "weight_dtype", "kv_dtype",
           "tensor_parallel", "fits", "limit", "ttft_s", "tpot_s", "e2e_s", "decode_tokens_per_s",
           "output_tokens_per_s_per_gpu", "usd_per_gpu_hour", "output_tokens_per_usd", "peak_memory_bytes",
           "device_memory_bytes", "max_concurrency", "energy_per_output_token_j", "calibration_source",
           "calibration_from", "ttft_error_frac", "tpot_error_frac", "price_source"]


def _price(hardware, prices: dict | None) -> tuple[float, str]:
    hw_id = hwspecs.resolve_hardware(hardware).id
    for key in (str(hardware), hw_id):
        if prices and key in prices:
            usd = float(prices[key])
            if not (usd > 0 and math.isfinite(usd)):
                raise ValueError(f"price for {key} must be a positive number of USD per GPU-hour, got {usd!r}")
            return usd, "given"
    p = gpu_hour_price(hw_id)
    return (math.nan if p.usd_per_gpu_hour is None else p.usd_per_gpu_hour), f"{p.source} ({p.date})".strip()


def _row(config: dict, calibration, prices) -> dict:
    config = dict(config)
    hardware, model = config.pop("hardware"), config.pop("model")
    sc = Scenario(**config)
    hw = hwspecs.resolve_hardware(hardware)
    usd, price_source = _price(hardware, prices)
    row = {"hardware": str(hardware), "model": str(getattr(model, "id", model)), **sc.model_dump(),
           "device_memory_bytes": float(hw.memory_bytes), "usd_per_gpu_hour": usd, "price_source": price_source}
    try:
        p = predict(hardware, model, sc, calibration)
    except ValueError as e:  # does not fit, context, TP degree, dtype: the row says why
        return {**row, "fits": False, "limit": " ".join(str(e).split())}
    per_gpu = sc.batch * sc.output_tokens / p.e2e_s / sc.n_gpus
    return {**row, **p.trust_summary(), "fits": True, "limit": "", "ttft_s": p.ttft_s, "tpot_s": p.tpot_s,
            "e2e_s": p.e2e_s, "decode_tokens_per_s": p.decode_tokens_per_s, "output_tokens_per_s_per_gpu": per_gpu,
            "output_tokens_per_usd": per_gpu * 3600.0 / usd, "peak_memory_bytes": p.peak_memory_bytes,
            "max_concurrency": p.max_concurrency, "energy_per_output_token_j": p.energy_per_output_token_j}


def compare_configs(configs, calibration="auto", prices_usd_per_gpu_hour: dict | None = None) -> pd.DataFrame:
    """One row per configuration. ``configs``: dicts with ``hardware``, ``model`` and any Scenario fields
    (batch, prompt_tokens, weight_dtype, tensor_parallel, …). ``prices_usd_per_gpu_hour``: {hardware id:
    USD per GPU-hour} overriding the defaults of hwspecs/prices.yaml. Columns: COLUMNS, then the other
    Scenario fields."""
    configs = list(configs)
    if not configs:
        raise ValueError("configs is empty: give at least one {'hardware': ..., 'model': ...}")
    rows = []
    for i, c in enumerate(configs):
        if not isinstance(c, dict) or "hardware" not in c or "model" not in c:
            raise ValueError(f"configs[{i}] must be a dict with 'hardware' and 'model', got {c!r}")
        rows.append(_row(c, calibration, prices_usd_per_gpu_hour))
    df = pd.DataFrame(rows)
    rest = [c for c in df.columns if c not in COLUMNS]
    return df.reindex(columns=COLUMNS + rest)


def compare_grid(hardware, model, calibration="auto", prices_usd_per_gpu_hour: dict | None = None,
                 **axes) -> pd.DataFrame:
    """``compare_configs`` over the cartesian product of lists: hardware ids, models and Scenario fields
    (e.g. ``tensor_parallel=[4, 8]``, ``weight_dtype=["bf16", "fp8"]``); scalars are one value."""
    def as_list(v):
        return list(v) if isinstance(v, (list, tuple, range)) else [v]

    names = ["hardware", "model", *axes]
    grids = [as_list(hardware), as_list(model), *(as_list(v) for v in axes.values())]
    if any(not g for g in grids):
        raise ValueError(f"every axis needs at least one value ({', '.join(names)})")
    return compare_configs([dict(zip(names, combo)) for combo in itertools.product(*grids)], calibration,
                           prices_usd_per_gpu_hour)
