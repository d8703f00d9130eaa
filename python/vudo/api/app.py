"""The HTTP interface: parse, ask the node's query protocol, render. Nothing is decided here."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from vudo import __version__
from vudo.api.auth import AUTH_ERRORS, token_check
from vudo.api.credits import credits_router
from vudo.api.hosts import HostPolicy
from vudo.api.market import market_router
from vudo.api.models import (
    ErrorOut,
    GossipKeyChange,
    GossipKeysOut,
    GradientsOut,
    Health,
    LeaveOut,
    LinksOut,
    MembersOut,
    NodeOut,
    SpiritErrorOut,
    SpiritLogsOut,
    SpiritOut,
    SpiritsOut,
    TopologyOut,
)
from vudo.api.query import KeyringView, NodeQuery
from vudo.api.signals import SignalsQuery, signals_router
from vudo.errors import ConfigError
from vudo.gossip_keys import decode_key
from vudo.hyphal.capability import is_witness
from vudo.services.spirits import SpiritView
from vudo.spirits.errors import PackageError, SpiritError
from vudo.spirits.package import MAX_ARCHIVE_BYTES

STATIC_DIR = Path(str(resources.files("vudo") / "web" / "static"))
WASM_PATH = Path(str(resources.files("vudo") / "physarum" / "physarum.wasm"))


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value)


#: What a spirit's page may do: load its own files, run its own wasm, talk to this node. Nothing else.
SPIRIT_CSP = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; worker-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'; object-src 'none'"
)
SPIRIT_NAME = PathParam(pattern=r"^[a-z][a-z0-9-]{0,39}$", description="the spirit's name")
_STATUS_BY_REASON = {
    "unknown_spirit": 404, "not_granted": 403, "wrong_state": 409, "stale_rev": 409, "name_owned": 409, "too_many": 409,
    "oversize": 413, "changed_on_disk": 409, "payment_unavailable": 402,
    # premium summons: the credit ledger's own codes
    "insufficient_funds": 402, "settling": 409, "no_leader": 503, "not_leader": 503, "raft": 503, "unavailable": 503,
    "busy": 503, "stopped": 503, "timeout": 503,
    "storage_error": 500, "internal": 500,
}


_LEDGER_CODES = frozenset({"insufficient_funds", "no_leader", "not_leader", "raft", "unavailable", "busy", "stopped", "timeout"})


def _spirit(view: SpiritView) -> dict[str, Any]:
    out: dict[str, Any] = _plain(view)
    out["files"] = [{"path": p, "sha256": h} for p, h in view.files]
    return out


def _spirit_error(err: SpiritError) -> JSONResponse:
    status = _STATUS_BY_REASON.get(err.reason)
    if status is None:
        status = 409 if err.reason == "wrong_author" else 400 if isinstance(err, PackageError) else 422
    body: dict[str, str] = {"detail": str(err), "reason": err.reason}
    if err.reason in _LEDGER_CODES:
        body["code"] = err.reason  # the ledger's code, as the credits API reports it
    return JSONResponse(body, status_code=status)


def create_app(node: NodeQuery, *, signals: SignalsQuery | None = None, hosts: HostPolicy | None = None) -> FastAPI:
    """``hosts``: the Host names served (default: loopback only), against DNS rebinding."""
    app = FastAPI(
        title="VUDO node API",
        version=__version__,
        description="One VUDO node: identity, membership, gradients. Mutating calls need `Authorization: Bearer <token>` (the token is in `<data_dir>/api-token`).",
        docs_url="/v1/docs",
        openapi_url="/v1/openapi.json",
        redoc_url=None,
    )

    host_policy = hosts or HostPolicy.for_bind("127.0.0.1")

    @app.middleware("http")
    async def refuse_foreign_hosts(request: Request, call_next: Any) -> Response:
        """DNS rebinding: answer only our own host names; mutating browser calls only from them."""
        if not host_policy.host_allowed(request.headers.get("host")):
            return JSONResponse(
                {"detail": "host not allowed: this API answers only its own address and the names in api_vhosts (--api-vhost)"},
                status_code=403,
            )
        if not host_policy.origin_allowed(request.method, request.headers.get("origin")):
            return JSONResponse({"detail": "cross-origin request refused: the Origin is not one of this API's hosts"}, status_code=403)
        response: Response = await call_next(request)
        return response

    require_token = token_check(node.token_matches)

    auth_errors = AUTH_ERRORS

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

    @app.get("/v1/links", response_model=LinksOut)
    def get_links() -> dict[str, Any]:
        """This node's verified hyphal links (both ends verified each other's signed announcement)."""
        return {"links": [_plain(link) for link in node.links()]}

    @app.get("/v1/topology", response_model=TopologyOut, response_model_by_alias=True)
    def get_topology() -> dict[str, Any]:
        """The network as this node sees it: itself, verified members with signed link lists, and mutual links."""
        view = node.link_topology()
        return {"self": node.info().node_id, "nodes": list(view.nodes), "edges": [list(e) for e in view.edges]}

    @app.post("/v1/node/leave", response_model=LeaveOut, status_code=202, dependencies=[Depends(require_token)], responses=auth_errors)
    def post_leave() -> dict[str, str]:
        """Leave the network gracefully and stop the node."""
        node.request_stop("requested through the API")
        return {"status": "leaving"}

    spirit_errors: dict[int | str, dict[str, Any]] = {
        code: {"model": SpiritErrorOut} for code in (400, 402, 403, 404, 409, 413, 422, 503)
    }

    @app.get("/v1/spirits", response_model=SpiritsOut)
    def get_spirits() -> dict[str, Any]:
        """Every installed spirit with its state (running, dismissed, failed, ...)."""
        return {"spirits": [_spirit(v) for v in node.spirits()]}

    @app.post("/v1/spirits", response_model=SpiritOut, status_code=201, dependencies=[Depends(require_token)],
              responses={**spirit_errors, **auth_errors},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def post_spirit(request: Request) -> Response:
        """Install a `.spirit` package (the request body): verified, then stored; a new rev replaces an older one."""
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_ARCHIVE_BYTES:
                return JSONResponse({"detail": f"package above {MAX_ARCHIVE_BYTES} bytes", "reason": "oversize"}, status_code=413)
        try:
            view = await node.install_spirit(bytes(body))
        except SpiritError as err:
            return _spirit_error(err)
        return JSONResponse(_spirit(view), status_code=201)

    @app.get("/v1/spirits/{name}", response_model=SpiritOut, responses={404: {"model": SpiritErrorOut}})
    def get_spirit(name: str = SPIRIT_NAME) -> Response:
        """One spirit: manifest, grants, state, fuel used and memory."""
        view = node.spirit(name)
        if view is None:
            return JSONResponse({"detail": f"no spirit named {name!r} is installed", "reason": "unknown_spirit"}, status_code=404)
        return JSONResponse(_spirit(view))

    @app.get("/v1/spirits/{name}/logs", response_model=SpiritLogsOut, responses={404: {"model": SpiritErrorOut}})
    def get_spirit_logs(name: str = SPIRIT_NAME) -> Response:
        """The spirit's recent log lines (its own `vudo.log` calls and its lifecycle)."""
        lines = node.spirit_logs(name)
        if lines is None:
            return JSONResponse({"detail": f"no spirit named {name!r} is installed", "reason": "unknown_spirit"}, status_code=404)
        return JSONResponse({"name": name, "lines": [_plain(line) for line in lines]})

    @app.post("/v1/spirits/{name}/summon", response_model=SpiritOut, dependencies=[Depends(require_token)],
              responses={**spirit_errors, **auth_errors})
    async def post_summon(name: str = SPIRIT_NAME) -> Response:
        """Verify, check grants, compile, instantiate and call the summon hook.

        A premium spirit (not authored by this node) costs its price per summon: the price is locked on
        the credit ledger first (402 `insufficient_funds`, 503 `no_leader`), paid to the author when the
        summon succeeds, released when it fails."""
        try:
            return JSONResponse(_spirit(await node.summon_spirit(name)))
        except SpiritError as err:
            return _spirit_error(err)

    @app.post("/v1/spirits/{name}/dismiss", response_model=SpiritOut, dependencies=[Depends(require_token)],
              responses={**spirit_errors, **auth_errors})
    async def post_dismiss(name: str = SPIRIT_NAME) -> Response:
        """Call the dismiss hook, then drop the instance."""
        try:
            return JSONResponse(_spirit(await node.dismiss_spirit(name)))
        except SpiritError as err:
            return _spirit_error(err)

    @app.delete("/v1/spirits/{name}", response_model=SpiritOut, dependencies=[Depends(require_token)],
                responses={**spirit_errors, **auth_errors})
    async def delete_spirit(name: str = SPIRIT_NAME) -> Response:
        """Uninstall a spirit: its stored package is deleted and it leaves this node's marketplace offer.

        Refused with 409 `wrong_state` while it runs (dismiss it first); returns its last view."""
        try:
            return JSONResponse(_spirit(await node.uninstall_spirit(name)))
        except SpiritError as err:
            return _spirit_error(err)

    @app.get("/spirits/{name}", include_in_schema=False)
    def spirit_root(name: str) -> RedirectResponse:
        return RedirectResponse(f"/spirits/{quote(name, safe='')}/", status_code=308)

    @app.get("/spirits/{name}/{path:path}", include_in_schema=False)
    def spirit_asset(name: str, path: str) -> Response:
        asset = node.spirit_asset(name, path)
        headers = {"Content-Security-Policy": SPIRIT_CSP, "X-Content-Type-Options": "nosniff",
                   "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
        if asset is None:
            return Response(f"spirit {name!r} serves no {path or 'index.html'!r} (is it running with display=required?)\n",
                            status_code=404, media_type="text/plain; charset=utf-8", headers=headers)
        return Response(asset.data, media_type=asset.media_type, headers=headers)

    @app.get("/v1/gossip/keys", response_model=GossipKeysOut, dependencies=[Depends(require_token)], responses=auth_errors)
    def get_gossip_keys() -> dict[str, Any]:
        """The cluster keyring of this node: key ids (never keys), primary first."""
        return _keys_out(node.gossip_keys())

    @app.post("/v1/gossip/keys", response_model=GossipKeysOut, dependencies=[Depends(require_token)],
              responses={**auth_errors, 400: {"model": ErrorOut}})
    def post_gossip_keys(change: GossipKeyChange) -> dict[str, Any]:
        """Rotate without restart, as `serf keys`: install a key, use it (make it primary), remove the old one."""
        try:
            key = decode_key(change.key, source="key")
            node.change_gossip_key(change.op, key)
        except (ConfigError, ValueError) as err:
            raise HTTPException(400, str(err)) from None
        return _keys_out(node.gossip_keys())

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

    app.include_router(market_router(node, require_token))
    if signals is not None:
        app.include_router(signals_router(signals, node.token_matches))
    app.include_router(credits_router(node, node.token_matches))
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _keys_out(view: KeyringView) -> dict[str, Any]:
    return {"sealed": view.sealed, "keys": [{"id": key_id, "primary": primary} for key_id, primary in view.keys]}


def _static_file(name: str) -> FileResponse:
    path = STATIC_DIR / name
    if not path.is_file():
        raise HTTPException(404, f"{name} is not built; run `npm ci && npm run build` in web/")
    return FileResponse(path, media_type="text/html")
