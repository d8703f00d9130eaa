import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vudo.hyphal.reputation import ReputationScore, ReputationTracker

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


# -- the tracker fed by link observations ---------------------------------------

T0 = 1_800_000_000.0


def test_unknown_peer_scores_neutral() -> None:
    tracker = ReputationTracker()
    assert tracker.score("p", T0) == ReputationScore(0.5, 0.5, 0.5)
    assert "p" not in tracker and len(tracker) == 0


def test_uptime_grows_while_linked_and_falls_while_down() -> None:
    tracker = ReputationTracker()
    tracker.link_up("p", T0)
    up = tracker.score("p", T0 + 600).uptime_score
    assert up > 0.9
    tracker.link_down("p", T0 + 600)
    down = tracker.score("p", T0 + 1800).uptime_score
    assert down < 0.4
    tracker.link_up("p", T0 + 1800)
    assert tracker.score("p", T0 + 3000).uptime_score > down


def test_delivery_and_honesty_follow_outcomes() -> None:
    tracker = ReputationTracker()
    for _ in range(20):
        tracker.delivered("good", T0, ok=True)
        tracker.verified("good", T0, honest=True)
        tracker.delivered("bad", T0, ok=False)
        tracker.verified("bad", T0, honest=False)
    good, bad = tracker.score("good", T0), tracker.score("bad", T0)
    assert good.delivery_score > 0.9 and good.honesty_score > 0.9
    assert bad.delivery_score < 0.1 and bad.honesty_score < 0.1
    assert tracker.aggregate("good", T0) > 0.5 > tracker.aggregate("bad", T0)


@given(st.lists(st.tuples(st.sampled_from(["up", "down", "ok", "fail", "honest", "liar"]), st.floats(min_value=0, max_value=1e5)), max_size=60))
def test_tracked_scores_stay_valid(ops: list[tuple[str, float]]) -> None:
    tracker = ReputationTracker()
    now = T0
    for op, dt in ops:
        now += dt
        if op == "up":
            tracker.link_up("p", now)
        elif op == "down":
            tracker.link_down("p", now)
        elif op in ("ok", "fail"):
            tracker.delivered("p", now, ok=op == "ok")
        else:
            tracker.verified("p", now, honest=op == "honest")
        assert 0.0 <= tracker.aggregate("p", now) <= 1.0


def test_memory_is_bounded_and_linked_peers_are_kept() -> None:
    tracker = ReputationTracker(max_tracked=3)
    tracker.link_up("linked", T0)
    for i in range(10):
        tracker.delivered(f"p{i}", T0 + i, ok=True)
    assert len(tracker) == 3
    assert "linked" in tracker and "p9" in tracker
