"""Bad inputs give specific errors from the API and the CLI; the simulator never imports torch; imports
point one way (faces → validate → simulator, never back)."""

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import simulator
import workloads
from faces.cli import app

runner = CliRunner()
HW, MODEL = "h100-sxm5-80gb", "llama-3-8b"


@pytest.mark.parametrize("field,value", [("batch", 0), ("batch", -4), ("batch", math.nan), ("batch", 2.5),
                                         ("prompt_tokens", 0), ("prompt_tokens", math.inf), ("batch", "8")])
def test_api_rejects_bad_sizes_by_name(field, value):
    args = {"batch": 4, "prompt_tokens": 128}
    args[field] = value
    with pytest.raises(ValueError, match=field):
        simulator.prefill(HW, MODEL, **args)
    with pytest.raises(ValueError, match=field):
        simulator.sweep(HW, MODEL, **{field: [1, value]})


def test_api_unknown_ids_list_known_ones():
    with pytest.raises(ValueError, match="h100-sxm5-80gb"):
        simulator.predict("h100", MODEL)
    with pytest.raises(ValueError, match="llama-3-8b"):
        simulator.predict(HW, "llama3")
    with pytest.raises(ValueError, match="not a gpu"):
        simulator.predict("pcie-gen5-x16", MODEL)


def test_api_model_that_does_not_fit():
    with pytest.raises(simulator.DoesNotFitError, match="tensor_parallel"):
        simulator.predict("rtx-4090", "llama-3-70b")
    with pytest.raises(simulator.DoesNotFitError, match="at most"):
        simulator.predict(HW, MODEL, workloads.Scenario(batch=4096, prompt_tokens=4096, output_tokens=4096))


def test_api_kernel_shapes_and_dtypes():
    with pytest.raises(ValueError, match="needs k"):
        simulator.predict_kernel(HW, "gemm", m=1, n=2, dtype="bf16")
    with pytest.raises(ValueError, match="unexpected: q"):
        simulator.predict_kernel(HW, "gemm", m=1, n=2, k=3, q=4)
    with pytest.raises(ValueError, match="kernel must be one of"):
        simulator.predict_kernel(HW, "conv2d", m=1)
    with pytest.raises(ValueError, match="no int4 peak"):
        simulator.predict_kernel(HW, "gemm", m=8, n=8, k=8, dtype="int4")
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        simulator.predict_kernel(HW, "attention_decode", batch=1, context=8, n_q_heads=6, n_kv_heads=4,
                                 head_dim=64, dtype="bf16")
    with pytest.raises(ValueError, match="impl must be one of"):
        simulator.predict_kernel(HW, "copy", impl="cutlass", bytes=10)


def test_api_calibration_argument():
    with pytest.raises(ValueError, match="calibration must be"):
        simulator.predict(HW, MODEL, calibration="fast")


def test_malformed_calibration_file(tmp_path):
    bad = tmp_path / "cal.yaml"
    bad.write_text("hardware_id: x\nvendor: {gemm: {efficiency_frac: -1}}\n")
    with pytest.raises(ValueError, match=r"vendor\.gemm\.efficiency_frac"):
        simulator.predict(HW, MODEL, calibration=str(bad))
    extra = tmp_path / "cal2.yaml"
    extra.write_text("hardware_id: x\nvendor: {gemm: {eficiency_frac: 0.5}}\n")
    with pytest.raises(ValueError, match="eficiency_frac"):
        simulator.predict(HW, MODEL, calibration=str(extra))


def test_user_hardware_yaml_by_path(tmp_path):
    src = simulator.api.hwspecs.load(HW)
    data = src.model_dump()
    data.update(id="my-gpu", memory_bandwidth_bytes_per_s=1.0e12)
    import yaml
    path = tmp_path / "my-gpu.yaml"
    path.write_text(yaml.safe_dump(data))
    slow = simulator.decode_step(str(path), MODEL, 1, 128)
    fast = simulator.decode_step(HW, MODEL, 1, 128)
    assert slow.time_s > 2 * fast.time_s


@pytest.mark.parametrize("args,needle", [
    (["predict", "--batch", "0"], "batch"),
    (["predict", "--batch", "nan"], "batch"),
    (["predict", "--prompt-tokens", "-1"], "prompt_tokens"),
    (["predict", "--hardware", "h100"], "known ids"),
    (["predict", "--model", "gpt-9"], "known ids"),
    (["predict", "--kv-dtype", "int3"], "kv_dtype"),
    (["predict", "--model", "llama-3-70b", "--hardware", "rtx-4090"], "tensor_parallel"),
    (["sweep", "--batch", "1,two"], "batch"),
    (["kernel", "gemm", "-s", "m=0", "-s", "n=1", "-s", "k=1"], "m must be"),
    (["list", "gpus"], "gpus"),
])
def test_cli_bad_input_one_line_exit_2(args, needle):
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert needle in r.output
    assert "Traceback" not in r.output


def test_cli_predict_json_and_sweep_csv(tmp_path):
    r = runner.invoke(app, ["predict", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    p = simulator.predict(HW, MODEL)
    assert d["ttft_s"] == pytest.approx(p.ttft_s) and d["max_concurrency"] == p.max_concurrency
    out = tmp_path / "sweep.csv"
    r = runner.invoke(app, ["sweep", "--batch", "1,4,16", "--prompt-tokens", "512:1024:512", "--csv", str(out)])
    assert r.exit_code == 0, r.output
    import pandas as pd
    df = pd.read_csv(out)
    assert len(df) == 6 and {"ttft_s", "tpot_s", "fits"} <= set(df.columns)
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_bounds_prints_fu_example():
    r = runner.invoke(app, ["bounds", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [x["context_tokens"] for x in rows] == [4096, 50000]
    assert rows[0]["kv_bytes_per_token"] == 245_760
    # 50K tokens of Yi-34B KV (12.3 GB) do not fit next to 68.8 GB of bf16 weights on one A100-80GB.
    assert rows[1]["max_concurrency"] == 0


def test_simulator_imports_without_torch():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'triton'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import simulator, hwspecs, workloads\n"
        "import faces.cli\n"
        "p = simulator.predict('h100-sxm5-80gb', 'llama-3-8b')\n"
        "assert 'torch' not in sys.modules and 'triton' not in sys.modules\n"
        "print(p.ttft_s > 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"


def test_cli_human_output_names_the_bounds():
    r = runner.invoke(app, ["predict"])
    assert r.exit_code == 0, r.output
    p = simulator.predict(HW, MODEL)
    assert f"({p.prefill_bound}-bound)" in r.output and f"({p.decode_bound}-bound)" in r.output
    r = runner.invoke(app, ["kernel", "copy", "-s", "bytes=1000000000"])
    assert r.exit_code == 0 and "(memory-bound)" in r.output, r.output


ROOT = Path(__file__).resolve().parent.parent


def imported_packages(source: str) -> set[str]:
    """Top-level package of every import in ``source``, at any depth (lazy imports inside functions too).
    Relative imports stay inside their own package and are skipped."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def forbidden_imports(folder: Path, forbidden: set[str]) -> list[str]:
    """``file: package`` for every module under ``folder`` that imports one of ``forbidden``."""
    files = sorted(folder.rglob("*.py"))
    assert files, f"no Python files under {folder}"
    return [f"{f.relative_to(folder.parent)}: {name}" for f in files
            for name in sorted(imported_packages(f.read_text()) & forbidden)]


def test_layering_check_catches_offending_imports(tmp_path):
    source = ("import numpy\nfrom . import ops\n"
              "def f():\n    from faces.display import seconds\n    import validate.calibrate as c\n")
    assert imported_packages(source) == {"numpy", "faces", "validate"}
    pkg = tmp_path / "simulator"
    pkg.mkdir()
    (pkg / "clean.py").write_text("import numpy\nfrom simulator import ops\n")
    (pkg / "bad.py").write_text(source)
    assert forbidden_imports(pkg, {"validate", "faces"}) == ["simulator/bad.py: faces", "simulator/bad.py: validate"]


def test_model_layers_never_import_the_faces():
    assert forbidden_imports(ROOT / "simulator", {"validate", "faces"}) == []
    for package in ("hwspecs", "workloads", "validate"):
        assert forbidden_imports(ROOT / package, {"faces"}) == []


def test_cli_power_flags_and_report():
    import json

    from typer.testing import CliRunner

    from faces.cli import app
    runner = CliRunner()
    r = runner.invoke(app, ["predict", "--power-cap", "10"])
    assert r.exit_code == 2 and "power_cap_w" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["predict", "--sm-clock", "99999"])
    assert r.exit_code == 2 and "sm_clock_hz" in r.output
    r = runner.invoke(app, ["kernel", "copy", "-s", "bytes=1048576", "--launch", "lazy"])
    assert r.exit_code == 2 and "launch" in r.output
    r = runner.invoke(app, ["power", "--caps", "700,420", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [x["power_cap_w"] for x in rows] == [700, 420] and rows[1]["ttft_s"] > rows[0]["ttft_s"]
