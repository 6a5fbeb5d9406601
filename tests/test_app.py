"""The Streamlit app renders predictions and shows bad input as a message, not a crash."""

from pathlib import Path

import pytest

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
APP = str(Path(__file__).parent.parent / "app.py")


def test_app_renders_default_prediction():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert "TTFT" in labels and "Max concurrency" in labels
    assert not at.error


def test_app_reports_model_that_does_not_fit():
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.selectbox[1].set_value("llama-3-70b").run()
    assert not at.exception
    assert at.error and "tensor_parallel" in at.error[0].value


def test_app_reports_missing_dtype_unit():
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.selectbox[0].set_value("a100-sxm4-80gb").run()
    at.selectbox[4].set_value("fp8").run()  # activation dtype fp8: the A100 has no fp8 unit
    assert not at.exception
    assert at.error and "fp8" in at.error[0].value
