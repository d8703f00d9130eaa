"""Trait ``anastomosis``: two compatible nodes fuse into a verified, bidirectional link.

Theory of operation
-------------------
The link engine has already run Noise XX, so the ``peer`` of every event is
the key that completed the handshake. What Noise cannot tell is whether
that key is the node it *claims* to be in the network, nor whether the two
nodes want each other. That is decided here, per connection:

1. When a connection opens (either direction), each end sends a
   :class:`~vudo.hyphal.linkwire.Hello` request carrying its sealed
   announcement and the capabilities it seeks.
2. Each end verifies the Hello it receives: the announcement must open
   (signature, size, age) *with the authenticated key as owner* — a sealed
   announcement naming another NodeId is an ``impostor`` and is refused and
   counted — and the two nodes must be ``compatible`` (seed precondition:
   shared capabilities, or one side seeks what the other offers). It
   answers ``HelloAck`` or ``Refusal`` and, on refusal, disconnects.
3. A link is *fused* on one end only once both hold: it verified the
   peer's Hello, **and** the peer acknowledged ours (which the peer sends
   only after verifying it). So each end has verified the other before
   either considers the link established (postcondition ``linked``), and
   the symmetric exchange needs no tie-break when both ends dial at once.
4. A handshake that does not complete within ``timeout`` is dropped.

Per-peer transitions (``theirs`` = their Hello verified, ``acked`` = our Hello acknowledged):

    (none)       --connection opened / Hello received-->  HANDSHAKING (send our Hello)
    HANDSHAKING  --their Hello verifies-->                theirs=True (answer HelloAck)
    HANDSHAKING  --HelloAck-->                            acked=True
    HANDSHAKING  --theirs and acked-->                    (none) + Fused
    HANDSHAKING  --their Hello fails-->                   (none) + Refusal answer + Refused(answered)
    HANDSHAKING  --Refusal / request failed / timeout-->  (none) + Refused + Disconnect
    HANDSHAKING  --connection closed-->                   (none)

The class never reads a clock: every call passes ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vudo.errors import RemoteValueError
from vudo.hyphal.announcement import NodeAnnouncement, verify_announcement
from vudo.hyphal.capability import Capability, Compute, Gateway, Storage, Witness
from vudo.hyphal.linkproto import HYPHAL_PROTOCOL, Direction, Disconnect, LinkInstruction, Respond, SendRequest
from vudo.hyphal.linkwire import WIRE_VERSION, CapabilityKind, Hello, HelloAck, Refusal, encode
from vudo.hyphal.signed import FUTURE, STALE, WRONG_OWNER

# Refusal reasons (metric labels).
IMPOSTOR = "impostor"
BAD_ANNOUNCEMENT = "bad_announcement"
STALE_ANNOUNCEMENT = "stale_announcement"
INCOMPATIBLE = "incompatible"
MALFORMED = "malformed"
VERSION = "version"
TIMEOUT = "handshake_timeout"
REFUSED_BY_PEER = "refused_by_peer"
HELLO_LOST = "hello_lost"

_KIND: dict[type, CapabilityKind] = {Compute: "compute", Storage: "storage", Gateway: "gateway", Witness: "witness"}


def capability_kinds(capabilities: Iterable[Capability]) -> frozenset[CapabilityKind]:
    return frozenset(_KIND[type(c)] for c in capabilities)


def compatible(
    ours: Iterable[Capability],
    our_seeks: Iterable[CapabilityKind],
    theirs: Iterable[Capability],
    their_seeks: Iterable[CapabilityKind],
) -> frozenset[CapabilityKind]:
    """Precondition ``compatible``; returns the negotiated kinds (empty = incompatible).

    Capabilities are compared by kind (a 4-core and an 8-core node both
    offer ``compute``): shared kinds, plus what either side seeks from the other.
    """
    mine, yours = capability_kinds(ours), capability_kinds(theirs)
    return (mine & yours) | (frozenset(our_seeks) & yours) | (frozenset(their_seeks) & mine)


@dataclass(frozen=True, slots=True)
class Fused:
    """Both ends verified each other: the link exists (on our side) from ``now``."""

    peer: str
    addr: str
    direction: Direction
    announcement: NodeAnnouncement
    sealed: str
    shared: frozenset[CapabilityKind]
    now: float


@dataclass(frozen=True, slots=True)
class Refused:
    """A handshake ended without a link; ``by`` says which end gave up.

    ``answered``: we told the peer why (a ``Refusal``); the caller closes the
    connection after a short grace so that answer is not lost with it.
    Otherwise a :class:`Disconnect` is part of the same output.
    """

    peer: str
    reason: str
    detail: str
    by: str  # "us" | "them"
    answered: bool = False


Output = LinkInstruction | Fused | Refused


@dataclass(slots=True)
class _Handshake:
    addr: str
    direction: Direction
    started: float
    hello_request: int
    theirs: NodeAnnouncement | None = None
    their_sealed: str = ""
    shared: frozenset[CapabilityKind] = frozenset()
    acked: bool = False


class Anastomosis:
    def __init__(
        self,
        *,
        self_id: str,
        capabilities: tuple[Capability, ...],
        seeks: tuple[CapabilityKind, ...],
        announcement: str,
        announcement_ttl: float,
        timeout: float,
        next_request_id: Callable[[], int],
    ) -> None:
        self.self_id = self_id
        self.capabilities = capabilities
        self.seeks = seeks
        self.announcement = announcement
        self.announcement_ttl = announcement_ttl
        self.timeout = timeout
        self._next_request_id = next_request_id
        self._handshakes: dict[str, _Handshake] = {}
        self._hello_requests: dict[int, str] = {}  # request id -> peer
        #: Refusals by reason (ours and theirs), for metrics.
        self.refusals: dict[str, int] = {}

    # -- queries ----------------------------------------------------------

    def __contains__(self, peer: object) -> bool:
        return peer in self._handshakes

    def __len__(self) -> int:
        return len(self._handshakes)

    def owns(self, request_id: int) -> bool:
        return request_id in self._hello_requests

    # -- transitions --------------------------------------------------------

    def connection_opened(self, peer: str, addr: str, direction: Direction, now: float) -> list[Output]:
        if peer in self._handshakes:
            return []
        request_id = self._next_request_id()
        self._handshakes[peer] = _Handshake(addr, direction, now, request_id)
        self._hello_requests[request_id] = peer
        hello = Hello(version=WIRE_VERSION, announcement=self.announcement, seeks=self.seeks)
        return [SendRequest(peer, HYPHAL_PROTOCOL, request_id, encode(hello))]

    def hello_received(self, peer: str, channel: int, hello: Hello, now: float) -> list[Output]:
        out: list[Output] = []
        if peer not in self._handshakes:  # their Hello overtook the engine's LinkUp
            out.extend(self.connection_opened(peer, "", "inbound", now))
        state = self._handshakes[peer]
        try:
            announcement = verify_announcement(hello.announcement, owner=peer, now=now, ttl=self.announcement_ttl)
        except RemoteValueError as err:
            reason = {WRONG_OWNER: IMPOSTOR, STALE: STALE_ANNOUNCEMENT, FUTURE: STALE_ANNOUNCEMENT}.get(err.reason, BAD_ANNOUNCEMENT)
            return out + self._refuse(peer, reason, err.detail, channel)
        shared = compatible(self.capabilities, self.seeks, announcement.capabilities, hello.seeks)
        if not shared:
            return out + self._refuse(peer, INCOMPATIBLE, "no shared or sought capability", channel)
        state.theirs, state.their_sealed, state.shared = announcement, hello.announcement, shared
        out.append(Respond(channel, encode(HelloAck(version=WIRE_VERSION))))
        return out + self._maybe_fused(peer, now)

    def malformed_hello(self, peer: str, channel: int, reason: str, detail: str) -> list[Output]:
        """A Hello that did not decode (the caller decodes every request once)."""
        return self._refuse(peer, MALFORMED if reason != VERSION else VERSION, detail, channel)

    def hello_answered(self, request_id: int, answer: HelloAck | Refusal, now: float) -> list[Output]:
        peer = self._hello_requests.pop(request_id, None)
        if peer is None or peer not in self._handshakes:
            return []
        if isinstance(answer, Refusal):
            return self._drop(peer, REFUSED_BY_PEER, answer.reason, by="them")
        self._handshakes[peer].acked = True
        return self._maybe_fused(peer, now)

    def hello_failed(self, request_id: int, reason: str) -> list[Output]:
        """Our Hello got no (decodable) answer."""
        peer = self._hello_requests.pop(request_id, None)
        if peer is None or peer not in self._handshakes:
            return []
        return self._drop(peer, HELLO_LOST, reason, by="them")

    def connection_closed(self, peer: str) -> None:
        state = self._handshakes.pop(peer, None)
        if state is not None:
            self._hello_requests.pop(state.hello_request, None)

    def handle_timer(self, now: float) -> list[Output]:
        out: list[Output] = []
        for peer in sorted(p for p, s in self._handshakes.items() if now - s.started >= self.timeout):
            out.extend(self._drop(peer, TIMEOUT, f"no verified handshake within {self.timeout:.0f}s", by="us"))
        return out

    # -- helpers --------------------------------------------------------------

    def _count(self, reason: str) -> None:
        self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def _refuse(self, peer: str, reason: str, detail: str, channel: int) -> list[Output]:
        self._count(reason)
        self.connection_closed(peer)
        return [Respond(channel, encode(Refusal(reason=reason))), Refused(peer, reason, detail, "us", answered=True)]

    def _drop(self, peer: str, reason: str, detail: str, *, by: str) -> list[Output]:
        self._count(reason)
        self.connection_closed(peer)
        return [Refused(peer, reason, detail, by), Disconnect(peer, reason)]

    def _maybe_fused(self, peer: str, now: float) -> list[Output]:
        state = self._handshakes[peer]
        if state.theirs is None or not state.acked:
            return []
        self.connection_closed(peer)
        addr = state.theirs.link or state.addr
        return [Fused(peer, addr, state.direction, state.theirs, state.their_sealed, state.shared, now)]
