"""The links service: the link engine plus the link policies.

It owns a link engine handle (rust-libp2p through ``vudo._core``; any object
with the :class:`LinkEngineHandle` shape) and the
:class:`~vudo.hyphal.routing.AdaptiveRouting` policy (which contains the
anastomosis handshake and the reputation tracker). It decides nothing:

* engine events go to the policy as they arrive; the policy's instructions
  are executed through the engine (dial, disconnect, request, respond);
* each tick it hands the policy the verified membership as candidates, our
  freshly signed announcement, the bytes each link carried in the last
  window (for the bandwidth EMA), and a timer;
* it hands the policy the peers other services pin (the credit witnesses
  keep links to each other, :attr:`LinksService.pin_sources`);
* it counts the bytes each link carries (requests and responses both ways)
  for the policy's bandwidth EMA;
* it offers read-only views: the links (``/v1/links``), this node's view of
  the topology from verified members' signed link lists (``/v1/topology``),
  and our own signed link list for the membership service to gossip.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from vudo import _core
from vudo.config import NodeConfig
from vudo.errors import ConfigError
from vudo.hyphal.capability import Capability
from vudo.hyphal.linkproto import (
    Dial,
    Direction,
    Disconnect,
    LinkEngineEvent,
    LinkInstruction,
    RequestReceived,
    Respond,
    ResponseReceived,
    SendRequest,
)
from vudo.hyphal.routing import (
    AdaptiveRouting,
    AnnouncementRefreshed,
    Candidate,
    CandidatesObserved,
    FusionRefused,
    LinkEstablished,
    LinkLost,
    Output,
    PinnedPeers,
    RoutingConfig,
    TrafficMeasured,
)
from vudo.hyphal.signed import Carrier
from vudo.hyphal.topology import LINKS_KEY, TopologyView, build_topology, publish_links
from vudo.identity import Identity
from vudo.metrics import NodeMetrics
from vudo.portcheck import explain_in_use
from vudo.services.base import NodeEvents
from vudo.services.membership import MemberView
from vudo.services.protocol_port import ProtocolPort

log = logging.getLogger("vudo.links")

#: How often the policy's timer runs and candidates are refreshed (seconds).
TICK_S = 0.5
#: The window over which link traffic is measured for the bandwidth EMA (seconds).
TRAFFIC_WINDOW_S = 1.0


class LinkEngineHandle(Protocol):
    """What the service needs from the link engine (``vudo.services.link_engine.LinkEngine``).

    The engine maps the policy's request ids to its own and back, and stamps
    events with ``now`` from its clock (it must be wall-clock time: the
    policies compare it with announcement timestamps).
    """

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def execute(self, instruction: LinkInstruction) -> None: ...

    async def next_event(self) -> LinkEngineEvent | None: ...


@dataclass(frozen=True, slots=True)
class LinkView:
    """One link as the interfaces show it."""

    peer: str
    established: float
    last_seen: float
    latency_ms: int
    bandwidth_score: float
    reputation: float
    addr: str
    direction: Direction


@dataclass(frozen=True, slots=True)
class LinksSources:
    """Read-only views of the membership service the links service reads."""

    members: Callable[[], list[MemberView]]
    announcements: Callable[[], dict[str, str]]
    own_announcement: Callable[[], str]
    link_lists: Callable[[], dict[str, tuple[str, ...]]]


def routing_config(config: NodeConfig) -> RoutingConfig:
    return RoutingConfig(
        min_connections=config.link_min_connections,
        target_degree=config.link_target_degree,
        max_connections=config.link_max_connections,
        announcement_ttl=config.announcement_ttl_s,
    )


class LinksService:
    name = "links"

    def __init__(
        self,
        config: NodeConfig,
        identity: Identity,
        metrics: NodeMetrics,
        capabilities: tuple[Capability, ...],
        sources: LinksSources,
        engine_factory: Callable[[], LinkEngineHandle],
        *,
        rng: random.Random | None = None,
        tick_s: float = TICK_S,
    ) -> None:
        self.config = config
        self.identity = identity
        self.metrics = metrics
        self.capabilities = capabilities
        self.sources = sources
        self._engine_factory = engine_factory
        self.engine: LinkEngineHandle | None = None
        self.tick_s = tick_s
        self.policy = AdaptiveRouting(
            self_id=identity.node_id,
            capabilities=capabilities,
            announcement=sources.own_announcement(),
            config=routing_config(config),
            rng=rng or random.Random(),
            now=time.time(),
        )
        self._traffic: dict[str, int] = {}  # peer -> bytes this window
        self._link_list: tuple[frozenset[str], float, str] | None = None  # (peers, signed at, value)
        self.ports: list[ProtocolPort] = []  # other services' protocols on the same engine
        #: Other services' peers to keep linked beyond the degree policy (read every tick).
        self.pin_sources: list[Callable[[], frozenset[str]]] = []
        self._pinned: frozenset[str] = frozenset()
        self._running = False

    # -- read side ----------------------------------------------------------------

    def links(self) -> list[LinkView]:
        now = time.time()
        return [
            LinkView(
                peer=link.peer,
                established=link.established,
                last_seen=link.last_seen,
                latency_ms=link.latency_ms,
                bandwidth_score=link.bandwidth_score,
                reputation=self.policy.reputation.aggregate(link.peer, now),
                addr=link.addr,
                direction=link.direction,
            )
            for link in sorted(self.policy.connections.values(), key=lambda lk: lk.peer)
        ]

    def topology(self) -> TopologyView:
        return build_topology(self.identity.node_id, self.policy.connections, self.sources.link_lists())

    def gossip_values(self, now: float, carrier: Carrier | None = None) -> dict[str, str]:
        """Our signed link list (bound to the gossip ``carrier`` that publishes it), re-signed
        when the links change or it nears its TTL."""
        peers = frozenset(self.policy.connections)
        cached = self._link_list
        if cached is None or cached[0] != peers or now - cached[1] >= self.config.refresh_interval_s:
            cached = self._link_list = (peers, now, publish_links(self.identity, peers, now, carrier=carrier))
        return {LINKS_KEY: cached[2]}

    # -- executing the policy --------------------------------------------------------

    def _execute(self, outputs: list[Output]) -> None:
        engine = self.engine
        assert engine is not None
        for item in outputs:
            if isinstance(item, Dial | Disconnect | Respond):
                engine.execute(item)
            elif isinstance(item, SendRequest):
                self._traffic[item.peer] = self._traffic.get(item.peer, 0) + len(item.payload)
                engine.execute(item)
            else:
                self._log(item)

    def _log(self, event: LinkEstablished | LinkLost | FusionRefused | object) -> None:
        self.metrics.link_events.labels(type(event).__name__).inc()
        if isinstance(event, LinkEstablished):
            log.info("event %d: linked with %s (%s, %s)", event.id, event.peer, event.direction, ",".join(sorted(event.shared)))
        elif isinstance(event, LinkLost):
            log.info("event %d: link to %s lost (%s%s)", event.id, event.peer, event.reason, ", graceful" if event.graceful else "")
        elif isinstance(event, FusionRefused):
            self.metrics.link_refusals.labels(event.reason).inc()
            log.warning("event %d: no link with %s: %s by %s (%s)", event.id, event.peer, event.reason, event.by, event.detail)
        else:
            log.debug("links: %s", event)

    def port(self, protocol: str) -> ProtocolPort:
        """The engine shared with another service for ``protocol`` (it must be one the engine speaks)."""
        port = ProtocolPort(protocol, self._execute_for_port)
        self.ports.append(port)
        return port

    def _execute_for_port(self, instruction: LinkInstruction) -> None:
        if isinstance(instruction, SendRequest):
            self._traffic[instruction.peer] = self._traffic.get(instruction.peer, 0) + len(instruction.payload)
        if self.engine is not None:
            self.engine.execute(instruction)

    def receive(self, event: LinkEngineEvent) -> None:
        if isinstance(event, RequestReceived | ResponseReceived):
            self._traffic[event.peer] = self._traffic.get(event.peer, 0) + len(event.payload)
        for port in self.ports:
            if port.offer(event):
                return
        self._execute(self.policy.receive(event))
        self.metrics.links.set(len(self.policy.connections))

    def tick(self, now: float, *, traffic_window: bool) -> None:
        sealed = self.sources.announcements()
        candidates = tuple(
            Candidate(m.node_id, m.link, m.capabilities, sealed.get(m.node_id, ""))
            for m in self.sources.members()
            if m.verified and m.status == "alive" and not m.is_self and m.link
        )
        self._execute(self.policy.receive(CandidatesObserved(candidates, now)))
        pinned = frozenset().union(*(source() for source in self.pin_sources))
        if pinned != self._pinned:
            self._pinned = pinned
            log.info("keeping links to %d pinned peer(s) beyond the degree policy", len(pinned))
            self._execute(self.policy.receive(PinnedPeers(pinned, now)))
        own = self.sources.own_announcement()
        if own and own != self.policy.announcement:
            self._execute(self.policy.receive(AnnouncementRefreshed(own, now)))
        if traffic_window:
            for peer in sorted(self.policy.connections):
                self._execute(self.policy.receive(TrafficMeasured(peer, self._traffic.get(peer, 0), TRAFFIC_WINDOW_S, now)))
            self._traffic.clear()
        self._execute(self.policy.handle_timer(now))
        self.metrics.links.set(len(self.policy.connections))

    # -- service -----------------------------------------------------------------------

    async def start(self) -> None:
        own = self.sources.own_announcement()
        if own:  # the membership service starts first and has signed it by now
            self.policy.receive(AnnouncementRefreshed(own, time.time()))
        engine = self._engine_factory()
        try:
            await engine.start()
        except _core.AddressInUseError:
            port = self.config.effective_link_port
            raise ConfigError(explain_in_use(self.config.host, port, udp=False, what="link", flag="--link-port")) from None
        self.engine = engine
        self._running = True

    async def _pump(self) -> None:
        assert self.engine is not None
        while (event := await self.engine.next_event()) is not None:
            if self._running:
                self.receive(event)

    async def run(self, events: NodeEvents) -> None:
        pump = asyncio.create_task(self._pump(), name="links-events")
        try:
            next_window = time.time()
            while self._running and not pump.done():
                now = time.time()
                window = now >= next_window
                if window:
                    next_window = now + TRAFFIC_WINDOW_S
                self.tick(now, traffic_window=window)
                await asyncio.sleep(self.tick_s)
            if pump.done():
                pump.result()  # an engine failure is this service's failure
        finally:
            pump.cancel()

    def leave(self, now: float) -> None:
        """Close every link (peers heal around us); no new links from now on."""
        if self.engine is None:
            return
        self._running = False
        self._execute([Disconnect(peer, "leaving") for peer in sorted(self.policy.connections)])

    async def stop(self) -> None:
        self._running = False
        if self.engine is not None:
            await self.engine.stop()
        for port in self.ports:
            port.close()
