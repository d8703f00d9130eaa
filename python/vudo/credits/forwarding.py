"""Sans-I/O state machines that carry the ledger over the links.

:class:`RaftCarrier` — theory of operation
------------------------------------------
The Rust ledger never opens a socket: it queues outbound Raft RPCs as
``(raft request id, target PeerId, bytes)`` and serves inbound ones through
``handle_rpc(from, bytes)``. The carrier maps them onto protocol
``/vudo/raft/1`` of the link engine:

* ``outbound(rpcs)`` — an RPC to a peer we hold a Noise-authenticated
  connection with becomes a :class:`SendRequest` (with our own link request
  id); to any other peer it fails at once (:class:`DeliverReply` with an
  error), so openraft retries on its own schedule instead of waiting.
* ``receive(ResponseReceived)`` → :class:`DeliverReply` with the bytes (an
  empty answer means the peer refused: delivered as an error);
  ``receive(RequestFailed)`` → :class:`DeliverReply` with the reason.
* ``receive(RequestReceived)`` → :class:`HandleRpc` with the *authenticated*
  sender; the host calls the ledger, registers the ticket
  (:meth:`RaftCarrier.ticket_issued`) and, when the ledger answers,
  :meth:`RaftCarrier.rpc_done` turns it into :class:`Respond`.
* Fault injection (tests only): frames to or from peers in ``drop`` are lost —
  an outbound one is reported failed as if it timed out, an inbound one is
  never answered.

:class:`Forwarder` — theory of operation
----------------------------------------
A call (submission or read) from this node must reach the Raft leader. The
forwarder sends it to the best target it can: the leader it knows if linked,
else a linked witness (which passes it to its leader, one hop more). Answers:
``Committed``/``ReadReply`` and final refusals complete the call; a
``not_leader`` refusal teaches the leader and resends at once; ``no_leader``,
a failed request or a silent target retries another target after
``retry_s``, until the call's ``deadline_s`` — then it completes as
``Refused("no_leader")``. Resending is safe: operations carry their own id
and the ledger applies an id once. Every completion is a
:class:`CallDone` event with a sequence id.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from vudo.credits.wire import (
    CREDITS_PROTOCOL,
    RAFT_PROTOCOL,
    Refused,
    Request,
    Response,
    decode_response,
    encode,
)
from vudo.errors import RemoteValueError
from vudo.hyphal.linkproto import LinkDown, LinkUp, RequestFailed, RequestReceived, Respond, ResponseReceived, SendRequest

# -- raft carrier ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliverReply:
    """Hand the ledger the answer (or the reason there is none) to its RPC ``request_id``."""

    request_id: int
    reply: bytes | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class HandleRpc:
    """Serve ``payload`` from the authenticated ``peer`` with the ledger; answer on ``channel``."""

    peer: str
    payload: bytes
    channel: int


CarrierOutput = SendRequest | DeliverReply | HandleRpc | Respond


@dataclass(slots=True)
class CarrierCounters:
    sent: int = 0
    unlinked: int = 0
    fault_dropped: int = 0
    served: int = 0
    refused: int = 0


class RaftCarrier:
    def __init__(self) -> None:
        self.linked: set[str] = set()
        self.drop: frozenset[str] = frozenset()
        self.counters = CarrierCounters()
        self._ids = itertools.count(1)
        self._pending: dict[int, int] = {}  # link request id -> raft request id
        self._tickets: dict[int, int] = {}  # ledger ticket -> inbound channel

    def outbound(self, rpcs: list[tuple[int, str, bytes]]) -> list[CarrierOutput]:
        out: list[CarrierOutput] = []
        for raft_id, target, payload in rpcs:
            if target in self.drop:
                self.counters.fault_dropped += 1
                out.append(DeliverReply(raft_id, None, "dropped by raft_fault_drop (fault injection)"))
            elif target not in self.linked:
                self.counters.unlinked += 1
                out.append(DeliverReply(raft_id, None, f"no link to {target}"))
            else:
                link_id = next(self._ids)
                self._pending[link_id] = raft_id
                self.counters.sent += 1
                out.append(SendRequest(target, RAFT_PROTOCOL, link_id, payload))
        return out

    def receive(self, event: LinkUp | LinkDown | RequestReceived | ResponseReceived | RequestFailed) -> list[CarrierOutput]:
        if isinstance(event, LinkUp):
            self.linked.add(event.peer)
        elif isinstance(event, LinkDown):
            self.linked.discard(event.peer)
        elif isinstance(event, RequestReceived):
            if event.peer in self.drop:
                self.counters.fault_dropped += 1
                return []
            return [HandleRpc(event.peer, event.payload, event.channel)]
        elif isinstance(event, ResponseReceived):
            raft_id = self._pending.pop(event.request_id, None)
            if raft_id is None:
                return []
            if event.peer in self.drop:
                self.counters.fault_dropped += 1
                return [DeliverReply(raft_id, None, "dropped by raft_fault_drop (fault injection)")]
            if not event.payload:
                return [DeliverReply(raft_id, None, f"{event.peer} refused the rpc")]
            return [DeliverReply(raft_id, event.payload)]
        else:
            raft_id = self._pending.pop(event.request_id, None)
            if raft_id is not None:
                return [DeliverReply(raft_id, None, event.reason)]
        return []

    def ticket_issued(self, ticket: int, channel: int) -> None:
        self._tickets[ticket] = channel

    def owns(self, ticket: int) -> bool:
        return ticket in self._tickets

    def rpc_done(self, ticket: int, reply: bytes | None) -> list[CarrierOutput]:
        """The ledger answered (``reply``) or refused (None) an inbound RPC."""
        channel = self._tickets.pop(ticket, None)
        if channel is None:
            return []
        if reply is None:
            self.counters.refused += 1
            return [Respond(channel, b"")]
        self.counters.served += 1
        return [Respond(channel, reply)]


# -- forwarder ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallDone:
    """Call ``call`` finished with ``response`` (event ``id`` for the log)."""

    id: int
    call: int
    response: Response
    target: str | None
    attempts: int


ForwarderOutput = SendRequest | CallDone


@dataclass(slots=True)
class _Call:
    request: Request
    payload: bytes
    deadline: float
    attempts: int = 0
    link_id: int | None = None
    target: str | None = None
    sent_at: float = 0.0
    retry_at: float | None = None  # waiting for a target until then
    tried: set[str] = field(default_factory=set)


#: Refusal codes that say "try elsewhere or later" rather than "this operation is wrong".
RETRYABLE = frozenset({"not_leader", "no_leader", "raft", "busy", "unavailable"})


class Forwarder:
    def __init__(self, self_id: str, *, attempt_timeout_s: float = 3.0, retry_s: float = 0.2, deadline_s: float = 20.0,
                 max_calls: int = 4096) -> None:
        self.self_id = self_id
        self.attempt_timeout_s = attempt_timeout_s
        self.retry_s = retry_s
        self.deadline_s = deadline_s
        self.max_calls = max_calls
        self.linked: set[str] = set()
        self.leader: str | None = None
        self.witnesses: frozenset[str] = frozenset()
        self._calls: dict[int, _Call] = {}
        self._by_link: dict[int, int] = {}  # link request id -> call id
        self._ids = itertools.count(1)
        self._events = itertools.count(1)
        self.bad_responses = 0
        #: ``not_leader`` hints naming a node that is not one of the witnesses (not followed).
        self.ignored_hints = 0

    def __len__(self) -> int:
        return len(self._calls)

    def set_route(self, *, leader: str | None, witnesses: frozenset[str]) -> None:
        """What this node knows: the leader (None: unknown) and the witnesses (who may reach it).

        Calls go only to witnesses: a leader named by anyone (a local summary, a ``not_leader``
        hint) is followed only while it is one of them, so a member that merely claims to be a
        witness, or a hint naming one, cannot draw this node's operations and reads."""
        if leader is not None and leader != self.self_id:
            self.leader = leader
        elif leader is None and self.leader not in witnesses:
            self.leader = None
        self.witnesses = witnesses - {self.self_id}
        if self.leader is not None and self.leader not in self.witnesses:
            self.leader = None

    def _target(self, call: _Call) -> str | None:
        if self.leader is not None and self.leader in self.linked:
            return self.leader
        options = sorted(w for w in self.witnesses & self.linked if w not in call.tried)
        if not options:
            call.tried.clear()
            options = sorted(self.witnesses & self.linked)
        return options[call.attempts % len(options)] if options else None

    def call(self, call_id: int, request: Request, now: float) -> list[ForwarderOutput]:
        if len(self._calls) >= self.max_calls:
            return [CallDone(next(self._events), call_id, Refused("busy", "too many calls in flight on this node"), None, 0)]
        call = _Call(request, encode(request), now + self.deadline_s)
        self._calls[call_id] = call
        return self._send(call_id, call, now)

    def _send(self, call_id: int, call: _Call, now: float) -> list[ForwarderOutput]:
        if call.link_id is not None:
            self._by_link.pop(call.link_id, None)
            call.link_id = None
        target = self._target(call)
        if target is None:
            call.retry_at = now + self.retry_s
            return []
        link_id = next(self._ids)
        call.link_id, call.target, call.sent_at, call.retry_at = link_id, target, now, None
        call.attempts += 1
        call.tried.add(target)
        self._by_link[link_id] = call_id
        return [SendRequest(target, CREDITS_PROTOCOL, link_id, call.payload)]

    def _done(self, call_id: int, response: Response) -> list[ForwarderOutput]:
        call = self._calls.pop(call_id)
        if call.link_id is not None:
            self._by_link.pop(call.link_id, None)
        return [CallDone(next(self._events), call_id, response, call.target, call.attempts)]

    def _later(self, call: _Call, now: float) -> list[ForwarderOutput]:
        if call.link_id is not None:
            self._by_link.pop(call.link_id, None)
            call.link_id = None
        call.retry_at = now + self.retry_s
        return []

    def receive(self, event: LinkUp | LinkDown | ResponseReceived | RequestFailed) -> list[ForwarderOutput]:
        if isinstance(event, LinkUp):
            self.linked.add(event.peer)
            return []
        if isinstance(event, LinkDown):
            self.linked.discard(event.peer)
            return []
        call_id = self._by_link.pop(event.request_id, None)
        if call_id is None or call_id not in self._calls:
            return []
        call = self._calls[call_id]
        call.link_id = None
        if isinstance(event, RequestFailed):
            return self._later(call, event.now)
        try:
            response = decode_response(event.payload)
        except RemoteValueError:
            self.bad_responses += 1
            return self._later(call, event.now)
        if isinstance(response, Refused) and response.code in RETRYABLE:
            hint = response.leader if response.leader in self.witnesses else None
            if response.leader and hint is None:
                self.ignored_hints += 1
            if hint is not None:
                self.leader = hint
            if response.code == "not_leader" and hint is not None and hint in self.linked and hint != event.peer:
                return self._send(call_id, call, event.now)
            if event.now >= call.deadline:
                return self._done(call_id, response)
            return self._later(call, event.now)
        return self._done(call_id, response)

    def handle_timer(self, now: float) -> list[ForwarderOutput]:
        out: list[ForwarderOutput] = []
        for call_id in sorted(self._calls):
            call = self._calls[call_id]
            if now >= call.deadline:
                out.extend(self._done(call_id, Refused("no_leader", "no ledger leader answered in time (is a majority of witnesses up and linked?)")))
            elif call.link_id is not None and now - call.sent_at >= self.attempt_timeout_s:
                out.extend(self._send(call_id, call, now))  # silent target: try another (same id: idempotent)
            elif call.link_id is None and call.retry_at is not None and now >= call.retry_at:
                out.extend(self._send(call_id, call, now))
        return out
