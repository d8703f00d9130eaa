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
from vudo.generation import next_generation
from vudo.gossip_keys import KEYRING_FILE, apply_key_op, key_id, startup_keys, write_key_file
from vudo.gradient.vector import GRADIENT_KEY, GradientVector, Resource
from vudo.hyphal.announcement import ANNOUNCEMENT_KEY, LEAVE_KEY, LeaveNotice, NodeAnnouncement, announce
from vudo.hyphal.bootstrap import Alive, Bootstrap, Failed, Progress
from vudo.hyphal.capability import Capability
from vudo.hyphal.membership import (
    PROBE_KEYS,
    Event,
    GossipMember,
    GossipObserved,
    Membership,
    MemberStatusChanged,
    Status,
    UnverifiedEvicted,
    ValueRejected,
)
from vudo.hyphal.signed import Carrier, seal
from vudo.identity import Identity
from vudo.metrics import NodeMetrics
from vudo.portcheck import explain_in_use
from vudo.services.base import NodeEvents
from vudo.services.events import Joined, JoinFailed
from vudo.spirits.catalogue import Catalogue
from vudo.substrate.measure import ResourceMeter

log = logging.getLogger("vudo.membership")

#: Evictions of never-verified members are reported at most this often (seconds).
EVICTION_LOG_EVERY_S = 30.0
#: What to tell the operator about dropped datagrams (reasons counted in vudo_gossip_datagrams_rejected_total).
DROP_HINTS = {
    "unknown_key": "sealed with a key this node does not hold; install the cluster's current key (`vudo keys install`)",
    "not_sealed": "plain chitchat from a node without the cluster key (or an outsider)",
    "out_of_window": "sealed too far from this node's clock; check the clocks (NTP) or raise replay_window_s",
    "replayed": "a datagram already accepted came again (a replay, or a duplicating network)",
    "auth_failed": "tampered, cut short or forged",
}


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
        self.policy = Membership(
            self_id=identity.node_id, announcement_ttl=config.announcement_ttl_s, max_unverified=config.max_unverified
        )
        self.metrics.unverified_cap.set(config.max_unverified)
        self.carrier: Carrier | None = None  # our chitchat identity, once the engine starts
        self._evictions_logged_at = -EVICTION_LOG_EVERY_S
        self._evicted_unlogged = 0
        self._drops_reported: dict[str, int] = {}
        self._drops_logged_at: dict[str, float] = {}
        self._keyring: list[bytes] = []  # mirror of the engine's keys (it only shows ids), primary first
        self.local_gradient: GradientVector | None = None
        self.gossip: _core.Gossip | None = None
        self._left = False
        #: Read-only views of other services whose signed values we publish (e.g. the link list).
        self.publishers: list[Callable[[float, Carrier], dict[str, str]]] = []
        self._published: dict[str, str] = {}
        self._own_announcement = ""
        #: This node's credits over the network average (the credits service provides it; 1.0 without one).
        self.credit_ratio: Callable[[], float] = lambda: 1.0

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

    def catalogues(self) -> dict[str, Catalogue]:
        """Verified, alive peers' signed spirit catalogues (what each offers)."""
        return {m.node_id: m.catalogue for m in self.policy.verified_peers() if m.catalogue is not None}

    def gradients(self) -> GradientsView:
        local = self.local_gradient
        field = self.policy.gradients
        flow = tuple((r.value, None if local is None else field.flow_direction(r, local)) for r in Resource)
        return GradientsView(local=local, neighbors=tuple(sorted(field.neighbors.items())), flow=flow)

    # -- engine ---------------------------------------------------------------

    def own_announcement(self) -> str:
        """Our latest sealed announcement (re-signed every refresh interval)."""
        return self._own_announcement

    @property
    def gossip_carrier(self) -> Carrier:
        assert self.carrier is not None, "gossip has not started"
        return self.carrier

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
            carrier=self.gossip_carrier,
        )
        return self._own_announcement

    def _gradient(self, now: float) -> GradientVector:
        avail = self.meter.availability()
        return GradientVector(
            node_id=self.identity.node_id,
            compute_available=avail.compute,
            storage_available=avail.storage,
            bandwidth_available=avail.bandwidth,
            credit_balance=self.credit_ratio(),
            timestamp=now,
            hops=0,
        )

    def start_engine(self) -> None:
        """Bind the gossip transport and start gossiping with the seeds."""
        cfg = self.config
        now = time.time()
        generation = next_generation(cfg.data_dir, clock_us=time.time_ns() // 1000)
        self.carrier = Carrier(self.identity.node_id, generation, cfg.gossip_advertise)
        keys: list[bytes] = []
        if cfg.open_gossip:
            log.warning("gossip is OPEN (--open-gossip): no cluster keyring; values stay signed and bound to their sender")
        else:
            keys, source = startup_keys(cfg.data_dir, cfg.gossip_key_bytes())
            self._keyring = list(keys)
            if keys:
                log.info("gossip sealed with a keyring of %d key(s) from %s (primary %s)", len(keys), source, key_id(keys[0]))
            else:
                log.warning(
                    "gossip is OPEN: no cluster key configured, anyone who reaches %s can take part; "
                    "create one with `vudo keygen` and pass it with --gossip-key", cfg.gossip_listen,
                )
        try:
            self.gossip = _core.Gossip(
                node_id=self.identity.node_id,
                generation=generation,
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
                keys=keys,
                replay_window_ms=int(cfg.replay_window_s * 1000),
                max_unverified=cfg.max_unverified,
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
        self.gossip.set(GRADIENT_KEY, seal(self.identity, self.local_gradient, carrier=self.gossip_carrier))
        for resource in Resource:
            self.metrics.gradient.labels(resource.value).set(self.local_gradient.get(resource))

    def publish_values(self, now: float) -> None:
        """Publish the values other services offer, when they changed."""
        assert self.gossip is not None
        for publisher in self.publishers:
            for key, value in publisher(now, self.gossip_carrier).items():
                if self._published.get(key) != value:
                    self.gossip.set(key, value)
                    self._published[key] = value

    def snapshot(self) -> tuple[list[_core.Member], int]:
        """A bounded engine view: trusted identities in full, a rotating few others (probe keys only)."""
        assert self.gossip is not None
        return self.gossip.snapshot_view(self.policy.trusted(), self.config.max_unverified, list(PROBE_KEYS))

    def observe(self, now: float, snapshot: tuple[list[_core.Member], int] | None = None) -> None:
        """One tick: the gossip view (pulled now unless given) through the membership policy.

        When identities verify during the tick, the engine is asked once more so
        their every value (gradient, ...) is read in the same tick.
        """
        assert self.gossip is not None
        trusted = self.policy.trusted()
        for _ in range(2):
            view, total = self.snapshot() if snapshot is None else snapshot
            snapshot = None
            members = tuple(
                GossipMember(m.node_id, m.generation, m.gossip_addr, m.live, m.is_self, dict(m.key_values))
                for m in view
            )
            self.metrics.snapshots.inc()
            self.metrics.engine_states.set(total)
            self._handle(self.policy.receive(GossipObserved(members, now)))
            now_trusted = self.policy.trusted()
            if set(now_trusted) <= set(trusted):
                break
            trusted = now_trusted
        stats = self.gossip.transport_stats()
        self.metrics.observe_transport(stats)
        self._explain_drops(stats.rejected)
        statuses: tuple[Status, ...] = ("alive", "dead", "left")
        for status in statuses:
            self.metrics.members.labels(status).set(self.policy.count(status))
        self.metrics.verified.set(len(self.policy.verified_peers()))
        self.metrics.unverified.set(self.policy.unverified_count())

    def _explain_drops(self, rejected: dict[str, int]) -> None:
        """Tell the operator, at most every EVICTION_LOG_EVERY_S per reason, why sealed datagrams are dropped."""
        now = time.monotonic()
        for reason, count in rejected.items():
            new = count - self._drops_reported.get(reason, 0)
            hint = DROP_HINTS.get(reason)
            if new <= 0 or hint is None or now - self._drops_logged_at.get(reason, -1e9) < EVICTION_LOG_EVERY_S:
                continue
            log.warning("dropped %d gossip datagram(s) (%s): %s", new, reason, hint)
            self._drops_reported[reason] = count
            self._drops_logged_at[reason] = now

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            self.metrics.events.labels(type(event).__name__).inc()
            if isinstance(event, ValueRejected):
                self.metrics.rejected.labels(event.key, event.reason).inc()
                log.warning("event %d: dropped %s from %s: %s (%s)", event.id, event.key, event.node_id, event.reason, event.detail)
            elif isinstance(event, UnverifiedEvicted):
                self.metrics.unverified_evicted.inc(event.count)
                self._evicted_unlogged += event.count
                now = time.monotonic()
                if now - self._evictions_logged_at >= EVICTION_LOG_EVERY_S:  # a flood must not flood the log too
                    log.warning("event %d: evicted %d never-verified member(s) since the last report (cap %d)",
                                event.id, self._evicted_unlogged, self.config.max_unverified)
                    self._evictions_logged_at, self._evicted_unlogged = now, 0
            elif isinstance(event, MemberStatusChanged):
                log.info("event %d: %s %s -> %s", event.id, event.node_id, event.old, event.new)
            else:
                log.debug("event %d: %s", event.id, event)

    # -- cluster keyring (rotation without restart, as `serf keys`) ------------

    def keyring(self) -> tuple[bool, list[tuple[str, bool]]]:
        """(sealed?, [(key id, primary)]); (False, []) when gossip is open or not started."""
        if self.gossip is None or not self.gossip.sealed:
            return (False, [])
        return (True, self.gossip.keys())

    def change_key(self, op: str, key: bytes) -> None:
        """install | use | remove one key, then persist the keyring. ValueError names the problem."""
        if self.gossip is None:
            raise ValueError("gossip has not started yet; retry in a moment")
        if not self.gossip.sealed:
            raise ValueError("this node gossips in the open (no keyring); restart it with --gossip-key to use one")
        actions = {"install": self.gossip.install_key, "use": self.gossip.use_key, "remove": self.gossip.remove_key}
        if op not in actions:
            raise ValueError(f"unknown key operation {op!r} (install, use or remove)")
        actions[op](key)
        self._keyring = apply_key_op(self._keyring, op, key)
        write_key_file(self.config.data_dir / KEYRING_FILE, self._keyring)
        log.info("gossip keyring: %s %s; keys now %s", op, key_id(key), ", ".join(key_id(k) for k in self._keyring))

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
            snapshot = await asyncio.to_thread(self.snapshot)
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
        notice = LeaveNotice(node_id=self.identity.node_id, timestamp=now)
        self.gossip.set(LEAVE_KEY, seal(self.identity, notice, carrier=self.gossip_carrier))

    async def stop(self) -> None:
        if self.gossip is not None and self.gossip.running:
            self.gossip.shutdown()
            log.info("left; gossip stopped" if self._left else "gossip stopped")
