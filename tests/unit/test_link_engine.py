"""The link engine (rust-libp2p through vudo._core) driven from asyncio: two or three
engines in one process on loopback TCP."""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from vudo import _core
from vudo.errors import LinkRequestError
from vudo.hyphal.linkproto import (
    HYPHAL_PROTOCOL,
    Dial,
    DialFailed,
    Disconnect,
    LinkDown,
    LinkEngineEvent,
    LinkUp,
    RequestFailed,
    RequestReceived,
    Respond,
    ResponseReceived,
    RttMeasured,
    SendRequest,
)
from vudo.identity import Identity
from vudo.services.link_engine import LinkEngine, secret_key_bytes

RAFT = "/vudo/raft/1"
PATIENCE = 60.0  # generous: the machine is slow and shared; tests wait on conditions
LOOPBACK = "/ip4/127.0.0.1/tcp/0"

E = TypeVar("E", bound=LinkEngineEvent)


def engine(**options: object) -> LinkEngine:
    options.setdefault("ping_interval_s", 0.2)
    return LinkEngine(Identity.generate(), LOOPBACK, clock=lambda: 42.0, **options)  # type: ignore[arg-type]


async def next_of(eng: LinkEngine, kind: type[E], match: Callable[[E], bool] = lambda _: True) -> E:
    async def find() -> E:
        while True:
            event = await eng.next_event()
            assert event is not None, "engine stopped while waiting"
            if isinstance(event, kind) and match(event):
                return event

    return await asyncio.wait_for(find(), PATIENCE)


async def linked(*options: dict[str, object]) -> list[LinkEngine]:
    engines = [engine(**o) for o in options]
    for e in engines:
        await e.start()
    return engines


async def connect(a: LinkEngine, b: LinkEngine) -> None:
    b.execute(Dial(a.link_addr, a.peer_id))
    await next_of(b, LinkUp, lambda e: e.peer == a.peer_id)
    await next_of(a, LinkUp, lambda e: e.peer == b.peer_id)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro(), 3 * PATIENCE)

    # Its own thread: a session-wide Playwright driver may already run a loop in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, bounded()).result()


def test_dial_request_respond_through_the_contract() -> None:
    async def main() -> None:
        a, b = await linked({}, {})
        assert a.peer_id == a.identity.node_id == a.links.peer_id
        assert a.link_addr.startswith("/ip4/127.0.0.1/tcp/") and not a.link_addr.endswith("/0")
        b.execute(Dial(a.link_addr, a.peer_id))
        up_b = await next_of(b, LinkUp)
        assert (up_b.peer, up_b.addr, up_b.direction, up_b.now) == (a.peer_id, a.link_addr, "outbound", 42.0)
        up_a = await next_of(a, LinkUp)
        assert (up_a.peer, up_a.direction) == (b.peer_id, "inbound")

        b.execute(SendRequest(a.peer_id, HYPHAL_PROTOCOL, request_id=77, payload=b"ping"))
        req = await next_of(a, RequestReceived)
        assert (req.peer, req.protocol, req.payload) == (b.peer_id, HYPHAL_PROTOCOL, b"ping")
        a.execute(Respond(req.channel, b"pong"))
        resp = await next_of(b, ResponseReceived)
        assert (resp.peer, resp.protocol, resp.request_id, resp.payload) == (a.peer_id, HYPHAL_PROTOCOL, 77, b"pong")

        rtt = await next_of(b, RttMeasured)
        assert rtt.peer == a.peer_id and 0 <= rtt.rtt_ms < PATIENCE * 1000

        b.execute(Disconnect(a.peer_id, "pruned"))
        down = await next_of(b, LinkDown)
        assert (down.peer, down.reason) == (a.peer_id, "closed locally: pruned")
        await next_of(a, LinkDown, lambda e: e.peer == b.peer_id)
        await a.stop()
        await b.stop()

    run(main)


def test_awaitable_requests_and_served_protocols() -> None:
    async def main() -> None:
        a, b = await linked({"protocols": (HYPHAL_PROTOCOL, RAFT)}, {"protocols": (HYPHAL_PROTOCOL, RAFT)})
        await connect(a, b)
        seen: list[tuple[str, bytes]] = []

        async def echo(peer: str, payload: bytes) -> bytes:
            seen.append((peer, payload))
            return payload[::-1]

        a.serve(RAFT, echo)
        assert await b.request(a.peer_id, RAFT, b"abc", timeout=PATIENCE) == b"cba"
        assert seen == [(b.peer_id, b"abc")]
        # The served request never reached a's event stream, and a's other protocol still queues.
        b.execute(SendRequest(a.peer_id, HYPHAL_PROTOCOL, 5, b"q"))
        req = await next_of(a, RequestReceived)
        assert req.protocol == HYPHAL_PROTOCOL

        async def slow(peer: str, payload: bytes) -> bytes:
            await asyncio.sleep(PATIENCE)
            return b""

        a.serve(RAFT, slow)
        with pytest.raises(LinkRequestError, match="no answer"):
            await b.request(a.peer_id, RAFT, b"x", timeout=0.5)

        async def broken(peer: str, payload: bytes) -> bytes:
            raise RuntimeError("handler bug")

        a.serve(RAFT, broken)
        with pytest.raises(LinkRequestError):
            await b.request(a.peer_id, RAFT, b"y", timeout=1.0)
        with pytest.raises(ValueError, match="not registered"):
            a.serve("/vudo/other/1", echo)
        with pytest.raises(ValueError, match="not registered"):
            await b.request(a.peer_id, "/vudo/other/1", b"")
        pending = asyncio.ensure_future(b.request(a.peer_id, RAFT, b"z", timeout=PATIENCE))
        await asyncio.sleep(0)
        await b.stop()
        with pytest.raises(LinkRequestError, match="stopped"):
            await pending
        await a.stop()

    run(main)


def test_request_failures_come_back_with_the_policy_id() -> None:
    async def main() -> None:
        a, b = await linked({"protocols": (HYPHAL_PROTOCOL, RAFT)}, {})
        await connect(a, b)
        # b does not speak raft: a's request fails, reported with a's own id.
        a.execute(SendRequest(b.peer_id, RAFT, request_id=9, payload=b"vote?"))
        failed = await next_of(a, RequestFailed)
        assert (failed.peer, failed.protocol, failed.request_id) == (b.peer_id, RAFT, 9)
        assert "does not speak" in failed.reason
        # Local mistakes become events too (the policy is event-driven).
        a.execute(SendRequest(b.peer_id, "/vudo/nope/1", request_id=10, payload=b""))
        failed = await next_of(a, RequestFailed)
        assert failed.request_id == 10 and "not registered" in failed.reason
        a.execute(SendRequest("not-a-peer", HYPHAL_PROTOCOL, request_id=11, payload=b""))
        failed = await next_of(a, RequestFailed)
        assert failed.request_id == 11 and "not a node id" in failed.reason
        a.execute(SendRequest(b.peer_id, HYPHAL_PROTOCOL, request_id=12, payload=bytes(a.links.max_message_size + 1)))
        failed = await next_of(a, RequestFailed)
        assert failed.request_id == 12 and "exceeds" in failed.reason
        with pytest.raises(ValueError, match="exceeds"):
            a.execute(Respond(1, bytes(a.links.max_message_size + 1)))
        a.execute(Disconnect("garbage", "x"))  # logged, nothing to report
        await a.stop()
        await b.stop()

    run(main)


def test_impostor_and_bad_addresses_fail_the_dial() -> None:
    async def main() -> None:
        a, b = await linked({}, {})
        impostor = Identity.generate().node_id
        b.execute(Dial(a.link_addr, impostor))
        failed = await next_of(b, DialFailed)
        assert (failed.addr, failed.expected_peer) == (a.link_addr, impostor)
        assert "not the expected peer" in failed.reason and a.peer_id in failed.reason
        stats = b.stats()
        assert (stats.impostors_refused, stats.connections_established) == (1, 0)
        # An announcement could carry anything as its link address.
        b.execute(Dial("not a multiaddr", a.peer_id))
        failed = await next_of(b, DialFailed)
        assert "not a multiaddr" in failed.reason
        b.execute(Dial("/ip4/127.0.0.1/tcp/1", a.peer_id))
        failed = await next_of(b, DialFailed)
        assert failed.reason.startswith("transport")
        await connect(a, b)  # the right key still links
        await a.stop()
        await b.stop()
        for stopped in (a, b):
            async for _ in stopped.events():
                pass  # the stream ends after stop()
            assert await stopped.next_event() is None

    run(main)


def test_oversize_messages_are_refused_and_counted() -> None:
    async def main() -> None:
        a, b = await linked({"max_message_size": 1024}, {"max_message_size": 8192})
        await connect(a, b)
        with pytest.raises(LinkRequestError):
            await b.request(a.peer_id, HYPHAL_PROTOCOL, bytes(4096), timeout=PATIENCE)
        deadline = time.monotonic() + PATIENCE
        while a.stats().oversize_refused != 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert a.stats().requests_received == 0
        await a.stop()
        await b.stop()

    run(main)


def test_raw_binding_wake_fd_errors_and_garbage() -> None:
    ident = Identity.generate()
    links = _core.Links(secret_key=secret_key_bytes(ident), listen_addr=LOOPBACK, protocols=[HYPHAL_PROTOCOL])
    try:
        assert links.peer_id == ident.node_id
        assert links.protocols == [HYPHAL_PROTOCOL] and links.running
        fd = links.wake_fd
        assert select.select([fd], [], [], 0)[0] == []  # nothing yet
        with pytest.raises(_core.AddressInUseError):
            _core.Links(secret_key=secret_key_bytes(Identity.generate()), listen_addr=links.listen_addrs[0], protocols=[])
        with pytest.raises(ValueError, match="multiaddr"):
            _core.Links(secret_key=bytes(32), listen_addr="127.0.0.1:7600", protocols=[])
        with pytest.raises(ValueError, match="32-byte"):
            _core.Links(secret_key=b"short", listen_addr=LOOPBACK, protocols=[])
        with pytest.raises(ValueError, match="must start with"):
            _core.Links(secret_key=bytes(32), listen_addr=LOOPBACK, protocols=["hyphal"])
        with pytest.raises(ValueError, match="itself"):
            links.dial(links.listen_addrs[0], links.peer_id)
        # Garbage on the link port: counted, nothing else happens.
        host, port = links.listen_addrs[0].split("/")[2], int(links.listen_addrs[0].split("/")[4])
        with socket.create_connection((host, port)) as s:
            s.sendall(bytes(range(256)) * 16)
            deadline = time.monotonic() + PATIENCE
            while links.stats().inbound_handshakes_failed < 1:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        # A failed dial is an event: the fd turns readable, and quiet again once drained.
        links.dial("/ip4/127.0.0.1/tcp/1", Identity.generate().node_id)
        assert select.select([fd], [], [], PATIENCE)[0] == [fd]
        events = links.poll_events()
        assert [e.kind for e in events] == ["dial_failed"]
        assert events[0].payload == b"" and events[0].peer
        assert select.select([fd], [], [], 0)[0] == []
    finally:
        links.shutdown()
    deadline = time.monotonic() + PATIENCE
    while links.running:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(_core.EngineStoppedError):
        links.dial("/ip4/127.0.0.1/tcp/1", Identity.generate().node_id)


def test_stream_ends_when_the_engine_stops_underneath() -> None:
    async def main() -> None:
        a, b = await linked({}, {})
        await connect(a, b)
        pending = asyncio.ensure_future(b.request(a.peer_id, HYPHAL_PROTOCOL, b"?", timeout=PATIENCE))
        await asyncio.sleep(0)
        b.links.shutdown()  # not through b.stop()
        seen = [event async for event in b.events()]
        assert all(not isinstance(e, ResponseReceived) for e in seen)
        with pytest.raises(LinkRequestError, match="stopped"):
            await pending
        await b.stop()  # idempotent
        await a.stop()

    run(main)
