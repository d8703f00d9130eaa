"""The signals service in one asyncio loop: several services over in-memory link ports."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from vudo.services.signals import SignalNotice, SignalsService, SignalsSources, signal_type
from vudo.signals.envelope import ActionPotential, Directed, Flood, Gradient, Quorum
from vudo.signals.network import Delivered
from vudo.testing.signalports import MemoryLinkHub
from vudo.testing.signalsim import identities

TIMEOUT = 30.0


def run_async(coro: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run`` in its own thread: a session-wide Playwright driver may already run a loop in this one."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result(timeout=120)


class _Events:
    def emit(self, event: object) -> None:
        raise AssertionError(f"the signals service reports nothing to the lifecycle, got {event}")


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def run_network(n: int, edges: list[tuple[int, int]], body: Callable[[list[SignalsService], MemoryLinkHub], Awaitable[None]]) -> None:
    ids = identities(n)
    node_ids = [i.node_id for i in ids]
    topology = tuple((node_ids[a], node_ids[b]) for a, b in edges)

    async def main() -> None:
        hub = MemoryLinkHub()
        sources = SignalsSources(members=lambda: frozenset(node_ids), topology=lambda: topology)
        services = [SignalsService(ident, lambda ident=ident: hub.port(ident.node_id), sources, rng=random.Random(k), tick_s=0.01) for k, ident in enumerate(ids)]
        for s in services:
            await s.start()
        for a, b in edges:
            hub.link(node_ids[a], node_ids[b])
        tasks = [asyncio.create_task(s.run(_Events())) for s in services]
        try:
            await body(services, hub)
        finally:
            for s in services:
                s.leave(0.0)
                await s.stop()
            hub.close()
            await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)

    run_async(main())


LINE = [(i, i + 1) for i in range(5)]  # 0-1-2-3-4-5


def test_flood_reaches_every_service_once_and_calls_handlers() -> None:
    async def body(services: list[SignalsService], hub: MemoryLinkHub) -> None:
        seen: list[list[Delivered]] = [[] for _ in services]
        for k, s in enumerate(services):
            s.handlers.register("flood", seen[k].append)
        sub = services[5].subscribe()
        await wait_for(lambda: all(len(s.policy.links) >= 1 for s in services), "links")
        signal_id = services[0].emit("flood", b"hello")
        await wait_for(lambda: all(len(x) == 1 for x in seen), "every node to handle the flood")
        assert all(x[0].signal.id == signal_id for x in seen)
        [record] = services[5].recent()
        assert (record.id, record.type, record.source, record.hops, record.payload) == (signal_id, "flood", services[0].identity.node_id, 5, "hello")
        notice = await asyncio.wait_for(sub.get(), TIMEOUT)
        assert notice == SignalNotice("signal", {"id": signal_id, "type": "flood", "source": services[0].identity.node_id, "hops": 5, "strength": None, "received_at": record.received_at})
        sub.close()
        await asyncio.sleep(0.05)
        assert all(len(x) == 1 for x in seen)  # exactly once

    run_network(6, LINE, body)


def test_quorum_record_says_whether_and_when_it_fired() -> None:
    async def body(services: list[SignalsService], hub: MemoryLinkHub) -> None:
        sub = services[0].subscribe()
        await wait_for(lambda: all(s.policy.quorum.network_size == 6 for s in services), "membership")
        for k in range(2):
            services[k].emit("quorum", b"", threshold=0.5, key="go")
        await wait_for(lambda: len(services[0].recent()) == 2, "two contributions")
        assert all(r.fired is False and r.fired_at is None for r in services[0].recent())
        services[2].emit("quorum", b"", threshold=0.5, key="go")  # 3 of 6
        await wait_for(lambda: all(any(r.fired for r in s.recent()) for s in services), "every node to fire")
        assert all(r.fired and r.fired_at is not None for r in services[0].recent())
        kinds = []
        while not sub.queue.empty():
            kinds.append((await sub.get()).kind)
        assert kinds.count("quorum_fired") == 1

    run_network(6, LINE, body)


def test_directed_gradient_and_action_potential_through_services() -> None:
    async def body(services: list[SignalsService], hub: MemoryLinkHub) -> None:
        await wait_for(lambda: all(s.policy.topology._adjacency for s in services), "topology")
        target = services[4].identity.node_id
        sid = services[0].emit("directed", b"to 4", target=target)
        await wait_for(lambda: any(r.id == sid for r in services[4].recent()), "the target to handle it")
        assert all(r.id != sid for k, s in enumerate(services) if k != 4 for r in s.recent())
        gid = services[0].emit("gradient", b"", decay=0.5, key="load")
        await wait_for(lambda: sum(1 for s in services for r in s.recent() if r.id == gid) == 5, "the gradient down to its floor")
        strengths = [next((r.strength for r in s.recent() if r.id == gid), None) for s in services]
        assert strengths == [1.0, 0.5, 0.25, 0.125, 0.0625, None]  # 0.03125 is below the 0.05 floor
        first = services[1].emit("action_potential", b"", refractory_ms=60_000, key="alarm")
        await wait_for(lambda: all(any(r.id == first for r in s.recent()) for s in services), "the action potential everywhere")
        second = services[3].emit("action_potential", b"", refractory_ms=60_000, key="alarm")
        await asyncio.sleep(0.1)
        assert all(r.id != second for s in services for r in s.recent())

    run_network(6, LINE, body)


def test_a_link_going_down_fails_its_requests_and_the_flood_goes_around() -> None:
    ring = [(i, (i + 1) % 6) for i in range(6)]

    async def body(services: list[SignalsService], hub: MemoryLinkHub) -> None:
        await wait_for(lambda: all(len(s.policy.links) == 2 for s in services), "links")
        hub.unlink(services[0].identity.node_id, services[1].identity.node_id)
        await wait_for(lambda: len(services[0].policy.links) == 1, "the link down")
        sid = services[0].emit("flood", b"")
        await wait_for(lambda: all(any(r.id == sid for r in s.recent()) for s in services), "every node")

    run_network(6, ring, body)


def test_signal_type_from_api_parameters() -> None:
    assert signal_type("flood") == Flood()
    assert signal_type("gradient", decay=0.3, key="k") == Gradient(0.3, "k")
    assert signal_type("directed", target="x") == Directed("x")
    assert signal_type("quorum", threshold=0.5) == Quorum(0.5, "")
    assert signal_type("action_potential") == ActionPotential(1000, "")
    with pytest.raises(ValueError, match="target"):
        signal_type("directed")
    with pytest.raises(ValueError, match="threshold"):
        signal_type("quorum")
    with pytest.raises(ValueError, match="unknown"):
        signal_type("telepathy")  # type: ignore[arg-type]


def test_subscription_drops_the_oldest_when_the_reader_falls_behind() -> None:
    async def body(services: list[SignalsService], hub: MemoryLinkHub) -> None:
        sub = services[0].subscribe(size=2)
        for k in range(4):
            services[0].emit("flood", bytes([k]))
        assert sub.queue.qsize() == 2 and sub.dropped == 2

    run_network(2, [(0, 1)], body)


def test_metrics_count_handled_rejected_and_sent() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from vudo.hyphal.linkproto import RequestReceived
    from vudo.signals.envelope import SIGNAL_PROTOCOL

    registry = CollectorRegistry()
    a, b = identities(2)
    hub = MemoryLinkHub()

    async def main() -> None:
        service = SignalsService(a, lambda: hub.port(a.node_id), SignalsSources(frozenset, tuple), registry=registry)
        await service.start()
        hub.link(a.node_id, b.node_id)
        service.receive(await hub.port(a.node_id).next_event())  # type: ignore[arg-type]
        service.emit("flood", b"x")
        service.receive(RequestReceived(b.node_id, SIGNAL_PROTOCOL, 1, b"garbage", 0.0))

    run_async(main())
    text = generate_latest(registry).decode()
    assert 'vudo_signals_handled_total{type="flood"} 1.0' in text
    assert 'vudo_signals_rejected_total{reason="malformed"} 1.0' in text
    assert 'vudo_signals_frames_sent_total{frame="push"} 1.0' in text


def test_fault_loss_drops_frames_and_reports_them_failed_so_the_flood_still_arrives() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    ids = identities(4)
    node_ids = [i.node_id for i in ids]
    edges = [(0, 1), (1, 2), (2, 3), (3, 0)]
    topology = tuple((node_ids[a], node_ids[b]) for a, b in edges)
    registries = [CollectorRegistry() for _ in ids]

    async def main() -> None:
        hub = MemoryLinkHub()
        sources = SignalsSources(members=lambda: frozenset(node_ids), topology=lambda: topology)
        services = [
            SignalsService(ident, lambda ident=ident: hub.port(ident.node_id), sources, rng=random.Random(k), tick_s=0.01, registry=registries[k], fault_loss=0.2)
            for k, ident in enumerate(ids)
        ]
        for s in services:
            await s.start()
        for a, b in edges:
            hub.link(node_ids[a], node_ids[b])
        tasks = [asyncio.create_task(s.run(_Events())) for s in services]
        try:
            await wait_for(lambda: all(len(s.policy.links) == 2 for s in services), "links")
            sent = [services[k % 4].emit("flood", bytes([k])) for k in range(8)]
            await wait_for(lambda: all({r.id for r in s.recent()} >= set(sent) for s in services), "every flood everywhere despite the losses")
        finally:
            for s in services:
                s.leave(0.0)
                await s.stop()
            hub.close()
            await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)

    run_async(main())
    dropped = sum(
        float(line.rsplit(" ", 1)[1])
        for r in registries
        for line in generate_latest(r).decode().splitlines()
        if line.startswith("vudo_signals_frames_fault_dropped_total{")
    )
    assert dropped > 0


def test_fault_loss_one_drops_everything_and_zero_nothing() -> None:
    async def body(services: list[SignalsService], hub: MemoryLinkHub) -> None:
        await wait_for(lambda: all(len(s.policy.links) == 1 for s in services), "links")
        services[0].fault_loss = 1.0
        lost = services[0].emit("flood", b"lost")
        await asyncio.sleep(0.3)
        assert [r.id for r in services[1].recent()] == []
        assert [r.id for r in services[0].recent()] == [lost]  # handled locally, never sent
        services[0].fault_loss = 0.0
        arrives = services[0].emit("flood", b"arrives")
        await wait_for(lambda: arrives in {r.id for r in services[1].recent()}, "the second flood")

    run_network(2, [(0, 1)], body)


def test_fault_loss_outside_zero_to_one_is_refused() -> None:
    [ident] = identities(1)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="fault_loss"):
            SignalsService(ident, lambda: MemoryLinkHub().port(ident.node_id), SignalsSources(frozenset, tuple), fault_loss=bad)
