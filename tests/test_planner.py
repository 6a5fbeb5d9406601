"""Row planner: the POLCA policy's state machine, the fluid queue, load curves vs the scheduler,
monotone capping in the server count, bad input."""

import numpy as np
import pytest

from simulator import serving
from simulator.serving import loadcurve, planner, row
from simulator.serving.oversubscribe import oversubscribe
from simulator.serving.planner import PlanError, PrioritySLO, RowWorkload, Server
from simulator.serving.policy import Controller, Policy, PolicyError


@pytest.fixture(scope="module")
def curves():
    inst = serving.instance("a100-sxm4-80gb", "llama-2-70b", tensor_parallel=8, engine="vllm-0.6",
                            clocks_hz=Policy().clocks_hz, max_context_tokens=1280)
    return loadcurve.load_curves(inst, 1024, 256, 256)


def test_policy_stages_hysteresis_latency_and_brake():
    p = Policy(capping_latency_s=10.0, brake_latency_s=4.0)
    c = Controller(p, 100.0)
    for t, pw in ((2, 70), (4, 81)):  # above T1 at t = 4: low-priority cap lands at t = 14
        c.observe(t, pw)
    c.apply_until(13.9)
    assert c.stage == 0
    c.apply_until(14.0)
    assert c.stage == 1
    c.observe(16, 77)  # below T1 but within the hysteresis band (75-80%): stays
    c.observe(18, 90)  # above T2: low priority capped further
    c.apply_until(28)
    assert c.stage == 2
    c.observe(30, 90)  # still above T2 once stage 2 is in force: high priority capped
    c.apply_until(40)
    assert c.stage == 3
    c.observe(42, 101)  # above the budget: brake
    c.apply_until(46)
    assert c.brake and c.events["brake"] == 1
    c.observe(48, 74)  # below T1 − 5%: brake released, back at the deepest stage
    c.apply_until(60)
    assert not c.brake and c.stage == 3
    c.observe(62, 74)  # and stepping down from there
    c.apply_until(72)
    assert c.stage == 2
    assert c.events["cap"] == 3


def test_fluid_queue_matches_a_per_sample_lindley_loop(curves):
    rng = np.random.default_rng(0)
    a = rng.poisson(6.0, (3, 500)).astype(float)  # above λ_max ≈ 5.7/s at times: a backlog builds and drains
    lv = np.array([0, 2, 4])
    b = row._Block((np.stack([c.reshape(-1) for c in (curves.power_w, curves.e2e_s, curves.ttft_s)]),) * 2, lv,
                   curves.max_rate_per_s, a, np.array([0.0, 5.0, 0.0]), 1, 2000.0, 1.0)
    mu = curves.max_rate_per_s[lv]
    q = np.array([0.0, 5.0, 0.0])
    for n in range(a.shape[1]):
        q = np.maximum(0.0, q + a[:, n] - mu)
        assert np.allclose(b.q[:, n], q)
    assert b.q.max() > 0


def test_a_cap_lowers_power_and_capacity(curves):
    x = np.linspace(0.1, 0.9, 5)
    uncapped = curves.max_rate_per_s[0] * x
    for lv in (1, 2, 3, 4):  # the same request rate at a capped clock: less power, more latency
        xs = uncapped / curves.max_rate_per_s[lv]
        assert np.all(loadcurve.lookup(curves.power_w, lv, xs) < loadcurve.lookup(curves.power_w, 0, x))
        assert np.all(loadcurve.lookup(curves.e2e_s, lv, xs) > loadcurve.lookup(curves.e2e_s, 0, x))
    assert curves.max_rate_per_s[4] < curves.max_rate_per_s[2] < curves.max_rate_per_s[0]


def test_load_curve_agrees_with_the_scheduler():
    """The planner's steady-state curve against the iteration-level scheduler at the same load."""
    cfg = serving.SchedulerConfig()
    inst = serving.instance("a100-sxm4-80gb", "llama-3-8b", engine="vllm-0.6", max_context_tokens=1280)
    lc = loadcurve.load_curves(inst, 1024, 256, cfg.max_num_seqs)
    for x in (0.3, 0.7):
        req = serving.poisson(x * lc.max_rate_per_s[0], 240.0, 1024, 256, seed=5)
        s = serving.simulate(inst, req, cfg).summary
        at = lambda c: float(loadcurve.lookup(c, 0, np.array(x)))  # noqa: E731
        assert at(lc.power_w) == pytest.approx(s["mean_power_w"], rel=0.05)
        assert at(lc.tpot_s) == pytest.approx(s["mean_tpot_s"], rel=0.10)
        assert at(lc.e2e_s) == pytest.approx(s["mean_e2e_s"], rel=0.10)


def test_more_servers_under_the_same_budget_never_cap_less(curves):
    w = RowWorkload(duration_s=4 * 3600.0, peak_hour=2.0, seed=4)
    arrivals, priority = planner.row_arrivals(w, float(curves.max_rate_per_s[0]), 64)
    last = None
    for n in (40, 46, 52, 58, 64):
        st = row.simulate_row(curves, arrivals[:n], priority[:n], budget_w=260e3, policy=Policy(),
                              inst_per_server=1, non_gpu_w=2000.0)
        depth = np.where(st.brake, 4, st.stage)  # the brake is the deepest cap
        now = (float(np.mean(depth > 0)), float(depth.sum()), float(np.mean(depth >= 2)))
        if last is not None:
            assert all(b >= a for a, b in zip(last, now)), (n, last, now)
        last = now
    assert last[0] > 0  # the largest row is capped some of the time


def test_plan_for_one_count_reports_the_policy(curves):
    plan = oversubscribe("dgx-a100-80gb", "llama-2-70b", 260e3, n_servers=56,
                         workload=RowWorkload(duration_s=3 * 3600.0, peak_hour=1.5))
    s = plan.summary
    assert s["n_servers_tdp"] == 40 and s["n_servers_max"] == 56
    assert s["cap_events"] > 0 and s["time_above_t1_frac"] > 0
    assert set(plan.series.columns) == {"t_s", "row_power_w", "budget_frac", "stage", "brake"}
    assert plan.series.row_power_w.max() / 260e3 == pytest.approx(s["peak_power_frac"])


@pytest.mark.parametrize("make, err, match", [
    (lambda: oversubscribe(budget_w=1000.0, workload=RowWorkload(duration_s=60.0)), PlanError, "idle power"),
    (lambda: Policy(t1_frac=0.9, t2_frac=0.8), PolicyError, "t1_frac < t2_frac"),
    (lambda: Policy(capping_latency_s=-1.0), PolicyError, "capping_latency_s"),
    (lambda: RowWorkload(peak_load_frac=-0.1), PlanError, "peak_load_frac"),
    (lambda: Server(non_gpu_power_w=-5.0), PlanError, "non_gpu_power_w"),
    (lambda: oversubscribe(policy=Policy(low_t2_clock_hz=5e9), workload=RowWorkload(duration_s=60.0)), PolicyError,
     "low_t2_clock_hz"),
    (lambda: oversubscribe(budget_w=2700.0, slo=PrioritySLO(0, 0, 0, 0),
                           workload=RowWorkload(duration_s=1800.0, peak_hour=0.25, high_priority_frac=0.0)),
     serving.SLOError, "no server count"),
])
def test_bad_plans_raise_clear_errors(make, err, match):
    with pytest.raises(err, match=match):
        make()
