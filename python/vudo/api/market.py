"""HTTP routes of the marketplace: who offers which spirit, and fetching one.

* ``GET /v1/marketplace?q=`` — every verified catalogue on the network merged
  by package hash (name, version, rev, author, sha256, tier, price, size,
  and the nodes that offer it);
* ``POST /v1/spirits/fetch`` (bearer) — start fetching ``name[@version]``
  over the links from the nodes that offer it; answers ``202`` with the
  fetch job (poll it for progress);
* ``GET /v1/spirits/fetch/{id}`` — the job: bytes received, source, the
  sources that failed and why, then ``installed`` or ``failed``.

Nothing is decided here: the routes read the node's query protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from vudo.api.auth import AUTH_ERRORS
from vudo.api.models import SpiritErrorOut
from vudo.api.query import NodeQuery
from vudo.services.market import FetchView, parse_ref
from vudo.spirits.errors import SpiritError


class OfferOut(BaseModel):
    """One package on the network, from the verified catalogues of the nodes that offer it."""

    name: str
    version: str
    rev: int
    author: str
    sha256: str
    tier: Literal["free", "premium"]
    price: int
    size: int = Field(description="bytes of the .spirit archive")
    offered_by: list[str] = Field(description="node ids whose signed catalogue lists this package")
    installed_here: bool


class MarketplaceOut(BaseModel):
    offers: list[OfferOut]


class FetchIn(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=110, description="NAME or NAME@VERSION")]


class FetchTriedOut(BaseModel):
    peer: str
    reason: str


class FetchOut(BaseModel):
    id: int
    name: str
    version: str
    sha256: str
    size: int
    state: Literal["fetching", "installed", "failed"]
    received: int
    source: str | None = Field(description="the node the bytes come (or came) from")
    tried: list[FetchTriedOut] = Field(description="sources that failed, and why (the next one was tried)")
    error: str | None
    error_reason: str | None
    started_at: float
    fetched_at: float | None = Field(description="when every byte was in and matched the hash (then verified and installed)")
    finished_at: float | None


_STATUS = {"not_offered": 404, "too_many": 409}


def fetch_out(view: FetchView) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(view)
    out["tried"] = [{"peer": p, "reason": r} for p, r in view.tried]
    return out


def market_router(node: NodeQuery, require_token: Callable[..., None]) -> APIRouter:
    router = APIRouter()
    auth = AUTH_ERRORS

    @router.get("/v1/marketplace", response_model=MarketplaceOut)
    def get_marketplace(q: Annotated[str, Query(max_length=100, description="filter: part of a name or author")] = "") -> dict[str, Any]:
        """Every spirit offered on the network (verified signed catalogues, ours included) and who offers it."""
        return {"offers": [msgspec.to_builtins(o) for o in node.marketplace(q)]}

    @router.post("/v1/spirits/fetch", response_model=FetchOut, status_code=202, dependencies=[Depends(require_token)],
                 responses={**auth, 404: {"model": SpiritErrorOut}, 409: {"model": SpiritErrorOut}, 422: {"model": SpiritErrorOut}})
    async def post_fetch(body: FetchIn) -> Response:
        """Fetch a package by hash over the links, chunked and verified, from a node that offers it; then install it."""
        try:
            name, version = parse_ref(body.name)
        except ValueError as err:
            return JSONResponse({"detail": str(err), "reason": "bad_name"}, status_code=422)
        try:
            view = node.start_fetch(name, version)
        except SpiritError as err:
            return JSONResponse({"detail": str(err), "reason": err.reason}, status_code=_STATUS.get(err.reason, 409))
        return JSONResponse(fetch_out(view), status_code=202)

    @router.get("/v1/spirits/fetch/{fetch_id}", response_model=FetchOut, responses={404: {"model": SpiritErrorOut}})
    def get_fetch(fetch_id: Annotated[int, PathParam(ge=1, le=2**53)]) -> Response:
        """One fetch job: progress, the source, the sources that failed, the outcome."""
        view = node.fetch_status(fetch_id)
        if view is None:
            return JSONResponse({"detail": f"no fetch {fetch_id} on this node", "reason": "unknown_fetch"}, status_code=404)
        return JSONResponse(fetch_out(view))

    return router
