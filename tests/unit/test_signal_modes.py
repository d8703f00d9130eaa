"""The signal modes' state machines on their own: dedup, Plumtree, gradient, directed, quorum, refractory."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vudo.signals import envelope as env
from vudo.signals.action_potential import Refractory
from vudo.signals.dedup import DedupCache
from vudo.signals.directed import TopologyView
from vudo.signals.envelope import Announce, Flood, Gradient, Graft, IHave, Prune, Push
from vudo.signals.flood import Out, PlainFlood, Plumtree
from vudo.signals.gradient import GradientField, strength
from vudo.signals.quorum import QuorumState
from vudo.testing.signalsim import identities

FLOOD = Flood()
T0 = 1_800_000_000.0
ME, SRC = identities(2)


def signal(ttl: int = 8, signal_type: env.SignalType = FLOOD, now: float = T0, nonce: bytes = b"\x00" * 8) -> env.Signal:
    return env.create(SRC, signal_type, b"", ttl=ttl, now=now, nonce=nonce)


# -- dedup ---------------------------------------------------------------------------


def test_dedup_remembers_then_expires() -> None:
    d = DedupCache(capacity=10, retention=5.0)
    assert d.add("a", T0, T0)
    assert not d.add("a", T0, T0 + 1)
    assert "a" in d
    d.expire(T0 + 5.0)
    assert "a" not in d and len(d) == 0
    assert d.floor == float("-inf")


def test_dedup_full_raises_the_replay_floor() -> None:
    d = DedupCache(capacity=3, retention=100.0)
    for i in range(5):
        d.add(f"id{i}", T0 + i, T0 + i)
    assert len(d) == 3 and d.evicted_early == 2
    # id0 and id1 were forgotten early: signals that old are refused from now on.
    assert d.below_floor(T0 + 1) and d.below_floor(T0) and not d.below_floor(T0 + 1.5)


def test_dedup_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        DedupCache(capacity=0, retention=1.0)
    with pytest.raises(ValueError):
        DedupCache(capacity=1, retention=0.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 50), max_size=300), st.integers(1, 20))
def test_dedup_stays_bounded_and_never_forgets_a_young_id_silently(gaps: list[float], capacity: int) -> None:
    d = DedupCache(capacity=capacity, retention=30.0)
    now = T0
    inserted: dict[str, float] = {}
    for i, dt in enumerate(gaps):
        now += dt
        d.add(str(i), now, now)
        inserted[str(i)] = now
        assert len(d) <= capacity
    # Every id inserted within the retention is either remembered or below the floor (refused).
    for ident, ts in inserted.items():
        if now - ts < 30.0:
            assert ident in d or d.below_floor(ts)


# -- flood -----------------------------------------------------------------------------


def plumtree() -> Plumtree:
    p = Plumtree(ihave_timeout=1.0, graft_timeout=0.5, max_graft_attempts=3, capacity=100, retention=60.0)
    for peer in ("a", "b", "c"):
        p.link_up(peer)
    return p


def test_plumtree_pushes_eagerly_and_prunes_duplicates() -> None:
    p = plumtree()
    s = signal()
    out = p.on_push("a", s, 1, new=True, now=T0)
    assert {o.peer for o in out} == {"b", "c"} and all(isinstance(o.frame, Push) and o.frame.hops == 2 for o in out)
    assert p.on_push("b", s, 3, new=False, now=T0) == [Out("b", Prune())]
    assert p.lazy == {"b"}
    # Next signal: eager push to c, announcement to lazy b.
    s2 = signal(nonce=b"\x01" * 8)
    out = p.on_push("a", s2, 1, new=True, now=T0)
    assert Out("c", Push(s2, 2)) in out and Out("b", IHave([Announce(s2.id, 2)])) in out
    p.on_prune("c")
    assert p.eager == {"a"}


def test_plumtree_grafts_a_missed_signal_from_announcers_in_turn() -> None:
    p = plumtree()
    p.on_prune("a")
    p.on_prune("b")
    s = signal()
    assert p.on_ihave("a", [Announce(s.id, 2)], T0, lambda _id: False) == []
    p.on_ihave("b", [Announce(s.id, 3)], T0, lambda _id: False)
    assert p.handle_timer(T0 + 0.5) == []  # not yet
    assert p.handle_timer(T0 + 1.0) == [Out("a", Graft(s.id))]
    assert "a" in p.eager  # the tree repaired through a
    assert p.handle_timer(T0 + 1.5) == [Out("b", Graft(s.id))]
    # It arrives: no more grafts for it.
    p.on_push("b", s, 3, new=True, now=T0 + 1.6)
    assert p.handle_timer(T0 + 10) == [] and p.missing == 0


def test_plumtree_gives_up_after_max_attempts_and_forgets_dead_announcers() -> None:
    p = plumtree()
    s = signal()
    p.on_ihave("a", [Announce(s.id, 2)], T0, lambda _id: False)
    p.link_down("a")
    assert p.handle_timer(T0 + 5) == [] and p.missing == 0
    p.on_ihave("b", [Announce(s.id, 2)], T0, lambda _id: False)
    sent = sum(len(p.handle_timer(T0 + k)) for k in range(1, 10))
    assert sent == 3 and p.missing == 0
    # Ids already handled (and no longer held) are not asked for.
    p.on_ihave("c", [Announce("f" * 32, 2)], T0, lambda _id: True)
    assert p.missing == 0


def test_plumtree_answers_a_graft_and_adopts_shorter_paths() -> None:
    p = plumtree()
    s = signal(ttl=4)
    p.on_push("a", s, 4, new=True, now=T0)  # at the TTL: nothing forwarded
    assert p.on_graft("b", s.id, T0) == []
    # A neighbour announces a 2-hop path: forward now, as on first receipt (not to a or c: they have it).
    out = p.on_ihave("c", [Announce(s.id, 2)], T0, lambda _id: True)
    assert {o.peer for o in out} == {"b"}
    assert p.on_graft("b", s.id, T0) == [Out("b", Push(s, 3))]
    assert p.on_graft("b", None, T0) == []
    # A further improvement is only announced, and not to c, which has a path as short.
    out = p.on_push("a", s, 1, new=False, now=T0)
    assert [o.peer for o in out if isinstance(o.frame, IHave)] == ["b"]


def test_plain_flood_pushes_to_all_but_the_sender_once() -> None:
    f = PlainFlood()
    for peer in ("a", "b", "c"):
        f.link_up(peer)
    s = signal(ttl=2)
    assert {o.peer for o in f.on_push("a", s, 1, new=True, now=T0)} == {"b", "c"}
    assert f.on_push("b", s, 1, new=False, now=T0) == []
    assert f.on_push("a", s, 2, new=True, now=T0) == []  # TTL reached
    assert len(f.broadcast(s, T0)) == 3
    f.link_down("c")
    assert f.peers == {"a", "b"}
    assert f.on_ihave("a", [], T0, lambda _id: False) == f.on_graft("a", None, T0) == f.handle_timer(T0) == []


# -- gradient ------------------------------------------------------------------------


def test_gradient_strength_decays_and_stops_at_threshold() -> None:
    g = GradientField(min_strength=0.1, retention=60.0, capacity=100)
    s = signal(ttl=10, signal_type=Gradient(0.5, "cpu"))
    assert g.observe(s, 2, T0) == pytest.approx(0.25)
    assert g.should_forward(s, 2) and g.should_forward(s, 2)  # 0.125 >= 0.1
    assert not g.should_forward(s, 3)  # 0.0625 < 0.1
    # A shorter path for the same signal raises the reading; a longer one is ignored.
    assert g.observe(s, 1, T0) == pytest.approx(0.5)
    assert g.observe(s, 3, T0) is None
    assert g.read_gradient("cpu", now=T0) == [(SRC.node_id, pytest.approx(0.5))]
    assert g.read_gradient("other", now=T0) == []
    assert g.read_gradient("cpu", now=T0 + 61) == []
    with pytest.raises(ValueError):
        GradientField(min_strength=0.0, retention=1.0, capacity=1)


def test_gradient_newer_signal_replaces_and_capacity_holds() -> None:
    g = GradientField(min_strength=0.01, retention=60.0, capacity=2)
    old = signal(signal_type=Gradient(0.5))
    new = signal(signal_type=Gradient(0.5), now=T0 + 1)
    g.observe(old, 1, T0)
    assert g.observe(new, 3, T0 + 1) == pytest.approx(0.125)
    assert len(g) == 1
    for i, ident in enumerate(identities(4)):
        g.observe(env.create(ident, Gradient(0.9), b"", ttl=3, now=T0 + 2, nonce=bytes([i]) * 8), 1, T0 + 2)
    assert len(g) == 2
    assert strength(0.5, 0) == 1.0


# -- directed ------------------------------------------------------------------------


def test_topology_ranks_links_by_distance_to_target() -> None:
    t = TopologyView("me")
    t.link_up("a")
    t.link_up("b")
    t.update([("a", "x"), ("x", "y"), ("b", "y"), ("y", "target"), ("a", "a")])
    assert t.next_hops("target") == ["b", "a"]
    assert t.next_hops("target", exclude=["b"]) == ["a"]
    assert t.next_hops("nowhere") == []
    t.link_up("target")
    assert t.next_hops("target") == ["target"]
    t.link_down("target")
    t.link_down("b")
    assert t.next_hops("target") == ["a"]


# -- quorum --------------------------------------------------------------------------


def test_quorum_fires_once_at_threshold_never_before() -> None:
    q = QuorumState(retention=60.0, capacity=10)
    members = frozenset(f"n{i}" for i in range(10))
    assert q.contribute("k", 0.3, "n0", T0) is None  # network size unknown: never fires
    q.set_members(members, T0)
    assert q.contribute("k", 0.3, "n1", T0) is None  # 2/10
    assert q.contribute("k", 0.3, "n1", T0) is None  # the same contributor again
    assert q.contribute("k", 0.3, "outsider", T0) is None  # not a member: not counted
    fired = q.contribute("k", 0.3, "n2", T0 + 1)  # 3/10
    assert fired is not None and fired.contributors == 3 and fired.network_size == 10 and fired.at == T0 + 1
    assert q.contribute("k", 0.3, "n3", T0 + 2) is None  # once
    acc = q.accumulator("k", 0.3)
    assert acc is not None and acc.fired_at == T0 + 1


def test_quorum_fires_when_the_network_shrinks() -> None:
    q = QuorumState(retention=60.0, capacity=10)
    q.set_members(frozenset(f"n{i}" for i in range(10)), T0)
    q.contribute("k", 0.5, "n0", T0)
    q.contribute("k", 0.5, "n1", T0)
    fired = q.set_members(frozenset({"n0", "n1", "n2", "n3"}), T0 + 1)
    assert [f.contributors for f in fired] == [2]


def test_quorum_accumulators_are_bounded_and_expire() -> None:
    q = QuorumState(retention=10.0, capacity=2)
    q.set_members(frozenset({"a", "b", "c", "d"}), T0)
    for key in ("k1", "k2", "k3"):
        q.contribute(key, 1.0, "a", T0)
    assert len(q) == 2 and q.accumulator("k1", 1.0) is None
    q.contribute("k4", 1.0, "a", T0 + 11)
    assert len(q) == 1


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12), st.floats(0.05, 1.0), st.lists(st.integers(0, 15), max_size=40))
def test_quorum_fires_exactly_when_the_ratio_is_reached(size: int, threshold: float, contributions: list[int]) -> None:
    members = frozenset(f"n{i}" for i in range(size))
    q = QuorumState(retention=1e9, capacity=10)
    q.set_members(members, T0)
    seen: set[str] = set()
    fired_count = 0
    for c in contributions:
        name = f"n{c}"
        seen.add(name)
        fired = q.contribute("k", threshold, name, T0)
        reached = len(seen & members) >= threshold * size - 1e-9
        if fired is not None:
            fired_count += 1
            assert reached  # never before the threshold
        elif fired_count == 0:
            assert not reached  # and as soon as it is reached
    reached = len(seen & members) >= threshold * size - 1e-9
    assert fired_count == (1 if reached else 0)


# -- action potential ---------------------------------------------------------------


def test_refractory_period_per_key() -> None:
    r = Refractory(capacity=2)
    assert r.fire("alarm", 1.0, T0)
    assert not r.fire("alarm", 1.0, T0 + 0.5)
    assert r.fire("other", 1.0, T0 + 0.5)
    assert r.fire("alarm", 1.0, T0 + 1.0)
    assert r.fire("third", 1.0, T0 + 1.0)  # capacity: the oldest deadline is dropped
    assert not r.refractory("other", T0 + 1.0)


def test_plumtree_keeps_its_parent_when_the_parent_resends() -> None:
    p = plumtree()
    s = signal()
    p.on_push("a", s, 2, new=True, now=T0)
    # Our answer to a was lost and a resent the push: a is still our tree parent.
    assert p.on_push("a", s, 2, new=False, now=T0) == []
    assert "a" in p.eager
    # A shorter copy over another link still prunes that link (it is redundant), after adopting its hops.
    out = p.on_push("b", s, 1, new=False, now=T0)
    assert out[-1] == Out("b", Prune()) and "b" in p.lazy
    assert [o.peer for o in out if isinstance(o.frame, IHave)] == ["c"]  # a has it one hop from the source already


def test_quorum_sybil_contributors_cannot_crowd_out_members() -> None:
    q = QuorumState(retention=60.0, capacity=4, max_contributors=5)
    q.set_members(frozenset({"m1", "m2"}), T0)
    for i in range(50):
        assert q.contribute("k", 1.0, f"sybil{i}", T0) is None
    acc = q.accumulator("k", 1.0)
    assert acc is not None and len(acc.contributors) == 5
    q.contribute("k", 1.0, "m1", T0)
    fired = q.contribute("k", 1.0, "m2", T0)
    assert fired is not None and fired.contributors == 2


def test_plumtree_bounds_the_signals_it_waits_for() -> None:
    from vudo.signals import flood

    p = plumtree()
    ids = [f"{i:032x}" for i in range(flood.MAX_MISSING + 10)]
    for chunk in range(0, len(ids), 64):
        p.on_ihave("a", [Announce(i, 1) for i in ids[chunk : chunk + 64]], T0, lambda _id: False)
    assert p.missing == flood.MAX_MISSING and p.announcements_dropped == 10


def test_plumtree_sends_nothing_to_peers_that_already_hold_the_signal() -> None:
    p = plumtree()
    p.on_prune("c")  # c is lazy
    s = signal()
    # c announced it before it reached us through a: no announcement goes back to c.
    p.on_ihave("c", [Announce(s.id, 3)], T0, lambda _id: False)
    out = p.on_push("a", s, 2, new=True, now=T0)
    assert out == [Out("b", Push(s, 3))]


def test_plumtree_adopts_the_shortest_announced_path_when_the_signal_arrives() -> None:
    p = plumtree()
    s = signal(ttl=3)
    p.on_ihave("c", [Announce(s.id, 3)], T0, lambda _id: False)
    p.on_ihave("c", [Announce(s.id, 1)], T0, lambda _id: False)  # the same announcer, a shorter path now
    out = p.on_push("a", s, 3, new=True, now=T0)  # a long way round, at the TTL
    # It counts as 1 hop (c's path): b gets it with 2 hops, and c (0 hops) nothing.
    assert out == [Out("b", Push(s, 2))]


def test_plumtree_does_not_announce_shorter_paths_beyond_the_networks_horizon() -> None:
    p = plumtree()
    s = signal(ttl=10)
    p.on_push("a", s, 5, new=True, now=T0)
    p.horizon = 5  # the view says everything is within 5 hops: 10 - 5 left was enough
    assert p.on_ihave("b", [Announce(s.id, 2)], T0, lambda _id: True) == []
    s2 = signal(ttl=10, nonce=b"\x02" * 8)
    p.on_push("a", s2, 5, new=True, now=T0)
    p.horizon = 6  # 10 - 5 left is not enough for a 6-hop network: the shorter path is announced
    assert [o.peer for o in p.on_ihave("b", [Announce(s2.id, 2)], T0, lambda _id: True)] == ["a", "c"]  # a has it at 4 hops


def test_topology_eccentricity_needs_a_view_of_the_whole_network() -> None:
    t = TopologyView("me")
    t.link_up("a")
    t.update([("a", "b"), ("b", "c")])
    assert t.eccentricity(4) == 3
    assert t.eccentricity(5) is None  # someone is missing from the view
    assert t.eccentricity(0) is None
