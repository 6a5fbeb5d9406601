"""Serving simulation: queueing invariants, physical lower bounds, KV capacity, energy accounting, bad input."""

import numpy as np
import pytest

from simulator import decode, engine, serving
from simulator.api import resolve, setup
from simulator.serving import SchedulerConfig

HW, MODEL = "a100-sxm4-80gb", "llama-3-8b"


@pytest.fixture(scope="module")
def light():
    """Well below saturation: ~3 requests/s of 512 + 128 tokens on one A100 (saturates near 20/s)."""
    req = serving.poisson(3.0, 240.0, prompt_tokens=512, output_tokens=128, prompt_cv=0.5, output_cv=0.5,
                          max_tokens=2048, seed=3)
    return req, serving.serve(HW, MODEL, req, engine="kernels-only")


def test_throughput_equals_arrival_rate_below_saturation(light):
    req, r = light
    rate = len(req) / 240.0
    assert r.summary["throughput_requests_per_s"] == pytest.approx(rate, rel=0.03)
    assert r.requests.finish_s.notna().all()


def test_throughput_falls_short_of_arrivals_above_saturation():
    req = serving.poisson(200.0, 10.0, prompt_tokens=512, output_tokens=128, seed=1)
    r = serving.serve(HW, MODEL, req)
    assert r.summary["throughput_requests_per_s"] < 0.5 * len(req) / 10.0


def test_littles_law(light):
    """Mean number in system, integrated from the scheduler's queue counts over time, equals the arrival
    rate × mean latency computed from the per-request timestamps (two different bookkeeping paths)."""
    req, r = light
    tl = r.timeline
    end = float(tl.t_s.iloc[-1])
    in_system = float(((tl.waiting + tl.running) * tl.dt_s).sum()) / end
    lam = len(req) / end
    assert in_system == pytest.approx(lam * r.requests.e2e_s.mean(), rel=0.03)


def test_no_request_beats_its_own_prefill_plus_decode(light):
    """Each request alone on the instance (batch 1, same clock rule) is the fastest it can be: prefill of
    its prompt, then its T − 1 decode steps summed by the engine (not the step table)."""
    req, r = light
    hw, m, prm, _ = resolve(HW, MODEL, "auto")
    s = setup(hw, m, prm, "bf16", "bf16", "bf16", 1)
    P, T = req.prompt_tokens.astype(float), req.output_tokens.astype(float)
    alone = (engine.prefill(s, 1, P, with_bound=False).time_s
             + decode.decode_total(s, decode.decode_coeffs(s, 1, with_bound=False), P, T).time_s)
    assert np.all(r.requests.e2e_s.to_numpy() >= alone * (1 - 5e-3))
    assert np.all(r.requests.ttft_s.to_numpy() <= r.requests.e2e_s.to_numpy())


@pytest.mark.parametrize("cfg", [SchedulerConfig(max_num_seqs=512, preemption="recompute"),
                                 SchedulerConfig(max_num_seqs=512, preemption="swap"),
                                 SchedulerConfig(max_num_seqs=512, chunked_prefill=True, max_num_batched_tokens=2048)])
def test_kv_in_use_never_exceeds_capacity(cfg):
    """A burst of long requests on a 70B model (little room for KV): the cache fills, sequences are
    preempted, and the blocks held never exceed the capacity."""
    req = serving.poisson(40.0, 5.0, prompt_tokens=3000, output_tokens=1000, seed=2)
    inst = serving.instance(HW, "llama-2-70b", tensor_parallel=2, scheduler_config=cfg, max_context_tokens=4000)
    r = serving.simulate(inst, req, cfg)
    assert r.summary["preemptions"] > 0
    assert r.timeline.kv_blocks.max() <= inst.capacity_blocks
    assert r.timeline.kv_blocks.iloc[-1] == 0  # every block freed at the end
    assert r.requests.finish_s.notna().all()


def test_energy_is_the_integral_of_power(light):
    _, r = light
    tl = r.timeline
    assert float((tl.gpu_power_w * tl.dt_s).sum()) == pytest.approx(float(tl.energy_j.sum()), rel=1e-9)
    for bin_s in (1.0, 7.0):
        ot = r.over_time(bin_s)
        width = np.diff(np.append(ot.t_s.to_numpy(), ot.t_s.iloc[-1] + bin_s))
        assert float((ot.power_w * width).sum()) == pytest.approx(r.summary["energy_j"], rel=1e-6)
    idle = resolve(HW, MODEL, "auto")[0].idle_power_w
    assert ot.power_w.min() >= idle * (1 - 1e-9)  # idle gaps count at idle power, not zero


def test_step_table_matches_the_engine_off_grid():
    inst = serving.instance(HW, MODEL, max_context_tokens=8192)
    hw, m, prm, _ = resolve(HW, MODEL, "auto")
    s = setup(hw, m, prm, "bf16", "bf16", "bf16", 1)
    for b, c in ((3, 700), (24, 3000), (100, 6000)):
        t, e, _ = inst.table.decode(0, b, c)
        ref = decode.decode_step_at(s, decode.decode_coeffs(s, b), c)
        assert t == pytest.approx(float(ref.time_s), rel=0.02)
        assert e == pytest.approx(float(ref.energy_j), rel=0.03)
    for k, p in ((5, 700), (1, 3000)):
        t, e, _ = inst.table.prefill(0, k, k * p)
        ref = engine.prefill(s, k, p)
        assert t == pytest.approx(float(ref.time_s), rel=0.03)


def test_a_clock_cap_slows_steps_and_lowers_power():
    inst = serving.instance(HW, "llama-2-70b", tensor_parallel=8, clocks_hz=(None, 1.11e9))
    fast, slow = inst.table.prefill(0, 4, 8192), inst.table.prefill(1, 4, 8192)
    assert slow[0] > fast[0] and slow[1] / slow[0] < fast[1] / fast[0] and slow[2] <= 1.11e9 + 1


@pytest.mark.parametrize("make, match", [
    (lambda: serving.from_arrays([], [], []), "empty"),
    (lambda: serving.from_arrays([0.0, 2.0, 1.0], [10, 10, 10], [5, 5, 5]), "sorted"),
    (lambda: serving.from_arrays([0.0, -1.0], [10, 10], [5, 5]), "arrival_s"),
    (lambda: serving.from_arrays([0.0, 1.0], [10, 0], [5, 5]), "prompt_tokens"),
    (lambda: serving.poisson(-1.0, 10.0), "rate_per_s"),
    (lambda: serving.serve(HW, MODEL, serving.poisson(1.0, 5.0), slo_ttft_s=-1.0), "slo_ttft_s"),
    (lambda: serving.serve(HW, MODEL, serving.poisson(1.0, 5.0), scheduler_config=SchedulerConfig(preemption="x")),
     "preemption"),
    (lambda: serving.serve(HW, MODEL, serving.from_arrays([0.0], [600_000], [10])), "KV blocks"),
    (lambda: serving.serve(HW, MODEL, serving.poisson(1.0, 5.0), slo_tpot_s=1e-4), "cannot be met"),
    (lambda: serving.serve(HW, MODEL, serving.poisson(1.0, 5.0), slo_ttft_s=1e-3), "cannot be met"),
])
def test_bad_inputs_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()
