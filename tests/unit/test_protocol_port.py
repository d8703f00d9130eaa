"""ProtocolPort: the links service's engine shared with the signals service by protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from vudo.hyphal.linkproto import (
    HYPHAL_PROTOCOL,
    DialFailed,
    LinkDown,
    LinkInstruction,
    LinkUp,
    RequestFailed,
    RequestReceived,
    Respond,
    ResponseReceived,
    SendRequest,
)
from vudo.services.protocol_port import ProtocolPort
from vudo.signals.envelope import SIGNAL_PROTOCOL


def run_async(coro: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run`` in its own thread: a session-wide Playwright driver may already run a loop in this one."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result(timeout=120)


def test_a_port_takes_its_protocol_and_copies_link_events() -> None:
    sent: list[LinkInstruction] = []

    async def main() -> None:
        port = ProtocolPort(SIGNAL_PROTOCOL, sent.append, max_queued=5)
        up = LinkUp("p", "/ip4/127.0.0.1/tcp/1", "inbound", 1.0)
        assert port.offer(up) is False  # the links policy needs it too
        assert port.offer(RequestReceived("p", HYPHAL_PROTOCOL, 1, b"", 1.0)) is False
        assert port.offer(DialFailed("/ip4/1.2.3.4/tcp/1", None, "refused", 1.0)) is False
        mine = [
            RequestReceived("p", SIGNAL_PROTOCOL, 2, b"x", 1.0),
            ResponseReceived("p", SIGNAL_PROTOCOL, 7, b"", 1.0),
            RequestFailed("p", SIGNAL_PROTOCOL, 8, "timeout", 1.0),
        ]
        assert all(port.offer(e) for e in mine)
        assert port.offer(LinkDown("p", "closed", 2.0)) is False
        got = [await port.next_event() for _ in range(5)]
        assert got == [up, *mine, LinkDown("p", "closed", 2.0)]
        port.offer(up)
        port.close()
        assert await port.next_event() == up
        assert await port.next_event() is None
        port.execute(SendRequest("p", SIGNAL_PROTOCOL, 3, b"y"))
        port.execute(Respond(2, b""))
        with pytest.raises(ValueError, match="cannot send"):
            port.execute(SendRequest("p", HYPHAL_PROTOCOL, 4, b"z"))
        for k in range(7):
            port.offer(RequestReceived("p", SIGNAL_PROTOCOL, 10 + k, b"", 3.0))
        port.offer(up)  # link events are never dropped
        assert port.dropped == 2 and port._queue.qsize() == 6

    run_async(main())
    assert sent == [SendRequest("p", SIGNAL_PROTOCOL, 3, b"y"), Respond(2, b"")]
