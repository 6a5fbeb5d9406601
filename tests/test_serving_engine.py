"""Engine profiles: loading, host time in the step table, the host-time fit, hwperf calibrate-engine."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from faces.cli import app
from simulator import serving
from simulator.serving import profile_fit as pf
from workloads.engine_profile import EngineProfile, EngineProfileError, available_engines, load_engine

runner = CliRunner()
MODEL_8B = "llama-3-8b"
TABLE = "workloads/engines/tables/nemo-trtllm-llama-2-7b.csv"


def test_every_committed_profile_loads():
    assert {"kernels-only", "vllm-0.2", "vllm-0.6"} <= set(available_engines())
    for e in available_engines():
        assert load_engine(e).id == e


def test_profile_fields_are_checked(tmp_path):
    p = tmp_path / "e.yaml"
    p.write_text("id: x\nname: x\niteration_fixed_s: -1\nper_sequence_s: 0\nmemory_utilization_frac: 0.9\n"
                 "sources: {iteration_fixed_s: a, per_sequence_s: b, memory_utilization_frac: c}\n")
    with pytest.raises(EngineProfileError, match="iteration_fixed_s"):
        load_engine(str(p))
    with pytest.raises(EngineProfileError, match="unknown engine profile"):
        load_engine("no-such-engine")


def test_host_time_is_added_per_iteration_and_sequence_at_idle_power():
    base = serving.instance("a100-sxm4-80gb", "llama-3-8b", engine="kernels-only", max_context_tokens=2048)
    prof = EngineProfile(**{**load_engine("kernels-only").model_dump(), "id": "t", "iteration_fixed_s": 2e-3,
                            "per_sequence_s": 1e-4})
    slow = serving.instance("a100-sxm4-80gb", "llama-3-8b", engine=prof, max_context_tokens=2048)
    (t0, e0, _), (t1, e1, _) = base.table.decode(0, 10, 1000), slow.table.decode(0, 10, 1000)
    assert t1 - t0 == pytest.approx(2e-3 + 10 * 1e-4)
    assert e1 - e0 == pytest.approx(slow.table.idle_w * (t1 - t0))


def test_fit_recovers_known_host_times():
    """A table made from the model plus known host times: the fit finds them again."""
    df = pd.read_csv(TABLE, comment="#")
    prof = load_engine("kernels-only")
    k = pf.kernel_times(df, prof)
    a, b = 3e-3, 1.5e-4
    T, B = df.output_tokens.to_numpy(float), df.batch.to_numpy(float)
    df["e2e_s"] = k.kernel_e2e_s.to_numpy() + T * (a + b * B)
    fa, fb = pf.fit_host_times(df, k, (df.tensor_parallel != 2).to_numpy())
    assert fa == pytest.approx(a, rel=1e-6) and fb == pytest.approx(b, rel=1e-6)


def test_calibrate_engine_on_the_published_table(tmp_path):
    res = runner.invoke(app, ["calibrate-engine", "--table", TABLE, "--id", "fit", "--out", str(tmp_path)],
                        terminal_width=200)
    assert res.exit_code == 0, res.output
    a100 = load_engine(str(tmp_path / "fit-a100-sxm4-80gb.yaml"))
    assert a100.iteration_fixed_s > 0
    row = next(line for line in res.output.splitlines() if "a100" in line)
    held = float(row.split("│")[5].strip().rstrip("%")) / 100
    assert held < 0.10  # NeMo/TRT-LLM Llama-2-7B, TP 2 held out (kernels alone: 26%)


@pytest.mark.parametrize("content, text", [("hardware,model\na,b\n", "columns"),
                                          ("", "empty")])
def test_calibrate_engine_bad_tables(tmp_path, content, text):
    p = tmp_path / "t.csv"
    p.write_text(content)
    res = runner.invoke(app, ["calibrate-engine", "--table", str(p)])
    assert res.exit_code == 2 and text in res.output


def test_fused_elementwise_ops_stream_at_copy_rate():
    """The H100 layer calibration fits eager elementwise kernels well below copy bandwidth; a fusing engine
    runs them at the copy rate, so its prefill is faster while GEMM time is unchanged."""
    base = load_engine("kernels-only")
    unfused = EngineProfile(**{**base.model_dump(), "id": "u", "fused_elementwise": False})
    fast = serving.instance("h100-sxm5-80gb", MODEL_8B, engine=base, max_context_tokens=4096)
    slow = serving.instance("h100-sxm5-80gb", MODEL_8B, engine=unfused, max_context_tokens=4096)
    t_fast, t_slow = fast.table.prefill(0, 1, 2048)[0], slow.table.prefill(0, 1, 2048)[0]
    assert t_fast < 0.95 * t_slow
