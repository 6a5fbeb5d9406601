"""The measurement environment: which GPU is attached, which software drives it, which hwperf id it is.

Everything the measurements depend on is recorded next to them (``environment.json``), so a CSV can
always be traced back to a GPU, a driver, a torch/triton build and a git commit.

Errors are specific and end-user readable (the CLI prints them without a traceback):

- :class:`NoGPUError` — torch sees no CUDA device (CPU-only build, no driver, no GPU).
- :class:`HardwareMismatchError` — ``--hardware ID`` names a device other than the attached one, or
  an id hwperf does not know. Measurements are filed under the hardware id, so measuring one GPU
  under another's id would silently corrupt the calibration data.

NVML (``nvidia-ml-py``) is optional at run time: without it (``pynvml.nvmlInit`` raises
``NVMLError`` when the library or driver is missing) timings still work and the power, clock and
energy fields are left empty; the reason is kept in ``Environment.nvml_error``.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Full-match patterns over the normalised (lower-case, single-spaced) CUDA device name, first match
# wins. Exact names as the driver reports them; variants that differ in memory or form factor
# (H100 NVL, H200 NVL, A100 40GB) deliberately do not match, because their specs differ.
GPU_NAME_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"nvidia h100 80gb hbm3", "h100-sxm5-80gb"),
    (r"nvidia h100 pcie", "h100-pcie-80gb"),
    (r"nvidia h200", "h200-sxm-141gb"),
    (r"nvidia a100-sxm4-80gb", "a100-sxm4-80gb"),
    (r"nvidia geforce rtx 4090", "rtx-4090"),
    (r"nvidia l40s", "l40s"),
)
KNOWN_HARDWARE_IDS: tuple[str, ...] = tuple(hw_id for _, hw_id in GPU_NAME_PATTERNS)


class NoGPUError(RuntimeError, ValueError):
    """No CUDA GPU is usable from this Python process.

    Also a ValueError so CLIs that turn ValueError into a one-line message (hwperf's ``friendly``)
    print it without a traceback.
    """


class HardwareMismatchError(ValueError):
    """The requested ``--hardware`` id is unknown or does not match the attached GPU."""


def normalise_gpu_name(name: str) -> str:
    return " ".join(name.lower().split())


def hardware_id_for_gpu_name(name: str) -> str | None:
    """hwperf hardware id for a CUDA device name (``torch.cuda.get_device_name``), or None if unknown.

    >>> hardware_id_for_gpu_name("NVIDIA H100 80GB HBM3")
    'h100-sxm5-80gb'
    """
    norm = normalise_gpu_name(name)
    for pattern, hw_id in GPU_NAME_PATTERNS:
        if re.fullmatch(pattern, norm):
            return hw_id
    return None


def fallback_hardware_id(name: str) -> str:
    """Id under which an unmapped GPU's measurements are filed: 'unknown-' + a slug of its name."""
    return "unknown-" + re.sub(r"[^a-z0-9]+", "-", normalise_gpu_name(name)).strip("-")


def check_requested_hardware(requested: str | None, gpu_name: str) -> str:
    """Return the hardware id to file measurements under; refuse a request that does not fit the GPU.

    ``requested`` None means "whatever is attached". An unmapped GPU is accepted only without a
    request (it is filed under :func:`fallback_hardware_id`).
    """
    detected = hardware_id_for_gpu_name(gpu_name)
    if requested is None:
        return detected or fallback_hardware_id(gpu_name)
    if requested not in KNOWN_HARDWARE_IDS:
        raise HardwareMismatchError(
            f"--hardware {requested!r} is not a hardware id hwperf can validate; "
            f"known ids: {', '.join(KNOWN_HARDWARE_IDS)}"
        )
    if requested != detected:
        raise HardwareMismatchError(
            f"--hardware {requested!r} was requested but the attached GPU is {gpu_name!r} "
            f"({detected or 'not a known hwperf device'}); measurements are filed under the "
            "hardware id, so run on that hardware or leave out --hardware"
        )
    return requested


def git_sha() -> str:
    """Commit of the checkout: ``git rev-parse HEAD``, else $HWPERF_GIT_SHA, else 'unknown'.

    On the device machine the tree is copied without (or with a different) .git, so the caller sets
    HWPERF_GIT_SHA from the machine that sent it; the variable wins when both exist.
    """
    env_sha = os.environ.get("HWPERF_GIT_SHA", "").strip()
    if env_sha:
        return env_sha
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else "unknown"


@dataclasses.dataclass(frozen=True)
class Environment:
    """Static facts about the attached GPU and software stack (SI units)."""

    gpu_name: str
    hardware_id: str
    compute_capability: str
    n_sms: int
    memory_bytes: int
    l2_bytes: int
    driver_version: str
    cuda_driver_version: str
    cuda_runtime_version: str
    torch_version: str
    triton_version: str
    python_version: str
    platform: str
    cpu_model: str  # the host: eager launch cost and pageable copies are host-bound
    n_cpus: int
    load_avg_1min: float | None  # host load when the run started (a busy host slows eager timings)
    git_sha: str
    power_limit_w: float | None
    max_sm_clock_hz: float | None
    max_memory_clock_hz: float | None
    nvml_error: str | None
    timestamp_utc: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Nvml:
    """Thin NVML reader for one device; every read returns None when NVML is unavailable."""

    def __init__(self, torch_device_index: int = 0):
        self.handle = None
        self.error: str | None = None
        try:
            import pynvml
        except ImportError as exc:  # nvidia-ml-py is a declared dependency, but be explicit
            self.error = f"nvidia-ml-py not importable: {exc}"
            return
        self.pynvml = pynvml
        try:
            pynvml.nvmlInit()
            self.handle = self._handle_for(torch_device_index)
        except pynvml.NVMLError as exc:
            self.error = f"NVML unavailable: {exc}"
            self.handle = None

    def _handle_for(self, index: int):
        """NVML handle of torch's device ``index``, matched by UUID (CUDA_VISIBLE_DEVICES renumbers)."""
        pynvml = self.pynvml
        try:
            import torch

            uuid = str(torch.cuda.get_device_properties(index).uuid)
            return pynvml.nvmlDeviceGetHandleByUUID("GPU-" + uuid)
        except Exception:  # older torch without .uuid, or a MIG/UUID format mismatch
            return pynvml.nvmlDeviceGetHandleByIndex(index)

    @property
    def available(self) -> bool:
        return self.handle is not None

    def _read(self, fn, *args):
        if self.handle is None:
            return None
        try:
            return fn(self.handle, *args)
        except self.pynvml.NVMLError:
            return None

    def sm_clock_hz(self) -> float | None:
        mhz = self._read(self.pynvml.nvmlDeviceGetClockInfo, self.pynvml.NVML_CLOCK_SM)
        return None if mhz is None else mhz * 1e6

    def power_w(self) -> float | None:
        """NVML board power; on H100/H200 this is a trailing ~1 s average."""
        mw = self._read(self.pynvml.nvmlDeviceGetPowerUsage)
        return None if mw is None else mw * 1e-3

    def instant_power_w(self) -> float | None:
        """Instantaneous board power (NVML field POWER_INSTANT), None where the driver lacks it."""
        if self.handle is None or not hasattr(self.pynvml, "NVML_FI_DEV_POWER_INSTANT"):
            return None
        try:
            (value,) = self.pynvml.nvmlDeviceGetFieldValues(
                self.handle, [self.pynvml.NVML_FI_DEV_POWER_INSTANT]
            )
        except self.pynvml.NVMLError:
            return None
        if getattr(value, "nvmlReturn", 1) != 0:
            return None
        return value.value.uiVal * 1e-3  # mW

    def energy_j(self) -> float | None:
        """Total energy since driver load (NVML counter in mJ), None where unsupported (pre-Volta)."""
        mj = self._read(self.pynvml.nvmlDeviceGetTotalEnergyConsumption)
        return None if mj is None else mj * 1e-3

    def power_limit_w(self) -> float | None:
        mw = self._read(self.pynvml.nvmlDeviceGetEnforcedPowerLimit)
        return None if mw is None else mw * 1e-3

    def max_clock_hz(self, which: str = "sm") -> float | None:
        clock = self.pynvml.NVML_CLOCK_SM if which == "sm" else self.pynvml.NVML_CLOCK_MEM
        mhz = self._read(self.pynvml.nvmlDeviceGetMaxClockInfo, clock)
        return None if mhz is None else mhz * 1e6

    def driver_version(self) -> str:
        if self.handle is None:
            return "unknown"
        try:
            return _str(self.pynvml.nvmlSystemGetDriverVersion())
        except self.pynvml.NVMLError:
            return "unknown"

    def cuda_driver_version(self) -> str:
        if self.handle is None:
            return "unknown"
        try:
            v = self.pynvml.nvmlSystemGetCudaDriverVersion()  # e.g. 13000
        except self.pynvml.NVMLError:
            return "unknown"
        return f"{v // 1000}.{(v % 1000) // 10}"


def cpu_model() -> str:
    """The host CPU's model name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def require_cuda():
    """Import torch and check a CUDA device is visible; raise :class:`NoGPUError` otherwise."""
    try:
        import torch
    except ImportError as exc:
        raise NoGPUError(f"torch is not importable ({exc}); hwperf validate needs torch with CUDA") from None
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (CPU-only build)"
        raise NoGPUError(
            f"no CUDA GPU is visible to torch {torch.__version__} (CUDA build: {build}); "
            "hwperf validate must run on a machine with an NVIDIA GPU and driver"
        )
    return torch


def detect_environment(requested_hardware: str | None = None, nvml: Nvml | None = None) -> Environment:
    """Describe the attached GPU (device 0) and software stack.

    Raises :class:`NoGPUError` without CUDA and :class:`HardwareMismatchError` when
    ``requested_hardware`` does not fit the attached GPU.
    """
    torch = require_cuda()
    props = torch.cuda.get_device_properties(0)
    gpu_name = props.name
    hardware_id = check_requested_hardware(requested_hardware, gpu_name)
    nvml = nvml or Nvml(0)
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "not installed"
    return Environment(
        gpu_name=gpu_name,
        hardware_id=hardware_id,
        compute_capability=f"{props.major}.{props.minor}",
        n_sms=int(props.multi_processor_count),
        memory_bytes=int(props.total_memory),
        l2_bytes=int(getattr(props, "L2_cache_size", 0) or 0),
        driver_version=nvml.driver_version(),
        cuda_driver_version=nvml.cuda_driver_version(),
        cuda_runtime_version=str(torch.version.cuda),
        torch_version=torch.__version__,
        triton_version=triton_version,
        python_version=platform.python_version(),
        platform=platform.platform(),
        cpu_model=cpu_model(),
        n_cpus=os.cpu_count() or 0,
        load_avg_1min=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        git_sha=git_sha(),
        power_limit_w=nvml.power_limit_w(),
        max_sm_clock_hz=nvml.max_clock_hz("sm"),
        max_memory_clock_hz=nvml.max_clock_hz("mem"),
        nvml_error=nvml.error,
        timestamp_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
