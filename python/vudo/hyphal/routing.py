"""Trait ``adaptiveRouting``: which links a node keeps, grows, prunes and heals.

Theory of operation
-------------------
:class:`AdaptiveRouting` is the link policy of one node. The links service
feeds it the engine's events (:data:`~vudo.hyphal.linkproto.LinkEngineEvent`),
the verified membership (:class:`CandidatesObserved`), traffic counts
(:class:`TrafficMeasured`) and our re-signed announcement
(:class:`AnnouncementRefreshed`), plus a timer tick; it answers with engine
instructions (:data:`~vudo.hyphal.linkproto.LinkInstruction`) and events
for the log (each with a sequence ``id``). ``now`` and the RNG are injected.

* **Fusing.** Every connection goes through :class:`~vudo.hyphal.anastomosis.Anastomosis`;
  only its ``Fused`` output creates a :class:`~vudo.hyphal.links.HyphalLink`.
  Inbound connections beyond ``max_connections`` are refused (``full``).
* **Degree.** Each tick, while links + handshakes + dials in flight are
  below ``target_degree``, it dials candidates: verified members (or
  introduced peers) that are compatible, not linked, not backing off after a
  failed dial, not recently pruned, and reputable enough — sampled with
  probability proportional to reputation (weighted sampling without
  replacement, Efraimidis–Spirakis keys from the injected RNG).
* **Strength.** ``record_traffic`` keeps ``bandwidth_score`` as an EMA
  (alpha 0.1) of the measured rate over ``full_scale_bytes_per_s``.
* **Pruning.** ``prune_weak_links``: when the degree exceeds 1.5 × target,
  the weakest link below ``prune_threshold`` (ties: lower reputation, then
  peer id) is dropped gracefully — a ``Goodbye`` request, then a disconnect.
  Neither end redials the other for ``prune_cooldown``.
* **Healing.** ``handle_link_failure`` (a fused link went down without a
  Goodbye, or stayed silent past ``link_timeout``): the link is removed, the
  remaining peers are asked for introductions (bounded lists of sealed
  announcements, each verified against the NodeId it names), and the node
  fuses with suitable candidates. A node below ``min_connections`` keeps
  asking (at most once per ``introduction_interval`` per peer).
* **Pinned peers.** Another service may pin peers (:class:`PinnedPeers`:
  the credit witnesses keep links to each other). A pinned member is dialled
  whenever it is not linked (its backoff still applies), beside the degree
  target; a pinned peer's connection is never refused as ``full`` nor
  pruned. At most ``max_pinned`` peers are pinned (the rest are ignored).
* **Reputation.** A :class:`~vudo.hyphal.reputation.ReputationTracker` is fed
  with link up/down times, answered and failed requests, and verified or
  refused announcements; it weights dial choice and breaks pruning ties,
  and peers below ``min_reputation`` are neither dialled nor accepted.

Invariants kept (system ``hyphalNetwork``): links ≤ ``max_connections``
always; links ≥ ``min_connections`` whenever enough reachable candidates
exist; a link on one side exists only after both sides verified each other.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Literal

from vudo.errors import RemoteValueError
from vudo.hyphal.anastomosis import Anastomosis, Fused, Refused, capability_kinds
from vudo.hyphal.announcement import verify_announcement
from vudo.hyphal.capability import Capability
from vudo.hyphal.linkproto import (
    HYPHAL_PROTOCOL,
    Dial,
    DialFailed,
    Direction,
    Disconnect,
    LinkDown,
    LinkEngineEvent,
    LinkInstruction,
    LinkUp,
    RequestFailed,
    RequestReceived,
    Respond,
    ResponseReceived,
    RttMeasured,
    SendRequest,
)
from vudo.hyphal.links import EMA_ALPHA, HyphalLink, ema, latency_from_rtt
from vudo.hyphal.linkwire import (
    MAX_INTRODUCTIONS,
    CapabilityKind,
    Goodbye,
    GoodbyeAck,
    Hello,
    HelloAck,
    Introduction,
    IntroductionAsk,
    Introductions,
    Refusal,
    decode_request,
    decode_response,
    encode,
)
from vudo.hyphal.reputation import ReputationTracker

FULL = "full"
PRUNED = "pruned"
LOW_REPUTATION = "low_reputation"
UNHEALTHY = "unhealthy"
BAD_INTRODUCTION = "bad_introduction"
MALFORMED_REQUEST = "malformed_request"
MALFORMED_RESPONSE = "malformed_response"
UNEXPECTED = "unexpected"
RATE_LIMITED = "rate_limited"
#: Most introduced (not yet member) candidates remembered at once.
MAX_INTRODUCED = 256


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    min_connections: int = 2
    target_degree: int = 4
    max_connections: int = 8
    prune_threshold: float = 0.1
    alpha: float = EMA_ALPHA
    #: The traffic rate that scores 1.0 (bytes per second).
    full_scale_bytes_per_s: float = 1_000_000.0
    initial_bandwidth_score: float = 0.5
    handshake_timeout: float = 10.0
    dial_timeout: float = 15.0
    goodbye_timeout: float = 5.0
    #: After answering a Refusal, keep the connection this long so the answer arrives, then close it.
    refusal_grace: float = 1.0
    #: A fused link silent (no RTT, request or answer) this long is dropped as failed.
    link_timeout: float = 30.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    prune_cooldown: float = 120.0
    introduction_interval: float = 5.0
    introduced_ttl: float = 60.0
    #: A linked peer gets at most one introductions answer this often (seconds).
    introduction_answer_interval: float = 1.0
    announcement_ttl: float = 60.0
    dials_per_tick: int = 4
    min_reputation: float = 0.25
    #: Most peers another service may pin (links kept beyond the degree policy).
    max_pinned: int = 16

    def __post_init__(self) -> None:
        if not 0 <= self.min_connections <= self.target_degree <= self.max_connections:
            raise ValueError(
                "link degrees must satisfy 0 <= min_connections <= target_degree <= max_connections, got "
                f"{self.min_connections}, {self.target_degree}, {self.max_connections}"
            )
        if not 0.0 <= self.prune_threshold <= 1.0 or not 0.0 <= self.initial_bandwidth_score <= 1.0:
            raise ValueError("prune_threshold and initial_bandwidth_score must be in [0, 1]")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        if self.full_scale_bytes_per_s <= 0 or self.dials_per_tick < 1:
            raise ValueError("full_scale_bytes_per_s must be > 0 and dials_per_tick >= 1")


# -- inputs besides the engine's events ---------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """A verified member we could fuse with (from the membership view)."""

    node_id: str
    addr: str  # its link multiaddr
    capabilities: tuple[Capability, ...]
    sealed: str = ""  # its sealed announcement, passed on in introductions


@dataclass(frozen=True, slots=True)
class CandidatesObserved:
    candidates: tuple[Candidate, ...]
    now: float


@dataclass(frozen=True, slots=True)
class TrafficMeasured:
    peer: str
    nbytes: int
    window_s: float
    now: float


@dataclass(frozen=True, slots=True)
class AnnouncementRefreshed:
    sealed: str
    now: float


@dataclass(frozen=True, slots=True)
class PinnedPeers:
    """Peers to keep linked beyond the degree policy (replaces the previous set)."""

    peers: frozenset[str]
    now: float


Input = LinkEngineEvent | CandidatesObserved | TrafficMeasured | AnnouncementRefreshed | PinnedPeers


# -- events out (for the log and metrics) ----------------------------------------


@dataclass(frozen=True, slots=True)
class LinkEstablished:
    id: int
    peer: str
    addr: str
    direction: Direction
    shared: frozenset[CapabilityKind]


@dataclass(frozen=True, slots=True)
class LinkLost:
    id: int
    peer: str
    reason: str
    graceful: bool


@dataclass(frozen=True, slots=True)
class FusionRefused:
    id: int
    peer: str
    reason: str
    detail: str
    by: str


@dataclass(frozen=True, slots=True)
class IntroductionsReceived:
    id: int
    peer: str
    accepted: int
    rejected: int


Event = LinkEstablished | LinkLost | FusionRefused | IntroductionsReceived
Output = LinkInstruction | Event


@dataclass(slots=True)
class _Known:
    addr: str
    capabilities: tuple[Capability, ...]
    sealed: str
    expires: float | None  # None: from membership (valid while listed)


@dataclass(slots=True)
class _Backoff:
    failures: int
    retry_at: float


_Purpose = Literal["introductions", "goodbye"]


@dataclass(slots=True)
class _Counters:
    refusals: dict[str, int] = field(default_factory=dict)
    dial_failures: int = 0
    link_failures: int = 0
    pruned: int = 0
    introductions_accepted: int = 0
    introductions_rejected: int = 0


class AdaptiveRouting:
    def __init__(
        self,
        *,
        self_id: str,
        capabilities: tuple[Capability, ...],
        announcement: str,
        config: RoutingConfig,
        rng: random.Random,
        seeks: tuple[CapabilityKind, ...] = (),
        now: float = 0.0,
    ) -> None:
        self.self_id = self_id
        self.capabilities = capabilities
        self.seeks = seeks
        self.config = config
        self.rng = rng
        self.announcement = announcement
        self.connections: dict[str, HyphalLink] = {}
        self.reputation = ReputationTracker()
        self.counters = _Counters()
        self._request_ids = 0
        self.anastomosis = Anastomosis(
            self_id=self_id,
            capabilities=capabilities,
            seeks=seeks,
            announcement=announcement,
            announcement_ttl=config.announcement_ttl,
            timeout=config.handshake_timeout,
            next_request_id=self._next_request_id,
        )
        self._sealed: dict[str, str] = {}  # linked peer -> its sealed announcement (from its Hello)
        self._members: dict[str, _Known] = {}
        self._introduced: dict[str, _Known] = {}
        self._dialing: dict[str, float] = {}  # peer -> when we dialled
        self._backoff: dict[str, _Backoff] = {}
        self._cooldown: dict[str, float] = {}  # peer -> no redial until
        self._closing: dict[str, float] = {}  # peer -> Goodbye sent at
        self._lingering: dict[str, tuple[float, str]] = {}  # refused peer -> (disconnect at, reason)
        self._requests: dict[int, tuple[_Purpose, str]] = {}
        self._asked: dict[str, float] = {}  # peer -> last introduction request
        self._answered: dict[str, float] = {}  # peer -> last introductions we answered it
        self.pinned: frozenset[str] = frozenset()
        self._next_event = 0
        self.last_tick = now

    # -- queries ----------------------------------------------------------

    @property
    def degree(self) -> int:
        return len(self.connections)

    def committed(self) -> int:
        """Links plus handshakes plus dials in flight: what counts against the target."""
        return len(self.connections) + len(self.anastomosis) + sum(1 for p in self._dialing if p not in self.anastomosis)

    def refusals(self) -> dict[str, int]:
        merged = dict(self.anastomosis.refusals)
        for reason, count in self.counters.refusals.items():
            merged[reason] = merged.get(reason, 0) + count
        return merged

    # -- plumbing -------------------------------------------------------------

    def _next_request_id(self) -> int:
        self._request_ids += 1
        return self._request_ids

    def _id(self) -> int:
        self._next_event += 1
        return self._next_event

    def _count(self, reason: str) -> None:
        self.counters.refusals[reason] = self.counters.refusals.get(reason, 0) + 1

    def _touch(self, peer: str, now: float) -> None:
        link = self.connections.get(peer)
        if link is not None and now > link.last_seen:
            self.connections[peer] = replace(link, last_seen=now)

    # -- inputs ---------------------------------------------------------------

    def receive(self, event: Input) -> list[Output]:
        if isinstance(event, LinkUp):
            return self._link_up(event)
        if isinstance(event, LinkDown):
            return self._link_down(event)
        if isinstance(event, DialFailed):
            return self._dial_failed(event)
        if isinstance(event, RttMeasured):
            link = self.connections.get(event.peer)
            if link is not None:
                sample = latency_from_rtt(event.rtt_ms)
                latency = sample if link.latency_ms == 0 else latency_from_rtt(ema(link.latency_ms, sample, 0.25))
                self.connections[event.peer] = replace(link, latency_ms=latency, last_seen=max(link.last_seen, event.now))
            return []
        if isinstance(event, RequestReceived):
            return self._request(event)
        if isinstance(event, ResponseReceived):
            return self._response(event)
        if isinstance(event, RequestFailed):
            return self._request_failed(event)
        if isinstance(event, CandidatesObserved):
            self._members = {
                c.node_id: _Known(c.addr, c.capabilities, c.sealed, None)
                for c in event.candidates
                if c.node_id != self.self_id and c.addr
            }
            return []
        if isinstance(event, TrafficMeasured):
            self.record_traffic(event.peer, event.nbytes, event.window_s)
            return []
        if isinstance(event, PinnedPeers):
            self.pinned = frozenset(sorted(event.peers - {self.self_id})[: self.config.max_pinned])
            return self._fill(event.now)
        self.announcement = event.sealed
        self.anastomosis.announcement = event.sealed
        return []

    def record_traffic(self, peer: str, nbytes: int, window_s: float) -> None:
        """``bandwidth_score`` ← EMA(score, rate / full scale, alpha); unknown peers are ignored."""
        link = self.connections.get(peer)
        if link is None or window_s <= 0 or nbytes < 0:
            return
        sample = min(1.0, nbytes / window_s / self.config.full_scale_bytes_per_s)
        score = min(1.0, max(0.0, ema(link.bandwidth_score, sample, self.config.alpha)))
        self.connections[peer] = replace(link, bandwidth_score=score)

    # -- connections ------------------------------------------------------------

    def _link_up(self, event: LinkUp) -> list[Output]:
        peer = event.peer
        self._dialing.pop(peer, None)
        if peer == self.self_id:
            return [Disconnect(peer, "self")]
        if peer in self.connections or peer in self.anastomosis:
            return []  # a second connection to a peer we already know
        if len(self.connections) + len(self.anastomosis) >= self.config.max_connections and peer not in self.pinned:
            self._count(FULL)
            return [Disconnect(peer, FULL)]
        if self.reputation.aggregate(peer, event.now) < self.config.min_reputation:
            self._count(LOW_REPUTATION)
            return [Disconnect(peer, LOW_REPUTATION)]
        return self._anastomosis(self.anastomosis.connection_opened(peer, event.addr, event.direction, event.now), event.now)

    def _link_down(self, event: LinkDown) -> list[Output]:
        peer = event.peer
        self.anastomosis.connection_closed(peer)
        self._lingering.pop(peer, None)
        self._dialing.pop(peer, None)
        self._closing.pop(peer, None)
        for request_id in [r for r, (_, p) in self._requests.items() if p == peer]:
            del self._requests[request_id]
        if peer in self.connections:
            return self.handle_link_failure(peer, event.now, event.reason)
        return []

    def _dial_failed(self, event: DialFailed) -> list[Output]:
        peer = event.expected_peer
        if peer is None:
            return []
        self._dialing.pop(peer, None)
        self._back_off(peer, event.now)
        self.counters.dial_failures += 1
        return []

    def _back_off(self, peer: str, now: float) -> None:
        previous = self._backoff.get(peer)
        failures = 1 if previous is None else previous.failures + 1
        delay = min(self.config.backoff_max, self.config.backoff_base * 2 ** (failures - 1))
        self._backoff[peer] = _Backoff(failures, now + delay * (0.5 + 0.5 * self.rng.random()))

    def _anastomosis(self, outputs: list[Fused | Refused | LinkInstruction], now: float) -> list[Output]:
        out: list[Output] = []
        for item in outputs:
            if isinstance(item, Fused):
                out.extend(self._fused(item))
            elif isinstance(item, Refused):
                self._dialing.pop(item.peer, None)
                if item.answered:
                    self._lingering[item.peer] = (now + self.config.refusal_grace, item.reason)
                if item.by == "us" and item.reason in ("impostor", "bad_announcement", "stale_announcement"):
                    self.reputation.verified(item.peer, now, honest=False)
                self._back_off(item.peer, now)
                out.append(FusionRefused(self._id(), item.peer, item.reason, item.detail, item.by))
            else:
                out.append(item)
        return out

    def _fused(self, fused: Fused) -> list[Output]:
        if len(self.connections) >= self.config.max_connections and fused.peer not in self.pinned:
            self._count(FULL)
            return [Disconnect(fused.peer, FULL)]
        self.connections[fused.peer] = HyphalLink(
            peer=fused.peer,
            established=fused.now,
            last_seen=fused.now,
            latency_ms=0,
            bandwidth_score=self.config.initial_bandwidth_score,
            addr=fused.addr,
            direction=fused.direction,
        )
        self._sealed[fused.peer] = fused.sealed
        self._backoff.pop(fused.peer, None)
        self.reputation.link_up(fused.peer, fused.now)
        self.reputation.verified(fused.peer, fused.now, honest=True)
        return [LinkEstablished(self._id(), fused.peer, fused.addr, fused.direction, fused.shared)]

    def _remove(self, peer: str, now: float) -> None:
        self.connections.pop(peer, None)
        self._sealed.pop(peer, None)
        self.reputation.link_down(peer, now)

    def handle_link_failure(self, peer: str, now: float, reason: str = "link down") -> list[Output]:
        """Remove the link, ask the remaining peers for introductions, fuse with suitable candidates."""
        if peer not in self.connections:
            return []
        self._remove(peer, now)
        self.counters.link_failures += 1
        out: list[Output] = [LinkLost(self._id(), peer, reason, graceful=False)]
        out.extend(self._ask_introductions(now, force=True))
        out.extend(self._fill(now))
        return out

    # -- requests ---------------------------------------------------------------

    def _send(self, peer: str, purpose: _Purpose, message: IntroductionAsk | Goodbye) -> SendRequest:
        request_id = self._next_request_id()
        self._requests[request_id] = (purpose, peer)
        return SendRequest(peer, HYPHAL_PROTOCOL, request_id, encode(message))

    def _request(self, event: RequestReceived) -> list[Output]:
        if event.protocol != HYPHAL_PROTOCOL:
            return []
        peer = event.peer
        self._touch(peer, event.now)
        try:
            message = decode_request(event.payload)
        except RemoteValueError as err:
            self.reputation.verified(peer, event.now, honest=False)
            if peer in self.anastomosis or peer not in self.connections:
                return self._anastomosis(self.anastomosis.malformed_hello(peer, event.channel, err.reason, err.detail), event.now)
            self._count(MALFORMED_REQUEST)
            return [Respond(event.channel, encode(Refusal(reason=MALFORMED_REQUEST)))]
        if isinstance(message, Hello):
            if peer in self.connections:  # the peer reconnected before we saw the old link go down
                self._remove(peer, event.now)
                self._dialing.pop(peer, None)
            elif (peer not in self.anastomosis and peer not in self.pinned
                  and len(self.connections) + len(self.anastomosis) >= self.config.max_connections):
                self._count(FULL)
                self._lingering[peer] = (event.now + self.config.refusal_grace, FULL)
                return [Respond(event.channel, encode(Refusal(reason=FULL)))]
            return self._anastomosis(self.anastomosis.hello_received(peer, event.channel, message, event.now), event.now)
        if peer not in self.connections:
            self._count(UNEXPECTED)  # only fused peers may ask for anything but a handshake
            return [Respond(event.channel, encode(Refusal(reason="not_linked")))]
        if isinstance(message, IntroductionAsk):
            last = self._answered.get(peer)
            if last is not None and event.now - last < self.config.introduction_answer_interval:
                self._count(RATE_LIMITED)
                return [Respond(event.channel, encode(Refusal(reason=RATE_LIMITED)))]
            self._answered[peer] = event.now
            return [Respond(event.channel, encode(self._introductions_for(peer, message.limit, event.now)))]
        # Goodbye: the peer prunes this link; it will disconnect once we answer.
        self._remove(peer, event.now)
        self._cooldown[peer] = event.now + self.config.prune_cooldown
        out: list[Output] = [Respond(event.channel, encode(GoodbyeAck())), LinkLost(self._id(), peer, PRUNED, graceful=True)]
        return out + self._fill(event.now)

    def _introductions_for(self, asker: str, limit: int, now: float) -> Introductions:
        """Up to ``limit`` of our linked peers (not the asker), freshest sealed announcement each."""
        peers = sorted(p for p in self.connections if p != asker)
        self.rng.shuffle(peers)
        chosen: list[Introduction] = []
        for peer in peers:
            if len(chosen) >= min(limit, MAX_INTRODUCTIONS):
                break
            member = self._members.get(peer)
            sealed = member.sealed if member is not None and member.sealed else self._sealed.get(peer, "")
            if sealed:
                chosen.append(Introduction(node_id=peer, announcement=sealed))
        return Introductions(peers=tuple(chosen))

    def _response(self, event: ResponseReceived) -> list[Output]:
        if event.protocol != HYPHAL_PROTOCOL:
            return []
        self._touch(event.peer, event.now)
        try:
            message = decode_response(event.payload)
        except RemoteValueError as err:
            self.reputation.verified(event.peer, event.now, honest=False)
            self._count(MALFORMED_RESPONSE)
            if self.anastomosis.owns(event.request_id):
                return self._anastomosis(self.anastomosis.hello_failed(event.request_id, f"{err.reason}: {err.detail}"), event.now)
            self._requests.pop(event.request_id, None)
            return []
        self.reputation.delivered(event.peer, event.now, ok=True)
        if self.anastomosis.owns(event.request_id):
            if isinstance(message, HelloAck | Refusal):
                return self._anastomosis(self.anastomosis.hello_answered(event.request_id, message, event.now), event.now)
            return self._anastomosis(self.anastomosis.hello_failed(event.request_id, "answer to hello is not hello_ack"), event.now)
        pending = self._requests.pop(event.request_id, None)
        if pending is None or pending[1] != event.peer:
            return []
        purpose, peer = pending
        if purpose == "goodbye":
            self._closing.pop(peer, None)
            return [Disconnect(peer, PRUNED)]
        if isinstance(message, Introductions):
            return self._introductions(peer, message, event.now)
        return []

    def _introductions(self, introducer: str, message: Introductions, now: float) -> list[Output]:
        accepted = rejected = 0
        for intro in message.peers:
            try:
                announcement = verify_announcement(intro.announcement, owner=intro.node_id, now=now, ttl=self.config.announcement_ttl)
            except RemoteValueError:
                rejected += 1
                continue
            accepted += 1
            room = intro.node_id in self._introduced or len(self._introduced) < MAX_INTRODUCED
            if room and announcement.link and intro.node_id != self.self_id and intro.node_id not in self._members:
                self._introduced[intro.node_id] = _Known(
                    announcement.link, announcement.capabilities, intro.announcement, now + self.config.introduced_ttl
                )
        self.reputation.verified(introducer, now, honest=rejected == 0)
        self.counters.introductions_accepted += accepted
        self.counters.introductions_rejected += rejected
        if rejected:
            self._count(BAD_INTRODUCTION)
        return [IntroductionsReceived(self._id(), introducer, accepted, rejected), *self._fill(now)]

    def _request_failed(self, event: RequestFailed) -> list[Output]:
        if event.protocol != HYPHAL_PROTOCOL:
            return []
        self.reputation.delivered(event.peer, event.now, ok=False)
        if self.anastomosis.owns(event.request_id):
            return self._anastomosis(self.anastomosis.hello_failed(event.request_id, event.reason), event.now)
        pending = self._requests.pop(event.request_id, None)
        if pending is not None and pending[0] == "goodbye":
            self._closing.pop(pending[1], None)
            return [Disconnect(pending[1], PRUNED)]
        return []

    def _ask_introductions(self, now: float, *, force: bool = False) -> list[Output]:
        out: list[Output] = []
        for peer in sorted(self.connections):
            last = self._asked.get(peer)
            if not force and last is not None and now - last < self.config.introduction_interval:
                continue
            if any(p == peer and purpose == "introductions" for purpose, p in self._requests.values()):
                continue
            self._asked[peer] = now
            out.append(self._send(peer, "introductions", IntroductionAsk(limit=MAX_INTRODUCTIONS)))
        return out

    # -- timer ----------------------------------------------------------------------

    def handle_timer(self, now: float) -> list[Output]:
        self.last_tick = now
        out: list[Output] = self._anastomosis(self.anastomosis.handle_timer(now), now)
        for peer in sorted(p for p, t in self._dialing.items() if now - t >= self.config.dial_timeout):
            del self._dialing[peer]
            self._back_off(peer, now)
        for peer in sorted(p for p, (due, _) in self._lingering.items() if due <= now):
            _, reason = self._lingering.pop(peer)
            if peer not in self.connections and peer not in self.anastomosis:
                out.append(Disconnect(peer, reason))
        for peer in sorted(p for p, t in self._closing.items() if now - t >= self.config.goodbye_timeout):
            del self._closing[peer]
            out.append(Disconnect(peer, PRUNED))
        for peer in sorted(p for p, link in self.connections.items() if not link.healthy(now, self.config.link_timeout)):
            out.append(Disconnect(peer, UNHEALTHY))
            out.extend(self.handle_link_failure(peer, now, UNHEALTHY))
        for peer in [p for p, until in self._cooldown.items() if until <= now]:
            del self._cooldown[peer]
        for peer in [p for p, b in self._backoff.items() if b.retry_at <= now and p not in self._members and p not in self._introduced]:
            del self._backoff[peer]  # keep the failure count only for peers we may still dial
        for peer in [p for p, k in self._introduced.items() if k.expires is not None and k.expires <= now]:
            del self._introduced[peer]
        for table in (self._asked, self._answered):
            for peer in [p for p in table if p not in self.connections]:
                del table[peer]
        out.extend(self.prune_weak_links(now))
        if len(self.connections) < self.config.min_connections and self.connections:
            out.extend(self._ask_introductions(now))
        out.extend(self._fill(now))
        return out

    def prune_weak_links(self, now: float) -> list[Output]:
        """Above 1.5 × target, gracefully drop the weakest link below ``prune_threshold``."""
        if len(self.connections) <= self.config.target_degree * 1.5:
            return []
        weak = [
            link for link in self.connections.values()
            if link.bandwidth_score < self.config.prune_threshold and link.peer not in self.pinned
        ]
        if not weak:
            return []
        weakest = min(weak, key=lambda link: (link.bandwidth_score, self.reputation.aggregate(link.peer, now), link.peer))
        peer = weakest.peer
        self._remove(peer, now)
        self._cooldown[peer] = now + self.config.prune_cooldown
        self._closing[peer] = now
        self.counters.pruned += 1
        return [self._send(peer, "goodbye", Goodbye(reason=PRUNED)), LinkLost(self._id(), peer, PRUNED, graceful=True)]

    # -- choosing whom to fuse with ------------------------------------------------------

    def suitable(self, peer: str, known: _Known, now: float, *, pinned: bool = False) -> bool:
        """``should_connect``: compatible, not linked or in flight, not backing off or cooling down, reputable.

        A pinned peer skips the capability match and the prune cooldown (it was pinned on purpose)."""
        if peer == self.self_id or peer in self.connections or peer in self.anastomosis or peer in self._dialing:
            return False
        if peer in self._closing or (not pinned and self._cooldown.get(peer, -math.inf) > now):
            return False
        backoff = self._backoff.get(peer)
        if backoff is not None and backoff.retry_at > now:
            return False
        mine = capability_kinds(self.capabilities)
        theirs = capability_kinds(known.capabilities)
        if not pinned and not (mine & theirs) and not (frozenset(self.seeks) & theirs):
            return False  # their seeks are only known from their Hello; they may still dial us
        return self.reputation.aggregate(peer, now) >= self.config.min_reputation

    def _fill(self, now: float) -> list[Output]:
        out: list[Output] = []
        for peer in sorted(self.pinned):  # beside the degree target: pinned members are always wanted
            known = self._members.get(peer)
            if known is not None and self.suitable(peer, known, now, pinned=True):
                self._dialing[peer] = now
                out.append(Dial(known.addr, peer))
        want = min(self.config.target_degree - self.committed(), self.config.dials_per_tick)
        if want <= 0:
            return out
        pool = {**self._introduced, **self._members}
        keyed: list[tuple[float, str]] = []
        for peer in sorted(pool):
            if self.suitable(peer, pool[peer], now):
                weight = max(self.reputation.aggregate(peer, now), 1e-6)
                keyed.append((self.rng.random() ** (1.0 / weight), peer))
        keyed.sort(reverse=True)
        for _, peer in keyed[:want]:
            self._dialing[peer] = now
            out.append(Dial(pool[peer].addr, peer))
        return out

