"""Signal routes over a real signals service (two nodes on in-memory links): emit, list, stream, auth."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from vudo.api.signals import signals_router
from vudo.services.signals import SignalsService, SignalsSources
from vudo.testing.signalports import MemoryLinkHub
from vudo.testing.signalsim import identities

TOKEN = "t" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client() -> Iterator[tuple[TestClient, SignalsService]]:
    me, other = identities(2)
    hub = MemoryLinkHub()
    members = frozenset({me.node_id, other.node_id})
    service = SignalsService(me, lambda: hub.port(me.node_id), SignalsSources(lambda: members, tuple), rng=random.Random(1))
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        service.tick(time.time())
        yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(signals_router(service, lambda t: t == TOKEN))
    with TestClient(app) as c:
        yield c, service


def test_emit_and_list(client: tuple[TestClient, SignalsService]) -> None:
    c, service = client
    r = c.post("/v1/signals", json={"type": "flood", "payload": "hello"}, headers=AUTH)
    assert r.status_code == 200, r.text
    signal_id = r.json()["id"]
    [entry] = c.get("/v1/signals").json()["signals"]
    assert entry["id"] == signal_id and entry["type"] == "flood" and entry["source"] == service.identity.node_id
    assert entry["hops"] == 0 and entry["payload"] == "hello" and entry["fired"] is None


def test_quorum_entry_says_whether_it_fired(client: tuple[TestClient, SignalsService]) -> None:
    c, _ = client
    c.post("/v1/signals", json={"type": "quorum", "threshold": 0.5, "key": "go"}, headers=AUTH)
    [entry] = c.get("/v1/signals").json()["signals"]
    assert entry["type"] == "quorum" and entry["fired"] is True and entry["fired_at"] is not None  # 1 of 2 nodes
    c.post("/v1/signals", json={"type": "quorum", "threshold": 1.0, "key": "all"}, headers=AUTH)
    entry = c.get("/v1/signals").json()["signals"][0]
    assert entry["fired"] is False and entry["fired_at"] is None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"type": "directed"}, 422),  # no target
        ({"type": "quorum"}, 422),  # no threshold
        ({"type": "gradient", "decay": 1.5}, 422),
        ({"type": "flood", "ttl": 0}, 422),
        ({"type": "flood", "ttl": 200}, 422),  # above this node's TTL cap
        ({"type": "flood", "payload": "x" * 5000}, 422),
        ({"type": "telepathy"}, 422),
    ],
)
def test_bad_requests_say_what_is_wrong(client: tuple[TestClient, SignalsService], body: dict[str, object], status: int) -> None:
    c, _ = client
    r = c.post("/v1/signals", json=body, headers=AUTH)
    assert r.status_code == status and r.json()["detail"]


def test_emitting_needs_the_token(client: tuple[TestClient, SignalsService]) -> None:
    c, _ = client
    assert c.post("/v1/signals", json={"type": "flood"}).status_code == 401
    assert c.post("/v1/signals", json={"type": "flood"}, headers={"Authorization": "Bearer nope"}).status_code == 403


def test_event_stream(client: tuple[TestClient, SignalsService]) -> None:
    c, service = client
    body: list[str] = []

    def read() -> None:
        body.append(c.get("/v1/events", params={"limit": 2}).text)

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 30
    while not service._subscribers and time.monotonic() < deadline:
        time.sleep(0.01)
    ids = [c.post("/v1/signals", json={"type": "flood", "payload": str(k)}, headers=AUTH).json()["id"] for k in range(2)]
    reader.join(30)
    assert not reader.is_alive()
    events = [block for block in body[0].split("\n\n") if block.startswith("event:")]
    assert [e.splitlines()[0] for e in events] == ["event: signal", "event: signal"]
    assert [json.loads(e.splitlines()[1].removeprefix("data: "))["id"] for e in events] == ids
    assert not service._subscribers  # the subscription is closed with the stream
