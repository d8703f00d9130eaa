"""Sans-I/O carriage of the ledger: the /vudo/credits/1 messages, the Raft carrier, the forwarder, pinned links."""

from __future__ import annotations

import random

import msgspec
import pytest

from vudo.credits import CreditTransaction, Proposal, SignedVote
from vudo.credits.forwarding import CallDone, DeliverReply, Forwarder, HandleRpc, RaftCarrier
from vudo.credits.wire import (
    CREDITS_PROTOCOL,
    MAX_MESSAGE_BYTES,
    RAFT_PROTOCOL,
    Committed,
    Genesis,
    Read,
    ReadReply,
    Refused,
    Submit,
    decode_request,
    decode_response,
    encode,
)
from vudo.errors import RemoteValueError
from vudo.hyphal.capability import Capability, Compute, Witness
from vudo.hyphal.linkproto import (
    Dial,
    Disconnect,
    LinkDown,
    LinkUp,
    RequestFailed,
    RequestReceived,
    Respond,
    ResponseReceived,
    SendRequest,
)
from vudo.hyphal.routing import AdaptiveRouting, Candidate, CandidatesObserved, PinnedPeers, RoutingConfig
from vudo.identity import Identity

T0 = 1_800_000_000.0
ALICE, BOB = Identity.generate(), Identity.generate()


def tx(op_id: str = "t1", amount: int = 5) -> CreditTransaction:
    return CreditTransaction(id=op_id, from_=ALICE.node_id, to=BOB.node_id, amount=amount, timestamp=1).signed(ALICE)


# -- wire ---------------------------------------------------------------------------------


def test_requests_and_responses_round_trip() -> None:
    for request in (Submit(transfer=tx()), Read("accounts"), Read("account", BOB.node_id, hops=1),
                    Genesis(((ALICE.node_id, 10),), (ALICE.node_id,), 670, 1)):
        assert decode_request(encode(request)) == request
    for response in (Committed("applied", 7), Refused("not_leader", "ask B", BOB.node_id), ReadReply(3)):
        assert decode_response(encode(response)) == response


@pytest.mark.parametrize(("data", "reason"), [
    (b"\xc1", "malformed"),
    (b"x" * (MAX_MESSAGE_BYTES + 1), "oversize"),
    (encode(Read("accounts")).replace(b"accounts", b"everythi"), "malformed"),
])
def test_bad_requests_are_the_senders_fault(data: bytes, reason: str) -> None:
    with pytest.raises(RemoteValueError) as err:
        decode_request(data)
    assert err.value.reason == reason


def test_a_submission_carries_exactly_one_signed_operation() -> None:
    proposal = Proposal(id="p", proposer=ALICE.node_id, action="mint", target=BOB.node_id, amount=1, timestamp=1).signed(ALICE)
    with pytest.raises(RemoteValueError) as err:
        decode_request(encode(Submit(transfer=tx(), propose=proposal)))
    assert err.value.reason == "bad_submit"
    with pytest.raises(RemoteValueError):
        decode_request(encode(Submit()))
    unsigned = msgspec.structs.replace(tx(), signature=b"")
    with pytest.raises(RemoteValueError) as err:
        decode_request(encode(Submit(transfer=unsigned)))
    assert err.value.reason == "bad_field"
    with pytest.raises(RemoteValueError):
        decode_request(encode(Submit(transfer=tx(), hops=2)))  # beyond MAX_HOPS
    vote = SignedVote(proposal_id="p", voter=ALICE.node_id, approve=True, timestamp=1).signed(ALICE)
    for op in (tx(), proposal, vote):
        carried = Submit.of(op)
        assert carried.op() is op and decode_request(encode(carried)) == carried


# -- raft carrier -------------------------------------------------------------------------


def test_carrier_sends_only_on_authenticated_links_and_maps_answers_back() -> None:
    c = RaftCarrier()
    assert c.outbound([(1, "B", b"rpc")]) == [DeliverReply(1, None, "no link to B")]
    c.receive(LinkUp("B", "/ip4/127.0.0.1/tcp/1", "outbound", T0))
    [send] = c.outbound([(2, "B", b"rpc")])
    assert isinstance(send, SendRequest) and send.protocol == RAFT_PROTOCOL and send.peer == "B"
    assert c.receive(ResponseReceived("B", RAFT_PROTOCOL, send.request_id, b"ok", T0)) == [DeliverReply(2, b"ok")]
    assert c.receive(ResponseReceived("B", RAFT_PROTOCOL, send.request_id, b"late", T0)) == []  # answered once
    [again] = c.outbound([(3, "B", b"rpc")])
    assert isinstance(again, SendRequest)
    assert c.receive(ResponseReceived("B", RAFT_PROTOCOL, again.request_id, b"", T0)) == [DeliverReply(3, None, "B refused the rpc")]
    [third] = c.outbound([(4, "B", b"rpc")])
    assert isinstance(third, SendRequest)
    assert c.receive(RequestFailed("B", RAFT_PROTOCOL, third.request_id, "timeout", T0)) == [DeliverReply(4, None, "timeout")]
    c.receive(LinkDown("B", "closed", T0))
    assert c.outbound([(5, "B", b"rpc")]) == [DeliverReply(5, None, "no link to B")]


def test_carrier_serves_inbound_rpcs_with_the_authenticated_sender() -> None:
    c = RaftCarrier()
    assert c.receive(RequestReceived("B", RAFT_PROTOCOL, 9, b"vote", T0)) == [HandleRpc("B", b"vote", 9)]
    c.ticket_issued(100, 9)
    c.ticket_issued(101, 10)
    assert c.owns(100) and not c.owns(5)
    assert c.rpc_done(100, b"granted") == [Respond(9, b"granted")]
    assert c.rpc_done(101, None) == [Respond(10, b"")]  # refused (not a member): an empty answer
    assert c.rpc_done(100, b"again") == []
    assert (c.counters.served, c.counters.refused) == (1, 1)


def test_fault_injection_drops_frames_both_ways() -> None:
    c = RaftCarrier()
    c.receive(LinkUp("B", "a", "inbound", T0))
    [send] = c.outbound([(1, "B", b"x")])
    assert isinstance(send, SendRequest)
    c.drop = frozenset({"B"})
    assert c.outbound([(2, "B", b"x")])[0] == DeliverReply(2, None, "dropped by raft_fault_drop (fault injection)")
    assert c.receive(RequestReceived("B", RAFT_PROTOCOL, 3, b"x", T0)) == []
    assert c.receive(ResponseReceived("B", RAFT_PROTOCOL, send.request_id, b"ok", T0))[0].reply is None  # type: ignore[union-attr]
    assert c.counters.fault_dropped == 3


# -- forwarder ----------------------------------------------------------------------------


def up(f: Forwarder, *peers: str) -> None:
    for p in peers:
        f.receive(LinkUp(p, "a", "outbound", T0))


def answer(f: Forwarder, send: SendRequest, response: Committed | Refused | ReadReply | bytes, now: float = T0) -> list:  # type: ignore[type-arg]
    payload = response if isinstance(response, bytes) else encode(response)
    return f.receive(ResponseReceived(send.peer, CREDITS_PROTOCOL, send.request_id, payload, now))


def test_forwarder_prefers_the_linked_leader_and_learns_it_from_refusals() -> None:
    f = Forwarder("me")
    f.set_route(leader=None, witnesses=frozenset({"W1", "W2", "W3"}))
    up(f, "W1", "W2")
    [first] = f.call(1, Read("summary"), T0)
    assert isinstance(first, SendRequest) and first.peer in ("W1", "W2")
    other = "W2" if first.peer == "W1" else "W1"
    [resend] = answer(f, first, Refused("not_leader", "", other))
    assert isinstance(resend, SendRequest) and resend.peer == other and f.leader == other
    [done] = answer(f, resend, ReadReply(12))
    assert isinstance(done, CallDone) and done.call == 1 and done.response == ReadReply(12) and done.attempts == 2
    [direct] = f.call(2, Read("summary"), T0)
    assert isinstance(direct, SendRequest) and direct.peer == other
    assert len(f) == 1


def test_forwarder_follows_no_leader_outside_the_witnesses() -> None:
    """A member that is not a trusted witness cannot draw calls: neither by a hint nor by being named leader."""
    f = Forwarder("me", attempt_timeout_s=1.0, retry_s=0.5)
    f.set_route(leader=None, witnesses=frozenset({"W1", "W2"}))
    up(f, "W1", "W2", "EVIL")
    [first] = f.call(1, Read("summary"), T0)
    assert isinstance(first, SendRequest) and first.peer in ("W1", "W2")
    assert answer(f, first, Refused("not_leader", "ask EVIL", "EVIL")) == []  # not followed: retried later
    assert f.leader is None and f.ignored_hints == 1
    [again] = f.handle_timer(T0 + 1.0)
    assert isinstance(again, SendRequest) and again.peer in ("W1", "W2")
    f.set_route(leader="EVIL", witnesses=frozenset({"W1", "W2"}))  # a leader named outside the witnesses
    assert f.leader is None
    [done] = answer(f, again, ReadReply(5))
    assert isinstance(done, CallDone) and done.response == ReadReply(5) and done.target in ("W1", "W2")
    # the witness set shrinks under a followed leader: it is dropped too
    [send] = f.call(2, Read("summary"), T0 + 2.0)
    assert isinstance(send, SendRequest)
    other = "W2" if send.peer == "W1" else "W1"
    answer(f, send, Refused("not_leader", "", other), T0 + 2.0)
    assert f.leader == other
    f.set_route(leader=None, witnesses=frozenset({send.peer}))
    assert f.leader is None


def test_forwarder_retries_other_witnesses_until_the_deadline() -> None:
    f = Forwarder("me", attempt_timeout_s=1.0, retry_s=0.5, deadline_s=10.0)
    f.set_route(leader=None, witnesses=frozenset({"W1", "W2"}))
    assert f.call(1, Submit(transfer=tx()), T0) == []  # no witness linked yet: wait
    up(f, "W1", "W2")
    [a] = f.handle_timer(T0 + 0.5)
    assert isinstance(a, SendRequest)
    assert f.receive(RequestFailed(a.peer, CREDITS_PROTOCOL, a.request_id, "closed", T0 + 0.6)) == []
    [b] = f.handle_timer(T0 + 1.2)
    assert isinstance(b, SendRequest) and b.peer != a.peer and b.payload == a.payload  # same op id: idempotent
    [c] = f.handle_timer(T0 + 2.3)  # b stayed silent past the attempt timeout
    assert isinstance(c, SendRequest)
    assert answer(f, b, Committed("applied", 1)) == []  # a superseded attempt's answer is ignored
    assert answer(f, c, Refused("no_leader", "election"), T0 + 2.4) == []
    assert answer(f, c, b"\xc1") == []
    [late] = f.handle_timer(T0 + 10.0)
    assert isinstance(late, CallDone) and isinstance(late.response, Refused) and late.response.code == "no_leader"
    assert len(f) == 0


def test_final_refusals_complete_the_call_and_calls_are_bounded() -> None:
    f = Forwarder("me", max_calls=1)
    f.set_route(leader="L", witnesses=frozenset({"L"}))
    up(f, "L")
    [send] = f.call(1, Submit(transfer=tx()), T0)
    assert isinstance(send, SendRequest)
    [busy] = f.call(2, Read("summary"), T0)
    assert isinstance(busy, CallDone) and isinstance(busy.response, Refused) and busy.response.code == "busy"
    [done] = answer(f, send, Refused("insufficient_funds", "poor"))
    assert isinstance(done, CallDone) and done.response == Refused("insufficient_funds", "poor")
    f.receive(LinkDown("L", "closed", T0))
    assert f.call(3, Read("summary"), T0) == []


# -- pinned links -------------------------------------------------------------------------

WIT: tuple[Capability, ...] = (Witness(stake=1),)
COMPUTE: tuple[Capability, ...] = (Compute(cores=1, memory_mb=1),)


def routing(target: int = 1, maximum: int = 2) -> AdaptiveRouting:
    me = Identity.generate()
    config = RoutingConfig(min_connections=0, target_degree=target, max_connections=maximum)
    return AdaptiveRouting(self_id=me.node_id, capabilities=WIT, announcement="", config=config, rng=random.Random(1))


def test_pinned_members_are_dialled_beyond_the_degree_target() -> None:
    r = routing(target=0, maximum=2)
    peers = [Identity.generate().node_id for _ in range(3)]
    r.receive(CandidatesObserved(tuple(Candidate(p, f"/ip4/127.0.0.1/tcp/{i + 1}", COMPUTE) for i, p in enumerate(peers)), T0))
    assert r.handle_timer(T0) == []  # target 0 and no capability in common: nobody is dialled
    dials = r.receive(PinnedPeers(frozenset(peers[:2]) | {r.self_id}, T0))
    assert sorted(d.expected_peer for d in dials if isinstance(d, Dial)) == sorted(peers[:2])
    assert r.handle_timer(T0 + 0.1) == []  # dials in flight are not repeated


def test_pinned_peers_are_accepted_when_full() -> None:
    r = routing(target=0, maximum=0)
    stranger, pinned = Identity.generate().node_id, Identity.generate().node_id
    assert r.receive(LinkUp(stranger, "a", "inbound", T0)) == [Disconnect(stranger, "full")]
    r.receive(PinnedPeers(frozenset({pinned}), T0))
    assert not any(isinstance(o, Disconnect) for o in r.receive(LinkUp(pinned, "a", "inbound", T0)))
