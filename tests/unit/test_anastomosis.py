"""Anastomosis: the verified, symmetric handshake, and everything it refuses."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vudo.errors import RemoteValueError
from vudo.hyphal.anastomosis import compatible
from vudo.hyphal.announcement import NodeAnnouncement, announce
from vudo.hyphal.capability import Capability, Compute, Gateway, Storage, Witness
from vudo.hyphal.linkproto import (
    HYPHAL_PROTOCOL,
    Disconnect,
    LinkDown,
    LinkUp,
    RequestFailed,
    RequestReceived,
    Respond,
    ResponseReceived,
    SendRequest,
)
from vudo.hyphal.linkwire import Hello, HelloAck, Refusal, decode_request, decode_response, encode
from vudo.hyphal.routing import AdaptiveRouting, FusionRefused, LinkEstablished, Output, RoutingConfig
from vudo.hyphal.signed import seal
from vudo.identity import Identity

T0 = 1_800_000_000.0
COMPUTE: tuple[Capability, ...] = (Compute(cores=2, memory_mb=1024),)
STORAGE: tuple[Capability, ...] = (Storage(capacity_mb=100, iops=10),)


def sealed(ident: Identity, caps: tuple[Capability, ...] = COMPUTE, now: float = T0, node_id: str | None = None) -> str:
    ann = NodeAnnouncement(node_id or ident.node_id, "127.0.0.1:1", "", caps, "0", now, link=f"/ip4/127.0.0.1/tcp/{hash(ident.node_id) % 60000 + 1}")
    if node_id is None:
        return announce(ident, ann)
    return seal(ident, ann)  # a body naming someone else, signed by ident


def node(ident: Identity, caps: tuple[Capability, ...] = COMPUTE, *, config: RoutingConfig | None = None, seeks: tuple[str, ...] = ()) -> AdaptiveRouting:
    return AdaptiveRouting(
        self_id=ident.node_id,
        capabilities=caps,
        announcement=sealed(ident, caps),
        config=config or RoutingConfig(),
        rng=random.Random(7),
        seeks=seeks,  # type: ignore[arg-type]
    )


def requests(outputs: list[Output]) -> list[SendRequest]:
    return [o for o in outputs if isinstance(o, SendRequest)]


def responses(outputs: list[Output]) -> list[Respond]:
    return [o for o in outputs if isinstance(o, Respond)]


def wire(a: AdaptiveRouting, b: AdaptiveRouting, now: float = T0) -> tuple[list[Output], list[Output]]:
    """Open a connection a -> b and pass every hyphal message between them until quiet."""
    seen: dict[str, list[Output]] = {a.self_id: [], b.self_id: []}
    nodes = {a.self_id: a, b.self_id: b}
    queue: list[tuple[str, Output]] = []
    for me, out in ((a.self_id, a.receive(LinkUp(b.self_id, "/ip4/127.0.0.1/tcp/2", "outbound", now))),
                    (b.self_id, b.receive(LinkUp(a.self_id, "/ip4/127.0.0.1/tcp/9", "inbound", now)))):
        queue.extend((me, o) for o in out)
    channels: dict[int, tuple[str, int]] = {}
    next_channel = 100
    while queue:
        me, item = queue.pop(0)
        seen[me].append(item)
        other = b.self_id if me == a.self_id else a.self_id
        if isinstance(item, SendRequest):
            next_channel += 1
            channels[next_channel] = (me, item.request_id)
            out = nodes[other].receive(RequestReceived(me, HYPHAL_PROTOCOL, next_channel, item.payload, now))
            queue.extend((other, o) for o in out)
        elif isinstance(item, Respond):
            requester, request_id = channels.pop(item.channel)
            out = nodes[requester].receive(ResponseReceived(me, HYPHAL_PROTOCOL, request_id, item.payload, now))
            queue.extend((requester, o) for o in out)
    return seen[a.self_id], seen[b.self_id]


def test_compatible_is_the_seed_precondition() -> None:
    assert compatible(COMPUTE, (), (Compute(cores=64, memory_mb=1),), ()) == {"compute"}
    assert compatible(COMPUTE, (), STORAGE, ()) == frozenset()
    assert compatible(COMPUTE, ("storage",), STORAGE, ()) == {"storage"}
    assert compatible(COMPUTE, (), STORAGE, ("compute",)) == {"compute"}
    assert compatible((Witness(stake=1), Gateway(protocols=("http",))), (), (Gateway(protocols=("grpc",)),), ()) == {"gateway"}


def test_both_sides_link_only_after_both_hellos_verified() -> None:
    a_id, b_id = Identity.generate(), Identity.generate()
    a, b = node(a_id), node(b_id)
    out_a, out_b = wire(a, b)
    assert [e.peer for e in out_a if isinstance(e, LinkEstablished)] == [b_id.node_id]
    assert [e.peer for e in out_b if isinstance(e, LinkEstablished)] == [a_id.node_id]
    assert a.connections[b_id.node_id].direction == "outbound"
    assert b.connections[a_id.node_id].direction == "inbound"
    # the link records the peer's announced listener, not the connection's source port
    assert b.connections[a_id.node_id].addr.startswith("/ip4/127.0.0.1/tcp/")
    assert not any(isinstance(o, Disconnect) for o in out_a + out_b)


def test_hello_alone_does_not_establish_a_link() -> None:
    a_id, b_id = Identity.generate(), Identity.generate()
    b = node(b_id)
    hello = Hello(version=1, announcement=sealed(a_id))
    out = b.receive(RequestReceived(a_id.node_id, HYPHAL_PROTOCOL, 1, encode(hello), T0))
    assert isinstance(decode_response(responses(out)[0].payload), HelloAck)
    assert b.connections == {}  # b still waits for its own Hello to be acknowledged
    (our_hello,) = requests(out)
    out = b.receive(ResponseReceived(a_id.node_id, HYPHAL_PROTOCOL, our_hello.request_id, encode(HelloAck(version=1)), T0))
    assert [e.peer for e in out if isinstance(e, LinkEstablished)] == [a_id.node_id]


def refused(out: list[Output]) -> list[str]:
    return [e.reason for e in out if isinstance(e, FusionRefused)]


def closes_after_grace(node: AdaptiveRouting, out: list[Output], peer: str, reason: str, now: float = T0) -> None:
    """A refusal we answered: the connection stays open for the grace, so the answer arrives, then closes."""
    assert not any(isinstance(o, Disconnect) for o in out)
    assert Disconnect(peer, reason) not in node.handle_timer(now + node.config.refusal_grace / 2)
    assert Disconnect(peer, reason) in node.handle_timer(now + node.config.refusal_grace)


def test_impostor_key_is_refused_and_counted() -> None:
    victim, impostor, b_id = Identity.generate(), Identity.generate(), Identity.generate()
    b = node(b_id)
    b.receive(LinkUp(impostor.node_id, "/ip4/127.0.0.1/tcp/5", "inbound", T0))
    # the impostor's Noise key is its own, but it replays the victim's genuine announcement
    hello = Hello(version=1, announcement=sealed(victim))
    out = b.receive(RequestReceived(impostor.node_id, HYPHAL_PROTOCOL, 1, encode(hello), T0))
    assert refused(out) == ["impostor"]
    closes_after_grace(b, out, impostor.node_id, "impostor")
    assert decode_response(responses(out)[0].payload) == Refusal(reason="impostor")
    assert b.refusals()["impostor"] == 1
    assert b.connections == {}
    assert b.reputation.score(impostor.node_id, T0).honesty_score < 0.5


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda a: sealed(a, now=T0 - 3600), "stale_announcement"),
        (lambda a: sealed(a, now=T0 + 3600), "stale_announcement"),
        (lambda a: sealed(a)[:-4] + "AAAA", "bad_announcement"),
        (lambda a: "not-a-sealed-value", "bad_announcement"),
        (lambda a: sealed(a, STORAGE), "incompatible"),
    ],
)
def test_bad_hellos_are_refused(make: object, reason: str) -> None:
    a_id, b_id = Identity.generate(), Identity.generate()
    b = node(b_id)
    hello = Hello(version=1, announcement=make(a_id))  # type: ignore[operator]
    out = b.receive(RequestReceived(a_id.node_id, HYPHAL_PROTOCOL, 1, encode(hello), T0))
    assert refused(out) == [reason]
    closes_after_grace(b, out, a_id.node_id, reason)
    assert b.refusals()[reason] == 1 and b.connections == {}


def test_seeking_what_the_other_offers_makes_nodes_compatible() -> None:
    a_id, b_id = Identity.generate(), Identity.generate()
    a, b = node(a_id, COMPUTE, seeks=("storage",)), node(b_id, STORAGE)
    wire(a, b)
    assert b_id.node_id in a.connections and a_id.node_id in b.connections


def test_refusal_from_the_peer_tears_the_handshake_down() -> None:
    a_id, b_id = Identity.generate(), Identity.generate()
    a, b = node(a_id, COMPUTE), node(b_id, STORAGE)  # incompatible: each refuses the other
    out_a, out_b = wire(a, b)
    assert a.connections == {} and b.connections == {}
    assert "incompatible" in refused(out_a) and "incompatible" in refused(out_b)


def test_handshake_times_out() -> None:
    a_id, b_id = Identity.generate(), Identity.generate()
    a = node(a_id, config=RoutingConfig(handshake_timeout=10.0))
    a.receive(LinkUp(b_id.node_id, "/ip4/127.0.0.1/tcp/2", "outbound", T0))
    assert not refused(a.handle_timer(T0 + 5))
    out = a.handle_timer(T0 + 10)
    assert refused(out) == ["handshake_timeout"] and Disconnect(b_id.node_id, "handshake_timeout") in out
    assert b_id.node_id not in a.anastomosis


def test_lost_hello_and_closed_connection_end_the_handshake() -> None:
    a_id, b_id, c_id = Identity.generate(), Identity.generate(), Identity.generate()
    a = node(a_id)
    (hello,) = requests(a.receive(LinkUp(b_id.node_id, "/ip4/127.0.0.1/tcp/2", "outbound", T0)))
    out = a.receive(RequestFailed(b_id.node_id, HYPHAL_PROTOCOL, hello.request_id, "timeout", T0 + 1))
    assert refused(out) == ["hello_lost"]
    a.receive(LinkUp(c_id.node_id, "/ip4/127.0.0.1/tcp/3", "outbound", T0))
    assert c_id.node_id in a.anastomosis
    assert a.receive(LinkDown(c_id.node_id, "reset", T0 + 1)) == []
    assert c_id.node_id not in a.anastomosis and a.connections == {}


def test_answer_of_the_wrong_kind_to_a_hello_fails_it() -> None:
    a_id, b_id = Identity.generate(), Identity.generate()
    a = node(a_id)
    (hello,) = requests(a.receive(LinkUp(b_id.node_id, "/ip4/127.0.0.1/tcp/2", "outbound", T0)))
    out = a.receive(ResponseReceived(b_id.node_id, HYPHAL_PROTOCOL, hello.request_id, b'{"type":"goodbye_ack"}', T0))
    assert refused(out) == ["hello_lost"] and a.connections == {}
    (hello,) = requests(a.receive(LinkUp(b_id.node_id, "/ip4/127.0.0.1/tcp/2", "outbound", T0)))
    out = a.receive(ResponseReceived(b_id.node_id, HYPHAL_PROTOCOL, hello.request_id, b"\xff\x00garbage", T0))
    assert refused(out) == ["hello_lost"] and a.refusals()["malformed_response"] == 1


def test_wrong_version_is_refused_by_name() -> None:
    a_id, b_id = Identity.generate(), Identity.generate()
    b = node(b_id)
    payload = encode(Hello(version=2, announcement=sealed(a_id)))
    out = b.receive(RequestReceived(a_id.node_id, HYPHAL_PROTOCOL, 1, payload, T0))
    assert refused(out) == ["version"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_on_the_hyphal_protocol_never_hurt_a_node(payload: bytes) -> None:
    a_id, b_id = IDS
    b = node(b_id)
    out = b.receive(RequestReceived(a_id.node_id, HYPHAL_PROTOCOL, 1, payload, T0))
    assert b.connections == {}
    assert refused(out) in (["malformed"], ["version"])
    closes_after_grace(b, out, a_id.node_id, refused(out)[0])
    # a node that refused garbage still fuses with an honest peer afterwards
    honest = node(Identity.generate())
    wire(honest, b)
    assert honest.self_id in b.connections


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_from_a_linked_peer_are_refused_not_fatal(payload: bytes) -> None:
    a, b = node(IDS[0]), node(IDS[1])
    wire(a, b)
    out = b.receive(RequestReceived(a.self_id, HYPHAL_PROTOCOL, 1, payload, T0))
    try:
        decode_request(payload)
    except RemoteValueError:
        assert decode_response(responses(out)[0].payload) == Refusal(reason="malformed_request")
        assert a.self_id in b.connections  # the link survives one bad message
        assert b.refusals()["malformed_request"] == 1


IDS = (Identity.generate(), Identity.generate())
