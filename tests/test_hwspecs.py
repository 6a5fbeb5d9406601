"""Tests of the hardware data (hwspecs/devices/*.yaml) and of hwspecs' loading and calibration I/O.

Three kinds of checks: (1) every built-in file loads and its cross-references resolve; (2) the numbers
agree with independent arithmetic (SMs x clock x per-SM rate, bus width x data rate, channels x MT/s x 8)
and with the cited dense datasheet values — the regressions peers get wrong (2:4-sparse peaks used as
dense, decimal rates multiplied by 2^40); (3) bad input gives a SpecError (a ValueError) naming the field.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

import hwspecs
from hwspecs import Calibration, EffectParams, Hardware, HostMemory, Link, SpecError, Storage, System
from hwspecs.loader import DEVICES_DIR

ALL_IDS = hwspecs.available()
GPU_IDS = hwspecs.available("gpu")
LINK_IDS = hwspecs.available("link")
SYSTEM_IDS = hwspecs.available("system")
STORAGE_IDS = hwspecs.available("ssd") + hwspecs.available("csd")
HOST_MEMORY_IDS = hwspecs.available("host_memory")

EXPECTED_GPUS = {
    "a100-sxm4-40gb", "a100-sxm4-80gb", "a100-pcie-80gb", "h100-sxm5-80gb", "h100-pcie-80gb",
    "h200-sxm-141gb", "l40s", "rtx-4090", "rtx-a6000", "mi300x",
}
GIB = 2**30


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# --------------------------------------------------------------------------------------------------
# Every built-in file loads and its references resolve
# --------------------------------------------------------------------------------------------------

def test_expected_devices_present():
    assert EXPECTED_GPUS <= set(GPU_IDS)
    assert {"pcie-gen3-x4", "pcie-gen3-x16", "pcie-gen4-x4", "pcie-gen4-x16", "pcie-gen5-x4",
            "pcie-gen5-x16", "nvlink3", "nvlink4", "infinity-fabric-mi300x"} <= set(LINK_IDS)
    assert {"dgx-h100", "hgx-h200", "dgx-a100-80gb", "workstation-4x-rtx-4090", "csd-server",
            "mi300x-8x"} <= set(SYSTEM_IDS)
    assert {"nvme-gen4-ssd", "nvme-gen5-ssd", "csd-instinfer", "csd-smartssd"} <= set(STORAGE_IDS)


@pytest.mark.parametrize("spec_id", ALL_IDS)
def test_builtin_loads_and_id_matches_filename(spec_id):
    spec = hwspecs.load(spec_id)
    assert spec.id == spec_id
    assert re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", spec_id)
    assert spec.sources and all(isinstance(v, str) and v.strip() for v in spec.sources.values())


@pytest.mark.parametrize("gpu_id", GPU_IDS)
def test_gpu_peaks_positive_finite_and_links_resolve(gpu_id):
    hw = hwspecs.load(gpu_id)
    assert isinstance(hw, Hardware)
    assert "fp32" in hw.peak_flops_per_s and ("bf16" in hw.peak_flops_per_s or hw.architecture == "turing")
    for dtype, rate in hw.peak_flops_per_s.items():
        assert rate > 0 and math.isfinite(rate), dtype
        assert hw.peak(dtype) == rate
    assert isinstance(hwspecs.load(hw.host_link), Link)
    if hw.scaleup_link is None:
        assert hw.scaleup_bandwidth_bytes_per_s is None
    else:
        link = hwspecs.load(hw.scaleup_link)
        assert isinstance(link, Link)
        # The per-GPU figure and the link file describe the same per-direction rate.
        assert hw.scaleup_bandwidth_bytes_per_s == pytest.approx(link.bandwidth_bytes_per_s, rel=1e-9)
    assert hw.architecture in {"turing", "ampere", "hopper", "ada", "blackwell", "cdna3"}
    assert 0 < hw.idle_power_w < hw.tdp_w


@pytest.mark.parametrize("storage_id", STORAGE_IDS)
def test_storage_host_link_resolves_and_fits_through_it(storage_id):
    drive = hwspecs.load(storage_id)
    assert isinstance(drive, Storage)
    link = hwspecs.load(drive.host_link)
    assert isinstance(link, Link)
    assert drive.seq_read_bytes_per_s <= link.bandwidth_bytes_per_s * 1.001
    if drive.kind == "csd":
        # The point of a CSD: in-storage compute sees more bandwidth than the host link offers.
        assert drive.internal_read_bytes_per_s > link.bandwidth_bytes_per_s


@pytest.mark.parametrize("system_id", SYSTEM_IDS)
def test_system_components_resolve_with_right_kinds(system_id):
    system = hwspecs.load(system_id)
    assert isinstance(system, System)
    gpu = hwspecs.load(system.accelerator)
    assert isinstance(gpu, Hardware)
    assert isinstance(hwspecs.load(system.host_memory), HostMemory)
    if system.scaleup_link is not None:
        assert isinstance(hwspecs.load(system.scaleup_link), Link)
        assert system.scaleup_link == gpu.scaleup_link
    assert system.storage, "every system lists at least one drive"
    for drive_id in system.storage:
        assert hwspecs.load(drive_id).kind in {"ssd", "csd"}
    assert hwspecs.resolve_hardware(system_id) == gpu


def test_available_filters_by_kind():
    by_kind = set(GPU_IDS) | set(LINK_IDS) | set(SYSTEM_IDS) | set(STORAGE_IDS) | set(HOST_MEMORY_IDS)
    assert by_kind == set(ALL_IDS)
    with pytest.raises(SpecError, match="kind must be one of"):
        hwspecs.available("tpu")


# --------------------------------------------------------------------------------------------------
# Dense, not sparse (the classic peer bug)
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("gpu_id", "dtype", "dense"), [
    ("h100-sxm5-80gb", "bf16", 989.4e12),    # NVIDIA prints 1979 "* with sparsity"
    ("h100-sxm5-80gb", "fp8", 1978.9e12),
    ("h200-sxm-141gb", "bf16", 989.4e12),
    ("h100-pcie-80gb", "bf16", 756e12),
    ("a100-sxm4-80gb", "bf16", 312e12),      # datasheet "312 | 624*"
    ("a100-sxm4-40gb", "int8", 624e12),
    ("l40s", "bf16", 362.05e12),             # "733*"
    ("rtx-a6000", "bf16", 154.8e12),         # datasheet 309.7 with sparsity
    ("rtx-4090", "bf16", 165.15e12),         # FP32-accumulate rate, not 330 (FP16-acc) or 661 (sparse)
    ("mi300x", "bf16", 1307.4e12),           # 2614.9 is the sparse marketing figure
])
def test_dense_peaks_match_datasheet(gpu_id, dtype, dense):
    assert hwspecs.load(gpu_id).peak(dtype) == pytest.approx(dense, rel=0.01)


def test_a100_bf16_exact():
    assert hwspecs.load("a100-sxm4-80gb").peak_flops_per_s["bf16"] == 312e12


@pytest.mark.parametrize("gpu_id", GPU_IDS)
def test_each_precision_halving_at_most_doubles_the_peak(gpu_id):
    """Each halving of precision at most doubles the dense rate; a 4x jump means a sparse number slipped in.
    Tolerance 2.05: NVIDIA's own L40S table gives bf16 362.05 and fp8 733 (ratio 2.025).
    (GeForce bf16 is the half-rate FP32-accumulate figure, so its int8 is 2x fp8 but 4x bf16.)"""
    peaks = hwspecs.load(gpu_id).peak_flops_per_s
    half = peaks.get("bf16", peaks["fp16"])  # Turing (T4) has no bf16
    if "fp8" in peaks:
        assert peaks["fp8"] <= 2.05 * half
    if "int8" in peaks:
        assert peaks["int8"] <= 2.05 * peaks.get("fp8", half)
    if "int4" in peaks:
        assert peaks["int4"] <= 2.05 * peaks["int8"]
    assert peaks.get("tf32", 0.0) <= 1.01 * half


def test_dtype_support_per_architecture():
    for gpu_id in GPU_IDS:
        hw = hwspecs.load(gpu_id)
        if hw.architecture == "hopper":
            assert "int4" not in hw.peak_flops_per_s, gpu_id  # no INT4 on Hopper
        if hw.architecture == "ampere":
            assert "fp8" not in hw.peak_flops_per_s, gpu_id  # no FP8 on Ampere
    with pytest.raises(ValueError, match=r"h100-sxm5-80gb has no int4 peak \(it has: fp32"):
        hwspecs.load("h100-sxm5-80gb").peak("int4")


# --------------------------------------------------------------------------------------------------
# Cross-checks against independent arithmetic
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("gpu_id", "clock_hz", "flops_per_clk_per_sm"), [
    # 4 tensor cores/SM x 256 FMA x 2 (A100 whitepaper; ml-engineering 1410e6 x 256 x 2 x 432 = 311.9e12)
    ("a100-sxm4-40gb", None, 2048),
    ("a100-sxm4-80gb", None, 2048),
    ("a100-pcie-80gb", None, 2048),
    # H100 SXM: tensor "spec" clock 1830 MHz, 4 TCs x 512 FMA x 2 (1830e6 x 512 x 2 x 528 = 989.4e12)
    ("h100-sxm5-80gb", 1.83e9, 4096),
    ("h200-sxm-141gb", 1.83e9, 4096),
    # GeForce Ada with FP32 accumulate: half of the professional rate per SM
    ("rtx-4090", None, 512),
    # Professional GA102, FP32 accumulate at full rate
    ("rtx-a6000", None, 1024),
    # MI300X: 2048 bf16 FLOP/clk/CU (ROCm MI300 doc)
    ("mi300x", None, 2048),
])
def test_bf16_peak_equals_sms_times_clock_times_per_sm_rate(gpu_id, clock_hz, flops_per_clk_per_sm):
    hw = hwspecs.load(gpu_id)
    clock = clock_hz if clock_hz is not None else hw.boost_clock_hz
    assert hw.peak("bf16") == pytest.approx(hw.n_sms * clock * flops_per_clk_per_sm, rel=0.005)


@pytest.mark.parametrize(("gpu_id", "bus_bits", "bits_per_s_per_pin"), [
    ("a100-sxm4-40gb", 5120, 2 * 1215e6),    # HBM2 at 1215 MHz DDR
    ("h100-sxm5-80gb", 5120, 2 * 2619e6),    # NVML max memory clock 2619 MHz on an H100 SXM
    ("rtx-4090", 384, 21e9),                 # GDDR6X 21 Gb/s
    ("rtx-a6000", 384, 16e9),                # GDDR6 16 Gb/s
    ("l40s", 384, 18e9),                     # GDDR6 18 Gb/s
])
def test_memory_bandwidth_equals_bus_width_times_data_rate(gpu_id, bus_bits, bits_per_s_per_pin):
    hw = hwspecs.load(gpu_id)
    assert hw.memory_bandwidth_bytes_per_s == pytest.approx(bus_bits * bits_per_s_per_pin / 8, rel=0.005)


@pytest.mark.parametrize("mem_id", HOST_MEMORY_IDS)
def test_host_dram_bandwidth_is_channels_times_rate_times_8(mem_id):
    mem = hwspecs.load(mem_id)
    assert mem.bus_bytes == 8
    assert mem.bandwidth_bytes_per_s == mem.n_channels * mem.transfers_per_s * 8
    match = re.match(r"ddr\d-(\d+)-(\d+)ch", mem_id)
    assert match, "host memory ids name their rate and channel count"
    assert mem.transfers_per_s == int(match.group(1)) * 1e6
    assert mem.n_channels == int(match.group(2))


def test_host_dram_headline_values():
    assert hwspecs.load("ddr4-3200-8ch").bandwidth_bytes_per_s == pytest.approx(204.8e9, rel=1e-12)
    assert hwspecs.load("ddr5-4800-12ch").bandwidth_bytes_per_s == pytest.approx(460.8e9, rel=1e-12)


@pytest.mark.parametrize("link_id", [i for i in LINK_IDS if i.startswith("pcie-")])
def test_pcie_bandwidth_is_lane_rate_times_lanes(link_id):
    gen, lanes = re.fullmatch(r"pcie-gen(\d)-x(\d+)", link_id).groups()
    gt_per_s = {3: 8e9, 4: 16e9, 5: 32e9}[int(gen)]
    expected = gt_per_s * int(lanes) * 128 / 130 / 8
    assert hwspecs.load(link_id).bandwidth_bytes_per_s == pytest.approx(expected, rel=0.005)


# --------------------------------------------------------------------------------------------------
# Units: decimal rates, exact-byte capacities
# --------------------------------------------------------------------------------------------------

def test_h100_bandwidth_is_decimal():
    bw = hwspecs.load("h100-sxm5-80gb").memory_bandwidth_bytes_per_s
    assert bw == 3.35e12
    assert bw != 3.35 * 2**40


def _is_round_decimal(value: float, unit: float) -> bool:
    """value / unit has at most two decimals: 3.35e12 yes, 3.35 x 2^40 = 3.683e12 (3683.3... GB/s) no."""
    scaled = value / unit * 100
    return abs(scaled - round(scaled)) < 1e-6 * max(1.0, abs(scaled))


@pytest.mark.parametrize("spec_id", GPU_IDS + LINK_IDS + STORAGE_IDS)
def test_rates_are_round_decimal_numbers(spec_id):
    spec = hwspecs.load(spec_id)
    for field in ("memory_bandwidth_bytes_per_s", "bandwidth_bytes_per_s", "seq_read_bytes_per_s",
                  "seq_write_bytes_per_s", "scaleup_bandwidth_bytes_per_s", "flash_channel_bytes_per_s"):
        value = getattr(spec, field, None)
        if value is not None:
            assert _is_round_decimal(value, 1e9), f"{spec_id}.{field} = {value} is not a decimal GB/s figure"


@pytest.mark.parametrize("gpu_id", GPU_IDS)
def test_gpu_capacities_follow_the_gib_rule(gpu_id):
    """Documented rule: marketing 'NN GB' of GPU memory is NN GiB; L2 'NN MB' is NN MiB."""
    hw = hwspecs.load(gpu_id)
    assert isinstance(hw.memory_bytes, int) and hw.memory_bytes % GIB == 0
    assert isinstance(hw.l2_bytes, int) and hw.l2_bytes % 2**20 == 0
    marketing_gb = re.search(r"(\d+)gb$", gpu_id)
    if marketing_gb:
        assert hw.memory_bytes == int(marketing_gb.group(1)) * GIB
    assert "GiB" in (DEVICES_DIR / f"{gpu_id}.yaml").read_text()  # the rule is stated in the file


@pytest.mark.parametrize("storage_id", STORAGE_IDS)
def test_ssd_capacities_are_decimal_bytes(storage_id):
    drive = hwspecs.load(storage_id)
    assert isinstance(drive.capacity_bytes, int)
    assert drive.capacity_bytes % 10**10 == 0  # vendors' TB = 1e12 bytes (3.84 TB = 3.84e12)


def test_unverified_values_say_so():
    assert "[unverified" in hwspecs.load("h200-sxm-141gb").sources["l2_bytes"]
    assert "[unverified" in hwspecs.load("l40s").sources["l2_bytes"]
    instinfer = hwspecs.load("csd-instinfer")
    for field in ("n_flash_channels", "flash_channel_bytes_per_s", "compute_flops_per_s"):
        assert "[unverified" in instinfer.sources[field]


# --------------------------------------------------------------------------------------------------
# Bad input: a SpecError (a ValueError) that names the field
# --------------------------------------------------------------------------------------------------

H100_TEXT = (DEVICES_DIR / "h100-sxm5-80gb.yaml").read_text()
A6000_TEXT = (DEVICES_DIR / "rtx-a6000.yaml").read_text()


def _user_file(tmp_path: Path, text: str, name: str = "my-gpu.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _drop_source(text: str, key: str) -> str:
    out, n = re.subn(rf"^  {re.escape(key)}: .*\n", "", text, flags=re.M)
    assert n == 1
    return out


def test_spec_error_is_a_value_error():
    assert issubclass(SpecError, ValueError)


def test_user_file_loads_by_path(tmp_path):
    text = H100_TEXT.replace("id: h100-sxm5-80gb", "id: my-h100").replace("tdp_w: 700", "tdp_w: 500")
    path = _user_file(tmp_path, text)
    for arg in (path, str(path)):
        hw = hwspecs.load(arg)
        assert hw.id == "my-h100" and hw.tdp_w == 500
        assert hw.peak("bf16") == hwspecs.load("h100-sxm5-80gb").peak("bf16")
    assert hwspecs.resolve_hardware(str(path)).id == "my-h100"


def test_e_notation_integers_load(tmp_path):
    """YAML 1.2 e-notation works for int fields too (PyYAML alone reads '80e9' as a string)."""
    text = H100_TEXT.replace("memory_bytes: 85899345920", "memory_bytes: 80e9")
    hw = hwspecs.load(_user_file(tmp_path, text))
    assert hw.memory_bytes == 80_000_000_000 and isinstance(hw.memory_bytes, int)


def test_malformed_yaml(tmp_path):
    path = _user_file(tmp_path, H100_TEXT.replace("n_sms: 132", "n_sms: [132"))
    with pytest.raises(SpecError, match="malformed YAML"):
        hwspecs.load(path)


def test_not_a_mapping(tmp_path):
    with pytest.raises(SpecError, match="expected a mapping"):
        hwspecs.load(_user_file(tmp_path, "- just\n- a list\n"))


def test_extra_key(tmp_path):
    path = _user_file(tmp_path, H100_TEXT.replace("tdp_w: 700", "tdp_w: 700\ntdp_watts: 700"))
    with pytest.raises(SpecError, match=r"tdp_watts: Extra inputs are not permitted"):
        hwspecs.load(path)


def test_misspelled_key(tmp_path):
    path = _user_file(tmp_path, H100_TEXT.replace("memory_bandwidth_bytes_per_s: 3.35e12",
                                                  "memory_bandwith_bytes_per_s: 3.35e12"))
    with pytest.raises(SpecError) as err:
        hwspecs.load(path)
    assert "memory_bandwith_bytes_per_s: Extra inputs are not permitted" in str(err.value)
    assert "memory_bandwidth_bytes_per_s: Field required" in str(err.value)
    assert str(path) in str(err.value)


def test_missing_source(tmp_path):
    path = _user_file(tmp_path, _drop_source(H100_TEXT, "tdp_w"))
    with pytest.raises(SpecError, match=r"field 'tdp_w' has no entry in 'sources'"):
        hwspecs.load(path)


def test_missing_per_dtype_peak_source(tmp_path):
    path = _user_file(tmp_path, _drop_source(A6000_TEXT, "peak_flops_per_s.int8"))
    with pytest.raises(SpecError, match=r"'peak_flops_per_s.int8' has no entry in 'sources'"):
        hwspecs.load(path)


@pytest.mark.parametrize(("old", "new", "field"), [
    ("tdp_w: 700", "tdp_w: -700", "tdp_w"),
    ("n_sms: 132", "n_sms: 0", "n_sms"),
    ("memory_bandwidth_bytes_per_s: 3.35e12", "memory_bandwidth_bytes_per_s: .nan",
     "memory_bandwidth_bytes_per_s"),
    ("boost_clock_hz: 1.98e9", "boost_clock_hz: .inf", "boost_clock_hz"),
    ("  bf16: 989.4e12", "  bf16: .nan", "peak_flops_per_s"),
    ("  bf16: 989.4e12", "  bf16: -989.4e12", "peak_flops_per_s"),
])
def test_negative_zero_nan_inf_numbers(tmp_path, old, new, field):
    assert old in H100_TEXT
    path = _user_file(tmp_path, H100_TEXT.replace(old, new))
    with pytest.raises(SpecError, match=re.escape(field)):
        hwspecs.load(path)


def test_nan_link_latency(tmp_path):
    text = (DEVICES_DIR / "nvlink4.yaml").read_text().replace("latency_s: 2.0e-6", "latency_s: .nan")
    with pytest.raises(SpecError, match="latency_s"):
        hwspecs.load(_user_file(tmp_path, text, "link.yaml"))


def test_unknown_id_lists_known_ids():
    with pytest.raises(SpecError) as err:
        hwspecs.load("h100-sxm6-80gb")
    message = str(err.value)
    assert "unknown hardware id 'h100-sxm6-80gb'" in message
    assert "h100-sxm5-80gb" in message and "a100-sxm4-80gb" in message


def test_unknown_kind(tmp_path):
    path = _user_file(tmp_path, H100_TEXT.replace("kind: gpu", "kind: gpuu"))
    with pytest.raises(SpecError, match=r"field 'kind' must be one of .*got 'gpuu'"):
        hwspecs.load(path)


def test_wrong_kind_where_a_gpu_is_needed():
    with pytest.raises(SpecError, match=r"'nvlink4' is a link, not a gpu; gpu ids: .*h100-sxm5-80gb"):
        hwspecs.resolve_hardware("nvlink4")
    with pytest.raises(SpecError, match="hardware must be an id string or a Hardware"):
        hwspecs.resolve_hardware(42)


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec file"):
        hwspecs.load(tmp_path / "nope.yaml")


def test_csd_requires_its_fields(tmp_path):
    text = _drop_source((DEVICES_DIR / "csd-instinfer.yaml").read_text(), "compute_flops_per_s")
    text = text.replace("compute_flops_per_s: 650e9\n", "")
    with pytest.raises(SpecError, match="a csd needs compute_flops_per_s"):
        hwspecs.load(_user_file(tmp_path, text, "csd.yaml"))


def test_specs_are_frozen():
    hw = hwspecs.load("h100-sxm5-80gb")
    with pytest.raises(Exception):
        hw.tdp_w = 1.0


# --------------------------------------------------------------------------------------------------
# Calibration files: load_calibration / write_calibration
# --------------------------------------------------------------------------------------------------

def _calibration(**vendor) -> Calibration:
    """A profile whose vendor section has the given dotted fields ("gemm.efficiency_frac")."""
    prm = EffectParams().with_values({k.replace("__", "."): v for k, v in vendor.items()})
    return Calibration.from_params("test-gpu", prm, EffectParams(impl="triton"))


def test_load_calibration_missing_id_is_none():
    assert hwspecs.load_calibration("no-such-hardware-id") is None


def test_load_calibration_missing_path_is_an_error(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        hwspecs.load_calibration(tmp_path / "absent.yaml")


def test_load_calibration_malformed_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("hardware_id: x\nvendor: {gemm_efficiency_frac: [0.8\n")
    with pytest.raises(SpecError, match="malformed YAML"):
        hwspecs.load_calibration(path)


def test_load_calibration_invalid_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("hardware_id: x\nvendor:\n  gemm:\n    efficiency_frac: 5.0\n    eficiency: 0.8\n")
    with pytest.raises(SpecError) as err:
        hwspecs.load_calibration(path)
    assert "vendor.gemm.efficiency_frac" in str(err.value)
    assert "vendor.gemm.eficiency: Extra inputs are not permitted" in str(err.value)


def test_flat_calibration_with_unknown_field_names_it(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("hardware_id: x\nvendor:\n  gemm_efficiency_frac: 0.8\n  gemm_eficiency: 0.8\n")
    with pytest.raises(SpecError, match=r"vendor\.gemm_eficiency"), pytest.warns(UserWarning, match="flat"):
        hwspecs.load_calibration(path)


def test_flat_calibration_migrates_to_the_same_numbers():
    # tests/data/calibration_flat_h100.yaml is the H100 profile as committed in the flat format (815ecbc);
    # the grouped profile committed after it was written from the same numbers.
    flat = Path(__file__).parent / "data" / "calibration_flat_h100.yaml"
    with pytest.warns(UserWarning, match="flat"):
        old = hwspecs.load_calibration(flat)
    raw = yaml.safe_load(flat.read_text())
    for impl in ("vendor", "triton"):
        prm = old.params(impl)
        assert prm.gemm.efficiency_frac == raw[impl]["gemm_efficiency_frac"]
        assert prm.gemm.tile == (raw[impl]["gemm_tile_m"], raw[impl]["gemm_tile_n"])
        assert prm.attention_decode.ctas_per_sm == raw[impl]["attention_decode_ctas_per_sm"]
        assert prm.launch.graph_gap_s == raw[impl]["graph_launch_overhead_s"]
        assert prm.host.eager_launch_overhead_s == raw["vendor"]["eager_launch_overhead_s"]
    # every old field found a home: the grouped profile holds each old value somewhere
    grouped = {v for impl in ("vendor", "triton") for g in old.params(impl).kernel_profile() for v in dict(g[1]).values()}
    grouped |= set(dict(old.host).values()) | set(dict(old.power).values())
    gone = ("kernel_family", "gemm_tile_m", "gemm_tile_n", "sustained_clock_frac", "power_throttle_time_constant_s")
    lost = {k for k, v in raw["vendor"].items() if k not in gone and v not in grouped}
    assert not lost


def test_write_then_load_calibration_round_trips(tmp_path):
    cal = _calibration(gemm__efficiency_frac=0.71, memory__latency_s=3.5e-6)
    path = hwspecs.write_calibration(cal, tmp_path / "cal.yaml")
    assert path == tmp_path / "cal.yaml"
    assert hwspecs.load_calibration(path) == cal
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.yaml"]  # no temp files left


def test_write_calibration_invalid_leaves_existing_file_untouched(tmp_path):
    path = tmp_path / "cal.yaml"
    hwspecs.write_calibration(_calibration(gemm__efficiency_frac=0.7), path)
    before = path.read_bytes()
    # model_copy(update=...) skips validation, as a buggy fitter or a hand-edited object could.
    good = hwspecs.load_calibration(path)
    bad = good.model_copy(update={"vendor": good.vendor.model_copy(
        update={"gemm": good.vendor.gemm.model_copy(update={"efficiency_frac": -1.0})})})
    with pytest.raises(SpecError, match=r"vendor\.gemm\.efficiency_frac"):
        hwspecs.write_calibration(bad, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.yaml"]


def test_write_calibration_failed_rename_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "cal.yaml"
    hwspecs.write_calibration(_calibration(gemm__efficiency_frac=0.7), path)
    before = path.read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("hwspecs.loader.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        hwspecs.write_calibration(_calibration(gemm__efficiency_frac=0.9), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.yaml"]


def test_written_calibration_is_plain_yaml(tmp_path):
    path = hwspecs.write_calibration(_calibration(), tmp_path / "cal.yaml")
    data = yaml.safe_load(path.read_text())
    assert data["hardware_id"] == "test-gpu"
    assert data["vendor"]["gemm"]["efficiency_frac"] == EffectParams().gemm.efficiency_frac
    assert data["vendor"]["gemm"]["tile"] == list(EffectParams().gemm.tile)
    assert set(data) == {"hardware_id", "provenance", "host", "power", "vendor", "triton"}
