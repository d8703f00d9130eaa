"""Hyphal links between real `vudo node` processes on loopback.

* 20 nodes form one connected, symmetric link graph with every degree in
  [link_min_connections, link_max_connections]; after SIGKILL of a quarter
  of them the survivors drop the dead links and are one component again.
* A peer whose Noise key differs from the NodeId its announcement names is
  refused (``impostor``) and counted.
* Random bytes and half-open connections on the link port do not hurt a node.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from browser_support import UI_TIMEOUT_MS
from cluster import LocalCluster, NodeProc, metric_value, wait_for
from linkgraph import LinkGraph, graph_of
from vudo import __version__
from vudo.config import NodeConfig
from vudo.hyphal.announcement import NodeAnnouncement, announce
from vudo.hyphal.capability import Compute
from vudo.hyphal.linkproto import HYPHAL_PROTOCOL, Dial, LinkUp, RequestReceived, ResponseReceived, SendRequest
from vudo.hyphal.linkwire import Hello, Refusal, decode_response, encode
from vudo.identity import Identity, load_identity
from vudo.services.link_engine import LinkEngine

MIN = NodeConfig().link_min_connections
MAX = NodeConfig().link_max_connections
DEADLINE = 180.0


def graph(nodes: list[NodeProc]) -> LinkGraph | None:
    return graph_of((n.node_id, n.api) for n in nodes)


def wait_healthy(nodes: list[NodeProc], what: str) -> LinkGraph:
    last: list[LinkGraph | None] = [None]

    def healthy() -> LinkGraph | None:
        g = last[0] = graph(nodes)
        return g if g is not None and g.healthy(min_degree=MIN, max_degree=MAX) else None

    def diagnostics() -> str:
        g = last[0]
        return "no graph (a node did not answer)" if g is None else "; ".join(g.problems(min_degree=MIN, max_degree=MAX))

    return wait_for(healthy, timeout=DEADLINE, what=what, diagnostics=diagnostics, interval=0.5)


def link_port(node: NodeProc) -> int:
    me = node.members()[node.node_id]
    return int(me["link"].rsplit("/", 1)[1])


def test_twenty_nodes_link_up_and_heal_after_a_quarter_is_killed(make_cluster: Any) -> None:
    cluster: LocalCluster = make_cluster(20, seeds=2, gossip_interval_ms=200)
    cluster.start()
    before = wait_healthy(cluster.nodes, "20 nodes to form one symmetric link component within degree bounds")
    assert len(before.links) == 20

    # Node 0's view of the topology (from the members' signed link lists) agrees with what the nodes report.
    first = cluster.nodes[0]

    def topology_agrees() -> bool:
        now = graph(cluster.nodes)
        topo = first.get("/v1/topology").json()
        if now is None or topo["self"] != first.node_id:
            return False
        edges = {tuple(sorted((a, b))) for a, peers in now.links.items() for b in peers}
        return set(topo["nodes"]) == set(now.links) and {tuple(e) for e in topo["edges"]} == edges

    wait_for(topology_agrees, timeout=DEADLINE, what="node 0's /v1/topology to show the cluster's links", interval=0.5)

    victims = random.Random(7).sample(cluster.nodes[2:], 5)
    for victim in victims:
        victim.kill()
    dead = {v.node_id for v in victims}
    survivors = [n for n in cluster.nodes if n.node_id not in dead]
    after = wait_healthy(survivors, "the 15 survivors to drop the dead links and be one component again")
    assert not any(dead & peers for peers in after.links.values())
    assert all(MIN <= len(p) <= MAX for p in after.links.values())


def _engine_session(identity: Identity, target: NodeProc, payload_for: Any) -> tuple[list[Any], Any]:
    """Dial ``target`` with ``identity``'s key, send one hyphal request, return (events, response)."""

    async def main() -> tuple[list[Any], Any]:
        engine = LinkEngine(identity, "/ip4/127.0.0.1/tcp/0", clock=time.time)
        await engine.start()
        seen: list[Any] = []
        try:
            engine.execute(Dial(f"/ip4/127.0.0.1/tcp/{link_port(target)}", target.node_id))
            deadline = time.monotonic() + 60
            sent = False
            while time.monotonic() < deadline:
                event = await asyncio.wait_for(engine.next_event(), timeout=max(0.1, deadline - time.monotonic()))
                seen.append(event)
                if isinstance(event, LinkUp) and not sent:
                    engine.execute(SendRequest(target.node_id, HYPHAL_PROTOCOL, 1, payload_for()))
                    sent = True
                if isinstance(event, RequestReceived):
                    continue  # the node's own Hello to us: left unanswered
                if isinstance(event, ResponseReceived):
                    return seen, decode_response(event.payload)
            raise AssertionError(f"no answer from {target}; events: {seen}")
        finally:
            await engine.stop()

    # asyncio.run on its own thread: a session-wide Playwright driver may already run a loop in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def test_an_impostor_key_is_refused_and_counted(make_cluster: Any) -> None:
    cluster: LocalCluster = make_cluster(2, gossip_interval_ms=200)
    cluster.start()
    target, victim = cluster.nodes
    wait_for(lambda: link_port(target) > 0, what="the target to announce its link address")
    victim_identity = load_identity(victim.data_dir)
    impostor = Identity.generate()

    def stolen_hello() -> bytes:
        ann = NodeAnnouncement(victim.node_id, victim.gossip, "", (Compute(cores=1, memory_mb=64),), __version__, time.time(), link="/ip4/127.0.0.1/tcp/1")
        return encode(Hello(version=1, announcement=announce(victim_identity, ann)))

    _, answer = _engine_session(impostor, target, stolen_hello)
    assert answer == Refusal(reason="impostor")
    wait_for(lambda: metric_value(target.metrics(), "vudo_link_refusals_total", {"reason": "impostor"}) >= 1,
             what="the refusal to be counted")
    assert impostor.node_id not in {link["peer"] for link in target.get("/v1/links").json()["links"]}


@pytest.mark.parametrize("rounds", [3])
def test_garbage_and_half_open_connections_on_the_link_port_do_no_harm(make_cluster: Any, rounds: int) -> None:
    cluster: LocalCluster = make_cluster(4, gossip_interval_ms=200)
    cluster.start()
    wait_healthy(cluster.nodes, "4 nodes to link up")
    target = cluster.nodes[0]
    port = link_port(target)
    half_open: list[socket.socket] = []
    try:
        for _ in range(rounds):
            for _ in range(10):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                half_open.append(s)  # connected, never speaks
            for size in (1, 7, 64, 4096, 70_000):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    try:
                        s.sendall(os.urandom(size))
                    except OSError:
                        pass  # the node may close on us mid-write: that is fine
        assert target.ready()
        wait_healthy(cluster.nodes, "the links to stay healthy with garbage and half-open connections around")
    finally:
        for s in half_open:
            s.close()
    wait_for(lambda: len(target.get("/v1/links").json()["links"]) >= MIN, what="the target to keep its links")
    assert "vudo_links " in target.metrics()
    assert target.ready()


def test_dashboard_draws_the_real_link_graph(make_cluster: Any, built_web: Any, page: Page) -> None:
    cluster: LocalCluster = make_cluster(3, gossip_interval_ms=200)
    cluster.start()
    wait_healthy(cluster.nodes, "3 nodes to link up")  # target degree 4 > 2 peers: a triangle
    observer, victim = cluster.nodes[0], cluster.nodes[2]
    page.goto(observer.api + "/")
    page.wait_for_function("() => window.__vudoDashboard && window.__vudoDashboard.topology.edges === 3", timeout=UI_TIMEOUT_MS)
    graph = page.locator("#topology-graph")
    expect(graph.locator("g.node-self")).to_have_attribute("data-node-id", observer.node_id)
    expect(graph.locator("line.edge-own")).to_have_count(2)
    victim.kill()
    page.wait_for_function("() => window.__vudoDashboard.topology.edges === 1", timeout=UI_TIMEOUT_MS)
    expect(graph.locator("line.edge")).to_have_count(1)
    assert not page.vudo_errors  # type: ignore[attr-defined]
