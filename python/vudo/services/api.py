"""The HTTP service: serves the API and the web pages with uvicorn.

It owns the server, not the routes (``vudo.api.app`` builds those from the
node's query protocol). uvicorn's own signal handling is switched off: the
supervisor owns SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from vudo.config import NodeConfig
from vudo.errors import ConfigError
from vudo.portcheck import explain_in_use, tcp_port_free
from vudo.services.base import NodeEvents

log = logging.getLogger("vudo.api")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiService:
    name = "api"

    def __init__(self, config: NodeConfig, app: FastAPI) -> None:
        self.config = config
        self.server = _Server(uvicorn.Config(
            app, host=config.api_host, port=config.api_port, log_level="warning", lifespan="off", access_log=False,
        ))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        cfg = self.config
        if not tcp_port_free(cfg.api_host, cfg.api_port):
            raise ConfigError(explain_in_use(cfg.api_host, cfg.api_port, udp=False, what="API", flag="--api-port"))
        if cfg.api_host not in ("127.0.0.1", "::1"):
            log.warning("the HTTP API is bound to %s and reachable from other machines", cfg.api_host)

    async def run(self, events: NodeEvents) -> None:
        log.info("API on %s (dashboard at %s/)", self.config.api_url, self.config.api_url)
        await self.server.serve()
        if not self.server.should_exit:
            raise RuntimeError("the HTTP server stopped by itself")

    def leave(self, now: float) -> None:
        """The API keeps answering while the node leaves (readyz turns 503)."""

    async def stop(self) -> None:
        self.server.should_exit = True
