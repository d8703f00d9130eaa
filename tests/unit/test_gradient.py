import pytest
from hypothesis import given
from hypothesis import strategies as st

from vudo.gradient.field import GradientField
from vudo.gradient.vector import GradientVector, Resource

unit = st.floats(min_value=0.0, max_value=1.0)
vectors = st.builds(
    GradientVector,
    node_id=st.just("n"),
    compute_available=unit,
    storage_available=unit,
    bandwidth_available=unit,
    credit_balance=st.floats(min_value=0.0, max_value=10.0),
    timestamp=st.floats(min_value=0, max_value=2e9),
    hops=st.integers(min_value=0, max_value=50),
)


@given(vectors, st.integers(min_value=0, max_value=40))
def test_decay_multiplies_by_point_nine_per_hop_and_adds_hops(g: GradientVector, d: int) -> None:
    out = g.decay(d)
    for r in Resource:
        assert out.get(r) == pytest.approx(g.get(r) * 0.9**d)
    assert out.hops == min(255, g.hops + d)
    assert out.timestamp == g.timestamp


@given(vectors, st.integers(min_value=0, max_value=30), st.integers(min_value=0, max_value=30))
def test_decay_is_monotone_in_distance(g: GradientVector, a: int, b: int) -> None:
    near, far = sorted((a, b))
    for r in Resource:
        assert g.decay(far).get(r) <= g.decay(near).get(r)


def test_negative_distance_is_refused() -> None:
    with pytest.raises(ValueError):
        GradientVector("n", 1, 1, 1, 1, 0).decay(-1)


def g(node: str, compute: float, ts: float) -> GradientVector:
    return GradientVector(node, compute, 0.5, 0.5, 1.0, ts)


def test_merge_keeps_newest_by_timestamp() -> None:
    field = GradientField()
    assert field.receive_gradient("a", g("a", 0.9, 10))
    assert not field.receive_gradient("a", g("a", 0.1, 5))
    assert field.neighbors["a"].compute_available == pytest.approx(0.81)
    assert field.receive_gradient("a", g("a", 0.2, 11))
    assert field.neighbors["a"].compute_available == pytest.approx(0.18)
    assert field.neighbors["a"].hops == 1


def test_flow_direction_picks_highest_neighbour_above_self() -> None:
    field = GradientField()
    field.receive_gradient("low", g("low", 0.2, 1))
    field.receive_gradient("high", g("high", 1.0, 1))
    field.receive_gradient("mid", g("mid", 0.6, 1))
    assert field.flow_direction(Resource.COMPUTE, g("me", 0.5, 1)) == "high"
    assert field.flow_direction(Resource.COMPUTE, g("me", 0.95, 1)) is None


@given(st.dictionaries(st.text(min_size=1, max_size=5), unit, max_size=8), unit)
def test_flow_direction_never_points_downhill(values: dict[str, float], own: float) -> None:
    field = GradientField()
    for node, value in values.items():
        field.receive_gradient(node, g(node, value, 1))
    target = field.flow_direction(Resource.COMPUTE, g("me", own, 1))
    decayed = {n: v * 0.9 for n, v in values.items()}
    if target is None:
        assert all(v <= own for v in decayed.values())
    else:
        assert decayed[target] > own
        assert decayed[target] == max(decayed.values())
