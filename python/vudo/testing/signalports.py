"""In-memory link ports for the signals service: several services in one asyncio loop, no sockets.

:class:`MemoryLinkHub` plays the links service for protocol ``/vudo/signal/1``:
``link(a, b)`` reports ``LinkUp`` to both ends, a ``SendRequest`` becomes a
``RequestReceived`` at the peer, its ``Respond`` a ``ResponseReceived`` back,
and ``unlink`` reports ``LinkDown`` and fails what was unanswered on that link.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from vudo.hyphal.linkproto import LinkDown, LinkUp, RequestFailed, RequestReceived, Respond, ResponseReceived, SendRequest
from vudo.signals.envelope import SIGNAL_PROTOCOL

Event = LinkUp | LinkDown | RequestReceived | ResponseReceived | RequestFailed


class MemoryPort:
    def __init__(self, hub: MemoryLinkHub, node_id: str) -> None:
        self.hub = hub
        self.node_id = node_id
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()

    def execute(self, instruction: SendRequest | Respond) -> None:
        self.hub._execute(self.node_id, instruction)

    async def next_event(self) -> Event | None:
        return await self.events.get()

    def close(self) -> None:
        self.events.put_nowait(None)


class MemoryLinkHub:
    def __init__(self) -> None:
        self.ports: dict[str, MemoryPort] = {}
        self.links: set[frozenset[str]] = set()
        self._channels = itertools.count(1)
        self._open: dict[int, tuple[str, str, int]] = {}  # channel -> (requester, responder, request id)

    def port(self, node_id: str) -> MemoryPort:
        return self.ports.setdefault(node_id, MemoryPort(self, node_id))

    def link(self, a: str, b: str) -> None:
        self.links.add(frozenset((a, b)))
        now = time.time()
        self.port(a).events.put_nowait(LinkUp(b, f"/memory/{b}", "outbound", now))
        self.port(b).events.put_nowait(LinkUp(a, f"/memory/{a}", "inbound", now))

    def unlink(self, a: str, b: str) -> None:
        self.links.discard(frozenset((a, b)))
        now = time.time()
        for channel, (req, resp, rid) in list(self._open.items()):
            if {req, resp} == {a, b}:
                del self._open[channel]
                self.port(req).events.put_nowait(RequestFailed(resp, SIGNAL_PROTOCOL, rid, "connection closed", now))
        self.port(a).events.put_nowait(LinkDown(b, "closed", now))
        self.port(b).events.put_nowait(LinkDown(a, "closed", now))

    def close(self) -> None:
        for port in self.ports.values():
            port.close()

    def _execute(self, sender: str, instruction: SendRequest | Respond) -> None:
        now = time.time()
        if isinstance(instruction, SendRequest):
            if frozenset((sender, instruction.peer)) not in self.links:
                self.port(sender).events.put_nowait(RequestFailed(instruction.peer, instruction.protocol, instruction.request_id, "not connected", now))
                return
            channel = next(self._channels)
            self._open[channel] = (sender, instruction.peer, instruction.request_id)
            self.port(instruction.peer).events.put_nowait(RequestReceived(sender, instruction.protocol, channel, instruction.payload, now))
        else:
            opened = self._open.pop(instruction.channel, None)
            if opened is not None:
                requester, responder, rid = opened
                self.port(requester).events.put_nowait(ResponseReceived(responder, SIGNAL_PROTOCOL, rid, instruction.payload, now))
