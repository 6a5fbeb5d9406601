"""The public API's core: predict, prefill, decode_step — thin validating shells over ``engine``.

``hardware`` is an id string (``"h100-sxm5-80gb"``), a path to a spec YAML, or a ``hwspecs.Hardware``;
``model`` an id (``"llama-3-8b"``), a path, or a ``workloads.ModelSpec``. ``calibration="auto"`` uses the
committed profile for the device (else a same-architecture transfer prior, else public defaults);
``None`` forces datasheet peaks with the public defaults. The rest of the API: ``kernel_api``
(predict_kernel), ``sweep``, ``long_context`` (context_switch, long_context_bounds).
"""

from __future__ import annotations

import hwspecs
from simulator import engine, memory
from simulator.engine import Setup
from simulator.memory import DoesNotFitError
from simulator.results import KernelPrediction, Prediction, StepPrediction
from workloads.loader import resolve_model
from workloads.scenario import DEFAULT_SCENARIO, Scenario, check_activation_dtype, check_count, check_dtype


def resolve(hardware, model, calibration, impl="vendor"):
    """(Hardware, ModelSpec or None, EffectParams, calibration label) from the API's arguments."""
    hw = hwspecs.resolve_hardware(hardware)
    m = resolve_model(model) if model is not None else None
    cal = hwspecs.calibration_for(hw, calibration)
    label = "none" if calibration is None else (cal.hardware_id if cal.provenance else
                                                 ("transfer" if cal.hardware_id == hw.id else "default"))
    return hw, m, cal.params(impl), label


def setup(hw, m, prm, weight_dtype, activation_dtype, kv_dtype, tensor_parallel) -> Setup:
    check_dtype("weight_dtype", weight_dtype)
    check_dtype("kv_dtype", kv_dtype)
    check_activation_dtype(activation_dtype)
    tp = check_count("tensor_parallel", tensor_parallel)
    return engine.make_setup(hw, m, prm, weight_dtype, activation_dtype, kv_dtype, tp)


def _resolve_setup(hardware, model, calibration, weight_dtype, activation_dtype, kv_dtype, tensor_parallel):
    hw, m, prm, label = resolve(hardware, model, calibration)
    return setup(hw, m, prm, weight_dtype, activation_dtype, kv_dtype, tensor_parallel), label


def prefill(hardware, model, batch, prompt_tokens, calibration="auto", *, weight_dtype="bf16",
            activation_dtype="bf16", kv_dtype="bf16", tensor_parallel=1) -> StepPrediction:
    """Prefill of ``batch`` prompts of ``prompt_tokens`` tokens (eager; power-limited clock applied)."""
    batch, prompt_tokens = check_count("batch", batch), check_count("prompt_tokens", prompt_tokens)
    s, _ = _resolve_setup(hardware, model, calibration, weight_dtype, activation_dtype, kv_dtype, tensor_parallel)
    return StepPrediction.of(engine.prefill(s, batch, prompt_tokens))


def decode_step(hardware, model, batch, context_tokens, calibration="auto", cuda_graph=True, *,
                weight_dtype="bf16", activation_dtype="bf16", kv_dtype="bf16", tensor_parallel=1) -> StepPrediction:
    """One decode step: one new token for each of ``batch`` sequences holding ``context_tokens`` tokens."""
    batch, context_tokens = check_count("batch", batch), check_count("context_tokens", context_tokens)
    s, _ = _resolve_setup(hardware, model, calibration, weight_dtype, activation_dtype, kv_dtype, tensor_parallel)
    return StepPrediction.of(engine.decode_step(s, batch, context_tokens, bool(cuda_graph)))


def predict(hardware, model, scenario: Scenario | None = None, calibration="auto") -> Prediction:
    """Serve ``scenario`` (default: ``workloads.DEFAULT_SCENARIO`` — batch 16, 2048-token prompts,
    256 output tokens, bf16 everywhere, CUDA-graph decode) on ``hardware`` and report the headline figures.
    Raises DoesNotFitError when the weights, or the batch's KV cache, do not fit in device memory."""
    sc = DEFAULT_SCENARIO if scenario is None else scenario
    if not isinstance(sc, Scenario):
        raise ValueError(f"scenario must be a workloads.Scenario, got {type(sc).__name__}")
    s, label = _resolve_setup(hardware, model, calibration, sc.weight_dtype, sc.activation_dtype, sc.kv_dtype,
                              sc.tensor_parallel)
    memory.check_weights_fit(s)
    mem = memory.memory_breakdown(s, sc.batch, sc.prompt_tokens, sc.output_tokens, sc.kv_block_tokens)
    conc = int(memory.max_concurrency(s, sc.prompt_tokens, sc.output_tokens, sc.kv_block_tokens))
    if mem["peak_memory_bytes"] > s.hw.memory_bytes:
        raise DoesNotFitError(
            f"batch={sc.batch} of {sc.context_tokens}-token requests needs {mem['peak_memory_bytes'] / 1e9:.1f} GB "
            f"per GPU but {s.hw.id} has {s.hw.memory_bytes / 1e9:.1f} GB; at most {conc} such requests fit")
    pf = engine.prefill(s, sc.batch, sc.prompt_tokens)
    co = engine.decode_coeffs(s, sc.batch)
    dec_s, dec_flops, dec_hbm, steps = (float(x) for x in engine.decode_total(s, co, sc.prompt_tokens,
                                                                              sc.output_tokens, sc.cuda_graph))
    mid = engine.decode_step_at(s, co, sc.prompt_tokens + max(sc.output_tokens // 2, 1), sc.cuda_graph)
    tpot = dec_s / steps if steps > 0 else float(mid.time_s)
    ttft = float(pf.time_s)
    return Prediction(
        hardware_id=s.hw.id, model_id=s.model.id, scenario=sc, ttft_s=ttft, tpot_s=tpot, e2e_s=ttft + dec_s,
        decode_tokens_per_s=sc.batch / tpot, hbm_bytes=float(pf.hbm_bytes) + dec_hbm,
        flops=float(pf.flops) + dec_flops, peak_memory_bytes=float(mem["peak_memory_bytes"]), max_concurrency=conc,
        memory={k: float(v) for k, v in mem.items() if k != "peak_memory_bytes"},
        prefill_bound=pf.bound, decode_bound=mid.bound, calibration=label,
        _prefill_pairs=pf.pairs, _decode_pairs=mid.pairs)


__all__ = ["DoesNotFitError", "KernelPrediction", "Prediction", "StepPrediction", "decode_step", "predict",
           "prefill", "resolve", "setup"]
