import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vudo.hyphal.reputation import ReputationScore

unit = st.floats(min_value=0.0, max_value=1.0)


@given(unit, unit, unit)
def test_aggregate_is_weighted_and_bounded(u: float, d: float, h: float) -> None:
    score = ReputationScore(u, d, h).aggregate()
    assert 0.0 <= score <= 1.0
    assert score == pytest.approx(0.3 * u + 0.5 * d + 0.2 * h)


def test_weights() -> None:
    assert ReputationScore(1, 0, 0).aggregate() == pytest.approx(0.3)
    assert ReputationScore(0, 1, 0).aggregate() == pytest.approx(0.5)
    assert ReputationScore(0, 0, 1).aggregate() == pytest.approx(0.2)
    assert ReputationScore(1, 1, 1).aggregate() == 1.0


@pytest.mark.parametrize("bad", [-0.01, 1.01, math.nan, math.inf])
def test_components_outside_unit_interval_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="uptime_score"):
        ReputationScore(bad, 0.5, 0.5)
