"""Calibration files are whole and belong to their device (issue 14: "A truncated calibration YAML loads")."""

import warnings

import pytest

import hwspecs
import simulator
from hwspecs import SpecError

H100, H200, M = "h100-sxm5-80gb", "h200-sxm-141gb", "llama-3-8b"
PROFILE = hwspecs.calibration_path(H100)


def _truncated(tmp_path, extra=""):
    path = tmp_path / "cut.yaml"
    path.write_text("".join(PROFILE.read_text().splitlines(keepends=True)[:30]) + extra)
    return path


def test_committed_profiles_are_whole():
    for path in sorted(PROFILE.parent.glob("*.yaml")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # not even a "partial" warning
            assert hwspecs.load_calibration(path).hardware_id == path.stem


def test_truncated_profile_is_refused(tmp_path):
    with pytest.raises(SpecError, match=r"incomplete calibration, \d+ field\(s\) missing .*partial: true"):
        hwspecs.load_calibration(_truncated(tmp_path))
    with pytest.raises(SpecError, match="incomplete calibration"):
        simulator.predict(H100, M, calibration=str(_truncated(tmp_path)))


def test_partial_true_loads_with_a_warning_naming_the_defaults(tmp_path):
    path = _truncated(tmp_path, "partial: true\n")
    with pytest.warns(UserWarning, match=r"partial calibration; defaults used for \d+ field\(s\): .*triton"):
        cal = hwspecs.load_calibration(path)
    assert cal.hardware_id == H100 and cal.triton == hwspecs.calibration.KernelProfile()


def test_partial_must_be_a_boolean(tmp_path):
    with pytest.raises(SpecError, match="'partial' must be true or false"):
        hwspecs.load_calibration(_truncated(tmp_path, "partial: 'yes'\n"))


def test_another_devices_profile_is_refused_unless_transfer_is_asked_for():
    with pytest.raises(ValueError, match=f"calibration is for {H100}, not {H200}.*transfer:{H100}"):
        simulator.predict(H200, M, calibration=str(PROFILE))
    with pytest.raises(ValueError, match=f"not {H200}"):
        simulator.decode_step(H200, M, 8, 1024, calibration=hwspecs.load_calibration(H100))
    moved = simulator.predict(H200, M, calibration=f"transfer:{H100}")
    assert moved.calibration == "transfer"
    own = simulator.predict(H200, M)
    assert own.calibration == H200 and moved.tpot_s != own.tpot_s
    with pytest.raises(ValueError, match="no committed calibration"):
        simulator.predict(H200, M, calibration="transfer:no-such-gpu")


def test_public_defaults_apply_to_any_device():
    assert simulator.predict(H200, M, calibration=hwspecs.DEFAULT_CALIBRATION).tpot_s > 0
