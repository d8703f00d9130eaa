"""Hundreds of link policies in one process, on a seeded virtual clock.

:class:`LinkSim` plays the link engine and the gossip membership for many
:class:`~vudo.hyphal.routing.AdaptiveRouting` instances: it turns their
instructions (dial, send, respond, disconnect) into the events the real
engine would deliver (link up/down, requests, responses, failures, RTTs),
after a network latency, in a deterministic order (a heap keyed by virtual
time and sequence number). Everything random — keys, latencies, drops,
which nodes die — comes from one seed, so a run is reproducible exactly.

Faults: :meth:`LinkSim.kill` (a crash: every connection resets, the node's
requests go unanswered), a per-message drop probability (a dropped request
fails after ``request_timeout``), an impostor behind another node's address
(dials to it fail the key check, as Noise would), and a membership that
keeps listing a dead node for ``detection_delay`` seconds (the failure
detector's lag).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vudo import __version__
from vudo.hyphal.announcement import NodeAnnouncement, announce
from vudo.hyphal.capability import Capability, Compute
from vudo.hyphal.linkproto import (
    Dial,
    DialFailed,
    Direction,
    Disconnect,
    LinkDown,
    LinkEngineEvent,
    LinkUp,
    RequestFailed,
    RequestReceived,
    Respond,
    ResponseReceived,
    RttMeasured,
    SendRequest,
)
from vudo.hyphal.routing import (
    AdaptiveRouting,
    AnnouncementRefreshed,
    Candidate,
    CandidatesObserved,
    Event,
    Input,
    Output,
    RoutingConfig,
    TrafficMeasured,
)
from vudo.hyphal.topology import connected_components
from vudo.identity import Identity

EPOCH = 1_700_000_000.0


def seeded_identity(rng: random.Random) -> Identity:
    return Identity.from_private_key(Ed25519PrivateKey.from_private_bytes(rng.randbytes(32)))


@dataclass(slots=True)
class SimNode:
    index: int
    identity: Identity
    addr: str
    capabilities: tuple[Capability, ...]
    routing: AdaptiveRouting
    sealed: str
    alive: bool = True
    died_at: float | None = None
    events: list[Event] = field(default_factory=list)

    @property
    def node_id(self) -> str:
        return self.identity.node_id


class LinkSim:
    def __init__(
        self,
        count: int,
        *,
        seed: int,
        config: RoutingConfig | None = None,
        latency: float = 0.02,
        drop_rate: float = 0.0,
        tick: float = 0.5,
        membership_interval: float = 2.0,
        detection_delay: float = 5.0,
        ping_interval: float = 2.0,
        traffic_window: float = 1.0,
        request_timeout: float = 10.0,
        refresh_interval: float = 20.0,
        traffic: Callable[[str, str], int] | None = None,
        capabilities: Callable[[int], tuple[Capability, ...]] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.config = config or RoutingConfig()
        self.latency = latency
        self.drop_rate = drop_rate
        self.tick = tick
        self.membership_interval = membership_interval
        self.detection_delay = detection_delay
        self.ping_interval = ping_interval
        self.traffic_window = traffic_window
        self.request_timeout = request_timeout
        self.refresh_interval = refresh_interval
        self.traffic = traffic
        self.now = EPOCH
        self.nodes: dict[str, SimNode] = {}
        self.by_addr: dict[str, str] = {}
        self.impostors: dict[str, str] = {}  # addr -> node id actually answering there
        self.connections: set[frozenset[str]] = set()
        self.trace: list[tuple[float, str, str]] = []
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._channels = itertools.count(1)
        self._open_channels: dict[int, tuple[str, str, int, str]] = {}  # channel -> (requester, responder, request id, protocol)
        self._pending: dict[tuple[str, int], int] = {}  # (requester, request id) -> channel
        make_caps = capabilities or (lambda i: (Compute(cores=2, memory_mb=1024),))
        for i in range(count):
            identity = seeded_identity(self.rng)
            addr = f"/ip4/127.0.0.1/tcp/{30000 + i}"
            caps = make_caps(i)
            sealed = self._announce(identity, addr, caps)
            routing = AdaptiveRouting(
                self_id=identity.node_id,
                capabilities=caps,
                announcement=sealed,
                config=self.config,
                rng=random.Random(self.rng.getrandbits(64)),
                now=self.now,
            )
            self.nodes[identity.node_id] = SimNode(i, identity, addr, caps, routing, sealed)
            self.by_addr[addr] = identity.node_id
        self._next_timer = self.now
        self._next_membership = self.now
        self._next_ping = self.now + ping_interval
        self._next_traffic = self.now + traffic_window
        self._next_refresh = self.now + refresh_interval

    # -- views ------------------------------------------------------------------

    def alive(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.alive]

    def links(self) -> dict[str, set[str]]:
        return {n.node_id: set(n.routing.connections) for n in self.alive()}

    def edges(self) -> set[tuple[str, str]]:
        graph = self.links()
        return {(min(a, b), max(a, b)) for a, peers in graph.items() for b in peers if b in graph and a in graph[b]}

    def symmetric(self) -> bool:
        graph = self.links()
        return all(b in graph and a in graph[b] for a, peers in graph.items() for b in peers)

    def components(self) -> list[frozenset[str]]:
        return connected_components(self.links(), self.edges())

    def degrees(self) -> list[int]:
        return [len(n.routing.connections) for n in self.alive()]

    def links_to_dead(self) -> int:
        dead = {n.node_id for n in self.nodes.values() if not n.alive}
        return sum(1 for n in self.alive() for p in n.routing.connections if p in dead)

    def healthy(self, *, min_degree: int | None = None) -> bool:
        """One component, symmetric, no link to a dead node, every degree within bounds."""
        lo = self.config.min_connections if min_degree is None else min_degree
        degrees = self.degrees()
        return (
            self.symmetric()
            and self.links_to_dead() == 0
            and len(self.components()) == 1
            and all(lo <= d <= self.config.max_connections for d in degrees)
        )

    # -- faults -----------------------------------------------------------------

    def kill(self, node_id: str) -> None:
        node = self.nodes[node_id]
        node.alive = False
        node.died_at = self.now
        for conn in [c for c in self.connections if node_id in c]:
            (other,) = conn - {node_id}
            self._close(node_id, other, "connection reset by peer")

    def kill_fraction(self, fraction: float) -> list[str]:
        alive = sorted(n.node_id for n in self.alive())
        victims = self.rng.sample(alive, round(len(alive) * fraction))
        for victim in victims:
            self.kill(victim)
        return victims

    def impersonate(self, addr: str, impostor: str) -> None:
        """Make ``impostor`` answer dials to ``addr`` (a stolen or reused address)."""
        self.impostors[addr] = impostor

    # -- the clock ---------------------------------------------------------------

    def _at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (when, next(self._seq), action))

    def _deliver(self, node_id: str, event: LinkEngineEvent, delay: float | None = None) -> None:
        self._at(self.now + (self.latency if delay is None else delay), lambda: self.feed(node_id, event))

    def feed(self, node_id: str, event: Input) -> None:
        node = self.nodes[node_id]
        if node.alive:
            self._execute(node, node.routing.receive(event))

    def step(self) -> None:
        """Advance the clock by one tick, delivering everything due."""
        end = self.now + self.tick
        while self._queue and self._queue[0][0] <= end:
            when, _, action = heapq.heappop(self._queue)
            self.now = max(self.now, when)
            action()
        self.now = end
        if self.now >= self._next_refresh:
            self._next_refresh += self.refresh_interval
            for node in self.alive():
                node.sealed = self._announce(node.identity, node.addr, node.capabilities)
                self.feed(node.node_id, AnnouncementRefreshed(node.sealed, self.now))
        if self.now >= self._next_membership:
            self._next_membership += self.membership_interval
            listed = tuple(
                Candidate(n.node_id, n.addr, n.capabilities, n.sealed)
                for n in self.nodes.values()
                if n.alive or (n.died_at is not None and self.now - n.died_at < self.detection_delay)
            )
            for node in self.alive():
                self.feed(node.node_id, CandidatesObserved(listed, self.now))
        if self.now >= self._next_ping:
            self._next_ping += self.ping_interval
            for conn in sorted(self.connections, key=sorted):
                a, b = sorted(conn)
                rtt = 2000 * self.latency * (1 + self.rng.random())
                self._deliver(a, RttMeasured(b, rtt, self.now), 0.0)
                self._deliver(b, RttMeasured(a, rtt, self.now), 0.0)
        if self.now >= self._next_traffic:
            self._next_traffic += self.traffic_window
            for node in self.alive():
                for peer in sorted(node.routing.connections):
                    nbytes = self.traffic(node.node_id, peer) if self.traffic else 0
                    self.feed(node.node_id, TrafficMeasured(peer, nbytes, self.traffic_window, self.now))
        for node in self.alive():
            if node.alive:
                self._execute(node, node.routing.handle_timer(self.now))

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.step()

    def run_until(self, condition: Callable[[], bool], *, limit: float) -> float | None:
        """Step until ``condition`` holds; the virtual seconds it took, or None past ``limit``."""
        start = self.now
        while self.now - start <= limit:
            if condition():
                return self.now - start
            self.step()
        return None

    # -- the engine's side ------------------------------------------------------------

    def _announce(self, identity: Identity, addr: str, caps: tuple[Capability, ...]) -> str:
        announcement = NodeAnnouncement(
            node_id=identity.node_id,
            addr=addr.removeprefix("/ip4/").replace("/tcp/", ":"),
            api="",
            capabilities=caps,
            version=__version__,
            timestamp=self.now,
            link=addr,
        )
        return announce(identity, announcement)

    def _execute(self, node: SimNode, outputs: list[Output]) -> None:
        me = node.node_id
        for item in outputs:
            if isinstance(item, Dial):
                self._at(self.now + self.latency, functools.partial(self._dial_arrives, me, item.addr, item.expected_peer))
            elif isinstance(item, SendRequest):
                self._send(me, item)
            elif isinstance(item, Respond):
                self._respond(me, item)
            elif isinstance(item, Disconnect):
                if frozenset((me, item.peer)) in self.connections:
                    self._close(me, item.peer, f"closed by peer: {item.reason}")
            else:
                node.events.append(item)
                self.trace.append((self.now, me, repr(item)))

    def _dial_arrives(self, dialer: str, addr: str, expected: str) -> None:
        if not self.nodes[dialer].alive:
            return
        answering = self.impostors.get(addr) or self.by_addr.get(addr)
        target = self.nodes.get(answering) if answering else None
        if target is None or not target.alive:
            self._deliver(dialer, DialFailed(addr, expected, "connection refused", self.now))
            return
        if target.node_id != expected:
            self._deliver(dialer, DialFailed(addr, expected, f"wrong peer: {target.node_id}", self.now))
            return
        conn = frozenset((dialer, expected))
        if conn in self.connections or dialer == expected:
            return  # the engine keeps one link per peer pair
        self.connections.add(conn)
        self._deliver(dialer, LinkUp(expected, addr, "outbound", self.now))
        inbound: Direction = "inbound"
        self._deliver(expected, LinkUp(dialer, self.nodes[dialer].addr + "/p2p-circuit-port", inbound, self.now))

    def _send(self, me: str, req: SendRequest) -> None:
        if frozenset((me, req.peer)) not in self.connections:
            self._deliver(me, RequestFailed(req.peer, req.protocol, req.request_id, "not connected", self.now))
            return
        channel = next(self._channels)
        self._open_channels[channel] = (me, req.peer, req.request_id, req.protocol)
        self._pending[(me, req.request_id)] = channel
        if self.rng.random() < self.drop_rate:
            self._at(self.now + self.request_timeout, lambda: self._time_out(channel))
            return
        self._deliver(req.peer, RequestReceived(me, req.protocol, channel, req.payload, self.now))

    def _time_out(self, channel: int) -> None:
        entry = self._open_channels.pop(channel, None)
        if entry is None:
            return
        requester, responder, request_id, protocol = entry
        self._pending.pop((requester, request_id), None)
        self.feed(requester, RequestFailed(responder, protocol, request_id, "timeout", self.now))

    def _respond(self, me: str, resp: Respond) -> None:
        entry = self._open_channels.get(resp.channel)
        if entry is None or entry[1] != me:
            return
        requester, _, request_id, protocol = entry
        if frozenset((me, requester)) not in self.connections:
            return
        del self._open_channels[resp.channel]
        self._pending.pop((requester, request_id), None)
        if self.rng.random() < self.drop_rate:
            self._at(self.now + self.request_timeout, lambda: self.feed(requester, RequestFailed(me, protocol, request_id, "timeout", self.now)))
            return
        self._deliver(requester, ResponseReceived(me, protocol, request_id, resp.payload, self.now))

    def _close(self, a: str, b: str, reason: str) -> None:
        self.connections.discard(frozenset((a, b)))
        for channel, (requester, responder, request_id, protocol) in sorted(self._open_channels.items()):
            if {requester, responder} == {a, b}:
                del self._open_channels[channel]
                self._pending.pop((requester, request_id), None)
                self._deliver(requester, RequestFailed(responder, protocol, request_id, "connection closed", self.now))
        self._deliver(a, LinkDown(b, reason, self.now))
        self._deliver(b, LinkDown(a, reason, self.now))

