"""The contract between the link engine and the link policies.

The engine (``vudo._core.Links``: rust-libp2p with TCP, Noise XX, yamux,
ping, identify and request/response) reports what happened on the wire as
:data:`LinkEngineEvent` values; the policies (anastomosis, adaptive routing)
answer with :data:`LinkInstruction` values that the links service executes
through the engine. Neither side knows the other's internals: the policies
can be driven by a simulated network in tests, and the engine by any policy.

Peers are NodeIds (the libp2p PeerId string of the node's Ed25519 key);
the engine has already authenticated them with Noise, so ``peer`` in an
event is the key that completed the handshake, never a claimed one.
Addresses are libp2p multiaddrs (``/ip4/127.0.0.1/tcp/7600``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Request/response protocol of the hyphal layer (hello, introductions, goodbye).
HYPHAL_PROTOCOL = "/vudo/hyphal/1"

Direction = Literal["inbound", "outbound"]


# -- engine -> policy ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkUp:
    """A Noise-authenticated connection to ``peer`` is open."""

    peer: str
    addr: str
    direction: Direction
    now: float


@dataclass(frozen=True, slots=True)
class LinkDown:
    """The last connection to ``peer`` closed (``reason`` is the engine's words)."""

    peer: str
    reason: str
    now: float


@dataclass(frozen=True, slots=True)
class DialFailed:
    """A dial we asked for did not produce a connection (refused, timeout, wrong key)."""

    addr: str
    expected_peer: str | None
    reason: str
    now: float


@dataclass(frozen=True, slots=True)
class RttMeasured:
    peer: str
    rtt_ms: float
    now: float


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """``peer`` sent ``payload`` on ``protocol``; answer with :class:`Respond` ``channel``."""

    peer: str
    protocol: str
    channel: int
    payload: bytes
    now: float


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """The answer to our request ``request_id``."""

    peer: str
    protocol: str
    request_id: int
    payload: bytes
    now: float


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """Our request ``request_id`` got no answer (timeout, connection closed, refused)."""

    peer: str
    protocol: str
    request_id: int
    reason: str
    now: float


LinkEngineEvent = LinkUp | LinkDown | DialFailed | RttMeasured | RequestReceived | ResponseReceived | RequestFailed


# -- policy -> engine ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dial:
    """Connect to ``addr``; refuse the connection unless its key is ``expected_peer``."""

    addr: str
    expected_peer: str


@dataclass(frozen=True, slots=True)
class Disconnect:
    peer: str
    reason: str


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Send ``payload`` to ``peer``; ``request_id`` is chosen by the policy (unique per node)."""

    peer: str
    protocol: str
    request_id: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Respond:
    channel: int
    payload: bytes


LinkInstruction = Dial | Disconnect | SendRequest | Respond
