"""The HTTP interface: parse, ask the node's query protocol, render. Nothing is decided here."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from vudo import __version__
from vudo.api.models import ErrorOut, GradientsOut, Health, LeaveOut, MembersOut, NodeOut
from vudo.api.query import NodeQuery
from vudo.hyphal.capability import is_witness

STATIC_DIR = Path(str(resources.files("vudo") / "web" / "static"))
WASM_PATH = Path(str(resources.files("vudo") / "physarum" / "physarum.wasm"))


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value)


def create_app(node: NodeQuery) -> FastAPI:
    app = FastAPI(
        title="VUDO node API",
        version=__version__,
        description="One VUDO node: identity, membership, gradients. Mutating calls need `Authorization: Bearer <token>` (the token is in `<data_dir>/api-token`).",
        docs_url="/v1/docs",
        openapi_url="/v1/openapi.json",
        redoc_url=None,
    )

    bearer = HTTPBearer(auto_error=False, description="the token in <data_dir>/api-token")

    def require_token(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if credentials is None or not credentials.credentials:
            raise HTTPException(401, "missing bearer token: send `Authorization: Bearer <token>` (token file: <data_dir>/api-token)", headers={"WWW-Authenticate": "Bearer"})
        if not node.token_matches(credentials.credentials.strip()):
            raise HTTPException(403, "wrong bearer token for this node")

    auth_errors: dict[int | str, dict[str, Any]] = {401: {"model": ErrorOut}, 403: {"model": ErrorOut}}

    @app.get("/v1/node", response_model=NodeOut)
    def get_node() -> dict[str, Any]:
        info = node.info()
        return {
            "node_id": info.node_id,
            "addrs": {"gossip": info.gossip_addr, "api": info.api_url},
            "capabilities": _plain(info.capabilities),
            "version": __version__,
            "cluster_id": info.cluster_id,
            "status": info.status,
            "started_at": info.started_at,
            "witness": is_witness(info.capabilities),
        }

    @app.get("/v1/members", response_model=MembersOut)
    def get_members() -> dict[str, Any]:
        return {"members": [_plain(m) for m in node.members()]}

    @app.get("/v1/gradients", response_model=GradientsOut)
    def get_gradients() -> dict[str, Any]:
        view = node.gradients()
        return {
            "local": _plain(view.local),
            "neighbors": {k: _plain(v) for k, v in view.neighbors},
            "flow": dict(view.flow),
        }

    @app.post("/v1/node/leave", response_model=LeaveOut, status_code=202, dependencies=[Depends(require_token)], responses=auth_errors)
    def post_leave() -> dict[str, str]:
        """Leave the network gracefully and stop the node."""
        node.request_stop("requested through the API")
        return {"status": "leaving"}

    @app.get("/livez", response_model=Health)
    def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}})
    def readyz() -> Response:
        if node.ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": node.info().status}, status_code=503)

    @app.get("/metrics", response_class=Response)
    def metrics() -> Response:
        return Response(node.metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return _static_file("index.html")

    @app.get("/physarum", include_in_schema=False)
    def physarum_page() -> FileResponse:
        return _static_file("physarum.html")

    @app.get("/physarum.wasm", include_in_schema=False)
    def physarum_wasm() -> FileResponse:
        if not WASM_PATH.is_file():
            raise HTTPException(404, "physarum.wasm is not built on this node; run scripts/build-wasm.sh")
        return FileResponse(WASM_PATH, media_type="application/wasm")

    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _static_file(name: str) -> FileResponse:
    path = STATIC_DIR / name
    if not path.is_file():
        raise HTTPException(404, f"{name} is not built; run `npm ci && npm run build` in web/")
    return FileResponse(path, media_type="text/html")
