"""Choosing effect parameters for a device: its own calibration, else a transfer prior, else defaults.

Transfer rule (for hardware with no committed calibration): efficiencies are properties of the
architecture and its libraries more than of one SKU, so a device borrows the calibrated parameters of
the devices of its architecture family (``Hardware.architecture``); with several, each parameter is the
mean over them (tiles: the most common value). Ceilings stay relative to the device's OWN
datasheet peaks, so an H200 inherits H100's fractions but keeps its 4.8 TB/s. No same-family
calibration → the public-measurement defaults of ``EffectParams``. Host-side parameters (eager launch
overhead, pageable copy rates) come along, but they describe the host the calibrated GPU sat in; the
same GPU model re-measured disagrees by 10-25% on them (README, "How accurate is it?").
"""

from __future__ import annotations

from collections import Counter

from hwspecs.calibration import DEFAULT_CALIBRATION, Calibration, KernelProfile, check_device
from hwspecs.loader import CALIBRATION_DIR, available, load, load_calibration
from hwspecs.schema import Hardware


def family_calibrations(architecture: str, exclude: str | None = None) -> list[Calibration]:
    cals = []
    for path in sorted(CALIBRATION_DIR.glob("*.yaml")):
        hw_id = path.stem
        if hw_id == exclude or hw_id not in available():
            continue
        spec = load(hw_id)
        if isinstance(spec, Hardware) and spec.architecture == architecture:
            cal = load_calibration(hw_id)
            if cal is not None:
                cals.append(cal)
    return cals


def _mean_group(groups: list):
    """Per field: the mean of floats; the most common value of anything else (tiles)."""
    cls = type(groups[0])
    out = {}
    for name, info in cls.model_fields.items():
        values = [getattr(g, name) for g in groups]
        out[name] = sum(values) / len(values) if info.annotation is float else Counter(values).most_common(1)[0][0]
    return cls(**out)


def _mean_sections(sections: list) -> dict:
    """Group by group mean of several KernelProfiles (or of the host / power groups)."""
    return {name: _mean_group([getattr(s, name) for s in sections]) for name in type(sections[0]).model_fields}


def transfer_calibration(hw: Hardware, exclude_self: bool = True) -> Calibration:
    """Prior for ``hw`` from the calibrated devices of its architecture family (see module docstring)."""
    cals = family_calibrations(hw.architecture, exclude=hw.id if exclude_self else None)
    if not cals:
        return DEFAULT_CALIBRATION
    return Calibration(hardware_id=hw.id, host=_mean_group([c.host for c in cals]),
                       power=_mean_group([c.power for c in cals]),
                       vendor=KernelProfile(**_mean_sections([c.vendor for c in cals])),
                       triton=KernelProfile(**_mean_sections([c.triton for c in cals])))


def calibration_for(hw: Hardware, calibration="auto") -> Calibration:
    """Resolve the ``calibration`` argument of the simulator API.

    "auto": the committed profile for hw.id, else the architecture-family transfer prior, else defaults.
    None: datasheet peaks with the documented public-measurement defaults (no fitted profile).
    "transfer": force the family prior even when hw has its own profile (to score the transfer rule).
    "transfer:<id or .yaml path>": another device's profile applied to hw, asked for explicitly.
    A Calibration, or a path to a calibration YAML, is used as given — if it was fitted on hw (or is the
    public defaults); one for another device is refused (``check_device``).
    """
    if calibration is None:
        return DEFAULT_CALIBRATION
    if isinstance(calibration, Calibration):
        return check_device(calibration, hw.id)
    if calibration == "auto":
        own = load_calibration(hw.id)
        return check_device(own, hw.id) if own is not None else transfer_calibration(hw)
    if calibration == "transfer":
        return transfer_calibration(hw)
    if isinstance(calibration, str) and calibration.startswith("transfer:"):
        src = load_calibration(calibration.removeprefix("transfer:"))
        if src is None:
            raise ValueError(f"calibration {calibration!r}: no committed calibration for that id")
        return src.model_copy(update={"hardware_id": hw.id, "provenance": None})  # labelled "transfer"
    if isinstance(calibration, str) and calibration.endswith((".yaml", ".yml")):
        return check_device(load_calibration(calibration), hw.id)
    raise ValueError(f"calibration must be 'auto', 'transfer', 'transfer:<id>', None, a Calibration or a .yaml "
                     f"path, got {calibration!r}")
