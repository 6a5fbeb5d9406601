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
    at.selectbox(key="model").set_value("llama-3-70b").run()
    assert not at.exception
    assert at.error and "tensor_parallel" in at.error[0].value


def test_app_reports_missing_dtype_unit(run_app):
    at = run_app()
    at.selectbox(key="hw").set_value("a100-sxm4-80gb").run()
    at.selectbox(key="act").set_value("fp8").run()  # activation dtype fp8: the A100 has no fp8 unit
    assert not at.exception
    assert at.error and "fp8" in at.error[0].value


def test_app_w8a8_needs_int8_weights(run_app):
    at = run_app()
    at.selectbox(key="act").set_value("int8").run()  # with the default bf16 weights: refused, as a message
    assert not at.exception
    assert at.error and "needs weight_dtype int8" in at.error[0].value
    at.selectbox(key="w").set_value("int8").run()
    assert not at.exception and not at.error
    assert "TTFT" in [m.label for m in at.metric]


def test_app_view_headline_and_memory():
    sc = workloads.Scenario(batch=16, prompt_tokens=2048, output_tokens=256)
    p = simulator.predict(HW, MODEL, sc)
    metrics = app_view.headline_metrics(p, sc)
    assert [m.label for m in metrics] == ["TTFT", "TPOT", "End-to-end", "Decode tok/s", "Max concurrency",
                                          "Power (W)", "J / token", "Calibration"]
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
    at.number_input(key="cap").set_value(10.0).run()  # power cap 10 W: below the H100 idle power
    assert not at.exception
    assert at.error and "power_cap_w" in at.error[0].value


def test_app_power_tab_slows_prefill_under_lower_caps():
    import workloads
    from faces import app_view
    df = app_view.power_sweep("h100-sxm5-80gb", "llama-3-8b", workloads.Scenario(), "auto")
    assert list(df.power_cap_w) == sorted(df.power_cap_w, reverse=True)
    assert df.ttft_s.is_monotonic_increasing and df.ttft_s.iloc[-1] > df.ttft_s.iloc[0]
    assert (df.prefill_power_w <= df.power_cap_w + 1e-6).all()


def test_app_compare_page_three_gpus(run_app):
    at = run_app()
    at.segmented_control(key="view").set_value("Compare").run()
    at.selectbox(key="model").set_value("llama-3-70b").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table.configuration) == ["h100-sxm5-80gb TP8 bf16", "h200-sxm-141gb TP8 bf16", "mi300x TP8 bf16"]
    assert (table.fits == "✓").all()
    at.multiselect(key="tps").set_value([2, 8]).run()  # 70B in bf16 on 2 H100s cannot fit
    assert at.error and "h100-sxm5-80gb TP2" in at.error[0].value and "GB" in at.error[0].value


def test_app_state_comes_from_the_url():
    app_test = pytest.importorskip("streamlit.testing.v1").AppTest
    at = app_test.from_file(APP, default_timeout=60)
    at.query_params.update({"hw": "mi300x", "model": "llama-3-70b", "batch": "8"})
    at.run()
    assert not at.exception
    assert at.selectbox(key="hw").value == "mi300x" and at.number_input(key="batch").value == 8


def test_app_has_no_deprecated_arguments():
    text = Path(APP).read_text() + (Path(APP).parent / "faces" / "app_view.py").read_text()
    assert "use_container_width" not in text
    config = (Path(APP).parent / ".streamlit" / "config.toml").read_text()
    assert 'fileWatcherType = "none"' in config


def test_roofline_places_ops_under_both_ceilings():
    p = simulator.predict(HW, MODEL, workloads.Scenario())
    pts = app_view.roofline_points(p)
    hw = simulator.api.resolve(HW, None, "auto")[0]
    peak, bw = hw.peak("bf16"), hw.memory_bandwidth_bytes_per_s
    # No op beats the datasheet roofline at its own intensity (elementwise ops: the fp32 vector peak).
    ceiling = [min(peak if k != "elementwise" else hw.peak("fp32"), i * bw)
               for k, i in zip(pts.kind, pts.intensity_flops_per_byte)]
    assert (pts.achieved_flops_per_s <= [c * 1.0001 for c in ceiling]).all()
    assert {"prefill", "decode"} <= set(pts.phase)
    fig = app_view.roofline_figure(p, HW, "auto")
    names = [t.name for t in fig.data]
    assert names[:2] == ["datasheet ceiling", "calibrated ceiling"]
    assert max(fig.data[1].y) < max(fig.data[0].y)  # the calibrated compute ceiling sits below the datasheet one


def test_sweep_draws_only_feasible_batches_and_names_the_limit():
    sc = workloads.Scenario(prompt_tokens=190_000, output_tokens=1000)
    df = app_view.batch_sweep("a100-sxm4-80gb", "yi-34b", sc.model_copy(update={"tensor_parallel": 4}), None)
    fig = app_view.sweep_figure(df)
    drawn = list(fig.data[0].text)
    assert drawn == list(df.batch[df.fits]) and len(drawn) < len(df)
    assert "largest that fits" in app_view.sweep_limit(df)


def test_memory_view_in_gib_with_stable_labels():
    p = simulator.predict(HW, MODEL, workloads.Scenario())
    fig = app_view.memory_figure(app_view.memory_breakdown_bytes(p, HW))
    assert [t.name for t in fig.data] == ["Weights", "KV cache", "Activations",
                                          "Reserve (outside the engine's share)", "Free"]
    assert fig.data[0].marker.color == app_view.MEMORY_COLOURS["weights_bytes"]
    assert sum(t.x[0] for t in fig.data) == pytest.approx(80.0)  # the whole 80 GiB device


def test_per_op_view_adds_up_to_the_pass_times():
    p = simulator.predict(HW, MODEL, workloads.Scenario(cuda_graph=False))
    ops = app_view.ops_with_launch(p)
    for phase, pass_s in p.pass_times_s.items():
        assert ops[ops.phase == phase].total_time_s.sum() == pytest.approx(pass_s)
    assert "launch + gaps" in set(app_view.ops_table(ops).op)
