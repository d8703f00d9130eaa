"""Signals services over the real link engine (rust-libp2p: TCP, Noise, request/response) on loopback.

Six nodes in one process, each a LinkEngine speaking ``/vudo/signal/1``, a
ProtocolPort fed by the engine's events, and a SignalsService; the links are
dialled by hand into a ring with one chord (the links service's policies are
not needed for this). Checks the protocol end to end on real sockets: flood
exactly once everywhere, directed to the target only, a forged frame refused
by the first node and never forwarded.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import msgspec

from vudo.hyphal.linkproto import HYPHAL_PROTOCOL, Dial, SendRequest
from vudo.services.link_engine import LinkEngine
from vudo.services.protocol_port import ProtocolPort
from vudo.services.signals import SignalsService, SignalsSources
from vudo.signals import envelope as env
from vudo.signals.envelope import SIGNAL_PROTOCOL, Flood, Push
from vudo.testing.signalsim import identities

PATIENCE = 60.0
N = 6
EDGES = [(i, (i + 1) % N) for i in range(N)] + [(0, 3)]


class _Events:
    def emit(self, event: object) -> None:
        raise AssertionError(f"unexpected service event {event}")


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(main(), 4 * PATIENCE)

    # Its own thread: a session-wide Playwright driver may already run a loop in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, bounded()).result()


def test_signals_travel_over_real_links() -> None:
    async def main() -> None:
        ids = identities(N)
        node_ids = [i.node_id for i in ids]
        members = frozenset(node_ids)
        topology = tuple((node_ids[a], node_ids[b]) for a, b in EDGES)
        engines = [LinkEngine(i, "/ip4/127.0.0.1/tcp/0", protocols=(HYPHAL_PROTOCOL, SIGNAL_PROTOCOL), clock=time.time) for i in ids]
        for e in engines:
            await e.start()
        ports = [ProtocolPort(SIGNAL_PROTOCOL, e.execute) for e in engines]

        async def pump(engine: LinkEngine, port: ProtocolPort) -> None:
            async for event in engine.events():
                port.offer(event)
            port.close()

        services = [
            SignalsService(ident, lambda port=port: port, SignalsSources(lambda: members, lambda: topology), rng=random.Random(k), tick_s=0.02)
            for k, (ident, port) in enumerate(zip(ids, ports))
        ]
        tasks = [asyncio.create_task(pump(e, p)) for e, p in zip(engines, ports)]
        for s in services:
            await s.start()
        tasks += [asyncio.create_task(s.run(_Events())) for s in services]
        try:
            for a, b in EDGES:
                engines[b].execute(Dial(engines[a].link_addr, node_ids[a]))
            degree = {i: sum(i in e for e in EDGES) for i in range(N)}
            await until(lambda: all(len(s.policy.links) == degree[k] for k, s in enumerate(services)), "the ring and its chord")

            flood = services[0].emit("flood", b"over the wire")
            await until(lambda: all(any(r.id == flood for r in s.recent()) for s in services), "the flood everywhere")
            target = node_ids[4]
            directed = services[1].emit("directed", b"for 4", target=target)
            await until(lambda: any(r.id == directed for r in services[4].recent()), "the directed signal at its target")

            # A forgery injected on the wire by node 1's engine: node 2 refuses it, nobody handles it.
            genuine = env.create(ids[5], Flood(), b"genuine", ttl=8, now=time.time(), nonce=b"\x05" * 8)
            forged = msgspec.structs.replace(genuine, payload=b"evil")
            body = env.signed_bytes(1, forged.source, forged.signal_type, forged.payload, forged.ttl, forged.timestamp, forged.nonce)
            forged = msgspec.structs.replace(forged, id=env.signal_id(body))
            engines[1].execute(SendRequest(node_ids[2], SIGNAL_PROTOCOL, 10**6, env.encode_frame(Push(forged, 2))))
            await until(lambda: services[2].policy.rejected[env.BAD_SIGNATURE] == 1, "the forgery refused")
            await asyncio.sleep(0.3)

            for s in services:
                handled = [r.id for r in s.recent()]
                assert handled.count(flood) == 1
                assert forged.id not in handled
            assert [k for k, s in enumerate(services) if any(r.id == directed for r in s.recent())] == [4]
        finally:
            for s in services:
                s.leave(0.0)
                await s.stop()
            for e in engines:
                await e.stop()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), PATIENCE)

    run(main)
