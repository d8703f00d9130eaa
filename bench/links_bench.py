"""Link engine benchmark: handshakes, request/response round trips, idle cost.

Two link engines (``vudo._core.Links`` through the asyncio layer
``vudo.services.link_engine``) in one process on loopback TCP measure:

* handshakes/s: sequential dials (TCP connect + multistream + Noise XX +
  yamux + the peer-id check) from the dial call until both ends report
  ``LinkUp``; each link is closed again before the next dial;
* request/response round trips/s and p50/p99 latency, one request in flight
  at a time (``LinkEngine.request`` answered by ``LinkEngine.serve``), and
  the throughput with ``--concurrency`` requests in flight;
* idle bytes/s per link: the link runs through a byte-counting TCP relay and
  is left idle for ``--idle-s`` seconds with the engine's default ping
  interval (15 s; ping + yamux + Noise framing, both directions).

Anchor, measured in the same run and the same event loop: a minimal HTTP/1.1
keep-alive server and client on loopback (asyncio streams, Content-Length
bodies) with the same payload: connects/s of a fresh TCP connection plus its
first request, round trips/s and p50/p99. This is a benchmark, not a test:
it asserts nothing.

    .venv/bin/python bench/links_bench.py [--handshakes 200] [--requests 2000] [--payload 64] [--idle-s 30] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

from vudo.hyphal.linkproto import HYPHAL_PROTOCOL, Dial, Disconnect, LinkDown, LinkUp
from vudo.identity import Identity
from vudo.services.link_engine import LinkEngine

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def wait_event(eng: LinkEngine, kind: type, peer: str) -> None:
    while True:
        ev = await eng.next_event()
        if ev is None:
            raise RuntimeError("engine stopped")
        if isinstance(ev, kind) and getattr(ev, "peer", None) == peer:
            return


# -- link engine -----------------------------------------------------------------


async def bench_handshakes(a: LinkEngine, b: LinkEngine, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        b.execute(Dial(a.link_addr, a.peer_id))
        # Done when both ends hold the link (the listener finishes last).
        await asyncio.gather(wait_event(b, LinkUp, a.peer_id), wait_event(a, LinkUp, b.peer_id))
        times.append(time.perf_counter() - t0)
        b.execute(Disconnect(a.peer_id, "bench"))
        await wait_event(b, LinkDown, a.peer_id)
        await wait_event(a, LinkDown, b.peer_id)
    return times


async def timed_round_trips(call: Callable[[], Awaitable[bytes]], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - t0)
    return samples


async def concurrent_rate(call: Callable[[], Awaitable[bytes]], n: int, concurrency: int) -> float:
    per_worker = n // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await call()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return per_worker * concurrency / (time.perf_counter() - t0)


class CountingRelay:
    """TCP relay that counts the bytes it forwards (both directions)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.bytes = 0
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                self.bytes += len(data)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        for pipe in (self._pipe(reader, up_writer), self._pipe(up_reader, writer)):
            task = asyncio.ensure_future(pipe)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def bench_idle(idle_s: float) -> float:
    """Bytes/s on one idle link with the engine's default ping interval."""
    a = LinkEngine(Identity.generate(), LOOPBACK)
    b = LinkEngine(Identity.generate(), LOOPBACK)
    await a.start()
    await b.start()
    parts = a.link_addr.split("/")
    relay = CountingRelay((parts[2], int(parts[4])))
    port = await relay.start()
    b.execute(Dial(f"/ip4/127.0.0.1/tcp/{port}", a.peer_id))
    await wait_event(b, LinkUp, a.peer_id)
    await asyncio.sleep(2.0)  # let identify and the first ping settle
    start_bytes = relay.bytes
    await asyncio.sleep(idle_s)
    rate = (relay.bytes - start_bytes) / idle_s
    await a.stop()
    await b.stop()
    await relay.close()
    return rate


# -- HTTP/1.1 anchor ------------------------------------------------------------------


async def http_server() -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body[::-1])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


class HttpClient:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def post(self, body: bytes) -> bytes:
        assert self.reader is not None and self.writer is not None
        self.writer.write(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(body) + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def bench_http_connects(port: int, n: int, payload: bytes) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        client = HttpClient(port)
        await client.connect()
        await client.post(payload)
        times.append(time.perf_counter() - t0)
        client.close()
    return times


# -- main ----------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> dict[str, float]:
    payload = bytes(range(256)) * (args.payload // 256) + bytes(args.payload % 256)
    a = LinkEngine(Identity.generate(), LOOPBACK)
    b = LinkEngine(Identity.generate(), LOOPBACK)
    await a.start()
    await b.start()

    async def echo(peer: str, body: bytes) -> bytes:
        return body[::-1]

    a.serve(HYPHAL_PROTOCOL, echo)
    hs = await bench_handshakes(a, b, args.handshakes)
    b.execute(Dial(a.link_addr, a.peer_id))
    await wait_event(b, LinkUp, a.peer_id)

    async def link_call() -> bytes:
        return await b.request(a.peer_id, HYPHAL_PROTOCOL, payload)

    await timed_round_trips(link_call, 50)  # warm-up
    rr = await timed_round_trips(link_call, args.requests)
    rr_conc = await concurrent_rate(link_call, args.requests, args.concurrency)
    await a.stop()
    await b.stop()

    server, port = await http_server()
    http_hs = await bench_http_connects(port, args.handshakes, payload)
    http_concurrent_clients = [HttpClient(port) for _ in range(args.concurrency)]
    for c in http_concurrent_clients:
        await c.connect()
    client = http_concurrent_clients[0]

    async def http_call() -> bytes:
        return await client.post(payload)

    await timed_round_trips(http_call, 50)
    http_rr = await timed_round_trips(http_call, args.requests)
    # HTTP/1.1 has no multiplexing: one connection per request in flight.
    per = args.requests // args.concurrency

    async def http_worker(c: HttpClient) -> None:
        for _ in range(per):
            await c.post(payload)

    t0 = time.perf_counter()
    await asyncio.gather(*(http_worker(c) for c in http_concurrent_clients))
    http_conc = per * args.concurrency / (time.perf_counter() - t0)
    for c in http_concurrent_clients:
        c.close()
    server.close()

    idle = await bench_idle(args.idle_s) if args.idle_s > 0 else float("nan")
    return {
        "handshakes_per_s": len(hs) / sum(hs),
        "handshake_p50_ms": statistics.median(hs) * 1000,
        "http_connects_per_s": len(http_hs) / sum(http_hs),
        "http_connect_p50_ms": statistics.median(http_hs) * 1000,
        "rr_per_s": len(rr) / sum(rr),
        "rr_p50_ms": statistics.median(rr) * 1000,
        "rr_p99_ms": pct(rr, 0.99) * 1000,
        "rr_concurrent_per_s": rr_conc,
        "http_rr_per_s": len(http_rr) / sum(http_rr),
        "http_rr_p50_ms": statistics.median(http_rr) * 1000,
        "http_rr_p99_ms": pct(http_rr, 0.99) * 1000,
        "http_concurrent_per_s": http_conc,
        "idle_bytes_per_s": idle,
    }


def table(r: dict[str, float], args: argparse.Namespace) -> str:
    rows = [
        ("handshakes/s (links: TCP+Noise XX+yamux; HTTP: TCP connect + first request)",
         r["handshakes_per_s"], r["http_connects_per_s"], "{:.0f}"),
        ("handshake p50 (ms)", r["handshake_p50_ms"], r["http_connect_p50_ms"], "{:.2f}"),
        (f"round trips/s, 1 in flight, {args.payload} B", r["rr_per_s"], r["http_rr_per_s"], "{:.0f}"),
        ("round trip p50 (ms)", r["rr_p50_ms"], r["http_rr_p50_ms"], "{:.3f}"),
        ("round trip p99 (ms)", r["rr_p99_ms"], r["http_rr_p99_ms"], "{:.3f}"),
        (f"round trips/s, {args.concurrency} in flight (HTTP: {args.concurrency} connections)",
         r["rr_concurrent_per_s"], r["http_concurrent_per_s"], "{:.0f}"),
    ]
    out = ["| metric | links (libp2p) | HTTP/1.1 anchor | ratio links/anchor |", "|---|---:|---:|---:|"]
    for name, ours, anchor, fmt in rows:
        out.append(f"| {name} | {fmt.format(ours)} | {fmt.format(anchor)} | {ours / anchor:.2f} |")
    out.append(f"| idle bytes/s per link (default 15 s ping, {args.idle_s:g} s window) | {r['idle_bytes_per_s']:.1f} | – | – |")
    return "\n".join(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--handshakes", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--payload", type=int, default=64)
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args()
    result = asyncio.run(main(ns))
    print(json.dumps(result, indent=2) if ns.json else table(result, ns))
