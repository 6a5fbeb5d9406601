"""Loading and writing spec files. The only file I/O of hwspecs; everything else is pure data."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from hwspecs.atomic import UnsafeWriteError, check_target, write_all, write_atomic  # noqa: F401 - re-exported
from hwspecs.calibration import Calibration, check_whole
from hwspecs.schema import Hardware, HostMemory, Link, Storage, System

DEVICES_DIR = Path(__file__).parent / "devices"
CALIBRATION_DIR = Path(__file__).parent / "calibration"

_KINDS = {"gpu": Hardware, "link": Link, "host_memory": HostMemory, "ssd": Storage, "csd": Storage,
          "system": System}
AnySpec = Hardware | Link | HostMemory | Storage | System


class SpecError(ValueError):
    """A spec id, file or field is wrong. The message names the field and what is allowed."""


class _SpecYamlLoader(yaml.SafeLoader):
    """SafeLoader that reads YAML 1.2 floats. PyYAML follows YAML 1.1, where ``3.35e12`` (no signed
    exponent) and ``450e9`` (no dot) are *strings*: float fields only survived by pydantic's string
    coercion, and an int field written in e-notation (``capacity_bytes: 3.84e12``) was rejected."""


_SpecYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _parse_yaml(text: str):
    try:
        return yaml.load(text, Loader=_SpecYamlLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:  # a 100k-deep nesting: PyYAML's composer recurses per level
        raise yaml.YAMLError("nested too deeply (a spec is a flat mapping)") from None


def _format_validation(err: ValidationError, where: str) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        parts.append(f"{loc}: {e['msg']}")
    return f"{where}: " + "; ".join(parts)


def is_yaml_path(text: str) -> bool:
    """A file path rather than a built-in id: ends in .yaml/.yml or names a folder."""
    return text.endswith((".yaml", ".yml")) or os.sep in text


def read_yaml_mapping(path: str | Path, error: type[Exception], what: str) -> dict:
    """The mapping in one YAML file, or ``error`` naming the file: unreadable, malformed, or not a mapping.
    Shared by hardware specs, models (workloads.loader) and engine profiles (workloads.engine_profile)."""
    path = Path(path)
    try:
        data = _parse_yaml(path.read_text())
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise error(f"{path}: malformed YAML: {e}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    return data


def validate_spec(cls, data: dict, path: str | Path, error: type[Exception]):
    """``cls.model_validate(data)``, a ValidationError becoming ``error`` naming the file and the fields."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise error(_format_validation(e, str(path))) from None


def load_yaml_file(path: str | Path) -> AnySpec:
    """Parse and validate one spec file. Raises SpecError naming the file and the bad field."""
    data = read_yaml_mapping(path, SpecError, "spec file")
    kind = data.get("kind")
    if kind not in _KINDS:
        raise SpecError(f"{path}: field 'kind' must be one of {', '.join(_KINDS)}, got {kind!r}")
    return validate_spec(_KINDS[kind], data, path, SpecError)


@lru_cache(maxsize=None)
def _builtin(spec_id: str) -> AnySpec:
    return load_yaml_file(DEVICES_DIR / f"{spec_id}.yaml")


def available(kind: str | None = None) -> list[str]:
    """Ids of the built-in specs, optionally only one kind ("gpu", "link", "host_memory", "ssd", "csd", "system")."""
    ids = sorted(_builtin_ids())
    if kind is None:
        return ids
    if kind not in _KINDS:
        raise SpecError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    return [i for i in ids if _builtin(i).kind == kind]


def load(id_or_path: str | os.PathLike) -> AnySpec:
    """A built-in spec by id (``"h100-sxm5-80gb"``) or a user's YAML file by path."""
    text = str(id_or_path)
    if is_yaml_path(text):
        return load_yaml_file(text)
    if text not in _builtin_ids() and not (DEVICES_DIR / f"{text}.yaml").is_file():
        raise SpecError(f"unknown hardware id {text!r}; known ids: {', '.join(available())}")
    return _builtin(text)


@lru_cache(maxsize=1)
def _builtin_ids() -> frozenset[str]:
    """The built-in spec ids, read once: a predict resolves ~5 ids, and a stat per id cost ~40 µs."""
    return frozenset(p.stem for p in DEVICES_DIR.glob("*.yaml"))


def _check_links(hw: Hardware) -> Hardware:
    """``host_link`` / ``scaleup_link`` must name Link specs (a GPU id there crashed the model later)."""
    for name in ("host_link", "scaleup_link"):
        link_id = getattr(hw, name)
        if link_id is None:
            continue
        spec = load(link_id)
        if not isinstance(spec, Link):
            raise SpecError(f"{hw.id}: field '{name}' must name a link spec ({', '.join(available('link'))}), "
                            f"got {link_id!r}, a {spec.kind}")
    return hw


def resolve_hardware(hardware: str | Hardware) -> Hardware:
    """Accept a Hardware or a GPU id/path; a System resolves to its accelerator."""
    if isinstance(hardware, Hardware):
        return _check_links(hardware)
    if isinstance(hardware, System):
        return resolve_hardware(hardware.accelerator)
    if not isinstance(hardware, (str, os.PathLike)):
        raise SpecError(f"hardware must be an id string or a Hardware, got {type(hardware).__name__}")
    spec = load(hardware)
    if isinstance(spec, System):
        return resolve_hardware(spec.accelerator)
    if not isinstance(spec, Hardware):
        raise SpecError(f"hardware {str(hardware)!r} is a {spec.kind}, not a gpu; gpu ids: "
                        f"{', '.join(available('gpu'))}")
    return _check_links(spec)


def calibration_path(hardware_id: str) -> Path:
    return CALIBRATION_DIR / f"{hardware_id}.yaml"


def load_calibration(hardware_id_or_path: str | os.PathLike) -> Calibration | None:
    """The committed calibration for a hardware id (None when there is none), or a calibration file by path."""
    text = str(hardware_id_or_path)
    path = Path(text) if text.endswith((".yaml", ".yml")) else calibration_path(text)
    if not path.is_file():
        if path == Path(text):
            raise SpecError(f"calibration file {path} does not exist")
        return None
    return _load_calibration_file(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=64)
def _load_calibration_file(path: str, _mtime_ns: int) -> Calibration:
    try:
        data = _parse_yaml(Path(path).read_text())
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: malformed YAML: {e}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of fields")
    try:
        cal = Calibration.model_validate({k: v for k, v in data.items() if k != "partial"})
        check_whole(data, path)  # after validation: a bad value is named before a missing one
    except ValidationError as e:
        raise SpecError(_format_validation(e, path)) from None
    except ValueError as e:
        raise SpecError(str(e)) from None
    return cal


def write_calibration(calibration: Calibration, path: str | os.PathLike | None = None) -> Path:
    """Validate and write atomically (temp file in the same folder + rename): never half-written."""
    path = Path(path) if path is not None else calibration_path(calibration.hardware_id)
    try:  # round-trip check before touching disk (catches values set without validation)
        Calibration.model_validate(calibration.model_dump())
    except ValidationError as e:
        raise SpecError(_format_validation(e, f"calibration for {path}")) from None
    text = yaml.safe_dump(calibration.model_dump(mode="json"), sort_keys=False)
    return write_atomic(path, lambda fh: fh.write(text))
