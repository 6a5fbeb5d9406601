"""`hwperf calibrate` on the committed measurements gives back the committed profiles (every fitted
group, the compressed-path kernels' included), so a re-run never silently resets part of a profile."""

import math

import pytest

import hwspecs
from validate.workflows import MEASUREMENTS_DIR, run_calibrate


def _numbers(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{prefix}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


@pytest.mark.parametrize("hw", ["h100-sxm5-80gb", "h200-sxm-141gb"])
def test_calibrate_reproduces_the_committed_profile(hw, tmp_path):
    _, path = run_calibrate(hw, MEASUREMENTS_DIR / hw, tmp_path / f"{hw}.yaml")
    fresh = dict(_numbers(hwspecs.load_calibration(str(path)).model_dump(exclude={"provenance"})))
    committed = dict(_numbers(hwspecs.load_calibration(hw).model_dump(exclude={"provenance"})))
    assert fresh.keys() == committed.keys()
    for key, value in committed.items():
        if isinstance(value, float) and math.isfinite(value):
            assert fresh[key] == pytest.approx(value, rel=1e-6, abs=1e-15), key
        else:
            assert fresh[key] == value, key
