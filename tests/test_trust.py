"""Every prediction says where its parameters came from and the error measured for that source; the
bands are the committed `hwperf compare` summaries, not numbers typed twice."""

from pathlib import Path

import pandas as pd
import pytest

import simulator
import workloads
from simulator import trust

MEASUREMENTS = Path(__file__).parent.parent / "validate" / "measurements"
SOURCE_COLUMN = {"fitted": "calibrated", "datasheet-only": "datasheet", "transferred": "transfer"}


@pytest.mark.parametrize("key", sorted(trust.MEASURED_LAYER_MAPE))
def test_bands_equal_the_compare_summaries(key):
    hw, source = key
    df = pd.read_csv(MEASUREMENTS / hw / "compare_summary.csv")
    df = df[df.source == SOURCE_COLUMN[source]].set_index("kernel")
    prefill, graph, eager, n = trust.MEASURED_LAYER_MAPE[key]
    assert prefill == pytest.approx(df.loc["layer_prefill", "mape_frac"], abs=5e-5)
    assert graph == pytest.approx(df.loc["layer_decode_graph", "mape_frac"], abs=5e-5)
    assert eager == pytest.approx(df.loc["layer_decode_eager", "mape_frac"], abs=5e-5)
    assert n == df.loc["layer_prefill", "n_cases"]


@pytest.mark.parametrize("hw,source,from_ids", [
    ("h100-sxm5-80gb", "fitted", ("h100-sxm5-80gb",)),
    ("h100-pcie-80gb", "transferred", ("h100-sxm5-80gb", "h200-sxm-141gb")),
    ("a100-sxm4-80gb", "datasheet-only", ()),
    ("mi300x", "datasheet-only", ()),
])
def test_every_prediction_carries_its_source_and_band(hw, source, from_ids):
    p = simulator.predict(hw, "llama-3-8b")
    assert (p.trust.source, p.trust.from_ids) == (source, from_ids)
    assert 0 < p.trust.ttft_error_frac < 1 and 0 < p.trust.tpot_error_frac < 1
    d = p.summary()
    assert d["calibration_source"] == source and d["ttft_error_frac"] == p.trust.ttft_error_frac
    if source != "fitted":
        assert "unmeasured" in p.trust.label()


def test_datasheet_only_on_a_calibrated_device_uses_its_own_datasheet_band():
    p = simulator.predict("h100-sxm5-80gb", "llama-3-8b", calibration=None)
    assert p.trust.source == "datasheet-only" and p.trust.ttft_error_frac == pytest.approx(0.1736)
    eager = simulator.predict("h100-sxm5-80gb", "llama-3-8b",
                              workloads.Scenario(cuda_graph=False))
    assert eager.trust.tpot_error_frac == pytest.approx(0.0254)


def test_settings_no_layer_measurement_covered_are_named():
    plain = simulator.predict("h200-sxm-141gb", "llama-3-8b", workloads.Scenario())
    assert "not measured" not in plain.trust.label()
    sc = workloads.Scenario(weight_dtype="int4", kv_method="kivi-2")
    label = simulator.predict("h200-sxm-141gb", "llama-3-8b", sc).trust.label()
    assert "int4 weights" in label and "KV method kivi-2" in label and "not measured as whole layers" in label
    # fp16 is as measured as bf16 (same tensor-core rate, same bytes)
    assert "not measured" not in simulator.predict("h200-sxm-141gb", "llama-3-8b", workloads.Scenario(
        weight_dtype="fp16", activation_dtype="fp16", kv_dtype="fp16")).trust.label()
