"""The public API: predict, prefill, decode_step, predict_kernel, sweep, context_switch, long_context_bounds.

``hardware`` is an id string (``"h100-sxm5-80gb"``), a path to a spec YAML, or a ``hwspecs.Hardware``;
``model`` an id (``"llama-3-8b"``), a path, or a ``workloads.ModelSpec``. ``calibration="auto"`` uses the
committed profile for the device (else a same-architecture transfer prior, else public defaults);
``None`` forces datasheet peaks with the public defaults.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import hwspecs
from hwspecs.calibration import IMPLS
from hwspecs.schema import DTYPES
from simulator import engine
from simulator.engine import DoesNotFitError, Setup
from simulator.ops import D2H, H2D, attention_op, gemm_op, transfer_op
from simulator.roofline import host_transfer_s, op_time, xp_for
from workloads.scenario import DEFAULT_SCENARIO, Scenario
from workloads.loader import resolve_model

OP_COLUMNS = ["phase", "op", "kind", "scope", "n_repeats", "flops", "weight_bytes", "act_read_bytes",
              "act_write_bytes", "kv_read_bytes", "kv_write_bytes", "hbm_bytes", "compute_s", "memory_s",
              "latency_s", "link_s", "time_s", "total_time_s", "bound", "intensity_flops_per_byte"]


# ---- results ---------------------------------------------------------------------------------------------

def _ops_frame(phase: str, pairs) -> pd.DataFrame:
    rows = []
    for op, t in pairs:
        hbm = float(op.hbm_bytes)
        rows.append((phase, op.name, op.kind, op.scope, op.n_repeats, float(op.flops), float(op.weight_bytes),
                     float(op.act_read_bytes), float(op.act_write_bytes), float(op.kv_read_bytes),
                     float(op.kv_write_bytes), hbm, t.compute_s, t.memory_s, t.latency_s, t.link_s, t.time_s,
                     t.time_s * op.n_repeats, t.bound, float(op.flops) / hbm if hbm else math.inf))
    return pd.DataFrame(rows, columns=OP_COLUMNS)


@dataclass(frozen=True)
class StepPrediction:
    """One forward pass. ``ops``: one row per op (per execution times; ``total_time_s`` = × n_repeats)."""

    time_s: float
    hbm_bytes: float
    flops: float
    bound: str
    _pairs: Any = field(repr=False, default=None)
    _phase: str = field(repr=False, default="")

    @property
    def ops(self) -> pd.DataFrame:
        return _ops_frame(self._phase, self._pairs)


@dataclass(frozen=True)
class KernelPrediction:
    time_s: float
    flops: float
    hbm_bytes: float
    bound: str
    compute_s: float = 0.0
    memory_s: float = 0.0
    latency_s: float = 0.0


@dataclass(frozen=True)
class Prediction:
    """Headline figures of serving one scenario (per GPU for memory; tensor-parallel groups act as one).

    ttft_s: prefill of the batch; tpot_s: mean decode step; e2e_s: ttft + all decode steps;
    decode_tokens_per_s: batch × decode steps / decode time; hbm_bytes: HBM traffic of the whole
    request batch (prefill + decode); peak_memory_bytes: weights + KV at the final context + activations
    + runtime reserve; max_concurrency: requests of this context that fit at once.
    """

    hardware_id: str
    model_id: str
    scenario: Scenario
    ttft_s: float
    tpot_s: float
    e2e_s: float
    decode_tokens_per_s: float
    hbm_bytes: float
    flops: float
    peak_memory_bytes: float
    max_concurrency: int
    memory: dict
    prefill_bound: str
    decode_bound: str
    calibration: str
    _prefill_pairs: Any = field(repr=False, default=None)
    _decode_pairs: Any = field(repr=False, default=None)

    @property
    def ops(self) -> pd.DataFrame:
        """Per-op table: prefill ops, then decode ops at the mid-decode context."""
        return pd.concat([_ops_frame("prefill", self._prefill_pairs), _ops_frame("decode", self._decode_pairs)],
                         ignore_index=True)

    def summary(self) -> dict:
        return {"hardware": self.hardware_id, "model": self.model_id, **self.scenario.model_dump(),
                "ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "e2e_s": self.e2e_s,
                "decode_tokens_per_s": self.decode_tokens_per_s, "hbm_bytes": self.hbm_bytes,
                "flops": self.flops, "peak_memory_bytes": self.peak_memory_bytes,
                "max_concurrency": self.max_concurrency, "prefill_bound": self.prefill_bound,
                "decode_bound": self.decode_bound, "calibration": self.calibration, **self.memory}


# ---- argument checking ----------------------------------------------------------------------------------

def _check_int(name: str, value, minimum: int = 1) -> int:
    """A positive whole number; NaN, inf, bools, fractions and strings are rejected by name."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a whole number ≥ {minimum}, got {value!r}")
    if not math.isfinite(value) or value != int(value) or value < minimum:
        raise ValueError(f"{name} must be a whole number ≥ {minimum}, got {value!r}")
    return int(value)


def _check_dtype(name: str, value) -> str:
    if value not in DTYPES:
        raise ValueError(f"{name} must be one of {', '.join(DTYPES)}, got {value!r}")
    return value


def _resolve(hardware, model, calibration, impl="vendor"):
    hw = hwspecs.resolve_hardware(hardware)
    m = resolve_model(model) if model is not None else None
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    cal = hwspecs.calibration_for(hw, calibration)
    label = "none" if calibration is None else (cal.hardware_id if cal.provenance else
                                                 ("transfer" if cal.hardware_id == hw.id else "default"))
    return hw, m, cal.params(impl), label


def _setup(hw, m, prm, weight_dtype, activation_dtype, kv_dtype, tensor_parallel) -> Setup:
    for name, v in (("weight_dtype", weight_dtype), ("activation_dtype", activation_dtype),
                    ("kv_dtype", kv_dtype)):
        _check_dtype(name, v)
    tp = _check_int("tensor_parallel", tensor_parallel)
    return engine.make_setup(hw, m, prm, weight_dtype, activation_dtype, kv_dtype, tp)


def _step_bound(pairs) -> str:
    """The bound that accounts for most of a step's time."""
    by = {}
    for op, t in pairs:
        by[t.bound] = by.get(t.bound, 0.0) + t.time_s * op.n_repeats
    return max(by, key=by.get)


def _prefill_bound(pairs, clock_frac) -> str:
    """Prefill's bound; compute-bound work at a lowered (power-limited) clock is "power"-bound."""
    bound = _step_bound(pairs)
    return "power" if bound == "compute" and clock_frac < 0.97 else bound


def _decode_step(pairs, prm, cuda_graph) -> tuple[float, str]:
    """(step time, bound) of a decode step; an eager step the host cannot issue fast enough is "launch"-bound."""
    gpu, n_kernels, _, _ = engine.totals(pairs)
    step_s = float(engine.launch_bound_s(gpu, n_kernels, prm, cuda_graph))
    return step_s, "launch" if (not cuda_graph and step_s > gpu * 1.05) else _step_bound(pairs)


# ---- public functions -----------------------------------------------------------------------------------

def prefill(hardware, model, batch, prompt_tokens, calibration="auto", *, weight_dtype="bf16",
            activation_dtype="bf16", kv_dtype="bf16", tensor_parallel=1) -> StepPrediction:
    """Prefill of ``batch`` prompts of ``prompt_tokens`` tokens (eager; power-limited clock applied)."""
    batch, prompt_tokens = _check_int("batch", batch), _check_int("prompt_tokens", prompt_tokens)
    hw, m, prm, _ = _resolve(hardware, model, calibration)
    s = _setup(hw, m, prm, weight_dtype, activation_dtype, kv_dtype, tensor_parallel)
    t, flops, hbm, pairs, clock = engine.prefill_eval(s, batch, prompt_tokens)
    return StepPrediction(float(t), float(hbm), float(flops), _prefill_bound(pairs, clock), pairs, "prefill")


def decode_step(hardware, model, batch, context_tokens, calibration="auto", cuda_graph=True, *,
                weight_dtype="bf16", activation_dtype="bf16", kv_dtype="bf16", tensor_parallel=1) -> StepPrediction:
    """One decode step: one new token for each of ``batch`` sequences holding ``context_tokens`` tokens."""
    batch, context_tokens = _check_int("batch", batch), _check_int("context_tokens", context_tokens)
    hw, m, prm, _ = _resolve(hardware, model, calibration)
    s = _setup(hw, m, prm, weight_dtype, activation_dtype, kv_dtype, tensor_parallel)
    _, flops, hbm, pairs = engine.decode_eval(s, batch, context_tokens, bool(cuda_graph))
    t, bound = _decode_step(pairs, prm, bool(cuda_graph))
    return StepPrediction(t, float(hbm), float(flops), bound, pairs, "decode")


def predict(hardware, model, scenario: Scenario | None = None, calibration="auto") -> Prediction:
    """Serve ``scenario`` (default: ``workloads.DEFAULT_SCENARIO`` — batch 16, 2048-token prompts,
    256 output tokens, bf16 everywhere, CUDA-graph decode) on ``hardware`` and report the headline figures.
    Raises DoesNotFitError when the weights, or the batch's KV cache, do not fit in device memory."""
    sc = DEFAULT_SCENARIO if scenario is None else scenario
    if not isinstance(sc, Scenario):
        raise ValueError(f"scenario must be a workloads.Scenario, got {type(sc).__name__}")
    hw, m, prm, label = _resolve(hardware, model, calibration)
    s = _setup(hw, m, prm, sc.weight_dtype, sc.activation_dtype, sc.kv_dtype, sc.tensor_parallel)
    engine.check_weights_fit(s)
    mem = engine.memory_breakdown(s, sc.batch, sc.prompt_tokens, sc.output_tokens, sc.kv_block_tokens)
    conc = int(engine.max_concurrency(s, sc.prompt_tokens, sc.output_tokens, sc.kv_block_tokens))
    if mem["peak_memory_bytes"] > hw.memory_bytes:
        raise DoesNotFitError(
            f"batch={sc.batch} of {sc.context_tokens}-token requests needs {mem['peak_memory_bytes'] / 1e9:.1f} GB "
            f"per GPU but {hw.id} has {hw.memory_bytes / 1e9:.1f} GB; at most {conc} such requests fit")
    ttft, pf_flops, pf_hbm, pf_pairs, clock = engine.prefill_eval(s, sc.batch, sc.prompt_tokens)
    dec_s, dec_flops, dec_hbm, steps, co = engine.decode_total_eval(s, sc.batch, sc.prompt_tokens,
                                                                    sc.output_tokens, sc.cuda_graph)
    mid_ctx = sc.prompt_tokens + max(sc.output_tokens // 2, 1)
    dec_pairs = engine.decode_pairs_at(s, co, mid_ctx)
    step_s, dec_bound = _decode_step(dec_pairs, prm, sc.cuda_graph)
    n_steps = float(steps)
    tpot = float(dec_s) / n_steps if n_steps > 0 else step_s
    dec_s = float(dec_s)
    return Prediction(
        hardware_id=hw.id, model_id=m.id, scenario=sc, ttft_s=float(ttft), tpot_s=tpot, e2e_s=float(ttft) + dec_s,
        decode_tokens_per_s=sc.batch / tpot, hbm_bytes=float(pf_hbm + dec_hbm), flops=float(pf_flops + dec_flops),
        peak_memory_bytes=float(mem["peak_memory_bytes"]), max_concurrency=conc,
        memory={k: float(v) for k, v in mem.items() if k != "peak_memory_bytes"},
        prefill_bound=_prefill_bound(pf_pairs, clock), decode_bound=dec_bound,
        calibration=label, _prefill_pairs=pf_pairs, _decode_pairs=dec_pairs)


_KERNEL_SHAPES = {
    "gemm": {"m", "n", "k", "dtype"},
    "attention_prefill": {"batch", "seq", "n_q_heads", "n_kv_heads", "head_dim", "causal", "dtype"},
    "attention_decode": {"batch", "context", "n_q_heads", "n_kv_heads", "head_dim", "dtype", "paged"},
    "copy": {"bytes"},
    "h2d": {"bytes", "pinned"},
    "d2h": {"bytes", "pinned"},
}
_KERNEL_OPTIONAL = {"dtype": "bf16", "causal": True, "pinned": True, "paged": False}


def kernel_op(kernel: str, **shape):
    """The Op a standalone kernel benchmark runs (the same builders as the model graph)."""
    if kernel not in _KERNEL_SHAPES:
        raise ValueError(f"kernel must be one of {', '.join(_KERNEL_SHAPES)}, got {kernel!r}")
    allowed = _KERNEL_SHAPES[kernel]
    extra = set(shape) - allowed
    if extra:
        raise ValueError(f"{kernel} takes {', '.join(sorted(allowed))}; unexpected: {', '.join(sorted(extra))}")
    args = {k: shape.get(k, _KERNEL_OPTIONAL.get(k)) for k in allowed}
    missing = [k for k, v in args.items() if v is None]
    if missing:
        raise ValueError(f"{kernel} needs {', '.join(sorted(missing))}")
    for k, v in args.items():
        if k == "dtype":
            _check_dtype("dtype", v)
        elif k in ("causal", "pinned", "paged"):
            if not isinstance(v, (bool, np.bool_)):
                raise ValueError(f"{k} must be true or false, got {v!r}")
        else:
            args[k] = _check_int(k, v)
    if kernel == "gemm":
        # Benchmarks multiply two activation-like operands: both are "read", none is a weight.
        return gemm_op("gemm", args["m"], args["n"], args["k"], weight_dtype=args["dtype"], act_dtype=args["dtype"],
                       scope="model")
    if kernel in ("attention_prefill", "attention_decode"):
        if args["n_q_heads"] % args["n_kv_heads"]:
            raise ValueError(f"n_q_heads ({args['n_q_heads']}) must be a multiple of n_kv_heads ({args['n_kv_heads']})")
        q = 1 if kernel == "attention_decode" else args["seq"]
        kv = args["context"] if kernel == "attention_decode" else args["seq"]
        return attention_op(kernel, args["batch"], q, kv, args["n_q_heads"], args["n_kv_heads"], args["head_dim"],
                            act_dtype=args["dtype"], kv_dtype=args["dtype"], causal=args.get("causal", False),
                            scope="model", paged=bool(args.get("paged", False)))
    return transfer_op(kernel, float(args["bytes"]), pinned=args.get("pinned", True))


def predict_kernel(hardware, kernel: str, calibration="auto", impl="vendor", **shape) -> KernelPrediction:
    """Time of one kernel: "gemm" (m, n, k, dtype), "attention_prefill" (batch, seq, n_q_heads, n_kv_heads,
    head_dim, causal=True, dtype), "attention_decode" (batch, context, n_q_heads, n_kv_heads, head_dim,
    dtype, paged=False: a block-table KV cache), "copy" (bytes, device→device), "h2d"/"d2h" (bytes, pinned=True). ``impl``: "vendor"
    (cuBLAS / SDPA / copy_) or "triton" (hwperf's kernels)."""
    hw, _, prm, _ = _resolve(hardware, None, calibration, impl)
    op = kernel_op(kernel, **shape)
    t = op_time(op, hw, prm, host_link_bytes_per_s=engine.link_rate(hw.host_link))
    return KernelPrediction(float(t.time_s), float(op.flops), float(op.hbm_bytes), str(t.bound),
                            float(t.compute_s), float(t.memory_s), float(t.latency_s))


# ---- sweeps ---------------------------------------------------------------------------------------------

_NUMERIC_AXES = ("batch", "prompt_tokens", "output_tokens")
_CATEGORICAL_AXES = ("weight_dtype", "activation_dtype", "kv_dtype", "cuda_graph", "tensor_parallel",
                     "kv_block_tokens")


def sweep(hardware, model, calibration="auto", **axes) -> pd.DataFrame:
    """Cartesian product of Scenario fields (lists of values; scalars allowed) → one row per point.

    Numeric axes (batch, prompt_tokens, output_tokens) are evaluated as numpy arrays in one pass per
    combination of the categorical axes (dtypes, cuda_graph, tensor_parallel, kv_block_tokens). Points whose memory does not fit get ``fits = False`` (their
    times are still the model's estimate). Columns: the scenario fields, ttft_s, tpot_s, e2e_s,
    decode_tokens_per_s, hbm_bytes, peak_memory_bytes, max_concurrency, fits.
    """
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
    for name in _NUMERIC_AXES:
        values[name] = [_check_int(name, x) for x in values[name]]
    for name in ("weight_dtype", "activation_dtype", "kv_dtype"):
        for x in values[name]:
            _check_dtype(name, x)
            if name == "activation_dtype" and x in ("int4", "int8"):
                raise ValueError(f"activation_dtype must be a float type, got {x!r}")
    hw, m, prm, _ = _resolve(hardware, model, calibration)
    b, p, t = (np.asarray(values[n], dtype=float) for n in _NUMERIC_AXES)
    frames = []
    for combo in itertools.product(*(values[n] for n in _CATEGORICAL_AXES)):
        cat = dict(zip(_CATEGORICAL_AXES, combo))
        blk = _check_int("kv_block_tokens", cat["kv_block_tokens"])
        s = _setup(hw, m, prm, cat["weight_dtype"], cat["activation_dtype"], cat["kv_dtype"], cat["tensor_parallel"])
        frames.append(_sweep_block(s, b, p, t, bool(cat["cuda_graph"]), blk, cat))
    return pd.concat(frames, ignore_index=True)


def _sweep_block(s: Setup, b, p, t, cuda_graph, block_tokens, cat) -> pd.DataFrame:
    """One categorical combination over the (batch × prompt × output) grid. Each quantity is evaluated
    on the axes it depends on and broadcast: prefill on (B, P), decode coefficients on B, the decode
    integral and memory on the full grid."""
    B, P, T = b[:, None, None], p[None, :, None], t[None, None, :]
    shape = (len(b), len(p), len(t))
    ttft, pf_flops, pf_hbm, _, _ = engine.prefill_eval(s, b[:, None], p[None, :])
    co = engine.decode_coeffs(s, B)
    dec, dec_flops, dec_hbm, steps = engine.decode_total_from_coeffs(s, co, P, T, cuda_graph)
    first_step = engine.decode_eval(s, b[:, None], p[None, :] + 1.0, cuda_graph)[0]
    tpot = np.where(steps > 0, dec / np.maximum(steps, 1.0), first_step[..., None])
    mem = engine.memory_breakdown(s, B, P, T, block_tokens)
    weights_fit = engine.weight_bytes_per_gpu(s) + engine.RUNTIME_RESERVED_BYTES <= s.hw.memory_bytes
    conc = engine.max_concurrency(s, P, T, block_tokens)
    n = int(np.prod(shape))

    def flat(x):
        return np.broadcast_to(x, shape).reshape(n)

    cols = {"batch": flat(B).astype(np.int64), "prompt_tokens": flat(P).astype(np.int64),
            "output_tokens": flat(T).astype(np.int64)}
    for k, v in cat.items():
        # Constant columns as categoricals: building a million-row string column costs more than the model.
        cols[k] = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), [v]) if isinstance(v, str) else np.full(n, v)
    ttft3 = ttft[..., None]
    cols.update({
        "ttft_s": flat(ttft3), "tpot_s": flat(tpot), "e2e_s": flat(ttft3 + dec),
        "decode_tokens_per_s": flat(B / tpot), "hbm_bytes": flat(pf_hbm[..., None] + dec_hbm),
        "flops": flat(pf_flops[..., None] + dec_flops), "peak_memory_bytes": flat(mem["peak_memory_bytes"]),
        "max_concurrency": flat(conc), "fits": flat((mem["peak_memory_bytes"] <= s.hw.memory_bytes) & weights_fit),
    })
    return pd.DataFrame(cols)


# ---- long context: Fu's four bounds, and context switching ---------------------------------------------

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


def context_switch(hardware, model, context_tokens, calibration="auto", *, kv_dtype="bf16", weight_dtype="bf16",
                   activation_dtype="bf16", tensor_parallel=1, tier="host", storage=None,
                   pinned=True) -> ContextSwitch:
    """Cost of swapping one request's KV cache (``context_tokens``) out and another's in.

    tier "host": host DDR over the GPU's host link (pinned or pageable). tier "ssd": an NVMe SSD or CSD
    id (``storage``, default nvme-gen4-ssd) behind the host link — the slower of link and drive.
    Swap = out + in, one after the other (Fu, arXiv 2405.08944); recompute = prefill of the context.
    """
    context_tokens = _check_int("context_tokens", context_tokens)
    hw, m, prm, _ = _resolve(hardware, model, calibration)
    s = _setup(hw, m, prm, weight_dtype, activation_dtype, kv_dtype, tensor_parallel)
    kv = float(engine.kv_bytes_per_sequence(s, context_tokens, 1))
    out_rate = in_rate = None
    if tier == "host":
        pass
    elif tier == "ssd":
        dev = hwspecs.load(storage or "nvme-gen4-ssd")
        if dev.kind not in ("ssd", "csd"):
            raise ValueError(f"storage must be an ssd or csd id, got {dev.id} ({dev.kind})")
        out_rate, in_rate = dev.seq_write_bytes_per_s, dev.seq_read_bytes_per_s
    else:
        raise ValueError(f"tier must be 'host' or 'ssd', got {tier!r}")

    def transfer(kind, device_bytes_per_s):
        """(effective rate, time) across the host link, or the slower drive behind it."""
        lat, body = host_transfer_s(kind, pinned, kv, s.host_link_bytes_per_s, prm, xp_for(kv), device_bytes_per_s)
        return kv / body, lat + body

    _, out_s = transfer(D2H, out_rate)
    rate, in_s = transfer(H2D, in_rate)
    recompute = float(engine.prefill_eval(s, 1, context_tokens)[0])
    swap = out_s + in_s
    return ContextSwitch(context_tokens, kv, tier, rate, out_s, in_s, swap, recompute,
                         "swap" if swap < recompute else "recompute")


def long_context_bounds(hardware, model, context_tokens, calibration="auto", *, kv_dtype="bf16",
                        weight_dtype="bf16", activation_dtype="bf16", tensor_parallel=1,
                        concurrent_users=None) -> pd.DataFrame:
    """Fu's four bounds (arXiv 2405.08944) for each context length: prefill time (FLOP/s-bound),
    decode step time at full concurrency (HBM-bound), concurrency (HBM capacity), and context-switch
    time over the host link. One row per context length."""
    lengths = [context_tokens] if np.isscalar(context_tokens) else list(context_tokens)
    rows = []
    hw, m, prm, _ = _resolve(hardware, model, calibration)
    s = _setup(hw, m, prm, weight_dtype, activation_dtype, kv_dtype, tensor_parallel)
    engine.check_weights_fit(s)
    for c in lengths:
        c = _check_int("context_tokens", c)
        conc = int(engine.max_concurrency(s, c, 1, 1))
        users = concurrent_users or max(conc, 1)
        pf = engine.prefill_eval(s, 1, c)[0]
        dec = engine.decode_eval(s, users, c)[0]
        cs = context_switch(hw, m, c, calibration, kv_dtype=kv_dtype, weight_dtype=weight_dtype,
                            activation_dtype=activation_dtype, tensor_parallel=tensor_parallel)
        rows.append({"context_tokens": c, "kv_bytes_per_token": m.kv_bytes_per_token(kv_dtype),
                     "kv_bytes_per_user": m.kv_bytes_per_token(kv_dtype) * c,
                     "kv_bytes_per_user_per_gpu": cs.kv_bytes, "max_concurrency": conc, "prefill_s": float(pf),
                     "decode_users": users, "decode_step_s": float(dec), "context_switch_s": cs.swap_s,
                     "recompute_s": cs.recompute_s, "cheaper_switch": cs.cheaper})
    return pd.DataFrame(rows)


__all__ = ["ContextSwitch", "DoesNotFitError", "KernelPrediction", "Prediction", "StepPrediction",
           "context_switch", "decode_step", "kernel_op", "long_context_bounds", "predict", "predict_kernel",
           "prefill", "sweep"]
