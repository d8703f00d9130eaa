"""The membership and bootstrap policies, driven without sockets or clocks."""

from vudo.gradient.vector import GRADIENT_KEY, GradientVector, Resource
from vudo.hyphal.announcement import ANNOUNCEMENT_KEY, LEAVE_KEY, LeaveNotice, NodeAnnouncement, announce
from vudo.hyphal.bootstrap import Alive, Bootstrap, Failed, Progress
from vudo.hyphal.capability import Compute
from vudo.hyphal.membership import (
    GossipMember,
    GossipObserved,
    MemberForgotten,
    MemberJoined,
    Membership,
    MemberStatusChanged,
    UnverifiedEvicted,
    ValueRejected,
)
from vudo.hyphal.signed import Carrier, seal
from vudo.identity import Identity

T0 = 1_800_000_000.0
TTL = 60.0


def values(ident: Identity, now: float, compute: float = 0.5, *, gen: int = 1, addr: str = "127.0.0.1:1") -> dict[str, str]:
    carrier = Carrier(ident.node_id, gen, addr)
    ann = NodeAnnouncement(ident.node_id, addr, "", (Compute(cores=1, memory_mb=1),), "0", now)
    grad = GradientVector(ident.node_id, compute, 0.5, 0.5, 1.0, now)
    return {ANNOUNCEMENT_KEY: announce(ident, ann, carrier=carrier), GRADIENT_KEY: seal(ident, grad, carrier=carrier)}


def leave(ident: Identity, now: float, *, gen: int = 1, addr: str = "127.0.0.1:1") -> str:
    return seal(ident, LeaveNotice(ident.node_id, now), carrier=Carrier(ident.node_id, gen, addr))


def member(ident: Identity, now: float, *, live: bool = True, gen: int = 1, is_self: bool = False, kv: dict[str, str] | None = None, addr: str = "127.0.0.1:1") -> GossipMember:
    return GossipMember(ident.node_id, gen, addr, live, is_self, values(ident, now, gen=gen, addr=addr) if kv is None else kv)


def test_verified_members_and_events() -> None:
    me, a = Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    events = m.receive(GossipObserved((member(me, T0, is_self=True), member(a, T0)), T0))
    assert {e.node_id for e in events if isinstance(e, MemberJoined)} == {me.node_id, a.node_id}
    assert [p.node_id for p in m.verified_peers()] == [a.node_id]
    assert m.members[a.node_id].gradient is not None
    assert a.node_id in m.gradients.neighbors
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_alive_dead_left_transitions() -> None:
    me, a = Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    m.receive(GossipObserved((member(a, T0),), T0))
    ev = m.receive(GossipObserved((member(a, T0, live=False),), T0 + 1))
    assert [(e.old, e.new) for e in ev if isinstance(e, MemberStatusChanged)] == [("alive", "dead")]
    assert a.node_id not in m.gradients.neighbors
    kv = values(a, T0 + 2) | {LEAVE_KEY: leave(a, T0 + 2)}
    ev = m.receive(GossipObserved((member(a, T0 + 2, kv=kv),), T0 + 2))
    assert [(e.old, e.new) for e in ev if isinstance(e, MemberStatusChanged)] == [("dead", "left")]


def test_restart_with_newer_generation_wins() -> None:
    me, a = Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    m.receive(GossipObserved((member(a, T0),), T0))
    m.receive(GossipObserved((member(a, T0, live=False),), T0 + 5))
    ev = m.receive(GossipObserved((member(a, T0, live=False), member(a, T0 + 10, gen=2)), T0 + 10))
    assert m.members[a.node_id].generation == 2
    assert m.members[a.node_id].status == "alive"
    assert any(isinstance(e, MemberStatusChanged) and e.new == "alive" for e in ev)


def test_forged_leave_notice_does_not_mark_a_node_left() -> None:
    me, a, forger = Identity.generate(), Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    kv = values(a, T0) | {LEAVE_KEY: leave(forger, T0)}
    ev = m.receive(GossipObserved((member(a, T0, kv=kv),), T0))
    assert m.members[a.node_id].status == "alive"
    assert [e.reason for e in ev if isinstance(e, ValueRejected)] == ["wrong_owner"]


def test_rejections_are_counted_once_per_distinct_value_and_never_verified() -> None:
    me, a, forger = Identity.generate(), Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    forged = values(forger, T0)[ANNOUNCEMENT_KEY]
    kv = {ANNOUNCEMENT_KEY: forged}
    for step in range(5):
        m.receive(GossipObserved((member(a, T0, kv=kv),), T0 + step))
    assert m.rejections == {(ANNOUNCEMENT_KEY, "wrong_owner"): 1}
    assert not m.members[a.node_id].verified
    assert m.members[a.node_id].rejected == {ANNOUNCEMENT_KEY: "wrong_owner"}


def test_announcement_expiry_unverifies() -> None:
    me, a = Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    m.receive(GossipObserved((member(a, T0),), T0))
    assert m.members[a.node_id].verified
    m.receive(GossipObserved((member(a, T0),), T0 + TTL + 1))
    assert not m.members[a.node_id].verified
    assert m.rejections[(ANNOUNCEMENT_KEY, "stale")] == 1


def test_forgotten_members_are_removed() -> None:
    me, a = Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    m.receive(GossipObserved((member(a, T0),), T0))
    ev = m.receive(GossipObserved((), T0 + 1))
    assert any(isinstance(e, MemberForgotten) for e in ev)
    assert a.node_id not in m.members and a.node_id not in m.gradients.neighbors


def test_flow_follows_gossiped_gradients() -> None:
    me, a, b = Identity.generate(), Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    m.receive(GossipObserved((member(a, T0, kv=values(a, T0, compute=0.9)), member(b, T0, kv=values(b, T0, compute=0.3))), T0))
    local = GradientVector(me.node_id, 0.4, 0.5, 0.5, 1.0, T0)
    assert m.gradients.flow_direction(Resource.COMPUTE, local) == a.node_id


def test_bootstrap_becomes_alive_with_enough_verified_peers() -> None:
    me, a = Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    boot = Bootstrap(seeds=["127.0.0.1:1"], min_connections=1, timeout=30, started=T0)
    out = boot.handle_timer(T0, list(m.members.values()))
    assert any(isinstance(i, Progress) and "no answer" in i.message for i in out)
    m.receive(GossipObserved((member(a, T0),), T0 + 1))
    assert boot.handle_timer(T0 + 1, list(m.members.values())) == [Alive(1)]
    assert boot.handle_timer(T0 + 2, list(m.members.values())) == []


def test_bootstrap_times_out_naming_each_seed_and_why() -> None:
    me, a, forger = Identity.generate(), Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    m.receive(GossipObserved((member(a, T0, kv={ANNOUNCEMENT_KEY: values(forger, T0)[ANNOUNCEMENT_KEY]}, addr="127.0.0.1:2"),), T0))
    boot = Bootstrap(seeds=["127.0.0.1:1", "127.0.0.1:2"], min_connections=1, timeout=10, started=T0)
    out = boot.handle_timer(T0 + 11, list(m.members.values()))
    assert len(out) == 1 and isinstance(out[0], Failed)
    assert "127.0.0.1:1: no answer" in out[0].message
    assert "127.0.0.1:2: answered" in out[0].message and "wrong_owner" in out[0].message


def test_bootstrap_without_seeds_and_zero_min_is_alive_at_once() -> None:
    boot = Bootstrap(seeds=[], min_connections=0, timeout=10, started=T0)
    assert boot.handle_timer(T0, []) == [Alive(0)]


def test_signed_link_lists_are_verified_and_bound_to_their_owner() -> None:
    from vudo.hyphal.topology import LINKS_KEY, publish_links

    me, a, b = Identity.generate(), Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    a_carrier = Carrier(a.node_id, 1, "127.0.0.1:1")
    good = values(a, T0) | {LINKS_KEY: publish_links(a, [b.node_id, me.node_id], T0, carrier=a_carrier)}
    forged = values(b, T0) | {LINKS_KEY: publish_links(a, [me.node_id], T0, carrier=a_carrier)}  # b gossips a list a signed
    events = m.receive(GossipObserved((member(a, T0, kv=good), member(b, T0, kv=forged)), T0))
    assert m.members[a.node_id].link_list is not None
    assert m.members[a.node_id].link_list.peers == tuple(sorted([b.node_id, me.node_id]))  # type: ignore[union-attr]
    assert m.members[a.node_id].announcement_value == good[ANNOUNCEMENT_KEY]
    assert m.members[b.node_id].link_list is None
    assert [(e.key, e.reason) for e in events if isinstance(e, ValueRejected)] == [(LINKS_KEY, "wrong_owner")]


def test_a_link_list_from_another_generation_is_refused() -> None:
    """a's own signed list, replayed under a's next generation, does not describe that generation."""
    from vudo.hyphal.topology import LINKS_KEY, publish_links

    me, a, b = Identity.generate(), Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    old_list = publish_links(a, [b.node_id], T0, carrier=Carrier(a.node_id, 1, "127.0.0.1:1"))
    kv = values(a, T0, gen=2) | {LINKS_KEY: old_list}
    events = m.receive(GossipObserved((member(a, T0, gen=2, kv=kv),), T0))
    assert m.members[a.node_id].verified and m.members[a.node_id].link_list is None
    assert [(e.key, e.reason) for e in events if isinstance(e, ValueRejected)] == [(LINKS_KEY, "wrong_generation")]


def test_identity_hijack_with_a_newer_generation_changes_nothing() -> None:
    """An outsider joins under a's id with a higher generation and re-publishes a's own values."""
    me, a = Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    real = member(a, T0, gen=5, addr="127.0.0.1:1")
    m.receive(GossipObserved((real,), T0))
    copied = dict(real.key_values)
    hijack = GossipMember(a.node_id, 10**15, "127.0.0.1:666", True, False, copied)
    for step in range(3):
        m.receive(GossipObserved((member(a, T0 + step, gen=5), hijack), T0 + step))
    rec = m.members[a.node_id]
    assert (rec.generation, rec.gossip_addr, rec.status, rec.verified) == (5, "127.0.0.1:1", "alive", True)
    assert m.rejections[(ANNOUNCEMENT_KEY, "wrong_generation")] == 1
    # The outsider goes quiet (dead in chitchat): the real node stays alive.
    quiet = GossipMember(a.node_id, 10**15, "127.0.0.1:666", False, False, copied)
    m.receive(GossipObserved((member(a, T0 + 5, gen=5), quiet), T0 + 5))
    assert m.members[a.node_id].status == "alive"
    # Same generation from another address: wrong_addr, never chosen.
    squat = GossipMember(a.node_id, 5, "127.0.0.1:667", True, False, copied)
    m.receive(GossipObserved((member(a, T0 + 6, gen=5), squat), T0 + 6))
    assert m.members[a.node_id].gossip_addr == "127.0.0.1:1"
    assert m.rejections[(ANNOUNCEMENT_KEY, "wrong_addr")] == 1
    assert m.trusted() == [(a.node_id, 5, "127.0.0.1:1")], "the squatter's address is never trusted"


def test_a_forged_generation_never_outlives_the_real_node() -> None:
    """After the real node dies its last verified identity is still the one shown, not the forgery."""
    me, a = Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    m.receive(GossipObserved((member(a, T0, gen=5),), T0))
    forged = GossipMember(a.node_id, 99, "127.0.0.1:666", True, False, {})
    m.receive(GossipObserved((member(a, T0 + 1, gen=5, live=False), forged), T0 + TTL + 5))
    rec = m.members[a.node_id]
    assert (rec.generation, rec.status) == (5, "dead")


def test_a_replayed_leave_notice_only_ends_its_own_generation() -> None:
    me, a = Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    old_leave = leave(a, T0, gen=1)
    m.receive(GossipObserved((member(a, T0, gen=1, kv=values(a, T0, gen=1) | {LEAVE_KEY: old_leave}),), T0))
    assert m.members[a.node_id].status == "left"
    # a restarts as generation 2; the outsider replays generation 1's notice under generation 3.
    replay = GossipMember(a.node_id, 3, "127.0.0.1:1", True, False, {LEAVE_KEY: old_leave})
    ev = m.receive(GossipObserved((member(a, T0 + 10, gen=2), replay), T0 + 10))
    rec = m.members[a.node_id]
    assert (rec.generation, rec.status, rec.verified) == (2, "alive", True)
    assert any(isinstance(e, ValueRejected) and e.reason == "wrong_generation" and e.key == LEAVE_KEY for e in ev)
    # The same replay inside generation 2 itself (carried by a's real identity) is refused too.
    kv = values(a, T0 + 11, gen=2) | {LEAVE_KEY: old_leave}
    m.receive(GossipObserved((member(a, T0 + 11, gen=2, kv=kv),), T0 + 11))
    assert m.members[a.node_id].status == "alive"


def test_unverified_members_are_capped_and_evicted_first() -> None:
    me, a = Identity.generate(), Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL, max_unverified=10)
    m.receive(GossipObserved((member(me, T0, is_self=True), member(a, T0)), T0))
    strangers = tuple(GossipMember(f"stranger-{i}", 1, f"127.66.0.{i % 250}:1", True, False, {}) for i in range(50))
    ev = m.receive(GossipObserved((member(me, T0 + 1, is_self=True), member(a, T0 + 1), *strangers), T0 + 1))
    assert m.unverified_count() == 10
    assert a.node_id in m.members and me.node_id in m.members
    assert [e.count for e in ev if isinstance(e, UnverifiedEvicted)] == [40]
    assert m.evicted == 40
    # Strangers absent from a bounded view are dropped once they are not seen for the TTL.
    m.receive(GossipObserved((member(me, T0 + 100, is_self=True), member(a, T0 + 100)), T0 + 100))
    assert m.unverified_count() == 0 and a.node_id in m.members


def test_an_unverified_member_missing_from_a_bounded_view_is_kept_for_a_while() -> None:
    me = Identity.generate()
    m = Membership(self_id=me.node_id, announcement_ttl=TTL)
    stranger = GossipMember("stranger", 1, "127.66.0.1:1", True, False, {})
    m.receive(GossipObserved((stranger,), T0))
    m.receive(GossipObserved((), T0 + 1))
    assert "stranger" in m.members
