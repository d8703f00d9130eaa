"""The links service under asyncio, over the in-process link engine stand-in."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vudo import __version__
from vudo.config import NodeConfig
from vudo.hyphal.announcement import NodeAnnouncement, announce
from vudo.hyphal.capability import Capability, Compute
from vudo.hyphal.topology import LINKS_KEY, connected_components, verify_links
from vudo.identity import Identity
from vudo.metrics import NodeMetrics
from vudo.services.events import ServiceEvent
from vudo.services.links import LinksService, LinksSources, routing_config
from vudo.services.membership import MemberView
from vudo.testing.memlinks import MemoryLinkNetwork

CAPS: tuple[Capability, ...] = (Compute(cores=1, memory_mb=256),)
WAIT_S = 60.0


class Sink:
    def __init__(self) -> None:
        self.events: list[ServiceEvent] = []

    def emit(self, event: ServiceEvent) -> None:
        self.events.append(event)


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def build(count: int, tmp_path: Path) -> tuple[MemoryLinkNetwork, list[LinksService]]:
    network = MemoryLinkNetwork()
    idents = [Identity.generate() for _ in range(count)]
    addrs = {i.node_id: f"/ip4/127.0.0.1/tcp/{41000 + n}" for n, i in enumerate(idents)}
    services: list[LinksService] = []

    def sealed(ident: Identity) -> str:
        ann = NodeAnnouncement(ident.node_id, "127.0.0.1:1", "", CAPS, __version__, time.time(), link=addrs[ident.node_id])
        return announce(ident, ann)

    announcements = {i.node_id: sealed(i) for i in idents}

    def members(me: str) -> Callable[[], list[MemberView]]:
        def view() -> list[MemberView]:
            alive = {s.identity.node_id for s in services if s.engine is not None and not s.engine.stopped}  # type: ignore[attr-defined]
            return [MemberView(i.node_id, "alive", True, i.node_id == me, "127.0.0.1:1", 1, CAPS, None, addrs[i.node_id], None, ())
                    for i in idents if i.node_id in alive]
        return view

    def link_lists() -> dict[str, tuple[str, ...]]:
        now = time.time()
        return {s.identity.node_id: verify_links(s.gossip_values(now)[LINKS_KEY], owner=s.identity.node_id, now=now, ttl=60).peers
                for s in services if s.engine is not None and not s.engine.stopped}  # type: ignore[attr-defined]

    config = dataclasses.replace(NodeConfig(), data_dir=tmp_path, link_min_connections=1, link_target_degree=2, link_max_connections=4)
    for n, ident in enumerate(idents):
        sources = LinksSources(members=members(ident.node_id), announcements=lambda: dict(announcements),
                               own_announcement=lambda i=ident: announcements[i.node_id], link_lists=link_lists)  # type: ignore[misc]
        service = LinksService(config, ident, NodeMetrics(), CAPS, sources,
                               lambda i=ident: network.engine(i.node_id, addrs[i.node_id]),  # type: ignore[misc]
                               rng=random.Random(n), tick_s=0.05)
        services.append(service)
    return network, services


def test_services_link_up_show_views_and_drop_a_crashed_peer(tmp_path: Path) -> None:
    async def scenario() -> None:
        network, services = build(6, tmp_path)
        for s in services:
            await s.start()
        sink = Sink()
        tasks = [asyncio.create_task(s.run(sink)) for s in services]

        def graph() -> dict[str, set[str]]:
            return {s.identity.node_id: {v.peer for v in s.links()} for s in services if not s.engine.stopped}  # type: ignore[union-attr]

        def healthy() -> bool:
            g = graph()
            edges = [(a, b) for a, peers in g.items() for b in peers]
            return (all(a in g.get(b, set()) for a, b in edges) and all(1 <= len(p) <= 4 for p in g.values())
                    and len(connected_components(g, edges)) == 1)

        await until(healthy, "six services to form one symmetric component")
        me = services[0]
        view = me.links()[0]
        assert view.direction in ("inbound", "outbound") and 0.0 <= view.reputation <= 1.0 and view.addr.startswith("/ip4/")
        topo = me.topology()
        assert set(topo.nodes) == {s.identity.node_id for s in services}
        assert {tuple(sorted((a, b))) for a, peers in graph().items() for b in peers} == set(topo.edges)
        assert me.metrics.registry.get_sample_value("vudo_links") == len(me.links())
        assert (me.metrics.registry.get_sample_value("vudo_link_events_total", {"kind": "LinkEstablished"}) or 0) >= 1

        victim = services[-1]
        assert victim.engine is not None
        await victim.engine.stop()
        victim_id = victim.identity.node_id
        await until(lambda: healthy() and all(victim_id not in {v.peer for v in s.links()} for s in services[:-1]),
                    "survivors to drop the crashed peer and be one component")

        services[0].leave(time.time())
        await until(lambda: all(services[0].identity.node_id not in {v.peer for v in s.links()} for s in services[1:-1]),
                    "peers to see the leaving node's links close")
        for s in services:
            await s.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert sink.events == []

    # asyncio.run on its own thread: a session-wide Playwright driver may already run a loop in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()


def test_routing_config_comes_from_the_node_config() -> None:
    cfg = dataclasses.replace(NodeConfig(), link_min_connections=3, link_target_degree=5, link_max_connections=9, announcement_ttl_s=30)
    rc = routing_config(cfg)
    assert (rc.min_connections, rc.target_degree, rc.max_connections, rc.announcement_ttl) == (3, 5, 9, 30)


def test_pinned_peers_stay_linked_beyond_the_degree_target(tmp_path: Path) -> None:
    async def scenario() -> None:
        network, services = build(7, tmp_path)
        witnesses = services[:4]
        ids = frozenset(s.identity.node_id for s in witnesses)
        for s in witnesses:  # like the credits service: every witness pins the other witnesses
            s.pin_sources.append(lambda: ids)
        for s in services:
            await s.start()
        sink = Sink()
        tasks = [asyncio.create_task(s.run(sink)) for s in services]

        def meshed() -> bool:
            return all(ids - {s.identity.node_id} <= {v.peer for v in s.links()} for s in witnesses)

        await until(meshed, "every witness linked with every other witness (target degree is 2)")
        assert all(s.policy.pinned == ids - {s.identity.node_id} for s in witnesses)
        assert not services[5].policy.pinned
        for s in services:
            await s.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()
