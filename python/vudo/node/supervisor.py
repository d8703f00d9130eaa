"""The node: a supervisor of services and the executor of the lifecycle policy.

The node decides nothing. It builds its services (membership, API, ...),
starts them in order, runs them as one task group, feeds every event they
report to the :class:`Lifecycle` policy and executes its instructions
(mark ready, announce the leave, arm the grace timer, stop). A service that
crashes is reported to the lifecycle as ``ServiceFailed``: the node then
leaves gracefully and exits 1. The interfaces see the node only through
:class:`NodeQueries`, built from the services' views.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import time
from collections.abc import Sequence

from vudo import _core
from vudo.api.hosts import HostPolicy
from vudo.api.query import KeyringView, NodeInfo
from vudo.config import NodeConfig
from vudo.credits.transaction import ActionKind
from vudo.credits.wire import CREDITS_PROTOCOL, RAFT_PROTOCOL, ReadWhat, Refused, Response
from vudo.hyphal.capability import is_witness
from vudo.hyphal.linkproto import HYPHAL_PROTOCOL
from vudo.hyphal.topology import TopologyView, build_topology
from vudo.identity import Identity, load_api_token, load_identity
from vudo.metrics import NodeMetrics
from vudo.node.lifecycle import (
    AnnounceLeave,
    ArmLeaveTimer,
    Instruction,
    LeaveGraceElapsed,
    Lifecycle,
    LifecycleEvent,
    MarkNotReady,
    MarkReady,
    Phase,
    ServiceFailed,
    StopRequested,
    StopServices,
)
from vudo.node.runtime import remove_runtime_file, write_runtime_file
from vudo.services.api import ApiService
from vudo.services.base import Service
from vudo.services.credits import CreditsService, CreditsSources
from vudo.services.link_engine import LinkEngine
from vudo.services.links import LinksService, LinksSources, LinkView
from vudo.services.market import FetchView, MarketService, OfferView
from vudo.services.membership import GradientsView, MembershipService, MemberView
from vudo.services.signals import SignalsService, SignalsSources
from vudo.services.spirits import SpiritAsset, SpiritLogLine, SpiritsService, SpiritView
from vudo.signals.envelope import SIGNAL_PROTOCOL
from vudo.signals.network import SignalConfig
from vudo.spirits.fetch import SPIRIT_PROTOCOL
from vudo.substrate.measure import ResourceMeter

log = logging.getLogger("vudo.node")

#: How long a stopped service's task may take to finish before it is cancelled.
STOP_TIMEOUT_S = 5.0


class NodeQueries:
    """The query protocol (:class:`vudo.api.query.NodeQuery`) over the node's services."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def info(self) -> NodeInfo:
        node = self._node
        return NodeInfo(
            node_id=node.identity.node_id,
            gossip_addr=node.config.gossip_advertise,
            api_url=node.config.api_url,
            capabilities=node.capabilities,
            cluster_id=node.config.cluster_id,
            started_at=node.started_at,
            status=node.lifecycle.phase.value,
        )

    def ready(self) -> bool:
        return self._node.lifecycle.ready

    def members(self) -> list[MemberView]:
        return self._node.membership.members()

    def gradients(self) -> GradientsView:
        return self._node.membership.gradients()

    def links(self) -> list[LinkView]:
        links = self._node.links
        return [] if links is None else links.links()

    def link_topology(self) -> TopologyView:
        links = self._node.links
        if links is None:
            return build_topology(self._node.identity.node_id, (), {})
        return links.topology()

    def metrics_text(self) -> bytes:
        return self._node.metrics.render()

    def token_matches(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self._node.api_token.encode())

    def request_stop(self, reason: str) -> None:
        self._node.request_stop(reason)

    def spirits(self) -> list[SpiritView]:
        return self._node.spirits.view()

    def spirit(self, name: str) -> SpiritView | None:
        return self._node.spirits.view_one(name)

    def spirit_logs(self, name: str) -> list[SpiritLogLine] | None:
        return self._node.spirits.logs(name)

    def spirit_asset(self, name: str, path: str) -> SpiritAsset | None:
        return self._node.spirits.asset(name, path)

    async def install_spirit(self, package: bytes) -> SpiritView:
        return await self._node.spirits.install(package)

    async def summon_spirit(self, name: str) -> SpiritView:
        return await self._node.spirits.summon(name)

    async def dismiss_spirit(self, name: str) -> SpiritView:
        return await self._node.spirits.dismiss(name)

    async def uninstall_spirit(self, name: str) -> SpiritView:
        return await self._node.spirits.uninstall(name)

    def marketplace(self, query: str = "") -> list[OfferView]:
        return self._node.market.marketplace(query)

    def start_fetch(self, name: str, version: str | None) -> FetchView:
        return self._node.market.start_fetch(name, version)

    def fetch_status(self, fetch_id: int) -> FetchView | None:
        return self._node.market.fetch_status(fetch_id)

    def topology(self) -> bytes:
        """What ``vudo.topology`` gives a spirit: the verified members, as compact JSON."""
        members = [
            {"node_id": m.node_id, "status": m.status, "is_self": m.is_self, "verified": m.verified}
            for m in self._node.membership.members()
        ]
        return json.dumps(members, separators=(",", ":")).encode()

    def gossip_keys(self) -> KeyringView:
        sealed, keys = self._node.membership.keyring()
        return KeyringView(sealed, tuple(keys))

    def change_gossip_key(self, op: str, key: bytes) -> None:
        self._node.membership.change_key(op, key)

    async def credits_read(self, what: ReadWhat, key: str = "", *, linearizable: bool = True, limit: int = 100) -> Response:
        return await self._node.credits.read(what, key, linearizable=linearizable, limit=limit)

    async def credits_transfer(self, *, to: str, amount: int, fee: int, memo: str, op_id: str | None) -> tuple[str, Response]:
        return await self._node.credits.transfer(to=to, amount=amount, fee=fee, memo=memo, op_id=op_id)

    async def credits_propose(self, *, action: ActionKind, target: str, amount: int, op_id: str | None) -> tuple[str, Response]:
        return await self._node.credits.propose(action=action, target=target, amount=amount, op_id=op_id)

    async def credits_vote(self, *, proposal_id: str, approve: bool) -> Response:
        return await self._node.credits.vote(proposal_id=proposal_id, approve=approve)

    async def credits_init(self, witnesses: list[str]) -> list[str]:
        await self._node.credits.initialize(witnesses)
        summary = self._node.credits.local_summary()
        return [] if summary is None else sorted(summary.voters)

    async def credits_genesis(self, allocations: dict[str, int], *, threshold_permille: int) -> Response:
        return await self._node.credits.genesis(allocations, threshold_permille=threshold_permille)


class Node:
    async def _read_name(self, name: str) -> Response:
        """Who owns a spirit name on the ledger (refused at once while no witness is known: no ledger yet)."""
        if not self.credits.witnesses():
            return Refused("no_leader", "no credit ledger witness is known yet")
        return await self.credits.read("name", name)

    def __init__(self, config: NodeConfig, *, network: _core.MemoryNetwork | None = None) -> None:
        from vudo.api.app import create_app  # interfaces sit above the node; they get queries, not the node

        self.config = config
        self.identity: Identity = load_identity(config.data_dir)
        self.api_token = load_api_token(config.data_dir)
        self.metrics = NodeMetrics()
        meter = ResourceMeter(config.data_dir, bandwidth_capacity_mbps=config.bandwidth_capacity_mbps)
        self.capabilities = meter.capabilities(
            storage_iops=config.storage_iops,
            gateway_protocols=config.gateway_protocols,
            witness_stake=config.witness_stake if config.witness_stake is not None else (0 if config.witness else None),
        )
        self.started_at = time.time()
        self.lifecycle = Lifecycle(leave_grace_s=config.leave_grace_ms / 1000)
        self.queries = NodeQueries(self)
        self.membership = MembershipService(
            config, self.identity, self.metrics, self.capabilities, meter, link_addr=config.link_advertise, network=network
        )
        m = self.membership
        self.links: LinksService | None = LinksService(
            config, self.identity, self.metrics, self.capabilities,
            LinksSources(m.members, m.sealed_announcements, m.own_announcement, m.link_lists),
            # The policies compare event times with signed timestamps: the engine's clock is wall-clock time.
            lambda: LinkEngine(
                self.identity, config.link_listen,
                protocols=(HYPHAL_PROTOCOL, SIGNAL_PROTOCOL, SPIRIT_PROTOCOL, RAFT_PROTOCOL, CREDITS_PROTOCOL),
                max_connections=config.max_connections, clock=time.time,
            ),
        )
        m.publishers.append(self.links.gossip_values)
        links = self.links
        self.signals = SignalsService(
            self.identity,
            lambda: links.port(SIGNAL_PROTOCOL),
            SignalsSources(
                members=lambda: frozenset(v.node_id for v in m.members() if v.verified and v.status == "alive"),
                topology=lambda: links.topology().edges,
            ),
            registry=self.metrics.registry,
            config=SignalConfig(flood="plain" if config.signal_flood == "plain" else "plumtree"),
            fault_loss=config.signal_fault_loss,
        )
        self.credits = CreditsService(
            config, self.identity,
            lambda: links.port(RAFT_PROTOCOL),
            lambda: links.port(CREDITS_PROTOCOL),
            CreditsSources(witness_members=lambda: frozenset(
                v.node_id for v in m.members() if v.verified and v.status == "alive" and is_witness(v.capabilities)
            )),
            registry=self.metrics.registry,
        )
        links.pin_sources.append(self.credits.pinned)
        m.credit_ratio = self.credits.credit_ratio
        self.spirits = SpiritsService(config, self.identity, self.metrics, topology=self.queries.topology,
                                      ledger=self.credits.submit, names=self._read_name)
        self.market = MarketService(
            self.identity, self.spirits, lambda: links.port(SPIRIT_PROTOCOL), m.catalogues,
            lambda: frozenset(link.peer for link in links.links()),
            refresh_s=config.refresh_interval_s, registry=self.metrics.registry,
        )
        m.publishers.append(self.market.gossip_values)
        hosts = HostPolicy.for_bind(config.api_host, config.api_vhosts)
        self.api = ApiService(config, create_app(self.queries, signals=self.signals, hosts=hosts))
        self.services: Sequence[Service] = (self.membership, self.links, self.signals, self.credits, self.spirits, self.market, self.api)
        self.inbox: asyncio.Queue[LifecycleEvent] = asyncio.Queue()

    # -- the supervisor's inbox ----------------------------------------------------

    def emit(self, event: LifecycleEvent) -> None:
        self.inbox.put_nowait(event)

    def request_stop(self, reason: str = "requested") -> None:
        self.emit(StopRequested(reason, time.time()))

    # -- running ------------------------------------------------------------------

    async def _supervise(self, service: Service) -> None:
        """Run one service; anything but a requested stop is a ServiceFailed event."""
        try:
            await service.run(self)
        except asyncio.CancelledError:
            raise
        except BaseException as err:  # noqa: BLE001 - SystemExit from a server counts as a failure too
            log.exception("service %s failed", service.name)
            self.emit(ServiceFailed(service.name, repr(err), time.time()))
        else:
            if self.lifecycle.phase in (Phase.JOINING, Phase.ALIVE):
                self.emit(ServiceFailed(service.name, "stopped by itself", time.time()))

    def _execute(self, instruction: Instruction) -> bool:
        """Carry out one lifecycle instruction; True when the node must stop now."""
        now = time.time()
        match instruction:
            case MarkReady(peers=peers):
                self.metrics.ready.set(1)
                log.info("alive: joined cluster %r with %d verified peer(s)", self.config.cluster_id, peers)
            case MarkNotReady():
                self.metrics.ready.set(0)
            case AnnounceLeave():
                for service in self.services:
                    service.leave(now)
            case ArmLeaveTimer(seconds=seconds):
                asyncio.get_running_loop().call_later(seconds, self.emit, LeaveGraceElapsed(now + seconds))
            case StopServices():
                return True
        return False

    async def run(self) -> int:
        started: list[Service] = []
        try:
            for service in self.services:
                await service.start()
                started.append(service)
        except BaseException:
            for service in reversed(started):
                await service.stop()
            raise
        write_runtime_file(self.config.data_dir, node_id=self.identity.node_id, api=self.config.api_url,
                           gossip=self.config.gossip_advertise)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._supervise(s), name=s.name) for s in self.services]
                try:
                    while True:
                        event = await self.inbox.get()
                        instructions = self.lifecycle.receive(event)
                        if self.lifecycle.history and self.lifecycle.history[-1].event is event:
                            handled = self.lifecycle.history[-1]
                            log.debug("lifecycle %d: %s -> %s on %s", handled.id, handled.old.value, handled.new.value, event)
                        if any([self._execute(i) for i in instructions]):
                            break
                finally:
                    for service in reversed(self.services):
                        await service.stop()
                    _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
                    for task in pending:
                        task.cancel()
        finally:
            remove_runtime_file(self.config.data_dir)
        log.info("stopped (exit code %d)", self.lifecycle.exit_code)
        return self.lifecycle.exit_code


def run_node(config: NodeConfig) -> int:
    """Run a node in this process until it is told to stop."""
    # Until the event loop installs its handlers, remember a SIGTERM/SIGINT
    # instead of dying without a leave notice.
    early: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: early.append(signum))
    node = Node(config)
    if early:
        log.info("stop requested before the node started; exiting")
        return 0

    async def main() -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, node.request_stop, f"signal {sig.name}")
        if early:
            node.request_stop("signal before start")
        return await node.run()

    return asyncio.run(main())
