"""The public API's core: predict, prefill, decode_step — thin validating shells over ``engine``.

``hardware`` is an id string (``"h100-sxm5-80gb"``), a path to a spec YAML, or a ``hwspecs.Hardware``;
``model`` an id (``"llama-3-8b"``), a path, or a ``workloads.ModelSpec``. ``calibration="auto"`` uses the
committed profile for the device (else a same-architecture transfer prior, else public defaults);
``None`` forces datasheet peaks with the public defaults. The rest of the API: ``kernel_api``
(predict_kernel), ``sweep``, ``long_context`` (context_switch, long_context_bounds).
"""

from __future__ import annotations

import dataclasses

import hwspecs
from simulator import engine, fit, memory, parallel, trust
from simulator.engine import Setup
from simulator.memory import DoesNotFitError
from simulator.results import KernelPrediction, Prediction, StepPrediction
from workloads import kv_methods
from workloads.loader import resolve_model
from workloads.scenario import (DEFAULT_SCENARIO, Scenario, check_activation_dtype, check_count, check_dtype, check_flag,
                                check_positive)


def resolve(hardware, model, calibration, impl="vendor"):
    """(Hardware, ModelSpec or None, EffectParams, calibration label) from the API's arguments."""
    hw = hwspecs.resolve_hardware(hardware)
    m = resolve_model(model) if model is not None else None
    cal = hwspecs.calibration_for(hw, calibration)
    label = "none" if calibration is None else (cal.hardware_id if cal.provenance else
                                                 ("transfer" if cal.hardware_id == hw.id else "default"))
    return hw, m, cal.params(impl), label


def setup(hw, m, prm, weight_dtype, activation_dtype, kv_dtype, tensor_parallel, state="sustained",
          power_cap_w=None, sm_clock_hz=None, kv_method=None) -> Setup:
    fit.check_storage_dtype("weight_dtype", weight_dtype)
    fit.check_storage_dtype("kv_dtype", kv_dtype)
    check_activation_dtype(activation_dtype, weight_dtype)
    tp = check_count("tensor_parallel", tensor_parallel)
    if m is None:
        raise ValueError("model must be a model id, a model YAML path or a workloads.ModelSpec, got None")
    power_cap_w = None if power_cap_w is None else check_positive("power_cap_w", power_cap_w)
    sm_clock_hz = None if sm_clock_hz is None else check_positive("sm_clock_hz", sm_clock_hz)
    fit.check_tensor_parallel(m, tp)
    method = kv_methods.parse(kv_method)
    method.check_model(m.head_dim, m.n_kv_heads)
    s = engine.make_setup(hw, m, prm, weight_dtype, activation_dtype, kv_dtype, tp, state, power_cap_w, sm_clock_hz,
                          None if method.family == "none" else method)
    return parallel.attach(s, hw)  # tensor-parallel collectives over the GPU's scale-up link, as predict times them


def _resolve_setup(hardware, model, calibration, *args, split=None, collective_algorithm="ring", expert_imbalance=1.0,
                   **power):
    hw, m, prm, label = resolve(hardware, model, calibration)
    s = setup(hw, m, prm, *args, **power)
    fit.check_gpu_count(hardware, s.tp)
    s = parallel.attach(s, hardware, split, collective_algorithm)
    return (s if expert_imbalance == 1.0 else dataclasses.replace(s, expert_imbalance=expert_imbalance)), label


def prefill(hardware, model, batch, prompt_tokens, calibration="auto", *, weight_dtype="bf16",
            activation_dtype="bf16", kv_dtype="bf16", tensor_parallel=1, state="sustained", power_cap_w=None,
            sm_clock_hz=None, kv_method=None, check_fit=True) -> StepPrediction:
    """Prefill of ``batch`` prompts of ``prompt_tokens`` tokens (eager) in operating ``state``
    ("sustained": clock settled under the power limit or ``power_cap_w``; "burst": boost), optionally at
    a locked ``sm_clock_hz``. The result carries time, power, energy and clock. Raises DoesNotFitError
    as ``predict`` does when the pass does not fit in memory or the model's context, unless ``check_fit``
    is False (timing what no GPU could hold)."""
    batch, prompt_tokens = check_count("batch", batch), check_count("prompt_tokens", prompt_tokens)
    s, _ = _resolve_setup(hardware, model, calibration, weight_dtype, activation_dtype, kv_dtype, tensor_parallel,
                          state=state, power_cap_w=power_cap_w, sm_clock_hz=sm_clock_hz, kv_method=kv_method)
    if check_flag("check_fit", check_fit):
        fit.check_context(s.model, prompt_tokens)
        memory.check_step_fits(s, "prefill", batch, prompt_tokens, prompt_tokens)
    return StepPrediction.of(engine.prefill(s, batch, prompt_tokens), s.pm)


def decode_step(hardware, model, batch, context_tokens, calibration="auto", cuda_graph=True, *,
                weight_dtype="bf16", activation_dtype="bf16", kv_dtype="bf16", tensor_parallel=1, state="sustained",
                power_cap_w=None, sm_clock_hz=None, kv_method=None, check_fit=True) -> StepPrediction:
    """One decode step: one new token for each of ``batch`` sequences holding ``context_tokens`` tokens
    (operating state, what-ifs and ``check_fit`` as in ``prefill``; ``kv_method`` e.g. "kivi-2", see
    workloads.kv_methods)."""
    batch, context_tokens = check_count("batch", batch), check_count("context_tokens", context_tokens)
    s, _ = _resolve_setup(hardware, model, calibration, weight_dtype, activation_dtype, kv_dtype, tensor_parallel,
                          state=state, power_cap_w=power_cap_w, sm_clock_hz=sm_clock_hz, kv_method=kv_method)
    if check_flag("check_fit", check_fit):
        fit.check_context(s.model, context_tokens + 1)
        memory.check_step_fits(s, "decode_step", batch, 1, context_tokens + 1)
    if s.kv_method is not None:
        s.kv_method.check_context(context_tokens)
    return StepPrediction.of(engine.decode_step(s, batch, context_tokens, check_flag("cuda_graph", cuda_graph)), s.pm)


def predict(hardware, model, scenario: Scenario | None = None, calibration="auto") -> Prediction:
    """Serve ``scenario`` (default: ``workloads.DEFAULT_SCENARIO`` — batch 16, 2048-token prompts,
    256 output tokens, bf16 everywhere, CUDA-graph decode, sustained operation) on ``hardware`` and report
    the headline figures. Raises DoesNotFitError when the weights, or the batch's KV cache, do not fit."""
    sc = DEFAULT_SCENARIO if scenario is None else scenario
    if not isinstance(sc, Scenario):
        raise ValueError(f"scenario must be a workloads.Scenario, got {type(sc).__name__}")
    sc = sc.checked()
    s, label = _resolve_setup(hardware, model, calibration, sc.weight_dtype, sc.activation_dtype, sc.kv_dtype,
                              sc.tensor_parallel, state=sc.state, power_cap_w=sc.power_cap_w,
                              sm_clock_hz=sc.sm_clock_hz, kv_method=sc.kv_method, split=sc.parallel,
                              collective_algorithm=sc.collective_algorithm, expert_imbalance=sc.expert_imbalance)
    fit.check_context(s.model, sc.context_tokens)
    if s.kv_method is not None:
        s.kv_method.check_context(sc.context_tokens)
    frac, chunk = sc.memory_utilization_frac, sc.prefill_chunk_tokens
    memory.check_weights_fit(s, frac)
    mem = memory.memory_breakdown(s, sc.batch, sc.prompt_tokens, sc.output_tokens, sc.kv_block_tokens, frac, chunk)
    conc = int(memory.max_concurrency(s, sc.prompt_tokens, sc.output_tokens, sc.kv_block_tokens, frac, chunk))
    if mem["peak_memory_bytes"] > s.hw.memory_bytes:
        how = "in one prefill pass" if chunk is None else f"with {chunk}-token prefill chunks"
        raise DoesNotFitError(
            f"batch={sc.batch} of {sc.context_tokens}-token requests ({how}) needs "
            f"{mem['peak_memory_bytes'] / 1e9:.1f} GB per GPU of {s.hw.id}'s {s.hw.memory_bytes / 1e9:.1f} GB "
            f"(memory_utilization_frac {frac:g}); at most {conc} such requests fit"
            + ("; prefill_chunk_tokens lowers the activations" if chunk is None else ""))
    # micro-batches through pipeline stages, overlapped collectives: simulator.parallel (one GPU: the engine's)
    pf = parallel.prefill(s, sc.batch, sc.prompt_tokens)
    # mid: the step at the mid-decode context, for the decode bound and the per-op table, on demand
    co, dec, mid = parallel.decode(s, sc.batch, sc.prompt_tokens, sc.output_tokens, sc.cuda_graph)

    return _prediction(s, sc, label, mem, conc, pf, dec, mid,
                       trust.resolve_trust(s.hw, calibration, sc.cuda_graph, trust.unmeasured_settings(sc)))


def _prediction(s: Setup, sc: Scenario, label, mem, conc, pf, dec, mid, tr=None) -> Prediction:
    steps, dec_s = float(dec.steps), float(dec.time_s)
    first = None if steps > 0 else mid()  # one output token: no decode step; TPOT is the first step's time
    tpot = dec_s / steps if steps > 0 else float(first.time_s)
    ttft, energy = float(pf.time_s), float(pf.energy_j) + float(dec.energy_j)
    # The first output token comes from prefill; the T − 1 others from the decode steps.
    out_tokens = sc.batch * sc.output_tokens
    return Prediction(
        hardware_id=s.hw.id, model_id=s.model.id, scenario=sc, ttft_s=ttft, tpot_s=tpot, e2e_s=ttft + dec_s,
        decode_tokens_per_s=sc.batch / tpot, hbm_bytes=float(pf.hbm_bytes) + float(dec.hbm_bytes),
        flops=float(pf.flops) + float(dec.flops), peak_memory_bytes=float(mem["peak_memory_bytes"]),
        max_concurrency=conc, memory={k: float(v) for k, v in mem.items() if k != "peak_memory_bytes"},
        prefill_bound=pf.bound, calibration=label, _prefill_pairs=pf.pairs, _decode_mid=mid, state=sc.state,
        prefill_power_w=float(pf.power_w),
        decode_power_w=float(dec.energy_j) / dec_s if dec_s > 0 else float(first.power_w),
        prefill_clock_hz=float(pf.clock_hz), decode_clock_hz=float(dec.clock_frac) * s.pm.boost_clock_hz,
        energy_j=energy, energy_per_request_j=energy / sc.batch, energy_per_output_token_j=energy / out_tokens,
        _prefill_clock_frac=pf.clock_frac, _pm=s.pm, trust=tr)


__all__ = ["DoesNotFitError", "KernelPrediction", "Prediction", "StepPrediction", "decode_step", "predict",
           "prefill", "resolve", "setup"]
