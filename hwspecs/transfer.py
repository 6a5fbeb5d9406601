"""Choosing effect parameters for a device: its own calibration, else a transfer prior, else defaults.

Transfer rule (for hardware with no committed calibration): efficiencies are properties of the
architecture and its libraries more than of one SKU, so a device borrows the calibrated parameters of
the devices of its architecture family (``Hardware.architecture``); with several, each parameter is the
mean over them (tile sizes and kernel families: the most common value). Ceilings stay relative to the device's OWN
datasheet peaks, so an H200 inherits H100's fractions but keeps its 4.8 TB/s. No same-family
calibration → the public-measurement defaults of ``EffectParams``. Host-side parameters (eager launch
overhead, pageable copy rates) come along, but they describe the host the calibrated GPU sat in; the
same GPU model re-measured disagrees by 10-25% on them (README, "How accurate is it?").
"""

from __future__ import annotations

from collections import Counter

from hwspecs.calibration import DEFAULT_CALIBRATION, Calibration, EffectParams
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


def _mean_params(params: list[EffectParams]) -> EffectParams:
    out = {}
    for name, info in EffectParams.model_fields.items():
        values = [getattr(p, name) for p in params]
        if info.annotation is float:
            out[name] = sum(values) / len(values)
        else:  # tile sizes, kernel families: the most common value
            out[name] = Counter(values).most_common(1)[0][0]
    return EffectParams(**out)


def transfer_calibration(hw: Hardware, exclude_self: bool = True) -> Calibration:
    """Prior for ``hw`` from the calibrated devices of its architecture family (see module docstring)."""
    cals = family_calibrations(hw.architecture, exclude=hw.id if exclude_self else None)
    if not cals:
        return DEFAULT_CALIBRATION
    return Calibration(hardware_id=hw.id,
                       vendor=_mean_params([c.vendor for c in cals]),
                       triton=_mean_params([c.triton for c in cals]))


def calibration_for(hw: Hardware, calibration="auto") -> Calibration:
    """Resolve the ``calibration`` argument of the simulator API.

    "auto": the committed profile for hw.id, else the architecture-family transfer prior, else defaults.
    None: datasheet peaks with the documented public-measurement defaults (no fitted profile).
    "transfer": force the family prior even when hw has its own profile (to score the transfer rule).
    A Calibration, or a path to a calibration YAML, is used as given.
    """
    if calibration is None:
        return DEFAULT_CALIBRATION
    if isinstance(calibration, Calibration):
        return calibration
    if calibration == "auto":
        return load_calibration(hw.id) or transfer_calibration(hw)
    if calibration == "transfer":
        return transfer_calibration(hw)
    if isinstance(calibration, str) and calibration.endswith((".yaml", ".yml")):
        return load_calibration(calibration)
    raise ValueError(f"calibration must be 'auto', 'transfer', None, a Calibration or a .yaml path, "
                     f"got {calibration!r}")
