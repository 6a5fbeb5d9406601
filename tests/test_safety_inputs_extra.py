"""Scenario.checked: a validated scenario passes as it is; an edited copy (model_copy skips validation) is
validated again."""

import pytest

import workloads


def test_checked_keeps_a_validated_scenario_and_revalidates_an_edited_copy():
    sc = workloads.Scenario(batch=8)
    assert sc.checked() is sc
    assert sc.model_copy(update={"batch": 4}).checked().batch == 4
    with pytest.raises(ValueError, match="batch"):
        sc.model_copy(update={"batch": 0}).checked()
    with pytest.raises(ValueError, match="batch"):
        sc.model_copy(update={"batch": 2.5}).checked()
