"""The command line as a new user meets it: 80-column tables, help on every option, one-line errors."""

import pytest
import typer.main
from typer.testing import CliRunner

import simulator
import workloads
from faces.cli import app

RUN = CliRunner()
ENV = {"COLUMNS": "80"}


def _run(*args):
    return RUN.invoke(app, list(args), env=ENV)


CORE = ("predict", "list", "sweep", "bounds", "kernel", "power", "compare-configs", "validate", "calibrate",
        "compare", "serve")


def test_every_option_of_every_command_has_help():
    group = typer.main.get_command(app)
    missing = [f"{name} {p.name}" for name, cmd in group.commands.items() for p in cmd.params
               if not getattr(p, "help", None) and p.name != "help"]
    assert set(CORE) <= set(group.commands)
    assert not missing, missing


def test_list_hardware_key_figures_fit_80_columns():
    r = _run("list", "hardware")
    assert r.exit_code == 0
    assert all(len(line) <= 80 for line in r.output.splitlines())
    row = next(line for line in r.output.splitlines() if line.startswith(" h100-sxm5-80gb"))
    assert "80 GiB" in row and "3.35" in row and "989" in row and "700 W" in row and "fitted" in row


def test_unknown_list_is_one_plain_line():
    r = _run("list", "foo")
    assert r.exit_code == 2 and r.output.count("\n") == 1
    assert r.output.startswith("error: list takes one of hardware, models, all")


def test_per_op_table_fits_80_columns_and_shows_launch_gaps():
    r = _run("predict", "--ops", "--eager")
    assert r.exit_code == 0
    table = r.output[r.output.index("per-op"):]
    assert all(len(line) <= 80 for line in table.splitlines())
    assert table.count("launch + gaps") == 2
    p = simulator.predict("h100-sxm5-80gb", "llama-3-8b", workloads.Scenario(cuda_graph=False))
    gap = p.pass_times_s["decode"] - p.ops[p.ops.phase == "decode"].total_time_s.sum()
    assert gap > 0.3 * p.pass_times_s["decode"]  # eager decode: the host's launch rate, not the kernels


def test_sweep_table_shows_the_swept_axes():
    r = _run("sweep", "--batch", "1,512", "--prompt-tokens", "512,2048", "--kv-dtype", "bf16,fp8")
    header = next(line for line in r.output.splitlines() if "TTFT" in line)
    assert header.split()[:3] == ["batch", "prompt", "KV"]
    assert "✗ memory" in r.output and all(len(line) <= 80 for line in r.output.splitlines())


def test_bounds_with_none_fitting_says_so():
    r = RUN.invoke(app, ["bounds"], env={"COLUMNS": "160"})
    assert "none fit" in r.output and "(0 users)" not in r.output and "(1 users)" not in r.output


def test_cli_start_up_stays_light():
    """`hwperf predict` must not pay for pandas, networkx or the serving simulator at start-up (lazy imports;
    the wall-time figure is measured with farm-bench, not here)."""
    import subprocess
    import sys
    code = ("import sys, faces.cli, simulator; simulator.predict('h100-sxm5-80gb', 'llama-3-8b'); "
            "print(sorted(m for m in ('pandas', 'networkx', 'simulator.serving', 'scipy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=__import__("pathlib").Path(__file__).parent.parent)
    assert out.stdout.strip() == "[]", out.stdout


def test_wide_per_op_table_adds_the_detail_columns():
    narrow, wide = _run("predict", "--ops"), _run("predict", "--ops", "--wide")
    head = next(line for line in wide.output.splitlines() if line.lstrip().startswith("op "))
    assert all(c in head for c in ("kind", "FLOPs", "bytes", "power", "clock"))
    assert "clock" not in next(line for line in narrow.output.splitlines() if line.lstrip().startswith("op "))


@pytest.mark.parametrize("args", [["--only-states", "--states-set", "extra3"], ["--states-set", "extra2"]])
def test_validate_states_set_is_checked_before_any_gpu_work(args):
    r = _run("validate", *args)
    assert r.exit_code == 2 and "--states-set" in r.output and "Traceback" not in r.output
