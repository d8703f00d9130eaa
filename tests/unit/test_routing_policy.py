"""Adaptive routing: EMA, pruning and degree rules (property tests), healing, introductions."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vudo.hyphal.announcement import NodeAnnouncement, announce
from vudo.hyphal.capability import Capability, Compute, Storage
from vudo.hyphal.linkproto import (
    HYPHAL_PROTOCOL,
    Dial,
    DialFailed,
    Disconnect,
    LinkDown,
    LinkUp,
    RequestFailed,
    RequestReceived,
    Respond,
    ResponseReceived,
    RttMeasured,
    SendRequest,
)
from vudo.hyphal.links import HyphalLink, ema, latency_from_rtt
from vudo.hyphal.linkwire import (
    MAX_INTRODUCTIONS,
    Goodbye,
    GoodbyeAck,
    Hello,
    Introduction,
    IntroductionAsk,
    Introductions,
    Refusal,
    decode_request,
    decode_response,
    encode,
)
from vudo.hyphal.routing import (
    AdaptiveRouting,
    AnnouncementRefreshed,
    Candidate,
    CandidatesObserved,
    IntroductionsReceived,
    LinkLost,
    Output,
    RoutingConfig,
    TrafficMeasured,
)
from vudo.identity import Identity

T0 = 1_800_000_000.0
COMPUTE: tuple[Capability, ...] = (Compute(cores=2, memory_mb=1024),)
POOL = [Identity.generate() for _ in range(24)]


def ann(ident: Identity, now: float = T0, caps: tuple[Capability, ...] = COMPUTE) -> str:
    return announce(ident, NodeAnnouncement(ident.node_id, "127.0.0.1:1", "", caps, "0", now, link=addr_of(ident)))


def addr_of(ident: Identity) -> str:
    return f"/ip4/127.0.0.1/tcp/{POOL.index(ident) + 1000 if ident in POOL else 999}"


def make(config: RoutingConfig | None = None, *, seed: int = 1, me: Identity | None = None) -> AdaptiveRouting:
    me = me or Identity.generate()
    return AdaptiveRouting(self_id=me.node_id, capabilities=COMPUTE, announcement=ann(me), config=config or RoutingConfig(), rng=random.Random(seed))


def link(peer: str, score: float = 0.5, now: float = T0) -> HyphalLink:
    return HyphalLink(peer=peer, established=now, last_seen=now, latency_ms=0, bandwidth_score=score, addr="/ip4/127.0.0.1/tcp/1", direction="outbound")


def candidates(idents: list[Identity], now: float = T0) -> CandidatesObserved:
    return CandidatesObserved(tuple(Candidate(i.node_id, addr_of(i), COMPUTE, ann(i, now)) for i in idents), now)


def of(kind: type, outputs: list[Output]) -> list:  # type: ignore[type-arg]
    return [o for o in outputs if isinstance(o, kind)]


# -- EMA ------------------------------------------------------------------------

unit = st.floats(min_value=0.0, max_value=1.0)


@given(unit, unit)
def test_ema_is_alpha_weighted_and_between_its_inputs(previous: float, sample: float) -> None:
    value = ema(previous, sample)
    assert value == pytest.approx(0.1 * sample + 0.9 * previous)
    assert min(previous, sample) - 1e-12 <= value <= max(previous, sample) + 1e-12


@given(unit, st.lists(st.integers(min_value=0, max_value=10**9), max_size=60), st.floats(min_value=0.1, max_value=10))
def test_record_traffic_keeps_an_ema_of_the_rate_in_unit_range(start: float, counts: list[int], window: float) -> None:
    r = make(RoutingConfig(full_scale_bytes_per_s=1e6))
    r.connections["p"] = link("p", start)
    expected = start
    for nbytes in counts:
        r.receive(TrafficMeasured("p", nbytes, window, T0))
        expected = 0.9 * expected + 0.1 * min(1.0, nbytes / window / 1e6)
        assert 0.0 <= r.connections["p"].bandwidth_score <= 1.0
    assert r.connections["p"].bandwidth_score == pytest.approx(expected)


def test_constant_traffic_converges_to_its_rate_and_silence_decays() -> None:
    r = make(RoutingConfig(full_scale_bytes_per_s=1000))
    r.connections["p"] = link("p", 0.0)
    for _ in range(200):
        r.record_traffic("p", 500, 1.0)
    assert r.connections["p"].bandwidth_score == pytest.approx(0.5, abs=1e-6)
    for _ in range(22):
        r.record_traffic("p", 0, 1.0)
    assert r.connections["p"].bandwidth_score < 0.1
    r.record_traffic("unknown", 10, 1.0)  # ignored, no error
    r.record_traffic("p", -1, 1.0)
    r.record_traffic("p", 1, 0.0)
    assert "unknown" not in r.connections


def test_link_record_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="bandwidth_score"):
        link("p", 1.5)
    with pytest.raises(ValueError, match="latency_ms"):
        HyphalLink("p", T0, T0, -1, 0.5, "", "inbound")
    with pytest.raises(ValueError, match="last_seen"):
        HyphalLink("p", T0, T0 - 1, 1, 0.5, "", "inbound")
    with pytest.raises(ValueError, match="alpha"):
        ema(0.5, 0.5, 0.0)
    assert latency_from_rtt(float("nan")) == 0 and latency_from_rtt(1e20) == 2**32 - 1
    assert link("p").healthy(T0 + 1, 30) and not link("p").healthy(T0 + 30, 30)


# -- pruning ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=8),
    st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=0, max_size=20),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_prune_drops_only_the_weakest_below_threshold_when_degree_exceeds_1_5_target(
    target: int, scores: list[float], threshold: float
) -> None:
    config = RoutingConfig(min_connections=0, target_degree=target, max_connections=max(target, 20), prune_threshold=threshold)
    r = make(config)
    for i, score in enumerate(scores):
        r.connections[f"p{i:02d}"] = link(f"p{i:02d}", score)
    before = dict(r.connections)
    out = r.prune_weak_links(T0)
    weak = [p for p, lk in before.items() if lk.bandwidth_score < threshold]
    if len(before) > 1.5 * target and weak:
        (goodbye,) = of(SendRequest, out)
        weakest = min(before[p].bandwidth_score for p in weak)
        assert before[goodbye.peer].bandwidth_score == weakest
        assert isinstance(decode_request(goodbye.payload), Goodbye)
        assert set(before) - set(r.connections) == {goodbye.peer}
        assert len(r.connections) >= config.min_connections
        assert of(LinkLost, out)[0].graceful
    else:
        assert out == [] and r.connections == before


def test_pruning_ties_go_to_the_less_reputable_peer() -> None:
    r = make(RoutingConfig(min_connections=0, target_degree=2, max_connections=8))
    for p in ("a", "b", "c", "d"):
        r.connections[p] = link(p, 0.0)
    for _ in range(5):
        r.reputation.delivered("c", T0, ok=False)
    (goodbye,) = of(SendRequest, r.prune_weak_links(T0))
    assert goodbye.peer == "c"


def test_goodbye_then_disconnect_and_no_redial_during_cooldown() -> None:
    r = make(RoutingConfig(min_connections=0, target_degree=2, max_connections=8, prune_cooldown=100))
    peers = POOL[:4]
    r.receive(candidates(peers))
    for p in peers:
        r.connections[p.node_id] = link(p.node_id, 0.0)
    out = r.handle_timer(T0)
    (goodbye,) = [o for o in of(SendRequest, out) if isinstance(decode_request(o.payload), Goodbye)]
    pruned = goodbye.peer
    out = r.receive(ResponseReceived(pruned, HYPHAL_PROTOCOL, goodbye.request_id, encode(GoodbyeAck()), T0 + 0.1))
    assert out == [Disconnect(pruned, "pruned")]
    assert r.receive(LinkDown(pruned, "closed", T0 + 0.2)) == []  # not a failure: no healing
    r.connections.clear()  # now we need links, and the pruned peer is the only candidate
    r.receive(candidates([p for p in peers if p.node_id == pruned], T0 + 1))
    assert of(Dial, r.handle_timer(T0 + 1)) == []
    assert [d.expected_peer for d in of(Dial, r.handle_timer(T0 + 101))] == [pruned]


def test_goodbye_without_answer_still_disconnects() -> None:
    r = make(RoutingConfig(min_connections=0, target_degree=1, max_connections=8, goodbye_timeout=5))
    for p in ("a", "b"):
        r.connections[p] = link(p, 0.0)
    (goodbye,) = of(SendRequest, r.prune_weak_links(T0))
    assert Disconnect(goodbye.peer, "pruned") in r.handle_timer(T0 + 5)
    r.connections["c"] = link("c", 0.0, T0 + 5)
    r.connections["d"] = link("d", 0.0, T0 + 5)
    (goodbye,) = of(SendRequest, r.prune_weak_links(T0 + 5))
    assert r.receive(RequestFailed(goodbye.peer, HYPHAL_PROTOCOL, goodbye.request_id, "closed", T0 + 6)) == [Disconnect(goodbye.peer, "pruned")]


def test_receiving_goodbye_removes_the_link_gracefully() -> None:
    r = make(RoutingConfig(min_connections=0, target_degree=0, max_connections=8))
    r.connections["a"] = link("a")
    out = r.receive(RequestReceived("a", HYPHAL_PROTOCOL, 5, encode(Goodbye(reason="pruned")), T0))
    assert decode_response(of(Respond, out)[0].payload) == GoodbyeAck()
    assert of(LinkLost, out)[0].graceful and "a" not in r.connections


# -- degree ------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=6), st.integers(min_value=0, max_value=6), st.integers(min_value=0, max_value=20))
def test_dials_never_overshoot_the_target(target: int, linked: int, available: int) -> None:
    config = RoutingConfig(min_connections=0, target_degree=target, max_connections=max(target, 1) * 2, dials_per_tick=50)
    r = make(config)
    for i in range(linked):
        r.connections[f"x{i}"] = link(f"x{i}")
    r.receive(candidates(POOL[:available]))
    dials = of(Dial, r.handle_timer(T0))
    assert len(dials) == max(0, min(target - linked, available))
    assert len({d.expected_peer for d in dials}) == len(dials)
    assert of(Dial, r.handle_timer(T0 + 0.5)) == []  # dials in flight count against the target


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=6), st.integers(min_value=0, max_value=12))
def test_inbound_connections_beyond_max_are_refused(max_connections: int, inbound: int) -> None:
    r = make(RoutingConfig(min_connections=0, target_degree=0, max_connections=max_connections))
    refused = 0
    for i in range(inbound):
        out = r.receive(LinkUp(POOL[i].node_id, "/ip4/127.0.0.1/tcp/9", "inbound", T0))
        refused += Disconnect(POOL[i].node_id, "full") in out
    assert len(r.anastomosis) == min(inbound, max_connections)
    assert refused == max(0, inbound - max_connections)


def test_config_rejects_inconsistent_degrees() -> None:
    with pytest.raises(ValueError, match="min_connections <= target_degree <= max_connections"):
        RoutingConfig(min_connections=3, target_degree=2)
    with pytest.raises(ValueError):
        RoutingConfig(prune_threshold=2)
    with pytest.raises(ValueError):
        RoutingConfig(alpha=0)
    with pytest.raises(ValueError):
        RoutingConfig(dials_per_tick=0)


def test_dial_choice_is_deterministic_under_a_seed_and_prefers_reputation() -> None:
    def chosen(seed: int, bad: set[str]) -> list[str]:
        r = make(RoutingConfig(target_degree=3, max_connections=6), seed=seed, me=POOL[-1])
        for peer in bad:
            for _ in range(30):
                r.reputation.delivered(peer, T0, ok=False)
                r.reputation.verified(peer, T0, honest=False)
        r.receive(candidates(POOL[:10]))
        return sorted(d.expected_peer for d in of(Dial, r.handle_timer(T0)))

    assert chosen(3, set()) == chosen(3, set())
    bad = {p.node_id for p in POOL[:5]}
    for seed in range(10):
        assert not bad & set(chosen(seed, bad))  # below min_reputation: never dialled


def test_failed_dials_back_off_exponentially() -> None:
    r = make(RoutingConfig(min_connections=0, target_degree=1, max_connections=2, backoff_base=1, backoff_max=60))
    target = POOL[0]
    r.receive(candidates([target]))
    now, failed_at, gaps = T0, None, []
    while len(gaps) < 6:
        dials = of(Dial, r.handle_timer(now))
        if dials:
            if failed_at is not None:
                gaps.append(now - failed_at)
            r.receive(DialFailed(dials[0].addr, target.node_id, "refused", now))
            failed_at = now
        now += 0.25
    assert gaps[-1] > 4 * gaps[0]
    assert all(gap <= 60 + 0.25 for gap in gaps)


def test_dial_without_answer_times_out() -> None:
    r = make(RoutingConfig(min_connections=0, target_degree=1, max_connections=2, dial_timeout=15))
    r.receive(candidates([POOL[0]]))
    assert len(of(Dial, r.handle_timer(T0))) == 1
    assert r.committed() == 1
    r.handle_timer(T0 + 15)
    assert r.committed() == 0


# -- healing -------------------------------------------------------------------------------


def test_link_failure_asks_the_remaining_peers_for_introductions_and_fuses() -> None:
    me = POOL[-1]
    r = make(RoutingConfig(min_connections=2, target_degree=3, max_connections=6), me=me)
    for p in POOL[:3]:
        r.connections[p.node_id] = link(p.node_id)
    out = r.receive(LinkDown(POOL[0].node_id, "reset", T0 + 1))
    assert of(LinkLost, out)[0] == LinkLost(of(LinkLost, out)[0].id, POOL[0].node_id, "reset", graceful=False)
    asks = of(SendRequest, out)
    assert {a.peer for a in asks} == {POOL[1].node_id, POOL[2].node_id}
    assert all(isinstance(decode_request(a.payload), IntroductionAsk) for a in asks)
    # POOL[1] introduces two fresh peers and one forged entry
    forged = Introduction(node_id=POOL[6].node_id, announcement=ann(POOL[7]))
    answer = Introductions(peers=(Introduction(POOL[4].node_id, ann(POOL[4])), Introduction(POOL[5].node_id, ann(POOL[5])), forged))
    (ask,) = [a for a in asks if a.peer == POOL[1].node_id]
    out = r.receive(ResponseReceived(POOL[1].node_id, HYPHAL_PROTOCOL, ask.request_id, encode(answer), T0 + 1.1))
    (received,) = of(IntroductionsReceived, out)
    assert (received.accepted, received.rejected) == (2, 1)
    assert r.refusals()["bad_introduction"] == 1
    assert {d.expected_peer for d in of(Dial, out)} <= {POOL[4].node_id, POOL[5].node_id}
    assert len(of(Dial, out)) == 1  # 2 links + 1 dial = target 3
    assert r.reputation.score(POOL[1].node_id, T0 + 2).honesty_score < 0.5


def test_introductions_are_answered_only_to_linked_peers_and_bounded() -> None:
    r = make(RoutingConfig(min_connections=0, target_degree=0, max_connections=20), me=POOL[-1])
    for p in POOL[:12]:
        r.connections[p.node_id] = link(p.node_id)
    r.receive(candidates(POOL[:12]))
    out = r.receive(RequestReceived(POOL[0].node_id, HYPHAL_PROTOCOL, 1, encode(IntroductionAsk(limit=MAX_INTRODUCTIONS)), T0))
    intro = decode_response(of(Respond, out)[0].payload)
    assert isinstance(intro, Introductions)
    assert len(intro.peers) == MAX_INTRODUCTIONS
    assert POOL[0].node_id not in {p.node_id for p in intro.peers}
    stranger = Identity.generate().node_id
    out = r.receive(RequestReceived(stranger, HYPHAL_PROTOCOL, 2, encode(IntroductionAsk(limit=3)), T0))
    assert decode_response(of(Respond, out)[0].payload) == Refusal(reason="not_linked")


def test_silent_link_is_dropped_as_failed_and_rtt_keeps_it_alive() -> None:
    r = make(RoutingConfig(min_connections=0, target_degree=0, max_connections=4, link_timeout=30))
    r.connections["a"] = link("a")
    r.connections["b"] = link("b")
    r.receive(RttMeasured("a", 12.4, T0 + 20))
    assert r.connections["a"].latency_ms == 12
    r.receive(RttMeasured("a", 20.0, T0 + 21))
    assert 12 < r.connections["a"].latency_ms < 20  # smoothed
    out = r.handle_timer(T0 + 30)
    assert Disconnect("b", "unhealthy") in out and "b" not in r.connections and "a" in r.connections


def test_hello_from_a_linked_peer_restarts_the_handshake() -> None:
    a = POOL[0]
    r = make()
    r.connections[a.node_id] = link(a.node_id)
    out = r.receive(RequestReceived(a.node_id, HYPHAL_PROTOCOL, 1, encode(Hello(version=1, announcement=ann(a))), T0))
    assert a.node_id not in r.connections and a.node_id in r.anastomosis
    assert len(of(SendRequest, out)) == 1


def test_other_protocols_and_self_links_are_ignored() -> None:
    me = Identity.generate()
    r = make(me=me)
    assert r.receive(RequestReceived("x", "/other/1", 1, b"??", T0)) == []
    assert r.receive(ResponseReceived("x", "/other/1", 1, b"??", T0)) == []
    assert r.receive(RequestFailed("x", "/other/1", 1, "?", T0)) == []
    assert r.receive(LinkUp(me.node_id, "", "inbound", T0)) == [Disconnect(me.node_id, "self")]
    assert r.receive(DialFailed("/ip4/127.0.0.1/tcp/1", None, "refused", T0)) == []
    refreshed = ann(me, T0 + 10)
    r.receive(AnnouncementRefreshed(refreshed, T0 + 10))
    assert r.announcement == refreshed == r.anastomosis.announcement


def test_incompatible_candidates_are_not_dialled() -> None:
    r = make(RoutingConfig(min_connections=0, target_degree=2, max_connections=4))
    storage_only: tuple[Capability, ...] = (Storage(capacity_mb=1, iops=1),)
    r.receive(CandidatesObserved(tuple(Candidate(p.node_id, addr_of(p), storage_only) for p in POOL[:3]), T0))
    assert of(Dial, r.handle_timer(T0)) == []


def test_introductions_answers_are_rate_limited_per_peer() -> None:
    r = make(RoutingConfig(min_connections=0, target_degree=0, max_connections=8, introduction_answer_interval=1.0))
    r.connections["a"] = link("a")
    ask = encode(IntroductionAsk(limit=2))
    first = r.receive(RequestReceived("a", HYPHAL_PROTOCOL, 1, ask, T0))
    assert isinstance(decode_response(of(Respond, first)[0].payload), Introductions)
    second = r.receive(RequestReceived("a", HYPHAL_PROTOCOL, 2, ask, T0 + 0.5))
    assert decode_response(of(Respond, second)[0].payload) == Refusal(reason="rate_limited")
    assert r.refusals()["rate_limited"] == 1
    third = r.receive(RequestReceived("a", HYPHAL_PROTOCOL, 3, ask, T0 + 1.5))
    assert isinstance(decode_response(of(Respond, third)[0].payload), Introductions)


def test_introduced_candidates_are_bounded_and_expire() -> None:
    from vudo.hyphal import routing as routing_module

    r = make(RoutingConfig(min_connections=0, target_degree=0, max_connections=8, introduced_ttl=60), me=POOL[-1])
    r.connections[POOL[0].node_id] = link(POOL[0].node_id)
    assert r.receive(LinkDown(POOL[1].node_id, "x", T0)) == []  # not linked: nothing to heal
    original = routing_module.MAX_INTRODUCED
    routing_module.MAX_INTRODUCED = 3
    try:
        (ask,) = r._ask_introductions(T0 + 10, force=True)  # noqa: SLF001 - drive one request directly
        assert isinstance(ask, SendRequest)
        answer = Introductions(peers=tuple(Introduction(p.node_id, ann(p, T0 + 10)) for p in POOL[2:8]))
        r.receive(ResponseReceived(POOL[0].node_id, HYPHAL_PROTOCOL, ask.request_id, encode(answer), T0 + 10))
        assert len(r._introduced) == 3  # noqa: SLF001
    finally:
        routing_module.MAX_INTRODUCED = original
    r.handle_timer(T0 + 71)
    assert r._introduced == {}  # noqa: SLF001


def test_hello_beyond_max_is_answered_full_then_closed_unless_the_peer_leaves_first() -> None:
    r = make(RoutingConfig(min_connections=0, target_degree=0, max_connections=1, refusal_grace=1.0))
    r.connections["a"] = link("a")
    hello = encode(Hello(version=1, announcement=ann(POOL[0])))
    out = r.receive(RequestReceived(POOL[0].node_id, HYPHAL_PROTOCOL, 1, hello, T0))
    assert decode_response(of(Respond, out)[0].payload) == Refusal(reason="full") and not of(Disconnect, out)
    assert Disconnect(POOL[0].node_id, "full") in r.handle_timer(T0 + 1.0)
    out = r.receive(RequestReceived(POOL[1].node_id, HYPHAL_PROTOCOL, 2, hello, T0 + 2))
    r.receive(LinkDown(POOL[1].node_id, "closed by peer", T0 + 2.5))  # it hung up on its own
    assert of(Disconnect, r.handle_timer(T0 + 3.5)) == []
