"""Property tests of the modes over arbitrary small connected networks (hypothesis draws the topology)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from vudo.signals.action_potential import Refractory
from vudo.signals.envelope import ActionPotential, Directed, Flood, Gradient
from vudo.signals.network import SignalConfig
from vudo.testing.signalsim import SignalSim, random_connected_edges

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def networks(draw: st.DrawFn, max_nodes: int = 24) -> tuple[int, set[tuple[int, int]], int]:
    n = draw(st.integers(2, max_nodes))
    seed = draw(st.integers(0, 2**16))
    degree = draw(st.floats(1.0, 5.0))
    return n, random_connected_edges(n, degree, random.Random(seed)), seed


@SETTINGS
@given(networks(), st.sampled_from(["plumtree", "plain"]), st.lists(st.integers(0, 10**6), min_size=1, max_size=4), st.integers(1, 4))
def test_every_node_within_the_ttl_handles_each_flood_exactly_once(
    net: tuple[int, set[tuple[int, int]], int], algorithm: str, sources: list[int], max_latency: int
) -> None:
    n, edges, seed = net
    sim = SignalSim(n, seed=seed, edges=edges, max_latency=max_latency, config=SignalConfig(flood=algorithm))  # type: ignore[arg-type]
    ttl = 1 + seed % 6
    for raw in sources:
        src = raw % n
        s = sim.emit(src, Flood(), ttl=ttl)
        sim.run()
        within = {i for i, d in sim.distances(src).items() if d <= ttl}
        handled = sim.handled_by(s.id)
        assert max(handled.values()) == 1
        if algorithm == "plumtree":
            assert set(handled) == within
        else:
            # Plain flooding forwards only the first copy it gets: a slow short path can lose to a fast long one.
            assert set(handled) <= within


@SETTINGS
@given(networks(), st.floats(0.3, 0.95), st.integers(0, 10**6))
def test_gradient_reads_decay_to_the_power_of_the_distance(net: tuple[int, set[tuple[int, int]], int], decay: float, raw_src: int) -> None:
    n, edges, seed = net
    floor = 0.05
    sim = SignalSim(n, seed=seed, edges=edges, max_latency=3, config=SignalConfig(min_strength=floor))
    src = raw_src % n
    s = sim.emit(src, Gradient(decay, "g"), ttl=16)
    sim.run()
    for i, d in sim.distances(src).items():
        reading = dict(sim.nodes[i].read_gradient("g", now=sim.now)).get(sim.ids[src])
        if decay**d >= floor and d <= 16:
            assert reading is not None and abs(reading - decay**d) < 1e-9
        else:
            assert reading is None
    assert max(sim.handled_by(s.id).values()) == 1


@SETTINGS
@given(networks(), st.integers(0, 10**6), st.integers(0, 10**6), st.floats(0.0, 1.0))
def test_directed_reaches_only_its_target_whatever_the_views_know(
    net: tuple[int, set[tuple[int, int]], int], raw_src: int, raw_target: int, known: float
) -> None:
    n, edges, seed = net
    sim = SignalSim(n, seed=seed, edges=edges, share_topology=False)
    rng = random.Random(seed)
    sim.share_topology(nodes=[i for i in range(n) if rng.random() < known])  # some nodes know the topology, others nothing
    src, target = raw_src % n, raw_target % n
    s = sim.emit(src, Directed(sim.ids[target]), ttl=32)
    sim.run()
    assert dict(sim.handled_by(s.id)) == {target: 1}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 3), st.sampled_from(["a", "b"])), max_size=30), st.floats(0.1, 2.0))
def test_action_potential_fires_only_outside_the_refractory_period(events: list[tuple[float, str]], period: float) -> None:
    r = Refractory()
    now = 0.0
    last: dict[str, float] = {}
    for dt, key in events:
        now += dt
        fired = r.fire(key, period, now)
        expected = key not in last or now >= last[key] + period
        assert fired == expected
        if fired:
            last[key] = now


@SETTINGS
@given(networks(max_nodes=16), st.integers(0, 10**6))
def test_action_potential_reaches_everyone_once_and_a_second_one_nobody(net: tuple[int, set[tuple[int, int]], int], raw: int) -> None:
    n, edges, seed = net
    sim = SignalSim(n, seed=seed, edges=edges)
    first = sim.emit(raw % n, ActionPotential(5000, "k"), ttl=32)
    sim.run()
    assert dict(sim.handled_by(first.id)) == dict.fromkeys(range(n), 1)
    second = sim.emit((raw + 1) % n, ActionPotential(5000, "k"), ttl=32)
    sim.run()
    assert sim.handled_by(second.id) == {}
