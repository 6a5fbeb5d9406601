"""Calibration fitting on synthetic measurements with known parameters, and its refusal paths."""

import numpy as np
import pandas as pd
import pytest

import hwspecs
import simulator
from hwspecs.calibration import Calibration, EffectParams
from validate import calibrate as cal_mod
from validate.calibrate import CalibrationRefused, calibrate, predict_layer, split_fit_score
from validate.compare import compare_kernels, summarize

HW = "h100-sxm5-80gb"
TRUE = EffectParams().with_values({
    "gemm.efficiency_frac": 0.71, "gemm.tile": (128, 128), "gemm.gemv_efficiency_frac": 0.86,
    "memory.copy_efficiency_frac": 0.91, "memory.latency_s": 6.5e-6, "attention_prefill.efficiency_frac": 0.52,
    "attention_decode.efficiency_frac": 0.77, "attention_decode.splits": 3.0, "link.pinned_efficiency_frac": 0.82,
    "host.h2d_pageable_efficiency_frac": 0.31, "host.h2d_pageable_large_efficiency_frac": 0.12,
    "host.d2h_pageable_efficiency_frac": 0.27, "gemm.knee_exponent": 4.0})
FITTED = ("gemm.efficiency_frac", "gemm.gemv_efficiency_frac", "memory.copy_efficiency_frac",
          "attention_prefill.efficiency_frac", "attention_decode.efficiency_frac", "link.pinned_efficiency_frac",
          "host.h2d_pageable_efficiency_frac", "host.h2d_pageable_large_efficiency_frac",
          "host.d2h_pageable_efficiency_frac")


def test_unseen_parameter_keeps_its_prior():
    rng = np.random.default_rng(5)
    df = synthetic_cases(rng)
    df = df[~((df.kernel == "h2d") & (df.pinned == False))]  # noqa: E712 - no pageable host-to-device data
    fitted = calibrate(HW, df).calibration.params("vendor")
    assert fitted.host.h2d_pageable_efficiency_frac == EffectParams().host.h2d_pageable_efficiency_frac
    assert fitted.host.d2h_pageable_efficiency_frac != EffectParams().host.d2h_pageable_efficiency_frac  # seen: fitted


def synthetic_cases(rng, params=TRUE, noise=0.01):
    cases = []
    for m in (1, 4, 16, 64, 256, 1024, 4096, 8192):
        for n, k in ((4096, 4096), (14336, 4096), (4096, 14336), (6144, 4096)):
            cases.append(dict(kernel="gemm", m=m, n=n, k=k, dtype="bf16"))
    for b, s in ((1, 512), (2, 1024), (1, 2048), (4, 4096), (1, 8192), (2, 16384)):
        for d in (64, 128):
            for causal in (True, False):
                cases.append(dict(kernel="attention_prefill", batch=b, seq=s, n_q_heads=32, n_kv_heads=8,
                                  head_dim=d, causal=causal, dtype="bf16"))
    for b in (1, 2, 4, 8, 16, 32, 64, 128):
        for c in (512, 4096, 32768):
            cases.append(dict(kernel="attention_decode", batch=b, context=c, n_q_heads=32, n_kv_heads=8,
                              head_dim=128, dtype="bf16"))
    for nbytes in np.logspace(4, 9.5, 14):
        cases.append(dict(kernel="copy", bytes=int(nbytes)))
        for pinned in (True, False):
            cases.append(dict(kernel="h2d", bytes=int(nbytes), pinned=pinned))
            cases.append(dict(kernel="d2h", bytes=int(nbytes), pinned=pinned))
    cal = Calibration.from_params(HW, params, params)
    rows = []
    for i, c in enumerate(cases):
        shape = {k: v for k, v in c.items() if k != "kernel"}
        kp = simulator.predict_kernel(HW, c["kernel"], calibration=cal, state="burst", **shape)
        rows.append({"case_id": f"c{i}", "impl": "vendor", "hardware_id": HW, "flops": kp.flops,
                     "hbm_bytes": kp.hbm_bytes, "median_s": kp.time_s * float(np.exp(rng.normal(0, noise))),
                     **c})
    return pd.DataFrame(rows)


def test_fit_recovers_known_parameters():
    rng = np.random.default_rng(1)
    df = synthetic_cases(rng, noise=0.005)
    fitted = calibrate(HW, df).calibration.params("vendor")
    for name in FITTED:
        assert fitted.get(name) == pytest.approx(TRUE.get(name), rel=0.03), name
    assert fitted.memory.latency_s == pytest.approx(TRUE.memory.latency_s, rel=0.15)
    assert fitted.gemm.tile == (128, 128)  # chosen from the schema's starting grid, not the default (128, 256)


def test_calibrated_error_small_on_held_out_and_beats_defaults():
    rng = np.random.default_rng(2)
    res = calibrate(HW, synthetic_cases(rng, noise=0.01))
    cases = compare_kernels(HW, res.kernels, {"datasheet": None, "calibrated": res.calibration})
    s = summarize(cases)
    cal = s[s.source == "calibrated"]
    assert (cal["mape_frac"] < 0.03).all(), cal
    assert s[s.source == "datasheet"]["mape_frac"].mean() > cal["mape_frac"].mean()
    assert set(res.kernels["split"]) == {"fit", "score"}


def test_split_interleaves_sizes():
    df = pd.DataFrame({"case_id": list("abcdef"), "kernel": "copy", "impl": "vendor", "flops": 0.0,
                       "hbm_bytes": [6, 1, 5, 2, 4, 3]})
    out = split_fit_score(df)
    assert list(out["hbm_bytes"]) == [1, 2, 3, 4, 5, 6]
    assert list(out["split"]) == ["fit", "score"] * 3
    # variants with equal sizes: both sides get some of each
    twins = pd.DataFrame({"case_id": [f"{v}-{i}" for i in range(8) for v in ("a", "b")], "kernel": "copy",
                          "impl": "vendor", "flops": 0.0, "hbm_bytes": [i for i in range(8) for _ in "ab"]})
    out = split_fit_score(twins)
    for v in "ab":
        sides = set(out[out.case_id.str.startswith(v)]["split"])
        assert sides == {"fit", "score"}


def test_refuses_wrong_device_and_noisy_data():
    df = synthetic_cases(np.random.default_rng(3))
    with pytest.raises(CalibrationRefused, match="not the target"):
        calibrate("h200-sxm-141gb", df)
    noisy = df.assign(repeat_spread_frac=np.nan)
    noisy.loc[:9, "repeat_spread_frac"] = 0.01
    noisy.loc[3:5, "repeat_spread_frac"] = 0.2  # 3 of 10 repeated cases disagree: refuse
    with pytest.raises(CalibrationRefused, match="repeated timings"):
        calibrate(HW, noisy)
    noisy.loc[4:5, "repeat_spread_frac"] = 0.01  # 1 of 10: that case is dropped and named
    res = calibrate(HW, noisy)
    assert noisy.loc[3, "case_id"] in res.calibration.provenance.notes
    assert noisy.loc[3, "case_id"] not in set(res.kernels["case_id"])


def test_graph_twin_replaces_eager_row():
    from validate.calibrate import select_gpu_time_rows
    df = pd.DataFrame({"case_id": ["a", "a-graph", "b", "c"], "kernel": ["gemm", "gemm", "gemm", "kv_gather"],
                       "graph": [False, True, False, False]})
    assert list(select_gpu_time_rows(df)["case_id"]) == ["a-graph", "b"]


def test_refusal_leaves_existing_calibration_untouched(tmp_path, monkeypatch):
    from validate import workflows
    target = tmp_path / "cal.yaml"
    hwspecs.write_calibration(Calibration(hardware_id=HW), target)
    before = target.read_bytes()
    meas = tmp_path / "m"
    meas.mkdir()
    df = synthetic_cases(np.random.default_rng(4)).assign(hardware_id="h200-sxm-141gb")
    df.to_csv(meas / "kernels.csv", index=False)
    with pytest.raises(CalibrationRefused):
        workflows.run_calibrate(HW, meas, target)
    assert target.read_bytes() == before
    assert {p.name for p in tmp_path.iterdir()} == {"cal.yaml", "m"}  # no temp file left behind


def test_layer_prediction_is_sum_of_layer_ops():
    row = dict(mode="decode", graph=True, model="llama-3-8b", hidden=4096, n_q_heads=32, n_kv_heads=8,
               head_dim=128, ffn_hidden=14336, batch=8, seq=float("nan"), context=2048)
    t = predict_layer(hwspecs.load(HW), row, EffectParams())
    full = simulator.decode_step(HW, "llama-3-8b", 8, 2048, calibration=None)
    layer_ops = full.ops[full.ops.scope == "layer"]
    # One layer = the per-execution time of each layer op (+ graph gaps), i.e. far below the 32-layer step.
    assert t == pytest.approx(layer_ops.time_s.sum() + len(layer_ops) * EffectParams().launch.graph_gap_s,
                              rel=1e-9)
    assert cal_mod.layer_model(row).n_layers == 1


def test_rerun_difference_per_class_uses_graph_twins_and_splits_host_copies():
    from validate.compare import rerun_difference
    first = pd.DataFrame({
        "case_id": ["g", "g-graph", "p", "q", "h1", "h2"], "kernel": ["gemm", "gemm", "gemm", "gemm", "h2d", "h2d"],
        "impl": "vendor", "graph": [False, True, False, False, False, False], "pinned": [None] * 4 + [True, False],
        "median_s": [9.0, 1.0, 1.0, 2.0, 1.0, 1.0]})
    second = first.assign(median_s=[50.0, 1.1, 0.8, 2.0, 1.0, 1.3])  # the eager row "g" must not count
    layers = pd.DataFrame({"case_id": ["a", "b"], "mode": ["decode", "decode"], "graph": [True, False],
                           "median_s": [1.0, 1.0]})
    out = rerun_difference((first, layers), (second, layers.assign(median_s=[1.0, 1.5]))).set_index("kernel")
    assert out.loc["gemm", "n_cases"] == 3
    assert out.loc["gemm", "mean_abs_diff_frac"] == pytest.approx((0.1 + 0.2 + 0.0) / 3)
    assert out.loc["h2d_pageable", "mean_abs_diff_frac"] == pytest.approx(0.3)
    assert out.loc["h2d_pinned", "mean_abs_diff_frac"] == pytest.approx(0.0)
    assert out.loc["layer_decode_eager", "mean_abs_diff_frac"] == pytest.approx(0.5)
    assert out.loc["layer_decode_graph", "mean_abs_diff_frac"] == pytest.approx(0.0)
