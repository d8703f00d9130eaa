"""Fixtures of the dashboard tests.

* ``fake_api`` (function): a stdlib HTTP server that serves the static
  directory like a node does (``/`` and ``/static/<file>``) plus canned but
  changing JSON for ``/v1/node``, ``/v1/members`` and ``/v1/gradients``,
  ``/v1/signals`` (``api.signals``) and a server-sent event stream
  ``/v1/events`` fed by ``api.push_event(kind, data)`` (raw text allowed,
  to test malformed events).
"""

from __future__ import annotations

import copy
import json
import queue
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

# --------------------------------------------------------------- fake API ---

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def fake_peer_id(seed: int) -> str:
    """A PeerId-looking string (52 chars, libp2p Ed25519 prefix)."""
    body = "".join(_B58[(seed * 7919 + i * 104729 + i * i * seed) % len(_B58)] for i in range(44))
    return "12D3KooW" + body


class FakeApi:
    """Canned-but-changing node API on 127.0.0.1, stoppable and restartable
    on the same port to simulate a node going away and coming back."""

    peer_id = staticmethod(fake_peer_id)

    def __init__(self, static_dir: Path) -> None:
        self.static_dir = static_dir
        self.lock = threading.Lock()
        self.ticks = 0
        self.started_at = time.time() - 125.0
        self_id = fake_peer_id(1)
        self.node: dict[str, Any] = {
            "node_id": self_id,
            "addrs": {"gossip": "127.0.0.1:7000", "api": "http://127.0.0.1:8000"},
            "capabilities": [
                {"kind": "compute", "cores": 8, "memory_mb": 16384},
                {"kind": "storage", "capacity_mb": 512000, "iops": 4000},
            ],
            "version": "0.2.0-test",
            "cluster_id": "test-cluster",
            "status": "alive",
            "started_at": self.started_at,
        }
        self.members: list[dict[str, Any]] = [
            self._member(self_id, "alive", True, is_self=True, caps=self.node["capabilities"], credit=120.0),
            self._member(fake_peer_id(2), "alive", True, caps=[{"kind": "gateway", "protocols": ["http", "quic"]}], credit=40.5, hops=1),
            self._member(
                fake_peer_id(3),
                "alive",
                False,
                caps=[{"kind": "witness", "stake": 10}],
                gradient=False,
                rejected=["signature mismatch"],
            ),
            self._member(fake_peer_id(4), "left", True, caps=[], credit=0.0, hops=2),
        ]
        # The link graph: self linked to peers 2 and 4 (strong, weak), 2 linked to 3, and 5 isolated.
        self.topology: Any = {
            "self": self_id,
            "nodes": [self_id, fake_peer_id(2), fake_peer_id(3), fake_peer_id(4), fake_peer_id(5)],
            "edges": [sorted([self_id, fake_peer_id(2)]), sorted([self_id, fake_peer_id(4)]), sorted([fake_peer_id(2), fake_peer_id(3)])],
        }
        self.links: Any = {"links": [
            {"peer": fake_peer_id(2), "established": time.time() - 60, "last_seen": time.time(), "latency_ms": 3,
             "bandwidth_score": 0.9, "reputation": 0.8, "addr": "/ip4/127.0.0.1/tcp/7601", "direction": "outbound"},
            {"peer": fake_peer_id(4), "established": time.time() - 30, "last_seen": time.time(), "latency_ms": 5,
             "bandwidth_score": 0.05, "reputation": 0.5, "addr": "/ip4/127.0.0.1/tcp/7603", "direction": "inbound"},
        ]}
        self.signals: list[dict[str, Any]] = []
        #: /v1/credits/accounts and /v1/credits/summary bodies; None answers 503 no_leader.
        self.credit_accounts: dict[str, Any] | None = {
            "accounts": [
                {"node_id": self_id, "balance": 1_250_500_000, "locked": 500_000, "available": 1_250_000_000,
                 "earned_total": 1_300_000_000, "spent_total": 49_500_000},
                {"node_id": fake_peer_id(2), "balance": 749_000_000, "locked": 0, "available": 749_000_000,
                 "earned_total": 1_000_000_000, "spent_total": 251_000_000},
            ],
            "total_minted": 2_000_000_000, "pool": 500_000, "index": 12, "truncated": False,
        }
        self.credit_summary: dict[str, Any] | None = {
            "total_minted": 2_000_000_000, "pool": 500_000, "sum_balances": 1_999_500_000, "leader": fake_peer_id(2),
            "term": 3, "last_applied": 12, "witnesses": [fake_peer_id(2)], "state_hash": "ab" * 32,
            "voters": [fake_peer_id(2)], "accounts": 2, "open_locks": 1, "threshold_permille": 670, "index": 12,
            "state": "leader",
        }
        self.streams: list[queue.Queue[str | None]] = []
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.port = 0

    @staticmethod
    def _member(
        node_id: str,
        status: str,
        verified: bool,
        *,
        is_self: bool = False,
        caps: list[dict[str, Any]] | None = None,
        gradient: bool = True,
        credit: float = 10.0,
        hops: int = 0,
        rejected: list[str] | None = None,
    ) -> dict[str, Any]:
        return {
            "node_id": node_id,
            "status": status,
            "verified": verified,
            "is_self": is_self,
            "gossip_addr": "127.0.0.1:7000",
            "capabilities": caps or [],
            "gradient": (
                {
                    "compute_available": 0.5,
                    "storage_available": 0.7,
                    "bandwidth_available": 0.9,
                    "credit_balance": credit,
                    "timestamp": time.time(),
                    "hops": hops,
                }
                if gradient
                else None
            ),
            "generation": 1,
            "rejected": rejected or [],
        }

    # -- mutation helpers for tests -------------------------------------

    def member(self, node_id: str) -> dict[str, Any]:
        for m in self.members:
            if m["node_id"] == node_id:
                return m
        raise KeyError(node_id)

    def set_status(self, node_id: str, status: str) -> None:
        with self.lock:
            self.member(node_id)["status"] = status

    def add_member(self, member: dict[str, Any]) -> None:
        with self.lock:
            self.members.append(member)

    def push_event(self, kind: str, data: Any) -> None:
        """Send one event to every open /v1/events stream (``data`` as JSON unless it is already a str)."""
        text = data if isinstance(data, str) else json.dumps(data)
        block = f"event: {kind}\n" + "".join(f"data: {line}\n" for line in text.split("\n")) + "\n"
        with self.lock:
            for q in self.streams:
                q.put(block)

    def stream_count(self) -> int:
        with self.lock:
            return len(self.streams)

    # -- payloads ---------------------------------------------------------

    def _members_payload(self) -> dict[str, Any]:
        with self.lock:
            self.ticks += 1
            tick = self.ticks
            members = copy.deepcopy(self.members)
        now = time.time()
        for i, m in enumerate(members):
            g = m.get("gradient")
            # Values drift between polls so the page really re-renders (only
            # well-formed gradients: tests may inject malformed ones on purpose).
            if isinstance(g, dict) and isinstance(g.get("compute_available"), float):
                wobble = ((tick + i) % 10) / 20.0
                g["compute_available"] = round(0.25 + wobble, 3)
                g["bandwidth_available"] = round(0.9 - wobble, 3)
                g["timestamp"] = now - (g.get("hops") or 0) * 1.5
        return {"members": members}

    def _gradients_payload(self) -> dict[str, Any]:
        members = self._members_payload()["members"]
        local = next((m["gradient"] for m in members if m.get("is_self")), None)
        neighbors = {m["node_id"]: m["gradient"] for m in members if not m.get("is_self") and m.get("gradient")}
        scored = {k: g["compute_available"] for k, g in neighbors.items() if isinstance(g.get("compute_available"), float)}
        best = max(scored, key=lambda k: scored[k], default=None)
        return {
            "local": local,
            "neighbors": neighbors,
            "flow": {"compute": best, "storage": best, "bandwidth": None, "credit": self.node["node_id"]},
        }

    # -- server lifecycle -------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _json(self, obj: Any) -> None:
                self._send(200, json.dumps(obj).encode(), "application/json")

            def _file(self, name: str) -> None:
                path = (api.static_dir / name).resolve()
                if "/" in name or name.startswith(".") or not path.is_file():
                    self._send(404, b"not found", "text/plain")
                    return
                ctype = {
                    ".html": "text/html; charset=utf-8",
                    ".js": "text/javascript; charset=utf-8",
                    ".css": "text/css; charset=utf-8",
                    ".map": "application/json",
                    ".wasm": "application/wasm",
                }.get(path.suffix, "application/octet-stream")
                self._send(200, path.read_bytes(), ctype)

            def _events(self) -> None:
                q: queue.Queue[str | None] = queue.Queue()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                with api.lock:
                    api.streams.append(q)
                try:
                    self.wfile.write(b": connected\n\n")
                    self.wfile.flush()
                    while api.server is not None:
                        try:
                            block = q.get(timeout=0.5)
                        except queue.Empty:
                            block = ": keep-alive\n\n"
                        if block is None:
                            return
                        self.wfile.write(block.encode())
                        self.wfile.flush()
                except OSError:
                    pass
                finally:
                    with api.lock:
                        api.streams.remove(q)

            def do_GET(self) -> None:  # noqa: N802
                route = self.path.split("?", 1)[0]
                if route == "/":
                    self._file("index.html")
                elif route.startswith("/static/"):
                    self._file(route[len("/static/") :])
                elif route == "/v1/node":
                    with api.lock:
                        self._json(copy.deepcopy(api.node))
                elif route == "/v1/members":
                    self._json(api._members_payload())
                elif route == "/v1/gradients":
                    self._json(api._gradients_payload())
                elif route == "/v1/topology":
                    with api.lock:
                        self._json(copy.deepcopy(api.topology))
                elif route == "/v1/links":
                    with api.lock:
                        self._json(copy.deepcopy(api.links))
                elif route == "/v1/signals":
                    with api.lock:
                        self._json({"signals": copy.deepcopy(api.signals)})
                elif route in ("/v1/credits/accounts", "/v1/credits/summary"):
                    with api.lock:
                        body = copy.deepcopy(api.credit_accounts if route.endswith("accounts") else api.credit_summary)
                    if body is None:
                        self._send(503, b'{"code":"no_leader","detail":"no leader"}', "application/json")
                    else:
                        self._json(body)
                elif route == "/v1/events":
                    self._events()
                else:
                    self._send(404, b"not found", "text/plain")

        return Handler

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.server is None, "already running"
        deadline = time.monotonic() + 10.0
        while True:
            try:
                server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
                break
            except OSError:
                # Re-binding the previous port right after a stop; retry briefly.
                if self.port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        server.daemon_threads = True
        self.server = server
        self.port = server.server_address[1]
        self.thread = threading.Thread(target=server.serve_forever, name="fake-vudo-api", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is None:
            return
        with self.lock:
            for q in self.streams:
                q.put(None)
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.server = None
        self.thread = None


@pytest.fixture
def fake_api(built_web: Path) -> Iterator[FakeApi]:
    api = FakeApi(built_web)
    api.start()
    try:
        yield api
    finally:
        api.stop()

