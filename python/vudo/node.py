"""The node: composes engines and policies under asyncio.

The node never decides. Each tick it pulls the gossip engine's view, hands
it to the membership and bootstrap policies, logs their events and
executes their instructions (publish, report progress, become ready, fail).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from vudo import __version__, _core
from vudo.config import NodeConfig
from vudo.errors import BootstrapError, ConfigError
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
from vudo.identity import Identity, load_api_token, load_identity
from vudo.metrics import NodeMetrics
from vudo.portcheck import explain_in_use, tcp_port_free
from vudo.substrate.measure import ResourceMeter

log = logging.getLogger("vudo.node")

RUNTIME_FILE = "node.json"


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the node owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: str
    gossip_addr: str
    api_url: str
    capabilities: tuple[Capability, ...]
    cluster_id: str
    started_at: float


class Node:
    def __init__(self, config: NodeConfig, *, network: _core.MemoryNetwork | None = None) -> None:
        self.config = config
        self.network = network
        self.identity: Identity = load_identity(config.data_dir)
        self.api_token = load_api_token(config.data_dir)
        self.metrics = NodeMetrics()
        self.meter = ResourceMeter(config.data_dir, bandwidth_capacity_mbps=config.bandwidth_capacity_mbps)
        self.capabilities = self.meter.capabilities(
            storage_iops=config.storage_iops,
            gateway_protocols=config.gateway_protocols,
            witness_stake=config.witness_stake,
        )
        self.membership = Membership(self_id=self.identity.node_id, announcement_ttl=config.announcement_ttl_s)
        self.status = "bootstrapping"
        self.started_at = time.time()
        self.local_gradient: GradientVector | None = None
        self.gossip: _core.Gossip | None = None
        self._stop = asyncio.Event()
        self._exit_code = 0

    # -- read side used by the API ------------------------------------------

    @property
    def info(self) -> NodeInfo:
        return NodeInfo(
            node_id=self.identity.node_id,
            gossip_addr=self.config.gossip_advertise,
            api_url=self.config.api_url,
            capabilities=self.capabilities,
            cluster_id=self.config.cluster_id,
            started_at=self.started_at,
        )

    @property
    def ready(self) -> bool:
        return self.status == "alive"

    def flow(self) -> dict[str, str | None]:
        local = self.local_gradient
        if local is None:
            return {r.value: None for r in Resource}
        return {r.value: self.membership.gradients.flow_direction(r, local) for r in Resource}

    def request_stop(self) -> None:
        self._stop.set()

    # -- lifecycle ------------------------------------------------------------

    def _announcement(self, now: float) -> str:
        return announce(
            self.identity,
            NodeAnnouncement(
                node_id=self.identity.node_id,
                addr=self.config.gossip_advertise,
                api=self.config.api_url,
                capabilities=self.capabilities,
                version=__version__,
                timestamp=now,
            ),
        )

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

    def publish(self, now: float) -> None:
        """(Re-)sign and publish our announcement and freshly measured gradient."""
        assert self.gossip is not None
        self.local_gradient = self._gradient(now)
        self.gossip.set(ANNOUNCEMENT_KEY, self._announcement(now))
        self.gossip.set(GRADIENT_KEY, seal(self.identity, self.local_gradient))
        for resource in Resource:
            self.metrics.gradient.labels(resource.value).set(self.local_gradient.get(resource))

    def start_gossip(self) -> None:
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

    def observe(self, now: float) -> None:
        """One tick: pull the gossip view through the membership policy."""
        assert self.gossip is not None
        members = tuple(
            GossipMember(m.node_id, m.generation, m.gossip_addr, m.live, m.is_self, dict(m.key_values))
            for m in self.gossip.snapshot()
        )
        self.metrics.snapshots.inc()
        for event in self.membership.receive(GossipObserved(members, now)):
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
            self.metrics.members.labels(status).set(self.membership.count(status))
        self.metrics.verified.set(len(self.membership.verified_peers()))

    def _write_runtime_file(self) -> None:
        path = self.config.data_dir / RUNTIME_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({
            "node_id": self.identity.node_id,
            "pid": os.getpid(),
            "api": self.config.api_url,
            "gossip": self.config.gossip_advertise,
        }))
        tmp.replace(path)

    async def run(self) -> int:
        cfg = self.config
        if not tcp_port_free(cfg.api_host, cfg.api_port):
            raise ConfigError(explain_in_use(cfg.api_host, cfg.api_port, udp=False, what="API", flag="--api-port"))
        if cfg.api_host not in ("127.0.0.1", "::1"):
            log.warning("the HTTP API is bound to %s and reachable from other machines", cfg.api_host)
        self.start_gossip()
        log.info("node %s gossiping on %s, seeds: %s", self.identity.node_id, cfg.gossip_listen, ", ".join(cfg.seeds) or "none")
        self.publish(time.time())

        from vudo.api.app import create_app  # the interface layer imports the node, not the reverse

        server = _ApiServer(uvicorn.Config(
            create_app(self), host=cfg.api_host, port=cfg.api_port, log_level="warning", lifespan="off",
            access_log=False,
        ))
        api_task = asyncio.create_task(server.serve(), name="api")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        self._write_runtime_file()
        log.info("API on %s (dashboard at %s/)", cfg.api_url, cfg.api_url)

        bootstrap = Bootstrap(
            seeds=list(cfg.seeds),
            min_connections=cfg.effective_min_connections,
            timeout=cfg.bootstrap_timeout_s,
            started=time.time(),
        )
        tick = cfg.gossip_interval_ms / 1000
        next_refresh = time.time() + cfg.refresh_interval_s
        try:
            while not self._stop.is_set():
                if api_task.done():
                    raise BootstrapError(f"the API server stopped unexpectedly: {api_task.exception()!r}")
                now = time.time()
                self.observe(now)
                if now >= next_refresh:
                    self.publish(now)
                    next_refresh = now + cfg.refresh_interval_s
                for instruction in bootstrap.handle_timer(now, list(self.membership.members.values())):
                    if isinstance(instruction, Progress):
                        log.info("%s", instruction.message)
                    elif isinstance(instruction, Alive):
                        self.status = "alive"
                        self.metrics.ready.set(1)
                        log.info("alive: joined cluster %r with %d verified peer(s)", cfg.cluster_id, instruction.peers)
                    elif isinstance(instruction, Failed):
                        log.error("bootstrap failed: %s", instruction.message)
                        self._exit_code = 1
                        self._stop.set()
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=tick)
                except TimeoutError:
                    pass
        finally:
            await self._leave()
            server.should_exit = True
            await api_task
            (cfg.data_dir / RUNTIME_FILE).unlink(missing_ok=True)
        return self._exit_code

    def announce_leave(self, now: float) -> None:
        """Publish the signed leave notice (peers then list us as "left")."""
        assert self.gossip is not None
        self.status = "leaving"
        self.metrics.ready.set(0)
        self.gossip.set(LEAVE_KEY, seal(self.identity, LeaveNotice(node_id=self.identity.node_id, timestamp=now)))

    async def _leave(self) -> None:
        """Tell peers we are leaving, give gossip time to spread it, stop."""
        if self.gossip is None or not self.gossip.running:
            return
        log.info("leaving the network")
        self.announce_leave(time.time())
        await asyncio.sleep(self.config.leave_grace_ms / 1000)
        self.gossip.shutdown()
        log.info("left; gossip stopped")


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
        task = asyncio.create_task(node.run())
        await asyncio.sleep(0)  # let run() install its signal handlers
        if early:
            node.request_stop()
        return await task

    return asyncio.run(main())


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
    gradient: GradientVector | None
    rejected: tuple[str, ...]


def describe_members(node: Node) -> list[MemberView]:
    """Every member, sorted by id, for the API and the dashboard."""
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
            gradient=record.gradient,
            rejected=tuple(sorted(set(record.rejected.values()))),
        )
        for record in sorted(node.membership.members.values(), key=lambda m: m.node_id)
    ]


def data_dir_runtime(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / RUNTIME_FILE
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
