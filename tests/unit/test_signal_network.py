"""SignalNetwork: validation order, counting, limits, reputation, priorities and handlers — driven by hand."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vudo.hyphal.linkproto import HYPHAL_PROTOCOL, LinkDown, LinkUp, RequestFailed, RequestReceived, Respond, ResponseReceived, SendRequest
from vudo.signals import envelope as env
from vudo.signals.envelope import (
    SIGNAL_PROTOCOL,
    ActionPotential,
    Announce,
    Directed,
    Flood,
    Gradient,
    Graft,
    IHave,
    Prune,
    Push,
    Quorum,
    decode_frame,
    encode_frame,
)
from vudo.signals.network import (
    ActionPotentialIgnored,
    Delivered,
    MembershipChanged,
    PeerPenalized,
    QuorumFired,
    SignalConfig,
    SignalHandlers,
    SignalNetwork,
    SignalRejected,
    TopologyChanged,
)
from vudo.testing.signalsim import identities

FLOOD = Flood()
T0 = 1_800_000_000.0
ME, PEER, SRC, FAR = identities(4)


def node(**config: object) -> SignalNetwork:
    n = SignalNetwork(ME, config=SignalConfig(**config), rng=random.Random(1))  # type: ignore[arg-type]
    n.receive(LinkUp(PEER.node_id, "/memory/1", "inbound", T0))
    n.receive(LinkUp(FAR.node_id, "/memory/3", "outbound", T0))
    return n


def signal(signal_type: env.SignalType = FLOOD, *, ttl: int = 8, now: float = T0, payload: bytes = b"x", nonce: int = 0) -> env.Signal:
    return env.create(SRC, signal_type, payload, ttl=ttl, now=now, nonce=nonce.to_bytes(8, "big"))


_channel = iter(range(1, 1_000_000))


def push(n: SignalNetwork, s: env.Signal, *, hops: int = 2, now: float = T0, peer: str = PEER.node_id) -> list[object]:
    return list(n.receive(RequestReceived(peer, SIGNAL_PROTOCOL, next(_channel), encode_frame(Push(s, hops)), now)))


def raw(n: SignalNetwork, data: bytes, *, now: float = T0, peer: str = PEER.node_id) -> list[object]:
    return list(n.receive(RequestReceived(peer, SIGNAL_PROTOCOL, next(_channel), data, now)))


def delivered(out: list[object]) -> list[Delivered]:
    return [o for o in out if isinstance(o, Delivered)]


def reasons(out: list[object]) -> list[str]:
    return [o.reason for o in out if isinstance(o, SignalRejected)]


def sent(n: SignalNetwork) -> list[tuple[str, env.Frame]]:
    return [(r.peer, decode_frame(r.payload)) for r in n.poll_sends()]


def test_a_valid_flood_is_handled_answered_and_forwarded_once() -> None:
    n = node()
    s = signal()
    out = push(n, s)
    assert isinstance(out[0], Respond) and out[0].payload == b""
    [d] = delivered(out)
    assert d.signal == s and d.hops == 2 and d.strength is None
    assert sent(n) == [(FAR.node_id, Push(s, 3))]
    # Replay: answered, counted, not handled again.
    assert delivered(push(n, s)) == [] and n.rejected[env.DUPLICATE] == 1


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: msgspec.structs.replace(signal(), signature=bytes(64)), env.BAD_SIGNATURE),
        (lambda: msgspec.structs.replace(signal(), ttl=30), env.BAD_ID),  # TTL inflated in flight
        (lambda: signal(now=T0 - 61), env.EXPIRED),
        (lambda: signal(now=T0 + 31), env.FUTURE),
        (lambda: signal(ttl=40), env.TTL_TOO_LARGE),  # validly signed, above this node's cap
        (lambda: signal(payload=b"x" * 5000), env.OVERSIZE),
    ],
    ids=["forged", "ttl-inflated", "expired", "future", "ttl-cap", "payload-cap"],
)
def test_invalid_signals_are_counted_and_never_handled_nor_forwarded(make: object, reason: str) -> None:
    n = node()
    out = push(n, make())  # type: ignore[operator]
    assert reasons(out) == [reason]
    assert out[0] == Respond(out[0].channel, reason.encode())  # type: ignore[attr-defined]
    assert delivered(out) == [] and n.poll_sends() == []
    assert n.rejected[reason] == 1


def test_a_forwarder_cannot_claim_to_be_the_source() -> None:
    n = node()
    s = signal(Gradient(0.5))
    assert reasons(push(n, s, hops=1)) == [env.BAD_HOPS]  # PEER is not SRC: a copy from it has crossed 2+ links
    assert n.penalty(PEER.node_id, T0) == 1.0
    [d] = delivered(push(n, s, hops=1, peer=SRC.node_id))
    assert d.strength == 0.5


def test_garbage_and_oversize_frames() -> None:
    n = node(max_payload=100)
    assert reasons(raw(n, b"\xff\x00garbage")) == [env.MALFORMED]
    assert reasons(raw(n, b"\x00" * 3000)) == [env.OVERSIZE]
    assert reasons(raw(n, encode_frame(Push(signal(ttl=2), 3)))) == [env.HOPS_EXCEEDED]


def test_a_copy_with_another_signature_is_a_forgery_not_a_duplicate() -> None:
    n = node()
    s = signal()
    push(n, s)
    assert reasons(push(n, msgspec.structs.replace(s, signature=bytes(64)))) == [env.BAD_SIGNATURE]
    # The source may sign the same fields again (another valid Ed25519 signature): a duplicate, no one's fault.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    body = env.signed_bytes(s.v, s.source, s.signal_type, s.payload, s.ttl, s.timestamp, s.nonce)
    other_sig = _resign(SRC.private_key, body)
    assert other_sig != s.signature and isinstance(SRC.private_key, Ed25519PrivateKey)
    out = push(n, msgspec.structs.replace(s, signature=other_sig), peer=FAR.node_id)
    assert reasons(out) == [] and delivered(out) == [] and n.rejected[env.DUPLICATE] == 1
    assert n.penalty(FAR.node_id, T0) == 0.0


def _resign(key: object, body: bytes) -> bytes:
    """A second valid Ed25519 signature of ``body`` (random nonce, as a misbehaving signer may produce)."""
    import hashlib
    import secrets

    from cryptography.hazmat.primitives import serialization

    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())  # type: ignore[attr-defined]
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(bytearray([h[0] & 248]) + h[1:31] + bytes([(h[31] & 127) | 64]), "little")
    q = 2**252 + 27742317777372353535851937790883648493
    r = secrets.randbelow(q - 1) + 1
    big_r = _scalar_mult_base(r)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)  # type: ignore[attr-defined]
    k = int.from_bytes(hashlib.sha512(big_r + pub + body).digest(), "little") % q
    s = (r + k * a) % q
    return big_r + s.to_bytes(32, "little")


def _scalar_mult_base(n: int) -> bytes:
    """Encode n*B on edwards25519 (plain affine arithmetic; slow, fine for one test)."""
    p = 2**255 - 19
    d = -121665 * pow(121666, p - 2, p) % p
    by = 4 * pow(5, p - 2, p) % p
    bx = _recover_x(by, 0, p, d)

    def add(P: tuple[int, int], Q: tuple[int, int]) -> tuple[int, int]:
        (x1, y1), (x2, y2) = P, Q
        t = d * x1 * x2 * y1 * y2 % p
        return ((x1 * y2 + x2 * y1) * pow(1 + t, p - 2, p) % p, (y1 * y2 + x1 * x2) * pow(1 - t, p - 2, p) % p)

    result, addend = (0, 1), (bx, by)
    while n:
        if n & 1:
            result = add(result, addend)
        addend = add(addend, addend)
        n >>= 1
    x, y = result
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _recover_x(y: int, sign: int, p: int, d: int) -> int:
    x2 = (y * y - 1) * pow(d * y * y + 1, p - 2, p) % p
    x = pow(x2, (p + 3) // 8, p)
    if (x * x - x2) % p:
        x = x * pow(2, (p - 1) // 4, p) % p
    return x if (x & 1) == sign else p - x


def test_replay_after_the_dedup_memory_overflowed_is_refused() -> None:
    n = node(dedup_capacity=4, peer_rate=1e6, peer_burst=1e6)
    first = signal(now=T0 - 10)
    push(n, first)
    for i in range(1, 8):  # a flood of unique ids pushes the first one out early
        push(n, signal(nonce=i, now=T0 - 10 + i))
    assert len(n.dedup) == 4
    assert reasons(push(n, first)) == [env.REPLAY_WINDOW]


def test_rate_limit_per_peer() -> None:
    n = node(peer_rate=1.0, peer_burst=3.0)
    out = [push(n, signal(nonce=i)) for i in range(5)]
    assert [reasons(o) for o in out] == [[], [], [], [env.RATE_LIMITED], [env.RATE_LIMITED]]
    # Another peer has its own bucket; time refills this one.
    assert reasons(push(n, signal(nonce=10), peer=FAR.node_id)) == []
    assert reasons(push(n, signal(nonce=11), now=T0 + 1.0)) == []
    # Rate limiting is not the peer's fault: no penalty.
    assert n.penalty(PEER.node_id, T0 + 1) == 0.0


def test_a_peer_that_keeps_sending_invalid_signals_is_penalized_once_and_quarantined() -> None:
    n = node(penalty_limit=5.0, penalty_half_life=10.0, peer_rate=1e6, peer_burst=1e6)
    bad = msgspec.structs.replace(signal(), signature=bytes(64))
    outs = [o for _ in range(8) for o in push(n, bad)]
    penalized = [o for o in outs if isinstance(o, PeerPenalized)]
    assert len(penalized) == 1 and penalized[0].peer == PEER.node_id and penalized[0].last_reason == env.BAD_SIGNATURE
    # Quarantined: even a valid signal is refused now...
    assert reasons(push(n, signal(nonce=1))) == [env.QUARANTINED]
    # ...until the score has decayed below half the limit.
    assert reasons(push(n, signal(nonce=2, now=T0 + 30), now=T0 + 30)) == []
    assert n.penalty(PEER.node_id, T0 + 30) < 2.5


def test_gradient_reads_strength_from_hops_and_stops_below_threshold() -> None:
    n = node(min_strength=0.2)
    s = signal(Gradient(0.5, "cpu"))
    [d] = delivered(push(n, s, hops=2))
    assert d.strength == pytest.approx(0.25)
    assert n.poll_sends() == []  # 0.125 < 0.2: not forwarded
    assert n.read_gradient("cpu", now=T0) == [(SRC.node_id, pytest.approx(0.25))]
    # A shorter path arrives later (from the source itself): the reading rises, it is forwarded, not handled twice.
    assert delivered(push(n, s, hops=1, peer=SRC.node_id)) == []
    assert n.read_gradient("cpu", now=T0) == [(SRC.node_id, pytest.approx(0.5))]
    assert sorted(sent(n)) == sorted([(PEER.node_id, Push(s, 2)), (FAR.node_id, Push(s, 2))])


def test_directed_is_handled_by_the_target_only_and_routed_by_the_view() -> None:
    n = node()
    s = signal(Directed(ME.node_id))
    assert len(delivered(push(n, s))) == 1 and n.poll_sends() == []
    other = identities(6)[5].node_id
    n.receive(TopologyChanged(((FAR.node_id, other),), T0))
    t = signal(Directed(other), nonce=1)
    assert delivered(push(n, t)) == []
    assert sent(n) == [(FAR.node_id, Push(t, 3))]
    # The routed push failed: no other known path, so spread it (never back to the sender).
    rid = 0
    n.receive(TopologyChanged((), T0))
    t2 = signal(Directed(other), nonce=2)
    push(n, t2, peer=FAR.node_id)
    [req] = n.poll_sends()
    rid = req.request_id
    assert decode_frame(req.payload) == Push(t2, 3, spread=True) and req.peer == PEER.node_id
    n.receive(ResponseReceived(PEER.node_id, SIGNAL_PROTOCOL, rid, b"", T0))


def test_directed_fails_over_to_the_next_link_then_spreads() -> None:
    n = node()
    target = identities(6)[5].node_id
    n.receive(TopologyChanged(((FAR.node_id, target), (PEER.node_id, target)), T0))
    s, _ = n.emit(Directed(target), b"hi", now=T0)
    [first] = n.poll_sends()
    n.receive(RequestFailed(first.peer, SIGNAL_PROTOCOL, first.request_id, "timeout", T0 + 1))
    [second] = n.poll_sends()
    assert {first.peer, second.peer} == {FAR.node_id, PEER.node_id}
    n.receive(RequestFailed(second.peer, SIGNAL_PROTOCOL, second.request_id, "timeout", T0 + 2))
    spread = sent(n)
    assert {p for p, _ in spread} == {FAR.node_id, PEER.node_id} and all(isinstance(f, Push) and f.spread for _, f in spread)


def test_failed_pushes_are_retried_while_the_link_is_up() -> None:
    n = node(push_retries=1)
    n.emit(Flood(), b"", now=T0)
    reqs = n.poll_sends()
    assert len(reqs) == 2
    far = next(r for r in reqs if r.peer == FAR.node_id)
    peer = next(r for r in reqs if r.peer == PEER.node_id)
    n.receive(RequestFailed(FAR.node_id, SIGNAL_PROTOCOL, far.request_id, "timeout", T0 + 1))
    [retry] = n.poll_sends()
    assert retry.peer == FAR.node_id and retry.payload == far.payload
    n.receive(RequestFailed(FAR.node_id, SIGNAL_PROTOCOL, retry.request_id, "timeout", T0 + 2))
    assert n.poll_sends() == []  # retries exhausted
    n.receive(LinkDown(PEER.node_id, "closed", T0 + 2))
    n.receive(RequestFailed(PEER.node_id, SIGNAL_PROTOCOL, peer.request_id, "closed", T0 + 2))
    assert n.poll_sends() == []  # link gone: nothing to retry on
    assert n.stats["push_retried"] == 1 and n.stats["push_failed"] == 3


def test_quorum_fires_on_the_node_once_membership_allows() -> None:
    n = node()
    members = frozenset({ME.node_id, SRC.node_id, PEER.node_id, FAR.node_id})
    out = push(n, signal(Quorum(0.5, "go")))
    assert [o for o in out if isinstance(o, QuorumFired)] == []  # size unknown
    fired = n.receive(MembershipChanged(members, T0))
    assert [(f.key, f.contributors, f.network_size) for f in fired if isinstance(f, QuorumFired)] == []  # 1/4
    _, out2 = n.emit(Quorum(0.5, "go"), b"", now=T0)
    [f] = [o for o in out2 if isinstance(o, QuorumFired)]
    assert (f.key, f.contributors, f.network_size) == ("go", 2, 4)
    _, out3 = n.emit(Quorum(0.5, "go"), b"", now=T0 + 1)
    assert [o for o in out3 if isinstance(o, QuorumFired)] == []


def test_action_potential_goes_ahead_of_queued_traffic_and_respects_refractory() -> None:
    n = node()
    for i in range(5):
        n.emit(Flood(), bytes([i]), now=T0)
    ap = signal(ActionPotential(1000, "alarm"))
    [d] = delivered(push(n, ap))
    assert d.urgent
    [first] = n.poll_sends(1)
    assert decode_frame(first.payload) == Push(ap, 3) and first.peer == FAR.node_id
    # Another action potential of the same key inside the period: ignored, not forwarded.
    queued = n.queued
    out = push(n, signal(ActionPotential(1000, "alarm"), nonce=1, now=T0 + 0.5), now=T0 + 0.5)
    assert delivered(out) == [] and [type(o) for o in out if isinstance(o, ActionPotentialIgnored)] == [ActionPotentialIgnored]
    assert n.queued == queued
    # After the period it fires again.
    assert len(delivered(push(n, signal(ActionPotential(1000, "alarm"), nonce=2, now=T0 + 1), now=T0 + 1))) == 1


def test_emit_checks_its_arguments_and_handles_its_own_signal() -> None:
    n = node(max_ttl=10, default_ttl=5, max_payload=10)
    with pytest.raises(ValueError, match="ttl"):
        n.emit(Flood(), b"", now=T0, ttl=11)
    with pytest.raises(ValueError, match="payload"):
        n.emit(Flood(), b"x" * 11, now=T0)
    s, out = n.emit(Gradient(0.5), b"", now=T0)
    [d] = delivered(out)
    assert d.hops == 0 and d.strength == 1.0
    with pytest.raises(ValueError):
        SignalConfig(default_ttl=50)
    with pytest.raises(ValueError):
        SignalConfig(max_payload=0)
    with pytest.raises(ValueError):
        SignalConfig(max_age=0)


def test_other_protocols_and_unknown_responses_are_ignored() -> None:
    n = node()
    assert n.receive(RequestReceived(PEER.node_id, HYPHAL_PROTOCOL, 1, b"junk", T0)) == []
    assert n.receive(ResponseReceived(PEER.node_id, SIGNAL_PROTOCOL, 999, b"", T0)) == []
    assert n.receive(RequestFailed(PEER.node_id, SIGNAL_PROTOCOL, 999, "timeout", T0)) == []
    n.emit(Flood(), b"", now=T0)
    r: SendRequest = n.poll_sends()[0]
    n.receive(ResponseReceived(r.peer, SIGNAL_PROTOCOL, r.request_id, b"rate_limited", T0))
    assert n.stats["refused_by_peer:rate_limited"] == 1


def test_handlers_per_kind() -> None:
    n = node()
    handlers = SignalHandlers()
    seen: list[str] = []
    handlers.register("flood", lambda d: seen.append(d.signal.id))

    def broken(_: Delivered) -> None:
        raise RuntimeError("handler bug")

    handlers.register("flood", broken)
    s, out = n.emit(Flood(), b"", now=T0)
    assert handlers.dispatch(out) == 2
    assert seen == [s.id] and handlers.errors == 1
    _, out = n.emit(Gradient(0.5), b"", now=T0)
    assert handlers.dispatch(out) == 0
    with pytest.raises(ValueError, match="unknown signal kind"):
        handlers.register("telepathy", lambda d: None)


_KEYS = identities(8)[4:]
_TYPES = [Flood(), Gradient(0.5), Directed(ME.node_id), Directed(FAR.node_id), Quorum(0.5, "q"), ActionPotential(100, "a")]


@st.composite
def _signals(draw: st.DrawFn) -> env.Signal:
    return env.create(
        draw(st.sampled_from(_KEYS)),
        draw(st.sampled_from(_TYPES)),
        draw(st.sampled_from([b"", b"x"])),
        ttl=draw(st.sampled_from([1, 8, 40])),
        now=T0 + draw(st.sampled_from([-70.0, -10.0, 0.0, 10.0, 40.0])),
        nonce=draw(st.integers(0, 255)).to_bytes(8, "big"),
    )


@st.composite
def _requests(draw: st.DrawFn) -> list[tuple[str, bytes, float]]:
    """Requests drawn from a small pool of signals, so replays and duplicates are common."""
    pool = draw(st.lists(_signals(), min_size=1, max_size=8))
    out = []
    for _ in range(draw(st.integers(0, 40))):
        peer = draw(st.sampled_from([PEER.node_id, FAR.node_id]))
        dt = draw(st.floats(0, 0.5))
        s = draw(st.sampled_from(pool))
        choice = draw(st.integers(0, 4))
        if choice <= 1:
            data = encode_frame(Push(s, draw(st.integers(1, s.ttl))))
        elif choice == 2:
            wire = bytearray(encode_frame(Push(s, 1)))
            wire[draw(st.integers(0, len(wire) - 1))] ^= draw(st.integers(1, 255))
            data = bytes(wire)
        elif choice == 3:
            data = encode_frame(draw(st.sampled_from([IHave([Announce(s.id, 1)]), Graft(s.id), Graft(None), Prune()])))
        else:
            data = draw(st.binary(max_size=200))
        out.append((peer, data, dt))
    return out


@settings(max_examples=150, deadline=None)
@given(_requests())
def test_any_sequence_of_requests_is_answered_once_and_never_handled_twice(requests: list[tuple[str, bytes, float]]) -> None:
    n = node(dedup_capacity=4, peer_rate=5.0, peer_burst=10.0)
    n.receive(MembershipChanged(frozenset(k.node_id for k in _KEYS) | {ME.node_id}, T0))
    now = T0
    handled: list[str] = []
    for i, (peer, data, dt) in enumerate(requests):
        now += dt
        out = n.receive(RequestReceived(peer, SIGNAL_PROTOCOL, i, data, now))
        assert [o.channel for o in out if isinstance(o, Respond)] == [i]
        for d in delivered(list(out)):
            env.verify(d.signal)
            handled.append(d.signal.id)
        n.handle_timer(now)
        n.poll_sends()
        assert len(n.dedup) <= 4
    assert len(handled) == len(set(handled))


def test_a_push_refused_as_rate_limited_is_resent_later() -> None:
    n = node(retry_delay=0.2, push_retries=2)
    n.emit(Flood(), b"", now=T0)
    req = next(r for r in n.poll_sends() if r.peer == PEER.node_id)
    n.receive(ResponseReceived(PEER.node_id, SIGNAL_PROTOCOL, req.request_id, env.RATE_LIMITED.encode(), T0))
    assert n.poll_sends() == [] and n.next_timer() == pytest.approx(T0 + 0.2)
    n.handle_timer(T0 + 0.1)
    assert n.poll_sends() == []
    n.handle_timer(T0 + 0.2)
    [again] = n.poll_sends()
    assert again.peer == PEER.node_id and again.payload == req.payload
    # Refused again: the wait doubles.
    n.receive(ResponseReceived(PEER.node_id, SIGNAL_PROTOCOL, again.request_id, env.RATE_LIMITED.encode(), T0 + 0.2))
    assert n.next_timer() == pytest.approx(T0 + 0.6)


def test_memory_for_payloads_is_bounded() -> None:
    n = node(held_capacity=10, max_pending=20, peer_rate=1e6, peer_burst=1e6)
    signals = [signal(nonce=i, payload=b"p" * 1000) for i in range(30)]
    for s in signals:
        push(n, s)
    assert len(n.broadcast._held) == 10  # type: ignore[union-attr]
    assert len(n._pending) <= 20
    # The oldest is no longer held: a graft for it is answered with nothing; the newest is pushed.
    assert n.broadcast.on_graft(PEER.node_id, signals[0].id, T0) == []
    assert len(n.broadcast.on_graft(PEER.node_id, signals[-1].id, T0)) == 1
