"""compare_configs: several deployments side by side, each row the same numbers predict() gives, with cost,
trust and a one-line reason for configurations that cannot run."""

import json
import math

import pytest
from typer.testing import CliRunner

import simulator
import workloads
from faces.cli import app

GPUS = ["h100-sxm5-80gb", "h200-sxm-141gb", "mi300x"]


def test_rows_equal_predict_and_cost_follows_the_price():
    df = simulator.compare_grid(GPUS, "llama-3-70b", tensor_parallel=8, batch=32,
                                prices_usd_per_gpu_hour={"mi300x": 2.0})
    assert list(df.hardware) == GPUS and df.fits.all()
    for r in df.itertuples():
        p = simulator.predict(r.hardware, "llama-3-70b", workloads.Scenario(batch=32, tensor_parallel=8))
        assert r.ttft_s == pytest.approx(p.ttft_s) and r.tpot_s == pytest.approx(p.tpot_s)
        per_gpu = 32 * 256 / p.e2e_s / 8  # output tokens of the static batch, end to end, per GPU
        assert r.output_tokens_per_s_per_gpu == pytest.approx(per_gpu)
        assert r.output_tokens_per_usd == pytest.approx(per_gpu * 3600 / r.usd_per_gpu_hour)
        assert r.calibration_source == p.trust.source and r.max_concurrency == p.max_concurrency
        assert r.energy_per_output_token_j == pytest.approx(p.energy_per_output_token_j)
    assert df.set_index("hardware").loc["mi300x", "usd_per_gpu_hour"] == 2.0
    assert df.set_index("hardware").loc["mi300x", "price_source"] == "given"
    assert "runpod" in df.set_index("hardware").loc["h100-sxm5-80gb", "price_source"]


def test_configurations_that_cannot_run_say_why():
    df = simulator.compare_configs([
        {"hardware": "h100-sxm5-80gb", "model": "llama-3-70b", "tensor_parallel": 2, "batch": 32},
        {"hardware": "h100-sxm5-80gb", "model": "llama-3-8b", "tensor_parallel": 3},
        {"hardware": "dgx-h100", "model": "llama-3-8b", "tensor_parallel": 16},
        {"hardware": "h100-sxm5-80gb", "model": "llama-2-7b", "prompt_tokens": 100_000},
    ])
    assert not df.fits.any()
    for r, text in zip(df.itertuples(), ["at most", "query heads", "exceeds the 8 GPUs", "max_context_tokens"]):
        assert text in r.limit and math.isnan(r.ttft_s)


def test_bad_input_raises_by_name():
    with pytest.raises(ValueError, match="hardware"):
        simulator.compare_configs([{"model": "llama-3-8b"}])
    with pytest.raises(ValueError, match="price"):
        simulator.compare_grid("h100-sxm5-80gb", "llama-3-8b", prices_usd_per_gpu_hour={"h100-sxm5-80gb": -1})
    with pytest.raises(ValueError, match="batch"):
        simulator.compare_grid("h100-sxm5-80gb", "llama-3-8b", batch=0)


def test_cli_compare_configs(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["compare-configs", "-H", ",".join(GPUS), "-m", "llama-3-70b", "--tensor-parallel",
                            "2,8", "--csv", str(tmp_path / "c.csv")], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    assert "wrote 6 rows to" in r.output and str(tmp_path) in r.output and (tmp_path / "c.csv").is_file()
    r = runner.invoke(app, ["compare-configs", "-H", ",".join(GPUS), "-m", "llama-3-70b", "--tensor-parallel", "2,8"],
                      env={"COLUMNS": "80"})
    lines = r.output.splitlines()
    assert max(map(len, lines[:10])) <= 80 and "mi300x TP 8" in r.output and "does not run: 1." in r.output
    js = runner.invoke(app, ["compare-configs", "-H", "h100-sxm5-80gb", "--json"])
    assert json.loads(js.output)[0]["hardware"] == "h100-sxm5-80gb"
    bad = runner.invoke(app, ["compare-configs", "--price", "h100"])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "--price" in bad.output


def test_app_comparison_report_png_and_table():
    from faces import app_compare
    df = app_compare.compare_frame(GPUS, "llama-3-70b", [2, 8], ["bf16"], {"batch": 32})
    png = app_compare.report_png(df, "llama-3-70b")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    table = app_compare.compare_table(df)
    assert list(table.fits).count("✗") == (~df.fits).sum() >= 1
    assert table["why not"][~df.fits.to_numpy()].str.contains("GB").all()
