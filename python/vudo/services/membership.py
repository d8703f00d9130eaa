"""The membership service: the gossip engine plus its policies.

It owns ``vudo._core.Gossip`` (chitchat), the :class:`Membership` policy that
turns the engine's raw view into verified members, the :class:`Bootstrap`
policy that says when the node has joined, and the resource meter whose
measurements it signs and publishes as the node's gradient. Each tick it
pulls one snapshot from the engine, hands it to the policies, executes what
they answer (publish, report) and tells the supervisor when the node has
joined or failed to. Everything else reads :meth:`MembershipService.view`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from vudo import __version__, _core
from vudo.config import NodeConfig
from vudo.errors import ConfigError
from vudo.gradient.vector import GRADIENT_KEY, GradientVector, Resource
from vudo.hyphal.announcement import ANNOUNCEMENT_KEY, LEAVE_KEY, LeaveNotice, NodeAnnouncement, announce
from vudo.hyphal.bootstrap import Alive, Bootstrap, Failed, Progress
from vudo.hyphal.capability import Capability
from vudo.hyphal.membership import (
    GossipMember,
    GossipObserved,
    Membership,
    MemberStatusChanged,
    Status,
    ValueRejected,
)
from vudo.hyphal.signed import seal
from vudo.identity import Identity
from vudo.metrics import NodeMetrics
from vudo.portcheck import explain_in_use
from vudo.services.base import NodeEvents
from vudo.services.events import Joined, JoinFailed
from vudo.substrate.measure import ResourceMeter

log = logging.getLogger("vudo.membership")


@dataclass(frozen=True, slots=True)
class MemberView:
    """One member as the interfaces show it."""

    node_id: str
    status: Status
    verified: bool
    is_self: bool
    gossip_addr: str
    generation: int
    capabilities: tuple[Capability, ...]
    api: str | None
    link: str | None
    gradient: GradientVector | None
    rejected: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GradientsView:
    local: GradientVector | None
    neighbors: tuple[tuple[str, GradientVector], ...]
    flow: tuple[tuple[str, str | None], ...]


class MembershipService:
    name = "membership"

    def __init__(
        self,
        config: NodeConfig,
        identity: Identity,
        metrics: NodeMetrics,
        capabilities: tuple[Capability, ...],
        meter: ResourceMeter,
        *,
        link_addr: str = "",
        network: _core.MemoryNetwork | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.metrics = metrics
        self.capabilities = capabilities
        self.meter = meter
        self.link_addr = link_addr
        self.network = network
        self.policy = Membership(self_id=identity.node_id, announcement_ttl=config.announcement_ttl_s)
        self.local_gradient: GradientVector | None = None
        self.gossip: _core.Gossip | None = None
        self._left = False
        #: Read-only views of other services whose signed values we publish (e.g. the link list).
        self.publishers: list[Callable[[float], dict[str, str]]] = []
        self._published: dict[str, str] = {}
        self._own_announcement = ""

    # -- read side --------------------------------------------------------------

    def members(self) -> list[MemberView]:
        """Every member, sorted by id."""
        return [
            MemberView(
                node_id=record.node_id,
                status=record.status,
                verified=record.verified,
                is_self=record.is_self,
                gossip_addr=record.gossip_addr,
                generation=record.generation,
                capabilities=record.announcement.capabilities if record.announcement else (),
                api=record.announcement.api if record.announcement else None,
                link=(record.announcement.link or None) if record.announcement else None,
                gradient=record.gradient,
                rejected=tuple(sorted(set(record.rejected.values()))),
            )
            for record in sorted(self.policy.members.values(), key=lambda m: m.node_id)
        ]

    def sealed_announcements(self) -> dict[str, str]:
        """Verified, alive peers' announcements exactly as they signed them."""
        return {m.node_id: m.announcement_value for m in self.policy.verified_peers() if m.announcement_value}

    def link_lists(self) -> dict[str, tuple[str, ...]]:
        """Verified, alive peers' signed link lists (who each says it is linked with)."""
        return {m.node_id: m.link_list.peers for m in self.policy.verified_peers() if m.link_list is not None}

    def gradients(self) -> GradientsView:
        local = self.local_gradient
        field = self.policy.gradients
        flow = tuple((r.value, None if local is None else field.flow_direction(r, local)) for r in Resource)
        return GradientsView(local=local, neighbors=tuple(sorted(field.neighbors.items())), flow=flow)

    # -- engine ---------------------------------------------------------------

    def own_announcement(self) -> str:
        """Our latest sealed announcement (re-signed every refresh interval)."""
        return self._own_announcement

    def _announcement(self, now: float) -> str:
        self._own_announcement = announce(
            self.identity,
            NodeAnnouncement(
                node_id=self.identity.node_id,
                addr=self.config.gossip_advertise,
                api=self.config.api_url,
                capabilities=self.capabilities,
                version=__version__,
                timestamp=now,
                link=self.link_addr,
            ),
        )
        return self._own_announcement

    def _gradient(self, now: float) -> GradientVector:
        avail = self.meter.availability()
        return GradientVector(
            node_id=self.identity.node_id,
            compute_available=avail.compute,
            storage_available=avail.storage,
            bandwidth_available=avail.bandwidth,
            credit_balance=1.0,  # no credits exist yet: every node is at the network average
            timestamp=now,
            hops=0,
        )

    def start_engine(self) -> None:
        """Bind the gossip transport and start gossiping with the seeds."""
        cfg = self.config
        now = time.time()
        try:
            self.gossip = _core.Gossip(
                node_id=self.identity.node_id,
                generation=time.time_ns() // 1000,
                listen_addr=cfg.gossip_listen,
                advertise_addr=cfg.gossip_advertise,
                seeds=list(cfg.seeds),
                cluster_id=cfg.cluster_id,
                gossip_interval_ms=cfg.gossip_interval_ms,
                phi_threshold=cfg.phi_threshold,
                dead_node_grace_period_ms=int(cfg.dead_node_grace_period_s * 1000),
                max_interval_ms=max(10_000, 20 * cfg.gossip_interval_ms),
                initial_key_values={ANNOUNCEMENT_KEY: self._announcement(now)},
                network=self.network,
            )
        except _core.AddressInUseError:
            raise ConfigError(
                explain_in_use(cfg.host, cfg.gossip_port, udp=True, what="gossip", flag="--gossip-port")
            ) from None
        except ValueError as err:
            raise ConfigError(str(err)) from None

    def publish(self, now: float) -> None:
        """(Re-)sign and publish our announcement and freshly measured gradient."""
        assert self.gossip is not None
        self.local_gradient = self._gradient(now)
        self.gossip.set(ANNOUNCEMENT_KEY, self._announcement(now))
        self.gossip.set(GRADIENT_KEY, seal(self.identity, self.local_gradient))
        for resource in Resource:
            self.metrics.gradient.labels(resource.value).set(self.local_gradient.get(resource))

    def publish_values(self, now: float) -> None:
        """Publish the values other services offer, when they changed."""
        assert self.gossip is not None
        for publisher in self.publishers:
            for key, value in publisher(now).items():
                if self._published.get(key) != value:
                    self.gossip.set(key, value)
                    self._published[key] = value

    def observe(self, now: float, snapshot: list[_core.Member] | None = None) -> None:
        """One tick: the gossip view (pulled now unless given) through the membership policy."""
        assert self.gossip is not None
        members = tuple(
            GossipMember(m.node_id, m.generation, m.gossip_addr, m.live, m.is_self, dict(m.key_values))
            for m in (self.gossip.snapshot() if snapshot is None else snapshot)
        )
        self.metrics.snapshots.inc()
        for event in self.policy.receive(GossipObserved(members, now)):
            self.metrics.events.labels(type(event).__name__).inc()
            if isinstance(event, ValueRejected):
                self.metrics.rejected.labels(event.key, event.reason).inc()
                log.warning("event %d: dropped %s from %s: %s (%s)", event.id, event.key, event.node_id, event.reason, event.detail)
            elif isinstance(event, MemberStatusChanged):
                log.info("event %d: %s %s -> %s", event.id, event.node_id, event.old, event.new)
            else:
                log.debug("event %d: %s", event.id, event)
        statuses: tuple[Status, ...] = ("alive", "dead", "left")
        for status in statuses:
            self.metrics.members.labels(status).set(self.policy.count(status))
        self.metrics.verified.set(len(self.policy.verified_peers()))

    # -- service --------------------------------------------------------------

    async def start(self) -> None:
        self.start_engine()
        log.info("node %s gossiping on %s, seeds: %s", self.identity.node_id, self.config.gossip_listen,
                 ", ".join(self.config.seeds) or "none")
        self.publish(time.time())

    async def run(self, events: NodeEvents) -> None:
        cfg = self.config
        bootstrap = Bootstrap(
            seeds=list(cfg.seeds),
            min_connections=cfg.effective_min_connections,
            timeout=cfg.bootstrap_timeout_s,
            started=time.time(),
        )
        tick = cfg.gossip_interval_ms / 1000
        next_refresh = time.time() + cfg.refresh_interval_s
        while self.gossip is not None and self.gossip.running:
            # The engine call waits on chitchat's lock (GIL released): off the event loop.
            snapshot = await asyncio.to_thread(self.gossip.snapshot)
            now = time.time()
            self.observe(now, snapshot)
            self.publish_values(now)
            if now >= next_refresh:
                self.publish(now)
                next_refresh = now + cfg.refresh_interval_s
            for instruction in bootstrap.handle_timer(now, list(self.policy.members.values())):
                if isinstance(instruction, Progress):
                    log.info("%s", instruction.message)
                elif isinstance(instruction, Alive):
                    log.info("joined cluster %r with %d verified peer(s)", cfg.cluster_id, instruction.peers)
                    events.emit(Joined(instruction.peers, now))
                elif isinstance(instruction, Failed):
                    log.error("bootstrap failed: %s", instruction.message)
                    events.emit(JoinFailed(instruction.message, now))
            await asyncio.sleep(tick)

    def leave(self, now: float) -> None:
        """Publish the signed leave notice (peers then list us as "left")."""
        if self.gossip is None or not self.gossip.running:
            return
        log.info("leaving the network")
        self._left = True
        self.gossip.set(LEAVE_KEY, seal(self.identity, LeaveNotice(node_id=self.identity.node_id, timestamp=now)))

    async def stop(self) -> None:
        if self.gossip is not None and self.gossip.running:
            self.gossip.shutdown()
            log.info("left; gossip stopped" if self._left else "gossip stopped")
