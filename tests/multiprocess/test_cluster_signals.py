"""Signals between 10 real `vudo node` processes over their hyphal links.

Once the nodes have linked into one component and every node knows all ten
members: a flood is handled exactly once by every node; a gradient reads
lower with hop distance; a directed signal reaches its target only; a quorum
fires once on every node when the threshold is reached, never before; a
second action potential inside the refractory period is ignored; a forged
signal pushed by an outsider's engine is refused and counted.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import pytest

from cluster import LocalCluster, NodeProc, metric_value, wait_for
from linkgraph import graph_of
from vudo.hyphal.linkproto import HYPHAL_PROTOCOL, Dial, LinkUp, ResponseReceived, SendRequest
from vudo.identity import Identity
from vudo.services.link_engine import LinkEngine
from vudo.signals import envelope as env
from vudo.signals.envelope import SIGNAL_PROTOCOL, Flood, Push

DEADLINE = 180.0
N = 10


def auth(node: NodeProc) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.token}"}


def emit(node: NodeProc, body: dict[str, Any]) -> str:
    r = node.post("/v1/signals", json=body, headers=auth(node))
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def handled(node: NodeProc, signal_id: str) -> list[dict[str, Any]]:
    return [s for s in node.get("/v1/signals").json()["signals"] if s["id"] == signal_id]


def hop_distances(links: dict[str, list[str]], src: str) -> dict[str, int]:
    dist = {src: 0}
    queue = deque([src])
    while queue:
        x = queue.popleft()
        for y in links.get(x, []):
            if y not in dist:
                dist[y] = dist[x] + 1
                queue.append(y)
    return dist


def test_ten_nodes_signal_each_other(make_cluster: Any) -> None:
    cluster: LocalCluster = make_cluster(N, seeds=2, gossip_interval_ms=200)
    cluster.start()
    nodes = cluster.nodes

    def connected() -> dict[str, list[str]] | None:
        g = graph_of((n.node_id, n.api) for n in nodes)
        if g is None or len(hop_distances(g.links, nodes[0].node_id)) < N:
            return None
        everyone_known = all(sum(1 for m in n.members().values() if m["verified"] and m["status"] == "alive") == N for n in nodes)
        return {a: sorted(b) for a, b in g.links.items()} if everyone_known else None

    wait_for(connected, timeout=DEADLINE, what="10 nodes linked into one component, all members verified", interval=0.5)

    # Flood: exactly once everywhere.
    flood = emit(nodes[3], {"type": "flood", "payload": "hello, mycelium"})
    wait_for(lambda: all(handled(n, flood) for n in nodes), timeout=DEADLINE, what="the flood on every node")
    time.sleep(1.0)
    assert all(len(handled(n, flood)) == 1 for n in nodes)

    # Gradient: nearer the source, stronger (decay 0.8, all within the 0.05 floor at these distances).
    src = nodes[0]
    gradient = emit(src, {"type": "gradient", "decay": 0.8, "key": "load"})
    wait_for(lambda: all(handled(n, gradient) for n in nodes), timeout=DEADLINE, what="the gradient on every node")
    # Each node reports the hops its copy travelled. Links may be pruned or added while the
    # signal spreads, so hops are not compared with an earlier snapshot of the graph: the
    # strength is decay ** hops and falls strictly with the hops travelled.
    by_hops: dict[int, list[float]] = {}
    for n in nodes:
        [entry] = handled(n, gradient)
        assert entry["strength"] == pytest.approx(0.8 ** entry["hops"]), entry
        by_hops.setdefault(entry["hops"], []).append(entry["strength"])
    levels = sorted(by_hops)
    assert len(levels) >= 2 and levels[-1] >= 1
    assert all(max(by_hops[b]) < min(by_hops[a]) for a, b in zip(levels, levels[1:]))

    # Directed: the target only.
    target = nodes[7]
    directed = emit(nodes[1], {"type": "directed", "payload": "for 7", "target": target.node_id})
    wait_for(lambda: handled(target, directed), timeout=DEADLINE, what="the directed signal at its target")
    time.sleep(1.0)
    assert [n.index for n in nodes if handled(n, directed)] == [target.index]

    # Quorum: 3 of 10 needed (0.3); two contributions fire nothing, the third fires every node once.
    for n in nodes[:2]:
        emit(n, {"type": "quorum", "threshold": 0.3, "key": "grow"})
    wait_for(lambda: all(len([s for s in n.get("/v1/signals").json()["signals"] if s["type"] == "quorum"]) == 2 for n in nodes),
             timeout=DEADLINE, what="two quorum contributions everywhere")
    assert not any(s["fired"] for n in nodes for s in n.get("/v1/signals").json()["signals"] if s["type"] == "quorum")
    emit(nodes[2], {"type": "quorum", "threshold": 0.3, "key": "grow"})
    wait_for(lambda: all(all(s["fired"] for s in n.get("/v1/signals").json()["signals"] if s["type"] == "quorum") for n in nodes),
             timeout=DEADLINE, what="the quorum fired on every node")
    fired_at = {n.index: {s["fired_at"] for s in n.get("/v1/signals").json()["signals"] if s["type"] == "quorum"} for n in nodes}
    assert all(len(times) == 1 for times in fired_at.values())  # one firing per node
    assert all("vudo_signals_quorum_fired_total 1.0" in n.metrics() for n in nodes)

    # Action potential: a second one inside the refractory period is ignored everywhere.
    first = emit(nodes[4], {"type": "action_potential", "refractory_ms": 60_000, "key": "alarm"})
    wait_for(lambda: all(handled(n, first) for n in nodes), timeout=DEADLINE, what="the action potential everywhere")
    second = emit(nodes[5], {"type": "action_potential", "refractory_ms": 60_000, "key": "alarm"})
    time.sleep(2.0)
    assert not any(handled(n, second) for n in nodes)

    # A forgery pushed on the wire by an outsider's engine: refused with its reason, handled by nobody.
    victim = nodes[6]
    genuine = env.create(Identity.generate(), Flood(), b"genuine", ttl=8, now=time.time(), nonce=b"\x07" * 8)
    forged = msgspec.structs.replace(genuine, payload=b"evil")
    body = env.signed_bytes(1, forged.source, forged.signal_type, forged.payload, forged.ttl, forged.timestamp, forged.nonce)
    forged = msgspec.structs.replace(forged, id=env.signal_id(body))
    answer = _push_raw(victim, env.encode_frame(Push(forged, 2)))
    assert answer == env.BAD_SIGNATURE.encode()
    assert metric_value(victim.metrics(), "vudo_signals_rejected_total", {"reason": "bad_signature"}) == 1.0
    assert not any(handled(n, forged.id) for n in nodes)


def _push_raw(target: NodeProc, frame: bytes) -> bytes:
    """Dial ``target`` with a fresh key and send one signal frame; returns the node's answer."""

    async def main() -> bytes:
        engine = LinkEngine(Identity.generate(), "/ip4/127.0.0.1/tcp/0", protocols=(HYPHAL_PROTOCOL, SIGNAL_PROTOCOL), clock=time.time)
        await engine.start()
        try:
            port = int(target.members()[target.node_id]["link"].rsplit("/", 1)[1])
            engine.execute(Dial(f"/ip4/127.0.0.1/tcp/{port}", target.node_id))
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                event = await asyncio.wait_for(engine.next_event(), timeout=max(0.1, deadline - time.monotonic()))
                if isinstance(event, LinkUp):
                    engine.execute(SendRequest(target.node_id, SIGNAL_PROTOCOL, 1, frame))
                if isinstance(event, ResponseReceived) and event.protocol == SIGNAL_PROTOCOL:
                    return event.payload
            raise AssertionError(f"no answer from {target}")
        finally:
            await engine.stop()

    # asyncio.run on its own thread: a session-wide Playwright driver may already run a loop in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()
