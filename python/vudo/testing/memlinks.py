"""An in-process stand-in for the link engine, for service-level tests.

:class:`MemoryLinkNetwork` connects any number of :class:`MemoryLinkEngine`
handles (the shape :class:`vudo.services.links.LinkEngineHandle` asks for,
i.e. that of :class:`vudo.services.link_engine.LinkEngine`)
under asyncio: dials succeed only when the expected key answers at the
address (as Noise XX would enforce), requests and responses travel as
events, and :meth:`MemoryLinkEngine.shutdown` resets every connection the
way a crash does. The policies never know the difference.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from vudo.hyphal.linkproto import (
    Dial,
    DialFailed,
    Disconnect,
    LinkDown,
    LinkEngineEvent,
    LinkInstruction,
    LinkUp,
    RequestFailed,
    RequestReceived,
    Respond,
    ResponseReceived,
    SendRequest,
)


class MemoryLinkNetwork:
    def __init__(self) -> None:
        self.engines: dict[str, MemoryLinkEngine] = {}  # addr -> engine
        self.connections: set[frozenset[str]] = set()  # pairs of node ids
        self._ids = itertools.count(1)
        self.channels: dict[int, tuple[MemoryLinkEngine, int, str]] = {}  # channel -> (requester, request id, protocol)

    def engine(self, node_id: str, addr: str) -> MemoryLinkEngine:
        engine = MemoryLinkEngine(self, node_id, addr)
        self.engines[addr] = engine
        return engine

    def by_id(self, node_id: str) -> MemoryLinkEngine | None:
        return next((e for e in self.engines.values() if e.node_id == node_id and not e.stopped), None)

    def next_id(self) -> int:
        return next(self._ids)

    def close(self, a: MemoryLinkEngine, b_id: str, reason: str) -> None:
        self.connections.discard(frozenset((a.node_id, b_id)))
        b = self.by_id(b_id)
        for channel, (requester, request_id, protocol) in list(self.channels.items()):
            if requester in (a, b):
                del self.channels[channel]
                other = b_id if requester is a else a.node_id
                requester.push(RequestFailed(other, protocol, request_id, "connection closed", time.time()))
        a.push(LinkDown(b_id, reason, time.time()))
        if b is not None:
            b.push(LinkDown(a.node_id, reason, time.time()))


class MemoryLinkEngine:
    def __init__(self, network: MemoryLinkNetwork, node_id: str, addr: str) -> None:
        self.network = network
        self.node_id = node_id
        self.addr = addr
        self.stopped = False
        self._queue: asyncio.Queue[LinkEngineEvent | None] = asyncio.Queue()

    def push(self, event: LinkEngineEvent) -> None:
        if not self.stopped:
            self._queue.put_nowait(event)

    async def start(self) -> None:
        self.stopped = False

    async def stop(self) -> None:
        self.shutdown()

    def execute(self, instruction: LinkInstruction) -> None:
        if self.stopped:
            return
        if isinstance(instruction, Dial):
            self.dial(instruction.addr, instruction.expected_peer)
        elif isinstance(instruction, Disconnect):
            self.disconnect(instruction.peer, instruction.reason)
        elif isinstance(instruction, SendRequest):
            self.request(instruction.peer, instruction.protocol, instruction.payload, instruction.request_id)
        elif isinstance(instruction, Respond):
            self.respond(instruction.channel, instruction.payload)

    async def next_event(self) -> LinkEngineEvent | None:
        """The next event; None once the engine stopped."""
        if self.stopped and self._queue.empty():
            return None
        return await self._queue.get()

    def dial(self, addr: str, expected_peer: str) -> None:
        now = time.time()
        target = self.network.engines.get(addr)
        if target is None or target.stopped:
            self.push(DialFailed(addr, expected_peer, "connection refused", now))
        elif target.node_id != expected_peer:
            self.push(DialFailed(addr, expected_peer, f"peer authenticated as {target.node_id}", now))
        elif frozenset((self.node_id, target.node_id)) not in self.network.connections:
            self.network.connections.add(frozenset((self.node_id, target.node_id)))
            self.push(LinkUp(target.node_id, addr, "outbound", now))
            target.push(LinkUp(self.node_id, self.addr, "inbound", now))

    def disconnect(self, peer: str, reason: str) -> None:
        if frozenset((self.node_id, peer)) in self.network.connections:
            self.network.close(self, peer, f"closed by peer: {reason}")

    def request(self, peer: str, protocol: str, payload: bytes, request_id: int) -> None:
        target = self.network.by_id(peer)
        if target is None or frozenset((self.node_id, peer)) not in self.network.connections:
            self.push(RequestFailed(peer, protocol, request_id, "not connected", time.time()))
            return
        channel = self.network.next_id()
        self.network.channels[channel] = (self, request_id, protocol)
        target.push(RequestReceived(self.node_id, protocol, channel, payload, time.time()))

    def respond(self, channel: int, payload: bytes) -> None:
        entry = self.network.channels.pop(channel, None)
        if entry is not None:
            requester, request_id, protocol = entry
            requester.push(ResponseReceived(self.node_id, protocol, request_id, payload, time.time()))

    def shutdown(self) -> None:
        """Stop as a crash would: every connection resets."""
        for pair in [p for p in self.network.connections if self.node_id in p]:
            (other,) = pair - {self.node_id}
            self.network.close(self, other, "connection reset by peer")
        self.stopped = True
        self._queue.put_nowait(None)
