"""W8A8 INT8 (activation_dtype "int8" with int8 weights, SmoothQuant-style): the linear layers' GEMMs take
int8 inputs at the int8 tensor rate; everything else stays bf16 (simulator.quant.stream_dtype)."""

import pytest
from typer.testing import CliRunner

import simulator
import workloads
from faces.cli import app

HW, MODEL = "h100-sxm5-80gb", "llama-3-8b"
# Llama-3-8B's published config (hidden 4096, 32 layers, 32 query / 8 KV heads of 128, FFN 14336,
# vocab 128256), counted here independently of the model YAML.
H, L, KV, FFN, VOCAB = 4096, 32, 8 * 128, 14336, 128256
LINEAR_PARAMS = L * (H * H + 2 * H * KV + H * H + 3 * H * FFN)


def _prefill(dtype, **kw):
    return simulator.prefill(HW, MODEL, batch=4, prompt_tokens=2048, weight_dtype=dtype, activation_dtype=dtype,
                             state="burst", **kw)


def test_w8a8_gemms_read_one_byte_weights_and_int8_inputs():
    ops = _prefill("int8").ops.set_index("op")
    layer_gemms = ops.loc[["qkv_proj", "o_proj", "mlp_gate_up", "mlp_down"]]
    assert (layer_gemms.weight_bytes * layer_gemms.n_repeats).sum() == pytest.approx(LINEAR_PARAMS * 1.0)
    # the LM head keeps bf16 weights (GPTQ/AWQ/SmoothQuant checkpoints leave it unquantized)
    assert ops.loc["lm_head", "weight_bytes"] == pytest.approx(VOCAB * H * 2.0)
    # int8 inputs (1 byte per element) and bf16 outputs: qkv reads 4 × 2048 tokens × 4096
    assert ops.loc["qkv_proj", "act_read_bytes"] == pytest.approx(4 * 2048 * H * 1.0)
    assert ops.loc["qkv_proj", "act_write_bytes"] == pytest.approx(4 * 2048 * (H + 2 * KV) * 2.0)


def test_w8a8_speeds_up_gemms_not_attention():
    bf16, int8 = (_prefill(d, sm_clock_hz=1.4e9).ops.set_index("op") for d in ("bf16", "int8"))
    # same locked clock: compute-bound GEMMs gain from the int8 rate (2× bf16 on an H100), attention does not
    assert bf16.loc["mlp_gate_up", "time_s"] / int8.loc["mlp_gate_up", "time_s"] > 1.5
    assert int8.loc["attention", "time_s"] == pytest.approx(bf16.loc["attention", "time_s"], rel=1e-9)
    assert int8.loc["attn_norm", "act_read_bytes"] == pytest.approx(bf16.loc["attn_norm", "act_read_bytes"])


def test_w8a8_prediction_and_errors():
    p = simulator.predict(HW, MODEL, workloads.Scenario(weight_dtype="int8", activation_dtype="int8"))
    b = simulator.predict(HW, MODEL, workloads.Scenario())
    assert p.ttft_s < b.ttft_s and p.tpot_s < b.tpot_s
    with pytest.raises(ValueError, match="activation_dtype int8 is W8A8 and needs weight_dtype int8"):
        workloads.Scenario(weight_dtype="bf16", activation_dtype="int8")
    with pytest.raises(ValueError, match="needs weight_dtype int8"):
        simulator.prefill(HW, MODEL, batch=1, prompt_tokens=128, weight_dtype="int4", activation_dtype="int8")
    with pytest.raises(ValueError, match="activation_dtype must be a float type"):
        workloads.Scenario(activation_dtype="int4")
    r = CliRunner().invoke(app, ["predict", "-H", HW, "-m", MODEL, "--activation-dtype", "int8"])
    assert r.exit_code == 2 and "needs weight_dtype int8" in r.output and "Traceback" not in r.output


def test_int8_rate_is_fitted_from_back_to_back_pairs():
    import pandas as pd

    from validate import int8_fit

    rows = []
    for m, n, k in ((2048, 4096, 4096), (4096, 8192, 4096), (8192, 8192, 8192), (32, 4096, 4096)):
        fp8 = 2.0 * m * n * k / 1.2e15
        ratio = 0.6 if m >= int8_fit.MIN_M else 0.2  # skinny shapes are memory-bound: left out of the fit
        rows += [{"dtype": "fp8", "m": m, "n": n, "k": k, "measured_s": fp8},
                 {"dtype": "int8", "m": m, "n": n, "k": k, "measured_s": fp8 / ratio}]
    assert int8_fit.rate_frac(pd.DataFrame(rows)) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="no shape with M ≥ 2048"):
        int8_fit.rate_frac(pd.DataFrame(rows[-2:]))
    with pytest.raises(ValueError, match="lacks column"):
        int8_fit.rate_frac(pd.DataFrame(rows).drop(columns="measured_s"))


def test_h200_int8_gemm_prediction_tracks_the_measured_int8_fp8_gap():
    import pandas as pd

    from validate.workflows import MEASUREMENTS_DIR

    df = pd.read_csv(MEASUREMENTS_DIR / "h200-sxm-141gb" / "int8_gemm.csv")
    t = df.pivot_table(index=["m", "n", "k"], columns="dtype", values="measured_s")
    measured = t.loc[(8192, 8192, 8192), "int8"] / t.loc[(8192, 8192, 8192), "fp8"]
    pred = {d: simulator.predict_kernel("h200-sxm-141gb", "gemm", m=8192, n=8192, k=8192, dtype=d).time_s
            for d in ("int8", "fp8")}
    assert measured > 1.2  # cuBLASLt int8 is well behind fp8 on the H200 despite equal datasheet peaks
    assert pred["int8"] / pred["fp8"] == pytest.approx(measured, rel=0.08)
    # a device without int8 measurements keeps the datasheet's parity
    h100 = {d: simulator.predict_kernel("h100-sxm5-80gb", "gemm", m=8192, n=8192, k=8192, dtype=d).time_s
            for d in ("int8", "fp8")}
    assert h100["int8"] == pytest.approx(h100["fp8"])
