"""Hardware descriptions as validated YAML: ``hwspecs.load("h100-sxm5-80gb")``, ``hwspecs.available()``.

Files live in ``hwspecs/devices/<id>.yaml`` (one spec each: gpu, link, host_memory, ssd, csd or system);
``load`` also takes a path to a user's own YAML file. Calibration profiles live in
``hwspecs/calibration/<hardware-id>.yaml`` and load with ``load_calibration``.
"""

from __future__ import annotations

from hwspecs.calibration import DEFAULT_CALIBRATION, IMPLS, Calibration, EffectParams, Provenance
from hwspecs.loader import (
    SpecError,
    available,
    calibration_path,
    load,
    load_calibration,
    load_yaml_file,
    resolve_hardware,
    UnsafeWriteError,
    check_target,
    write_all,
    write_atomic,
    write_calibration,
)
from hwspecs.transfer import calibration_for, transfer_calibration
from hwspecs.schema import DTYPE_BYTES, DTYPES, Hardware, HostMemory, Link, Storage, System

__all__ = [
    "DEFAULT_CALIBRATION", "DTYPES", "DTYPE_BYTES", "IMPLS", "Calibration", "EffectParams", "Hardware",
    "HostMemory", "Link", "Provenance", "SpecError", "Storage", "System", "available", "calibration_for", "calibration_path", "transfer_calibration",
    "load", "load_calibration", "load_yaml_file", "resolve_hardware", "write_atomic", "write_calibration",
    "UnsafeWriteError", "check_target", "write_all",
]
