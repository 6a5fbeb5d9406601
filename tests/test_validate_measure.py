"""validate/ measurement harness: CPU-side behaviour (no GPU needed) and a marked GPU smoke test.

The case catalogue itself (shapes, repeat and headline cases) is tested in test_validate_cases.py.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from validate import env as venv
from validate.env import (HardwareMismatchError, NoGPUError, check_requested_hardware,
                          hardware_id_for_gpu_name)
from validate.layers import LAYER_COLUMNS
from validate.power import POWER_COLUMNS, TRACE_COLUMNS
from validate.run import run_all
from validate.runner import FAILURE_COLUMNS, KERNEL_COLUMNS, write_csv_atomic
from validate.timing import n_rotation_sets

REPO = Path(__file__).resolve().parent.parent

SPEC_KERNEL_COLUMNS = (
    "case_id, kernel, impl, dtype, m, n, k, batch, seq, context, n_q_heads, n_kv_heads, head_dim, "
    "causal, paged, pinned, bytes, median_s, p10_s, p90_s, n_reps, flops, hbm_bytes, "
    "achieved_flops_per_s, achieved_bytes_per_s, sm_clock_hz, power_w, energy_j, graph, gpu_name, "
    "hardware_id, repeat_spread_frac"
).split(", ")
SPEC_LAYER_COLUMNS = (
    "case_id, mode, graph, model, hidden, n_q_heads, n_kv_heads, head_dim, ffn_hidden, batch, seq, "
    "context, median_s, p10_s, p90_s, n_reps, sm_clock_hz, power_w, gpu_name, hardware_id"
).split(", ")


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


# ------------------------------------------------------------------------------------ GPU names

@pytest.mark.parametrize("name, hw_id", [
    ("NVIDIA H100 80GB HBM3", "h100-sxm5-80gb"),
    ("NVIDIA H200", "h200-sxm-141gb"),
    ("NVIDIA A100-SXM4-80GB", "a100-sxm4-80gb"),
    ("NVIDIA H100 PCIe", "h100-pcie-80gb"),
    ("NVIDIA GeForce RTX 4090", "rtx-4090"),
    ("NVIDIA L40S", "l40s"),
    ("  nvidia  h100 80gb  HBM3 ", "h100-sxm5-80gb"),  # case and spacing do not matter
])
def test_gpu_name_maps_to_hardware_id(name, hw_id):
    assert hardware_id_for_gpu_name(name) == hw_id


@pytest.mark.parametrize("name", ["NVIDIA H100 NVL", "NVIDIA H200 NVL", "NVIDIA A100-SXM4-40GB",
                                  "Tesla T4", ""])
def test_other_gpus_are_not_mapped(name):
    # Variants with different memory or form factor must not borrow another device's id.
    assert hardware_id_for_gpu_name(name) is None


def test_known_hardware_ids_have_spec_files():
    ids = {p.stem for p in (REPO / "hwspecs" / "devices").glob("*.yaml")}
    assert set(venv.KNOWN_HARDWARE_IDS) <= ids


# ------------------------------------------------------------------------------------ refusals

def test_requested_hardware_must_match_the_gpu():
    assert check_requested_hardware(None, "NVIDIA H100 80GB HBM3") == "h100-sxm5-80gb"
    assert check_requested_hardware("h100-sxm5-80gb", "NVIDIA H100 80GB HBM3") == "h100-sxm5-80gb"
    with pytest.raises(HardwareMismatchError, match=r"h200-sxm-141gb.*NVIDIA H100 80GB HBM3"):
        check_requested_hardware("h200-sxm-141gb", "NVIDIA H100 80GB HBM3")


def test_unknown_requested_id_is_refused_with_the_known_ids():
    with pytest.raises(HardwareMismatchError, match=r"'h100'.*known ids: .*h100-sxm5-80gb"):
        check_requested_hardware("h100", "NVIDIA H100 80GB HBM3")


def test_unmapped_gpu_is_filed_under_an_unknown_id_only_without_a_request():
    assert check_requested_hardware(None, "Tesla T4") == "unknown-tesla-t4"
    with pytest.raises(HardwareMismatchError):
        check_requested_hardware("h100-sxm5-80gb", "Tesla T4")


def test_run_all_refuses_a_mismatch_before_measuring(monkeypatch, tmp_path):
    """With a (faked) H100 attached, asking for an H200 stops before any file or GPU work."""
    import torch

    class Props:
        name, major, minor = "NVIDIA H100 80GB HBM3", 9, 0
        multi_processor_count, total_memory, L2_cache_size = 132, 80 * 2**30, 50 * 2**20

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i=0: Props())
    with pytest.raises(HardwareMismatchError, match="h200-sxm-141gb"):
        run_all(tmp_path / "out", hardware_id="h200-sxm-141gb", progress=False)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------ no GPU

@pytest.mark.skipif(_cuda(), reason="checks the no-GPU path")
def test_run_all_without_gpu_raises_a_clear_error(tmp_path):
    with pytest.raises(NoGPUError, match="no CUDA GPU"):
        run_all(tmp_path, progress=False)
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.skipif(_cuda(), reason="checks the no-GPU path")
def test_module_entry_point_without_gpu_exits_2_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "validate", "--out", str(tmp_path), "--quick"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "no CUDA GPU" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_no_gpu_error_is_a_value_error_for_friendly_clis():
    assert issubclass(NoGPUError, ValueError) and issubclass(HardwareMismatchError, ValueError)


def test_nvml_failure_is_caught(monkeypatch):
    """Without a driver, nvmlInit raises NVMLError: every reading becomes None, no exception."""
    pynvml = pytest.importorskip("pynvml")

    def boom():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", boom)
    nvml = venv.Nvml(0)
    assert not nvml.available and "NVML unavailable" in nvml.error
    assert nvml.power_w() is None and nvml.sm_clock_hz() is None and nvml.energy_j() is None
    assert nvml.instant_power_w() is None and nvml.driver_version() == "unknown"


def test_git_sha_prefers_the_environment_variable(monkeypatch):
    monkeypatch.setenv("HWPERF_GIT_SHA", "abc123")
    assert venv.git_sha() == "abc123"
    monkeypatch.delenv("HWPERF_GIT_SHA")
    sha = venv.git_sha()
    assert sha == "unknown" or len(sha) == 40


# ------------------------------------------------------------------------------------ CSV

def test_kernel_columns_are_exactly_the_specified_ones():
    assert list(KERNEL_COLUMNS) == SPEC_KERNEL_COLUMNS
    assert list(LAYER_COLUMNS) == SPEC_LAYER_COLUMNS
    assert POWER_COLUMNS == ("run", "duration_s", "mean_power_w", "p90_power_w", "energy_j",
                             "mean_sm_clock_hz", "achieved_flops_per_s", "achieved_bytes_per_s",
                             "power_limit_w")
    assert TRACE_COLUMNS == ("run", "t_s", "power_w", "sm_clock_hz")


@pytest.mark.parametrize("folder", sorted((REPO / "validate" / "measurements").glob("*/kernels.csv")),
                         ids=lambda p: p.parent.name)
def test_kernels_csv_header_is_the_committed_one_byte_for_byte(folder, tmp_path):
    written = write_csv_atomic(tmp_path / "kernels.csv", [], KERNEL_COLUMNS).read_bytes()
    with open(folder, "rb") as fh:
        assert written == fh.readline()


def test_shape_columns_come_from_the_registry_in_the_header_order():
    """The shape part of KERNEL_COLUMNS is the registry's fields of the measured kinds, placed by
    SHAPE_COLUMN_ORDER; that order names exactly those fields (none stale, none left to chance)."""
    from simulator.kinds import KINDS, shape_columns
    from validate.runner import KERNELS, SHAPE_COLUMN_ORDER, measured_shape_columns

    measured = [k for k in KERNELS if k in KINDS]
    assert measured == ["gemm", "attention_prefill", "attention_decode", "copy", "h2d", "d2h"]
    fields = {f.name for k in measured for f in KINDS[k].shape}
    assert set(SHAPE_COLUMN_ORDER) == fields and len(SHAPE_COLUMN_ORDER) == len(fields)
    assert {"n_elements", "n_ranks"} <= set(shape_columns()) - set(KERNEL_COLUMNS)  # kinds never timed
    assert measured_shape_columns() == SHAPE_COLUMN_ORDER
    assert KERNEL_COLUMNS[3:3 + len(fields)] == SHAPE_COLUMN_ORDER


def _synthetic_rows():
    return [
        {"case_id": "gemm-vendor-bf16-m4096-n4096-k4096", "kernel": "gemm", "impl": "vendor",
         "dtype": "bf16", "m": 4096, "n": 4096, "k": 4096, "median_s": 2.0e-4, "p10_s": 1.9e-4,
         "p90_s": 2.1e-4, "n_reps": 200, "flops": 2 * 4096**3, "hbm_bytes": 3 * 4096**2 * 2,
         "achieved_flops_per_s": 2 * 4096**3 / 2.0e-4, "graph": False, "gpu_name": "NVIDIA H100 80GB HBM3",
         "hardware_id": "h100-sxm5-80gb", "repeat_spread_frac": 0.01},
        {"case_id": "h2d-vendor-pinned-bytes1048576", "kernel": "h2d", "impl": "vendor",
         "bytes": 1048576, "pinned": True, "median_s": 5.1e-05, "p10_s": 5.0e-05, "p90_s": 5.3e-05,
         "n_reps": 1000, "hbm_bytes": 1048576, "achieved_bytes_per_s": 1048576 / 5.1e-05,
         "sm_clock_hz": 1.98e9, "power_w": 120.5, "energy_j": None, "graph": False,
         "gpu_name": "NVIDIA H100 80GB HBM3", "hardware_id": "h100-sxm5-80gb"},
    ]


def test_write_csv_has_exact_columns_and_round_trips(tmp_path):
    pd = pytest.importorskip("pandas")
    path = write_csv_atomic(tmp_path / "kernels.csv", _synthetic_rows(), KERNEL_COLUMNS)
    with open(path, newline="") as fh:
        header = next(csv.reader(fh))
    assert header == SPEC_KERNEL_COLUMNS
    df = pd.read_csv(path)
    assert list(df.columns) == SPEC_KERNEL_COLUMNS and len(df) == 2
    gemm, h2d = df.iloc[0], df.iloc[1]
    assert gemm["m"] == 4096 and gemm["median_s"] == 2.0e-4  # floats written at full precision
    assert gemm["achieved_flops_per_s"] == 2 * 4096**3 / 2.0e-4
    assert pd.isna(gemm["bytes"]) and pd.isna(h2d["m"]) and pd.isna(h2d["energy_j"])  # empty cells
    assert h2d["pinned"] in (True, "True") and gemm["graph"] in (False, "False")
    assert [p.name for p in tmp_path.iterdir()] == ["kernels.csv"]  # no temp file left behind


def test_write_csv_refuses_unknown_columns_and_keeps_the_old_file(tmp_path):
    path = write_csv_atomic(tmp_path / "kernels.csv", _synthetic_rows(), KERNEL_COLUMNS)
    before = path.read_bytes()
    bad = _synthetic_rows() + [{"case_id": "x", "median_ms": 1.0}]
    with pytest.raises(ValueError, match="median_ms"):
        write_csv_atomic(path, bad, KERNEL_COLUMNS)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["kernels.csv"]


def test_write_csv_is_atomic_when_interrupted(tmp_path, monkeypatch):
    """A crash mid-write (here: os.replace failing) leaves the previous file and no temp file."""
    path = write_csv_atomic(tmp_path / "failures.csv", [{"case_id": "a", "stage": "run"}],
                            FAILURE_COLUMNS)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        write_csv_atomic(path, [{"case_id": "b", "stage": "check"}], FAILURE_COLUMNS)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["failures.csv"]


# ------------------------------------------------------------------------------------ timing

def test_rotation_sets_span_three_times_l2():
    l2 = 50 * 2**20
    assert n_rotation_sets(2 * 2**30, l2) == 1  # far larger than L2: no rotation
    assert n_rotation_sets(3 * l2, l2) == 1
    assert n_rotation_sets(l2, l2) == 3
    assert n_rotation_sets(2**20, l2) == 150
    assert n_rotation_sets(1024, l2) == 256  # capped
    assert n_rotation_sets(0, l2) == 1


# ------------------------------------------------------------------------------------ GPU

@pytest.mark.gpu
def test_quick_run_on_gpu(tmp_path):
    result = run_all(tmp_path, quick=True, progress=False, power_run_s=0.5)
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(result.files["kernels"])
    assert list(df.columns) == SPEC_KERNEL_COLUMNS
    assert set(df["kernel"]) >= {"gemm", "attention_prefill", "attention_decode", "copy"}
    assert (df["median_s"] > 0).all()
    assert (tmp_path / "environment.json").is_file() and (tmp_path / "layers.csv").is_file()


def test_interleaved_order_covers_the_range_first():
    from validate.runner import _bisection_order

    assert _bisection_order([1, 8, 32, 128, 512]) == [1, 512, 32, 8, 128]
    assert sorted(_bisection_order(list(range(14)))) == list(range(14))


def test_written_files_are_not_private(tmp_path):
    """mkstemp creates 0600 files; the written CSV gets the umask's normal mode instead."""
    umask = os.umask(0o022)
    try:
        path = write_csv_atomic(tmp_path / "kernels.csv", _synthetic_rows(), KERNEL_COLUMNS)
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
