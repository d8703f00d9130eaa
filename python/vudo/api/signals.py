"""HTTP routes of signals: emit (``POST /v1/signals``), recent (``GET /v1/signals``), and the event stream.

``GET /v1/events`` is a server-sent event stream: one ``event: <kind>`` /
``data: <json>`` block per notice (``signal``, ``quorum_fired``,
``rejected``, ``penalized``), a comment line every few seconds to keep
proxies from closing it, ``?limit=N`` to stop after N events. The routes
read :class:`SignalsQuery` only (the signals service's view), never the
node or the service's internals; nothing is decided here. They are ``async``
on purpose: they run on the event loop that runs the signals service, whose
state and subscription queues are not thread-safe.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from vudo.api.auth import token_check
from vudo.api.models import ErrorOut
from vudo.services.signals import Kind, SignalNotice, SignalRecord, Subscription
from vudo.signals.envelope import MAX_TTL

#: Seconds between keep-alive comments on an idle event stream.
KEEPALIVE_S = 15.0
MAX_TEXT_PAYLOAD = 4096


class SignalsQuery(Protocol):
    """What the signal routes need (the signals service offers exactly this)."""

    def emit(self, kind: Kind, payload: bytes, *, ttl: int | None = None, **params: object) -> str: ...

    def recent(self) -> list[SignalRecord]: ...

    def subscribe(self, size: int = ...) -> Subscription: ...


class EmitIn(BaseModel):
    type: Literal["flood", "gradient", "directed", "quorum", "action_potential"]
    payload: Annotated[str, Field(max_length=MAX_TEXT_PAYLOAD)] = ""
    ttl: Annotated[int, Field(ge=1, le=MAX_TTL)] | None = None
    decay: Annotated[float, Field(gt=0.0, le=1.0)] | None = Field(None, description="gradient: strength factor per hop")
    target: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(None, description="directed: the target node id")
    threshold: Annotated[float, Field(gt=0.0, le=1.0)] | None = Field(None, description="quorum: fraction of the network that must contribute")
    refractory_ms: Annotated[int, Field(ge=0, le=3_600_000)] | None = Field(None, description="action potential: refractory period")
    key: Annotated[str, Field(max_length=128)] = Field("", description="quorum accumulator / gradient field / action-potential kind")


class EmitOut(BaseModel):
    id: str


class SignalOut(BaseModel):
    id: str
    type: str
    source: str
    hops: int
    strength: float | None
    received_at: float
    payload: str
    fired: bool | None = None
    fired_at: float | None = None


class SignalsOut(BaseModel):
    signals: list[SignalOut]


def _sse(notice: SignalNotice) -> str:
    return f"event: {notice.kind}\ndata: {json.dumps(notice.data, separators=(',', ':'))}\n\n"


def signals_router(signals: SignalsQuery, token_matches: Callable[[str], bool]) -> APIRouter:
    router = APIRouter()
    require_token = token_check(token_matches)

    errors: dict[int | str, dict[str, Any]] = {401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 422: {"model": ErrorOut}}

    @router.post("/v1/signals", response_model=EmitOut, dependencies=[Depends(require_token)], responses=errors)
    async def post_signal(body: EmitIn) -> dict[str, str]:
        """Emit a signal from this node. Nodes emitting quorum signals with the same `key` and `threshold` contribute to one accumulator."""
        try:
            signal_id = signals.emit(
                body.type,
                body.payload.encode(),
                ttl=body.ttl,
                decay=body.decay,
                target=body.target,
                threshold=body.threshold,
                refractory_ms=body.refractory_ms,
                key=body.key,
            )
        except ValueError as err:
            raise HTTPException(422, f"cannot emit this signal: {err}") from None
        return {"id": signal_id}

    @router.get("/v1/signals", response_model=SignalsOut)
    async def get_signals() -> dict[str, Any]:
        """Recent signals this node handled, newest first (a quorum entry says whether and when it fired)."""
        return {"signals": [SignalOut.model_validate(r, from_attributes=True).model_dump() for r in signals.recent()]}

    @router.get("/v1/events", response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
    async def get_events(request: Request, limit: Annotated[int | None, Query(ge=1)] = None) -> StreamingResponse:
        """Server-sent events: `signal`, `quorum_fired`, `rejected`, `penalized`."""
        subscription = signals.subscribe()

        async def stream() -> AsyncIterator[str]:
            sent = 0
            try:
                yield ": connected\n\n"
                while limit is None or sent < limit:
                    try:
                        notice = await asyncio.wait_for(subscription.get(), KEEPALIVE_S)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield ": keep-alive\n\n"
                        continue
                    sent += 1
                    yield _sse(notice)
            finally:
                subscription.close()

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    return router
