"""Every input checked once (issue 14, "Inputs checked in one path but not another", "Specs that validate
but produce nonsense"): each reproduction of the issue, now a one-line error naming the field."""

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import hwspecs
import simulator
import workloads
from faces.cli import app

H, M = "h100-sxm5-80gb", "llama-3-8b"
runner = CliRunner()


@pytest.mark.parametrize("batch", [10**18, 10**19, 1e300, 10**400, -1, 0, 2.5, True, "8", float("nan")])
def test_sweep_and_prefill_batch_bounds(batch):
    with pytest.raises(ValueError, match="batch must be a whole number from 1 to 1,000,000"):
        simulator.sweep(H, M, batch=[batch])
    with pytest.raises(ValueError, match="batch must be a whole number"):
        simulator.prefill(H, M, batch, 100)


def test_sweep_and_predict_agree_on_the_batch_limit():
    limit = 1_000_000
    assert len(simulator.sweep(H, M, batch=[limit], prompt_tokens=[16], output_tokens=[2])) == 1
    with pytest.raises(ValueError):
        workloads.Scenario(batch=limit + 1)
    with pytest.raises(ValueError):
        simulator.sweep(H, M, batch=[limit + 1])


@pytest.mark.parametrize("value", ["False", "no", 0, 1, None])
def test_flags_are_strict(value):
    with pytest.raises(ValueError, match="cuda_graph must be true or false"):
        simulator.decode_step(H, M, 1, 100, cuda_graph=value)
    with pytest.raises(ValueError, match="pinned must be true or false"):
        simulator.context_switch(H, M, 4096, pinned=value)
    with pytest.raises(ValueError, match="cuda_graph"):
        workloads.Scenario(cuda_graph=value)
    with pytest.raises(ValueError, match="cuda_graph"):
        simulator.sweep(H, M, cuda_graph=[value])


def test_activation_int8_refused_by_every_path():
    for call in (lambda: simulator.decode_step(H, M, 1, 100, activation_dtype="int8"),
                 lambda: simulator.prefill(H, M, 1, 100, activation_dtype="int8"),
                 lambda: simulator.sweep(H, M, activation_dtype=["int8"]),
                 lambda: workloads.Scenario(activation_dtype="int8")):
        with pytest.raises(ValueError, match="activation_dtype"):
            call()


def test_concurrent_users_and_empty_context_lists():
    with pytest.raises(ValueError, match="concurrent_users must be a whole number"):
        simulator.long_context_bounds(H, M, 4096, concurrent_users=-5)
    with pytest.raises(ValueError, match="context_tokens is empty"):
        simulator.long_context_bounds(H, M, [])


@pytest.mark.parametrize("bad", [0, 2.5, -3, 10**7])
def test_model_copy_cannot_smuggle_a_bad_scenario(bad):
    sc = workloads.Scenario().model_copy(update={"batch": bad})
    with pytest.raises(ValueError, match="batch"):
        simulator.predict(H, M, sc)


def test_model_none_is_a_value_error():
    for call in (lambda: simulator.predict(H, None), lambda: simulator.prefill(H, None, 1, 10),
                 lambda: simulator.decode_step(H, None, 1, 10), lambda: simulator.context_switch(H, None, 10)):
        with pytest.raises(ValueError, match="model must be"):
            call()


@pytest.mark.parametrize("field,value", [("power_cap_w", float("inf")), ("power_cap_w", True), ("power_cap_w", -1.0),
                                         ("sm_clock_hz", 1e300), ("sm_clock_hz", "1e9")])
def test_what_if_quantities(field, value):
    with pytest.raises(ValueError, match=field):
        simulator.prefill(H, M, 1, 100, **{field: value})
    with pytest.raises(ValueError, match=field):
        workloads.Scenario(**{field: value})


def test_huge_kernel_shape_is_a_value_error():
    with pytest.raises(ValueError, match="m must be a whole number"):
        simulator.predict_kernel(H, "gemm", m=int("9" * 330), n=16, k=16)


@pytest.mark.parametrize("args,field", [
    (["bounds", "--context", "1:0"], "context_tokens is empty"),
    (["kernel", "gemm", "-s", "m=" + "9" * 330, "-s", "n=16", "-s", "k=16"], "m must be a whole number"),
    (["sweep", "--batch", "1:1000000000000"], "at most 10,000,000"),
    (["sweep", "--batch", "1:1000", "--prompt-tokens", "1:1000", "--output-tokens", "1:1000"], "stream it"),
    (["sweep", "--batch", str(10**19)], "batch must be a whole number"),
])
def test_cli_one_line_exit_2(args, field):
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert field in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_sweep_refuses_past_memory_with_a_clear_message(monkeypatch):
    import importlib
    sweep_module = importlib.import_module("simulator.sweep")
    monkeypatch.setattr(sweep_module, "memory_budget_bytes", lambda: 10**6)
    with pytest.raises(simulator.SweepTooLargeError, match=r"sweep of 8,000 points needs .*sweep_chunks"):
        simulator.sweep(H, M, batch=list(range(1, 21)), prompt_tokens=list(range(2, 22)),
                        output_tokens=list(range(1, 21)))


def test_chunked_sweep_has_the_same_rows_in_the_same_order():
    axes = dict(batch=[1, 3, 8, 64], prompt_tokens=[2, 100, 2048], output_tokens=[1, 2, 50, 300],
                weight_dtype=["bf16", "int8"], cuda_graph=[True, False])
    full = simulator.sweep(H, M, **axes)
    for chunk_points in (1, 5, 13, 10**6):
        chunks = list(simulator.sweep_chunks(H, M, chunk_points=chunk_points, **axes))
        assert max(len(c) for c in chunks) <= chunk_points
        got = pd.concat(chunks, ignore_index=True)
        assert list(got.columns) == list(full.columns) and len(got) == len(full)
        for col in full.columns:
            # The power model's clock search stops once every point of a pass is within its tolerance, so a
            # point's settled clock moves by ~1e-6 with its pass-mates (and numpy's SIMD loops in the last bit).
            if pd.api.types.is_float_dtype(full[col]):
                np.testing.assert_allclose(got[col], full[col], rtol=1e-5, equal_nan=True)
            else:
                assert got[col].astype(str).tolist() == full[col].astype(str).tolist(), col


def test_cli_sweep_csv_streams_the_same_rows(tmp_path):
    path = tmp_path / "s.csv"
    res = runner.invoke(app, ["sweep", "--batch", "1:40", "--prompt-tokens", "128,4096", "--csv", str(path)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(path)
    assert len(df) == 80 and df["batch"].tolist()[:3] == [1, 1, 2]
    ref = simulator.sweep(H, M, batch=list(range(1, 41)), prompt_tokens=[128, 4096])
    np.testing.assert_allclose(df["tpot_s"], ref["tpot_s"], rtol=1e-12)


# ---- specs ------------------------------------------------------------------------------------------------

def _spec_file(tmp_path, **update):
    data = yaml.safe_load(open(hwspecs.loader.DEVICES_DIR / f"{H}.yaml"))
    data.update(update, id="x-gpu")
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("update,field", [
    ({"memory_bytes": 10**30}, "memory_bytes"),
    ({"memory_bandwidth_bytes_per_s": True}, "memory_bandwidth_bytes_per_s"),
    ({"memory_bandwidth_bytes_per_s": 1e-300}, "memory_bandwidth_bytes_per_s"),
    ({"n_sms": True}, "n_sms"),
    ({"peak_flops_per_s": {"fp32": 66.9e12, "bf16": True}}, "peak_flops_per_s"),
    ({"peak_flops_per_s": {"fp32": 1e30}}, "peak_flops_per_s.fp32"),
    ({"host_link": H}, "host_link"),
])
def test_nonsense_specs_are_refused(tmp_path, update, field):
    with pytest.raises(hwspecs.SpecError, match=field):
        simulator.predict(str(_spec_file(tmp_path, **update)), M)


def test_every_builtin_spec_is_inside_the_physical_ranges():
    for spec_id in hwspecs.available():
        spec = hwspecs.load(spec_id)
        if spec.kind == "gpu":
            hwspecs.resolve_hardware(spec)  # links resolve to link specs


def test_deep_yaml_is_one_line(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(hwspecs.SpecError, match="nested too deeply"):
        hwspecs.load(str(path))
    res = runner.invoke(app, ["predict", "-H", str(path)])
    assert res.exit_code == 2 and "nested too deeply" in res.output


def test_sweep_json_has_only_finite_numbers():
    res = runner.invoke(app, ["sweep", "--batch", "1,1000000", "--json"])
    assert res.exit_code == 0, res.output
    assert "Infinity" not in res.output and "NaN" not in res.output
    df = pd.read_json(__import__("io").StringIO(res.output))
    cols = ["ttft_s", "tpot_s", "e2e_s", "decode_tokens_per_s", "hbm_bytes", "flops", "peak_memory_bytes",
            "energy_per_output_token_j", "max_concurrency"]
    assert np.isfinite(df[cols].to_numpy(dtype=float)).all() and (df[cols] > 0).all().all()


def test_bounds_context_none_is_a_value_error():  # found by benchmarks/fuzz.py: list(None) → TypeError
    with pytest.raises(ValueError, match="context_tokens must be a whole number"):
        simulator.long_context_bounds(H, M, None)


def test_kernel_name_of_the_wrong_type_is_a_value_error():  # found by benchmarks/fuzz.py: unhashable → TypeError
    with pytest.raises(ValueError, match="kernel must be one of"):
        simulator.predict_kernel(H, [], m=1, n=1, k=1)


def test_json_output_is_strict_json():  # found by benchmarks/fuzz.py: NaN printed into --json output
    import json

    def no_constants(name):
        raise AssertionError(f"{name} in JSON output")
    res = runner.invoke(app, ["sweep", "--output-tokens", "1,256", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output, parse_constant=no_constants)
    assert rows[0]["decode_power_w"] is None  # one output token: no decode step, no decode power
    res = runner.invoke(app, ["bounds", "-H", H, "--json"])
    assert res.exit_code == 0, res.output
    json.loads(res.output, parse_constant=no_constants)


def test_huge_power_cap_list_is_one_line():  # found by benchmarks/fuzz.py: float(10**300) OverflowError
    res = runner.invoke(app, ["power", "--caps", "9" * 400])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output


def test_console_script_usage_errors_are_one_line():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONWARNINGS": "ignore"}
    for argv, field in ((["predict", "--batch", "abc"], "--batch"), (["predict", "--nope", "3"], "--nope")):
        proc = subprocess.run([sys.executable, "-c", "from faces.cli import main; main()", *argv], capture_output=True,
                              text=True, env=env, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: predict:") and field in lines[0], lines
