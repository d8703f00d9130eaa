"""`vudo signal emit|watch` against a live HTTP server running the signal routes over a real signals service."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from fastapi import FastAPI

from vudo.api.signals import signals_router
from vudo.cli.main import cli
from vudo.portcheck import free_ports
from vudo.services.signals import SignalsService, SignalsSources
from vudo.testing.signalports import MemoryLinkHub
from vudo.testing.signalsim import identities

TOKEN = "s" * 32


def _free_port() -> int:
    return free_ports(1, socket.SOCK_STREAM)[0]


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[str, SignalsService]]:
    me = identities(1)[0]
    hub = MemoryLinkHub()
    service = SignalsService(me, lambda: hub.port(me.node_id), SignalsSources(lambda: frozenset({me.node_id}), tuple), rng=random.Random(2))
    app = FastAPI()
    app.include_router(signals_router(service, lambda t: t == TOKEN))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))

    def serve() -> None:
        async def main() -> None:
            await service.start()
            service.tick(time.time())
            await server.serve()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}", service
    server.should_exit = True
    thread.join(30)


def test_emit_prints_the_id_and_the_node_lists_it(api: tuple[str, SignalsService]) -> None:
    url, service = api
    result = CliRunner().invoke(cli, ["signal", "emit", "--type", "gradient", "--decay", "0.3", "--key", "cpu", "--payload", "hi", "--api", url, "--token", TOKEN])
    assert result.exit_code == 0, result.output
    signal_id = result.output.strip()
    assert any(r.id == signal_id and r.type == "gradient" and r.strength == 1.0 for r in service.recent())


def test_emit_errors_are_the_callers(api: tuple[str, SignalsService]) -> None:
    url, _ = api
    bad = CliRunner().invoke(cli, ["signal", "emit", "--type", "directed", "--api", url, "--token", TOKEN])
    assert bad.exit_code == 2 and "target" in bad.output
    denied = CliRunner().invoke(cli, ["signal", "emit", "--type", "flood", "--api", url, "--token", "wrong"])
    assert denied.exit_code == 2 and "403" in denied.output


def test_watch_prints_what_the_node_handles(api: tuple[str, SignalsService]) -> None:
    url, service = api
    out: list[str] = []
    subscribers_before = len(service._subscribers)
    watcher = threading.Thread(target=lambda: out.append(CliRunner().invoke(cli, ["signal", "watch", "--count", "1", "--json", "--api", url]).output))
    watcher.start()
    deadline = time.monotonic() + 30
    while len(service._subscribers) == subscribers_before and time.monotonic() < deadline:
        time.sleep(0.02)
    # (one CliRunner at a time: it swaps the process's stdout)
    emitted = httpx.post(url + "/v1/signals", json={"type": "flood", "payload": "watch me"}, headers={"Authorization": f"Bearer {TOKEN}"}).json()["id"]
    watcher.join(30)
    [line] = out[0].strip().splitlines()
    event = json.loads(line)
    assert event["event"] == "signal" and event["id"] == emitted and event["type"] == "flood" and event["hops"] == 0


def test_watch_as_a_table_shows_quorum_firings(api: tuple[str, SignalsService]) -> None:
    url, service = api
    out: list[str] = []
    subscribers_before = len(service._subscribers)
    watcher = threading.Thread(target=lambda: out.append(CliRunner().invoke(cli, ["signal", "watch", "--count", "2", "--api", url]).output))
    watcher.start()
    deadline = time.monotonic() + 30
    while len(service._subscribers) == subscribers_before and time.monotonic() < deadline:
        time.sleep(0.02)
    emitted = httpx.post(url + "/v1/signals", json={"type": "quorum", "threshold": 1.0, "key": "solo"}, headers={"Authorization": f"Bearer {TOKEN}"}).json()["id"]
    watcher.join(30)
    signal_line, fired_line = out[0].strip().splitlines()
    assert signal_line.split()[:3] == ["signal", emitted, "quorum"]
    assert fired_line.split()[:4] == ["quorum_fired", "solo", "quorum", "1/1"]


def test_cli_without_a_reachable_node_says_so(tmp_path: object) -> None:
    result = CliRunner().invoke(cli, ["signal", "emit", "--type", "flood", "--api", "http://127.0.0.1:9", "--token", TOKEN])
    assert result.exit_code == 1 and "cannot reach" in result.output
    result = CliRunner().invoke(cli, ["signal", "watch", "--api", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "lost" in result.output
    result = CliRunner().invoke(cli, ["signal", "emit", "--type", "flood", "--api", "http://127.0.0.1:9", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--token" in result.output
