"""The Streamlit app renders predictions and shows bad input as a message, not a crash; the content it
shows (faces/app_view.py) is checked without Streamlit."""

from pathlib import Path

import pytest

import simulator
import workloads
from faces import app_view

APP = str(Path(__file__).parent.parent / "app.py")
HW, MODEL = "h100-sxm5-80gb", "llama-3-8b"


@pytest.fixture
def run_app():
    app_test = pytest.importorskip("streamlit.testing.v1").AppTest
    return lambda: app_test.from_file(APP, default_timeout=60).run()


def test_app_renders_default_prediction(run_app):
    at = run_app()
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert "TTFT" in labels and "Max concurrency" in labels
    assert not at.error


def test_app_reports_model_that_does_not_fit(run_app):
    at = run_app()
    at.selectbox[1].set_value("llama-3-70b").run()
    assert not at.exception
    assert at.error and "tensor_parallel" in at.error[0].value


def test_app_reports_missing_dtype_unit(run_app):
    at = run_app()
    at.selectbox[0].set_value("a100-sxm4-80gb").run()
    at.selectbox[4].set_value("fp8").run()  # activation dtype fp8: the A100 has no fp8 unit
    assert not at.exception
    assert at.error and "fp8" in at.error[0].value


def test_app_view_headline_and_memory():
    sc = workloads.Scenario(batch=16, prompt_tokens=2048, output_tokens=256)
    p = simulator.predict(HW, MODEL, sc)
    metrics = app_view.headline_metrics(p, sc)
    assert [m.label for m in metrics] == ["TTFT", "TPOT", "End-to-end", "Decode throughput", "Max concurrency",
                                          "Power", "Energy"]
    assert p.prefill_bound in metrics[0].help and metrics[0].value.endswith("s")
    mem = app_view.memory_breakdown_bytes(p, HW)
    assert mem["free_bytes"] >= 0
    assert sum(mem.values()) >= p.peak_memory_bytes


def test_app_view_batch_sweep_keeps_the_scenario():
    sc = workloads.Scenario(batch=1, prompt_tokens=512, output_tokens=64, kv_dtype="fp8")
    df = app_view.batch_sweep(HW, MODEL, sc, calibration=None)
    assert list(df.batch) == list(app_view.SWEEP_BATCHES)
    assert set(df.prompt_tokens) == {512} and set(df.kv_dtype) == {"fp8"}
    assert app_view.sweep_figure(df).data


def test_app_reports_a_power_cap_below_idle(run_app):
    at = run_app()
    at.number_input[4].set_value(10.0).run()  # power cap 10 W: below the H100 idle power
    assert not at.exception
    assert at.error and "power_cap_w" in at.error[0].value


def test_app_power_tab_slows_prefill_under_lower_caps():
    import workloads
    from faces import app_view
    df = app_view.power_sweep("h100-sxm5-80gb", "llama-3-8b", workloads.Scenario(), "auto")
    assert list(df.power_cap_w) == sorted(df.power_cap_w, reverse=True)
    assert df.ttft_s.is_monotonic_increasing and df.ttft_s.iloc[-1] > df.ttft_s.iloc[0]
    assert (df.prefill_power_w <= df.power_cap_w + 1e-6).all()
