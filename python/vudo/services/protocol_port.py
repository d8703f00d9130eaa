"""A link engine shared by protocol: one port per request/response protocol.

The links service owns the link engine. Another service that speaks its own
protocol on the links (signals on ``/vudo/signal/1``) gets a
:class:`ProtocolPort`: the links service offers each engine event to its
ports first (:meth:`ProtocolPort.offer`) — a port takes the requests,
responses and failures of its protocol, and receives a copy of every
``LinkUp``/``LinkDown`` — and the port's ``SendRequest``/``Respond`` go
straight to the engine. Request ids need no remapping: the engine maps its
own ids to each instruction's id and reports outcomes with the protocol, so
a port only ever sees the ids it chose.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from vudo.hyphal.linkproto import (
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

PortEvent = LinkUp | LinkDown | RequestReceived | ResponseReceived | RequestFailed


class ProtocolPort:
    def __init__(self, protocol: str, execute: Callable[[LinkInstruction], None], *, max_queued: int = 65_536) -> None:
        self.protocol = protocol
        self._execute = execute
        self._queue: asyncio.Queue[PortEvent | None] = asyncio.Queue()
        self.max_queued = max_queued
        self.dropped = 0

    def offer(self, event: LinkEngineEvent) -> bool:
        """Queue what this port needs; True when the event is the port's alone (the caller stops there)."""
        if isinstance(event, LinkUp | LinkDown):
            self._put(event)
            return False
        if isinstance(event, RequestReceived | ResponseReceived | RequestFailed) and event.protocol == self.protocol:
            self._put(event)
            return True
        return False

    def _put(self, event: PortEvent) -> None:
        if isinstance(event, RequestReceived) and self._queue.qsize() >= self.max_queued:
            # The owner is not keeping up: the request goes unanswered and times out at its sender
            # (which resends), never a crash. Link events and outcomes of our own requests are always kept.
            self.dropped += 1
            return
        self._queue.put_nowait(event)

    def execute(self, instruction: SendRequest | Respond) -> None:
        if isinstance(instruction, SendRequest) and instruction.protocol != self.protocol:
            raise ValueError(f"port for {self.protocol} cannot send on {instruction.protocol}")
        self._execute(instruction)

    async def next_event(self) -> PortEvent | None:
        return await self._queue.get()

    def close(self) -> None:
        """End the owner's event stream (the links service is stopping)."""
        self._queue.put_nowait(None)
