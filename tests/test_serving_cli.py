"""``hwperf serve``: output, files written whole, bad input → one line and exit code 2."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from faces.cli import app

runner = CliRunner()


def test_serve_json_and_files(tmp_path):
    res = runner.invoke(app, ["serve", "--rate", "2", "--duration", "30", "--json", "--requests-csv",
                              str(tmp_path / "r.csv"), "--series-csv", str(tmp_path / "s.csv")])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    req = pd.read_csv(tmp_path / "r.csv")
    assert summary["n_requests"] == len(req) > 0
    assert set(pd.read_csv(tmp_path / "s.csv").columns) >= {"t_s", "power_w", "waiting"}


def test_serve_reads_an_azure_style_trace(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6,374,44\n"
                 "2023-11-16 18:15:47.1,396,109\n2023-11-16 18:15:50.0,879,20\n")
    res = runner.invoke(app, ["serve", "--arrival", "trace", "--trace", str(p), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["n_requests"] == 3


@pytest.mark.parametrize("args, text", [
    (["--rate", "-1"], "rate_per_s"),
    (["--arrival", "weekly"], "--arrival"),
    (["--arrival", "trace"], "--trace"),
    (["--slo-ttft-ms", "0"], "slo_ttft_s"),
    (["--slo-tpot-ms", "0.5", "--duration", "5"], "cannot be met"),
    (["--preemption", "drop"], "preemption"),
    (["--requests-csv", "/nonexistent/dir/r.csv", "--duration", "5"], "does not exist"),
])
def test_serve_bad_input(args, text):
    res = runner.invoke(app, ["serve", *args])
    assert res.exit_code == 2
    assert text in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_serve_unsorted_and_empty_traces(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("arrival_s,prompt_tokens,output_tokens\n0,10,5\n2,10,5\n1,10,5\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("arrival_s,prompt_tokens,output_tokens\n")
    for p, text in ((bad, "sorted"), (empty, "empty")):
        res = runner.invoke(app, ["serve", "--arrival", "trace", "--trace", str(p)])
        assert res.exit_code == 2 and text in res.output


def test_oversubscribe_writes_png_and_series(tmp_path):
    png, csv = tmp_path / "row.png", tmp_path / "row.csv"
    res = runner.invoke(app, ["oversubscribe", "--servers", "50", "--hours", "1", "--png", str(png),
                              "--series-csv", str(csv), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["n_servers_max"] == 50
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pd.read_csv(csv)) == 3600


@pytest.mark.parametrize("args, text", [
    (["--t1", "0.95"], "t1_frac < t2_frac"),
    (["--budget-w", "100"], "idle power"),
    (["--capping-latency-s", "-3"], "capping_latency_s"),
    (["--peak-load", "-1"], "peak_load_frac"),
])
def test_oversubscribe_bad_input(args, text):
    res = runner.invoke(app, ["oversubscribe", "--hours", "0.1", *args])
    assert res.exit_code == 2, res.output
    assert text in res.output and len(res.output.strip().splitlines()) == 1


def test_oversubscribe_png_into_a_missing_folder_leaves_nothing(tmp_path):
    target = tmp_path / "missing" / "row.png"
    res = runner.invoke(app, ["oversubscribe", "--servers", "40", "--hours", "0.2", "--png", str(target)])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not target.parent.exists()
