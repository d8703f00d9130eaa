"""Asyncio face of the link engine (``vudo._core.Links``, rust-libp2p).

The engine never blocks the event loop: calls return at once and outcomes
arrive as events. :class:`LinkEngine` registers the engine's wake-up file
descriptor with ``loop.add_reader``; when it turns readable the events are
drained, converted into the contract dataclasses of
:mod:`vudo.hyphal.linkproto` (stamped with ``now`` from the injected clock)
and queued for whoever iterates the engine (the links service, which feeds
them to the link policies). Instructions from the policies go back through
:meth:`LinkEngine.execute`.

Two conveniences for services that want awaitables rather than events:
:meth:`LinkEngine.request` (a future per request id, answered by the
matching response event, which is then not queued) and
:meth:`LinkEngine.serve` (inbound requests on a protocol answered by an
async handler instead of being queued).

Ids: the engine allocates its own request ids; a policy's
:class:`SendRequest` carries the policy's id, which is mapped back on the
:class:`ResponseReceived` / :class:`RequestFailed` events.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import cast

from cryptography.hazmat.primitives import serialization

from vudo import _core
from vudo.errors import LinkRequestError
from vudo.hyphal.linkproto import (
    HYPHAL_PROTOCOL,
    Dial,
    DialFailed,
    Direction,
    Disconnect,
    LinkDown,
    LinkEngineEvent,
    LinkInstruction,
    LinkUp,
    RequestFailed,
    RequestReceived,
    Respond,
    ResponseReceived,
    RttMeasured,
    SendRequest,
)
from vudo.identity import Identity

log = logging.getLogger(__name__)

#: Handler of inbound requests on one protocol: (peer, payload) -> response payload.
RequestHandler = Callable[[str, bytes], Awaitable[bytes]]

_POLL_BATCH = 256


def secret_key_bytes(identity: Identity) -> bytes:
    """The raw 32-byte Ed25519 secret of ``identity`` (what the engine's Noise key is built from)."""
    return identity.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def convert_event(event: _core.LinkEvent, now: float) -> LinkEngineEvent:
    """An engine event as the contract's dataclass."""
    kind = event.kind
    if kind == "connected":
        return LinkUp(peer=event.peer, addr=event.addr, direction=cast(Direction, event.direction), now=now)
    if kind == "disconnected":
        return LinkDown(peer=event.peer, reason=event.reason, now=now)
    if kind == "dial_failed":
        return DialFailed(addr=event.addr, expected_peer=event.peer or None, reason=event.reason, now=now)
    if kind == "rtt":
        return RttMeasured(peer=event.peer, rtt_ms=event.rtt_ms, now=now)
    if kind == "request":
        return RequestReceived(peer=event.peer, protocol=event.protocol, channel=event.channel, payload=event.payload, now=now)
    if kind == "response":
        return ResponseReceived(
            peer=event.peer, protocol=event.protocol, request_id=event.request_id, payload=event.payload, now=now
        )
    if kind == "request_failed":
        return RequestFailed(peer=event.peer, protocol=event.protocol, request_id=event.request_id, reason=event.reason, now=now)
    raise ValueError(f"unknown link event kind {kind!r} (engine newer than this module?)")


class LinkEngine:
    """One running link engine bound to an asyncio loop."""

    def __init__(
        self,
        identity: Identity,
        listen_addr: str,
        *,
        protocols: Sequence[str] = (HYPHAL_PROTOCOL,),
        max_message_size: int = 1024 * 1024,
        max_connections: int = 256,
        max_connections_per_peer: int = 2,
        max_pending_incoming: int = 64,
        handshake_timeout_s: float = 10.0,
        request_timeout_s: float = 10.0,
        ping_interval_s: float = 15.0,
        ping_timeout_s: float = 20.0,
        max_inbound_bytes: int = 64 * 1024 * 1024,
        max_buffered_events: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity = identity
        self._create = functools.partial(
            _core.Links,
            secret_key=secret_key_bytes(identity),
            listen_addr=listen_addr,
            protocols=list(protocols),
            max_message_size=max_message_size,
            max_connections=max_connections,
            max_connections_per_peer=max_connections_per_peer,
            max_pending_incoming=max_pending_incoming,
            handshake_timeout_ms=round(handshake_timeout_s * 1000),
            request_timeout_ms=round(request_timeout_s * 1000),
            ping_interval_ms=round(ping_interval_s * 1000),
            ping_timeout_ms=round(ping_timeout_s * 1000),
            max_inbound_bytes=max_inbound_bytes,
        )
        self._clock = clock
        self._max_buffered = max_buffered_events
        self._links: _core.Links | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[LinkEngineEvent | None] = asyncio.Queue()
        self._reading = False
        self._closed = False
        self._futures: dict[int, asyncio.Future[bytes]] = {}
        self._policy_ids: dict[int, int] = {}
        self._handlers: dict[str, RequestHandler] = {}
        self._handler_tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start the engine (binds the listener off the loop) and watch its events."""
        if self._links is not None:
            raise RuntimeError("link engine already started")
        links = await asyncio.to_thread(self._create)
        if links.peer_id != self.identity.node_id:
            links.shutdown()
            raise RuntimeError(f"engine PeerId {links.peer_id} differs from the NodeId {self.identity.node_id}")
        self._links = links
        self._loop = asyncio.get_running_loop()
        self._resume_reading()
        log.info("links: %s listening on %s", links.peer_id, ", ".join(links.listen_addrs))

    async def stop(self) -> None:
        """Close every link and the listener; pending requests fail, the event stream ends."""
        if self._links is None or self._closed:
            return
        self._links.shutdown()
        self._finish()

    def _finish(self) -> None:
        self._closed = True
        self._pause_reading()
        for task in list(self._handler_tasks):
            task.cancel()
        for fut in self._futures.values():
            if not fut.done():
                fut.set_exception(LinkRequestError("the link engine stopped"))
        self._futures.clear()
        self._queue.put_nowait(None)

    @property
    def links(self) -> _core.Links:
        if self._links is None:
            raise RuntimeError("link engine not started; await start() first")
        return self._links

    @property
    def peer_id(self) -> str:
        return self.identity.node_id

    @property
    def listen_addrs(self) -> list[str]:
        return self.links.listen_addrs

    @property
    def link_addr(self) -> str:
        """The multiaddr to announce (the first listen address)."""
        return self.links.listen_addrs[0]

    def stats(self) -> _core.LinkStats:
        return self.links.stats()

    # -- events ------------------------------------------------------------------

    def _resume_reading(self) -> None:
        if not self._reading and not self._closed and self._loop is not None and self._links is not None:
            self._loop.add_reader(self._links.wake_fd, self._on_readable)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading and self._loop is not None and self._links is not None:
            self._loop.remove_reader(self._links.wake_fd)
            self._reading = False

    def _on_readable(self) -> None:
        if self._links is None:
            return
        now = self._clock()
        events = self._links.poll_events(_POLL_BATCH)
        for raw in events:
            self._dispatch(convert_event(raw, now))
        if not events and not self._links.running:
            # The engine stopped underneath us (its fd stays readable): end the stream.
            self._finish()
            return
        if self._queue.qsize() >= self._max_buffered:
            # Back-pressure: let the engine's bounded queue absorb (and count) the excess.
            self._pause_reading()

    def _dispatch(self, event: LinkEngineEvent) -> None:
        if isinstance(event, ResponseReceived | RequestFailed):
            fut = self._futures.pop(event.request_id, None)
            if fut is not None:
                if not fut.done():
                    if isinstance(event, ResponseReceived):
                        fut.set_result(event.payload)
                    else:
                        fut.set_exception(LinkRequestError(f"request to {event.peer} on {event.protocol} failed: {event.reason}"))
                return
            policy_id = self._policy_ids.pop(event.request_id, None)
            if policy_id is None:
                log.debug("links: dropping outcome of unknown request %d", event.request_id)
                return
            if isinstance(event, ResponseReceived):
                event = ResponseReceived(event.peer, event.protocol, policy_id, event.payload, event.now)
            else:
                event = RequestFailed(event.peer, event.protocol, policy_id, event.reason, event.now)
        elif isinstance(event, RequestReceived):
            handler = self._handlers.get(event.protocol)
            if handler is not None:
                task = asyncio.ensure_future(self._serve_one(handler, event))
                self._handler_tasks.add(task)
                task.add_done_callback(self._handler_tasks.discard)
                return
        self._queue.put_nowait(event)

    async def _serve_one(self, handler: RequestHandler, event: RequestReceived) -> None:
        try:
            answer = await handler(event.peer, event.payload)
        except Exception:
            # No answer: the requester sees a timeout. The handler's bug is ours to log.
            log.exception("links: handler for %s failed on a request from %s", event.protocol, event.peer)
            return
        if not self._closed:
            self.links.respond(event.channel, answer)

    async def next_event(self) -> LinkEngineEvent | None:
        """The next event, or None once the engine stopped."""
        if self._closed and self._queue.empty():
            return None
        event = await self._queue.get()
        if not self._reading and self._queue.qsize() < self._max_buffered // 2:
            self._resume_reading()
        return event

    async def events(self) -> AsyncIterator[LinkEngineEvent]:
        """``async for event in engine.events()`` until the engine stops."""
        while (event := await self.next_event()) is not None:
            yield event

    # -- instructions ---------------------------------------------------------------

    def execute(self, instruction: LinkInstruction) -> None:
        """Carry out a policy's instruction. Failures come back as events, never raise,
        except :class:`Respond` with a payload over the limit (a local bug)."""
        now = self._clock()
        if isinstance(instruction, Dial):
            try:
                self.links.dial(instruction.addr, instruction.expected_peer)
            except ValueError as err:
                # Addresses come from (signed) announcements of other nodes: bad ones fail the dial.
                self._queue.put_nowait(DialFailed(instruction.addr, instruction.expected_peer, str(err), now))
        elif isinstance(instruction, Disconnect):
            try:
                self.links.disconnect(instruction.peer, instruction.reason)
            except ValueError as err:
                log.warning("links: cannot disconnect %r: %s", instruction.peer, err)
        elif isinstance(instruction, SendRequest):
            try:
                engine_id = self.links.request(instruction.peer, instruction.protocol, instruction.payload)
            except ValueError as err:
                self._queue.put_nowait(RequestFailed(instruction.peer, instruction.protocol, instruction.request_id, str(err), now))
                return
            self._policy_ids[engine_id] = instruction.request_id
        elif isinstance(instruction, Respond):
            self.links.respond(instruction.channel, instruction.payload)
        else:  # pragma: no cover - exhaustive over LinkInstruction
            raise TypeError(f"not a link instruction: {instruction!r}")

    # -- conveniences ------------------------------------------------------------------

    async def request(self, peer: str, protocol: str, payload: bytes, timeout: float = 10.0) -> bytes:
        """Send a request and await its response; raises :class:`LinkRequestError` on failure
        or after ``timeout`` seconds (``ValueError`` for a local mistake: unknown protocol,
        payload over the limit, malformed peer id)."""
        engine_id = self.links.request(peer, protocol, payload)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._futures[engine_id] = fut
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise LinkRequestError(f"request to {peer} on {protocol} got no answer in {timeout:g} s") from None
        finally:
            self._futures.pop(engine_id, None)

    def serve(self, protocol: str, handler: RequestHandler) -> None:
        """Answer inbound requests on ``protocol`` with ``handler`` instead of queueing them."""
        if protocol not in self.links.protocols:
            raise ValueError(f"protocol {protocol!r} is not registered with this engine ({self.links.protocols})")
        self._handlers[protocol] = handler
