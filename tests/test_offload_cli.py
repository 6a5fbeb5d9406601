"""``hwperf long-context`` and ``simulator.long_context_view.long_context_table``."""

import json

import pytest
from typer.testing import CliRunner

from faces.cli import app
from faces.long_context_commands import parse_contexts
from simulator.long_context_view import long_context_table
from workloads.kv_methods import parse

runner = CliRunner()


def test_context_suffixes():
    assert parse_contexts("4k, 50k,1m,4096") == [4000, 50000, 1000000, 4096]
    with pytest.raises(ValueError, match="--context"):
        parse_contexts("4q")


def test_table_rows_and_method_effects():
    d = long_context_table("h200-sxm-141gb", "yi-34b", [4000, 50000], kv_methods_=(None, "kivi-2"),
                           tiers=("ddr",))
    assert list(d["kv_method"]) == ["none", "none", "kivi-2", "kivi-2"]
    dense, kivi = d[d.kv_method == "none"], d[d.kv_method == "kivi-2"]
    bits = parse("kivi-2").effective_bits(50000)
    assert kivi.kv_bytes_per_user.iloc[1] == pytest.approx(dense.kv_bytes_per_user.iloc[1] * bits / 16, rel=1e-9)
    assert (kivi.max_concurrency.to_numpy() >= dense.max_concurrency.to_numpy()).all()
    assert (kivi.swap_ddr_s.to_numpy() < dense.swap_ddr_s.to_numpy()).all()


def test_cli_table_json_plot_and_errors(tmp_path):
    png = tmp_path / "lc.png"
    r = runner.invoke(app, ["long-context", "-m", "yi-34b", "-H", "h200-sxm-141gb", "--context", "4k,1m",
                            "--kv-method", "none,kivi-2", "--plot", str(png), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert len(rows) == 4 and [x["beyond_trained_context"] for x in rows] == [False, True, False, True]
    assert png.stat().st_size > 10_000
    for args, field in ((["--kv-method", "kivi-5"], "bits must be one of 8, 4, 3, 2"),
                        (["--system", "dgx-h100", "--tier", "csd"], "tier 'csd' is not in system dgx-h100"),
                        (["--kv-method", "h2o:budget=9000", "--context", "4k"], "budget_tokens"),
                        (["--kv-method", "kivi-2:group=48"], "group_size")):
        r = runner.invoke(app, ["long-context", *args])
        assert r.exit_code == 2 and field in r.output and "Traceback" not in r.output, (args, r.output)


def test_predict_takes_a_kv_method():
    args = ["predict", "-m", "mistral-7b", "-H", "h200-sxm-141gb", "--prompt-tokens", "16000", "--batch", "4", "--json"]
    dense = json.loads(runner.invoke(app, args).output)
    kivi = json.loads(runner.invoke(app, [*args, "--kv-method", "kivi-2"]).output)
    assert kivi["max_concurrency"] > dense["max_concurrency"] and kivi["tpot_s"] != dense["tpot_s"]
    r = runner.invoke(app, ["predict", "--kv-method", "kivi-7"])
    assert r.exit_code == 2 and "bits must be one of 8, 4, 3, 2" in r.output
