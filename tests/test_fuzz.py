"""A CI-sized run of the fuzz harness (benchmarks/fuzz.py) under hypothesis: random and adversarial inputs
through the API, the CLI (in-process) and the app end in finite positive results or a one-line refusal."""

import random
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fuzz  # noqa: E402

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(SEEDS)
def test_api_inputs_end_in_a_result_or_a_refusal(seed):
    out = fuzz.run_api_case(fuzz.api_case(random.Random(seed)))
    assert out in ("ok", "refused"), out


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(SEEDS)
def test_cli_inputs_exit_0_or_2_with_one_line(tmp_path, seed):
    out = fuzz.run_cli_inprocess(random.Random(seed), tmp_path)
    assert out in ("ok", "refused", "usage"), out


@settings(max_examples=3, deadline=None, derandomize=True)
@given(SEEDS)
def test_app_inputs_show_results_or_a_message(seed):
    out = fuzz.run_app(random.Random(seed))
    assert out in ("ok", "refused"), out
