"""The marketplace: signed catalogues, the chunked fetch protocol (sans-I/O) and the service between two nodes."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from spirits.support import package, run_async
from vudo.config import NodeConfig
from vudo.errors import RemoteValueError
from vudo.hyphal.linkproto import LinkDown, LinkUp, RequestFailed, RequestReceived, Respond, ResponseReceived, SendRequest
from vudo.hyphal.signed import MAX_SIGNED_VALUE, Carrier, seal
from vudo.identity import Identity, init_data_dir, load_identity
from vudo.services.market import FetchRefused, MarketService, parse_ref
from vudo.services.spirits import SpiritsService
from vudo.spirits.catalogue import MAX_ENTRIES, Catalogue, CatalogueEntry, open_catalogue, seal_catalogue
from vudo.spirits.fetch import (
    MAX_CHUNK,
    SPIRIT_PROTOCOL,
    BytesSource,
    Chunk,
    ChunkServer,
    Completed,
    Failed,
    GetChunk,
    PackageFetch,
    PeerFailed,
    Progress,
    Refused,
    decode_response,
    encode,
)
from vudo.spirits.package import read_package

NOW = 1_800_000_000.0


def entry(name: str = "hello", *, sha: str = "ab" * 32, author: str = "12D3KooWauthor", size: int = 1000) -> CatalogueEntry:
    return CatalogueEntry(name=name, version="1.0.0", rev=1, author=author, sha256=sha, tier="free", price=0, size=size)


def carrier_of(identity: Identity, generation: int = 7, addr: str = "127.0.0.1:7000") -> Carrier:
    return Carrier(identity.node_id, generation, addr)


# -- catalogues ------------------------------------------------------------------------------


def test_a_catalogue_opens_only_under_its_carrier_and_owner(author: Identity) -> None:
    carrier = carrier_of(author)
    value = seal_catalogue(author, [entry("zeta"), entry("alpha")], NOW, carrier=carrier)
    opened = open_catalogue(value, carrier=carrier, now=NOW + 1, ttl=60)
    assert [e.name for e in opened.spirits] == ["alpha", "zeta"] and opened.node_id == author.node_id
    for other, reason in ((msgspec.structs.replace(carrier, generation=8), "wrong_generation"),
                          (msgspec.structs.replace(carrier, addr="127.0.0.1:7001"), "wrong_addr"),
                          (Carrier(Identity.generate().node_id, 7, carrier.addr), "wrong_owner")):
        with pytest.raises(RemoteValueError) as err:
            open_catalogue(value, carrier=other, now=NOW, ttl=60)
        assert err.value.reason == reason
    with pytest.raises(RemoteValueError) as stale:
        open_catalogue(value, carrier=carrier, now=NOW + 120, ttl=60)
    assert stale.value.reason == "stale"


def test_a_forged_catalogue_is_refused(author: Identity) -> None:
    forger = Identity.generate()
    carrier = carrier_of(author)
    forged = seal(forger, Catalogue(author.node_id, NOW, (entry(),)), carrier=carrier)  # claims the author's name
    with pytest.raises(RemoteValueError) as err:
        open_catalogue(forged, carrier=carrier, now=NOW, ttl=60)
    assert err.value.reason == "bad_signature"
    head, body, sig = seal_catalogue(author, [entry()], NOW, carrier=carrier).split(".")
    tampered = seal_catalogue(author, [entry(size=999_999)], NOW, carrier=carrier).split(".")[1]
    with pytest.raises(RemoteValueError) as swapped:
        open_catalogue(f"{head}.{tampered}.{sig}", carrier=carrier, now=NOW, ttl=60)
    assert swapped.value.reason == "bad_signature"


def test_oversize_overfull_duplicate_and_malformed_catalogues_are_refused(author: Identity) -> None:
    carrier = carrier_of(author)
    too_many = seal(author, Catalogue(author.node_id, NOW, tuple(entry(f"s{k}", author="a") for k in range(MAX_ENTRIES + 1))),
                    carrier=carrier)
    with pytest.raises(RemoteValueError) as err:
        open_catalogue(too_many, carrier=carrier, now=NOW, ttl=60)
    assert err.value.reason == "too_many"
    duplicate = seal(author, Catalogue(author.node_id, NOW, (entry(), entry())), carrier=carrier)
    with pytest.raises(RemoteValueError) as dup:
        open_catalogue(duplicate, carrier=carrier, now=NOW, ttl=60)
    assert dup.value.reason == "duplicate"
    with pytest.raises(RemoteValueError) as big:
        open_catalogue("x" * (MAX_SIGNED_VALUE + 1), carrier=carrier, now=NOW, ttl=60)
    assert big.value.reason == "oversize"
    for bad in (entry(sha="AB" * 32), entry(name="../etc"), entry(size=0), entry(size=10**9)):
        value = seal(author, Catalogue(author.node_id, NOW, (bad,)), carrier=carrier)
        with pytest.raises(RemoteValueError) as malformed:
            open_catalogue(value, carrier=carrier, now=NOW, ttl=60)
        assert malformed.value.reason == "malformed"


def test_sealing_cuts_a_catalogue_to_what_fits(author: Identity) -> None:
    carrier = carrier_of(author)
    long_author = "12D3KooW" + "x" * 120
    value = seal_catalogue(author, [entry(f"s{k:02d}", author=long_author) for k in range(40)], NOW, carrier=carrier)
    opened = open_catalogue(value, carrier=carrier, now=NOW, ttl=60)
    assert 1 <= len(opened.spirits) <= MAX_ENTRIES and len(value) <= MAX_SIGNED_VALUE
    assert [e.name for e in opened.spirits] == [f"s{k:02d}" for k in range(len(opened.spirits))]


def test_parse_ref() -> None:
    assert parse_ref("physarum") == ("physarum", None)
    assert parse_ref("physarum@0.1.0") == ("physarum", "0.1.0")
    for bad in ("Physarum", "a@b", "../x", ""):
        with pytest.raises(ValueError):
            parse_ref(bad)


# -- the fetch protocol ------------------------------------------------------------------------

DATA = os.urandom(3 * MAX_CHUNK + 1234)
SHA = hashlib.sha256(DATA).hexdigest()


def server_for(data: bytes) -> ChunkServer:
    digest = hashlib.sha256(data).hexdigest()
    return ChunkServer(lambda sha: BytesSource(data) if sha == digest else None)


def test_the_server_serves_chunks_and_refuses_what_it_must() -> None:
    server = server_for(DATA)
    chunk = decode_response(server.handle("p", encode(GetChunk(SHA, MAX_CHUNK, MAX_CHUNK)), NOW))
    assert isinstance(chunk, Chunk) and chunk.data == DATA[MAX_CHUNK:2 * MAX_CHUNK] and chunk.total == len(DATA)
    last = decode_response(server.handle("p", encode(GetChunk(SHA, 3 * MAX_CHUNK, MAX_CHUNK)), NOW))
    assert isinstance(last, Chunk) and len(last.data) == 1234

    def refusal(payload: bytes) -> str:
        frame = decode_response(server.handle("p", payload, NOW))
        assert isinstance(frame, Refused)
        return frame.reason

    assert refusal(encode(GetChunk("cd" * 32, 0, 10))) == "unknown_hash"
    assert refusal(encode(GetChunk(SHA, len(DATA), 10))) == "bad_range"
    assert refusal(b"\x93garbage") == "bad_request"
    assert refusal(msgspec.msgpack.encode({"type": "get", "sha256": SHA, "offset": 0, "length": MAX_CHUNK + 1})) == "bad_request"
    assert refusal(b"x" * 5000) == "bad_request"
    assert server.refused == {"unknown_hash": 1, "bad_range": 1, "bad_request": 3}


def test_the_server_rate_limits_each_peer() -> None:
    server = ChunkServer(lambda sha: BytesSource(DATA), rate=10.0, burst=5)
    request = encode(GetChunk(SHA, 0, 16))
    answers = [decode_response(server.handle("greedy", request, NOW)) for _ in range(8)]
    assert [isinstance(a, Chunk) for a in answers] == [True] * 5 + [False] * 3
    assert isinstance(decode_response(server.handle("polite", request, NOW)), Chunk)  # per peer
    assert isinstance(decode_response(server.handle("greedy", request, NOW + 0.2)), Chunk)  # refilled


Peer = Callable[[SendRequest], bytes | None]  # None: the request fails


def honest(data: bytes) -> Peer:
    server = server_for(data)
    return lambda req: server.handle("me", req.payload, NOW)


def drive(machine: PackageFetch, peers: dict[str, Peer]) -> list[object]:
    """Run a fetch to its end against in-memory peers; returns every event."""
    events: list[object] = []
    queue = list(machine.start(NOW))
    while queue:
        item = queue.pop(0)
        if isinstance(item, SendRequest):
            assert item.protocol == SPIRIT_PROTOCOL
            answer = peers[item.peer](item)
            reply = (RequestFailed(item.peer, item.protocol, item.request_id, "connection closed", NOW) if answer is None
                     else ResponseReceived(item.peer, item.protocol, item.request_id, answer, NOW))
            queue.extend(machine.receive(reply))
        else:
            events.append(item)
    return events


def ids() -> Callable[[], int]:
    counter = iter(range(1, 10**6))
    return lambda: next(counter)


def test_a_fetch_downloads_every_chunk_in_a_window_and_checks_the_hash() -> None:
    machine = PackageFetch(SHA, len(DATA), ["a"], ids(), window=3)
    first = machine.start(NOW)
    assert [type(o) for o in first] == [SendRequest] * 3  # the window bounds what is in flight
    events = drive(PackageFetch(SHA, len(DATA), ["a"], ids()), {"a": honest(DATA)})
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.received for p in progress] == [MAX_CHUNK, 2 * MAX_CHUNK, 3 * MAX_CHUNK, len(DATA)]
    done = events[-1]
    assert isinstance(done, Completed) and done.data == DATA and done.peer == "a"


def hostile(kind: str) -> Peer:
    server = server_for(DATA)

    def answer(req: SendRequest) -> bytes | None:
        good = decode_response(server.handle("me", req.payload, NOW))
        assert isinstance(good, Chunk)
        if kind == "wrong_bytes":
            return encode(Chunk(good.sha256, good.offset, good.total, bytes(len(good.data))))
        if kind == "short":
            return encode(Chunk(good.sha256, good.offset, good.total, good.data[:-1]))
        if kind == "oversize":
            return encode(Chunk(good.sha256, good.offset, good.total, good.data + b"!"))
        if kind == "wrong_offset":
            return encode(Chunk(good.sha256, good.offset + 1, good.total, good.data))
        if kind == "wrong_total":
            return encode(Chunk(good.sha256, good.offset, good.total + 1, good.data))
        if kind == "wrong_hash":
            return encode(Chunk("cd" * 32, good.offset, good.total, good.data))
        if kind == "unknown":
            return encode(Refused("unknown_hash", "no such package"))
        if kind == "garbage":
            return b"\xc1\xc1"
        if kind == "huge_frame":
            return b"\x00" * (MAX_CHUNK + 4096)
        if kind == "fails":
            return None
        raise AssertionError(kind)

    return answer


@pytest.mark.parametrize(("kind", "reason"), [
    ("wrong_bytes", "hash_mismatch"), ("short", "short_chunk"), ("oversize", "oversize_chunk"),
    ("wrong_offset", "wrong_offset"), ("wrong_total", "wrong_total"), ("wrong_hash", "wrong_hash"),
    ("unknown", "refused:unknown_hash"), ("garbage", "bad_frame"), ("huge_frame", "bad_frame"), ("fails", "request_failed"),
])
def test_a_hostile_source_is_dropped_and_the_next_one_delivers(kind: str, reason: str) -> None:
    machine = PackageFetch(SHA, len(DATA), ["bad", "good"], ids(), chunk=64 * 1024)  # room below MAX_CHUNK to overfill
    events = drive(machine, {"bad": hostile(kind), "good": honest(DATA)})
    failures = [e for e in events if isinstance(e, PeerFailed)]
    assert [(f.peer, f.reason) for f in failures] == [("bad", reason)]
    done = events[-1]
    assert isinstance(done, Completed) and done.data == DATA and done.peer == "good"
    assert machine.tried == [("bad", reason)]


def test_when_every_source_fails_the_fetch_fails_naming_each() -> None:
    events = drive(PackageFetch(SHA, len(DATA), ["x", "y", "x"], ids()), {"x": hostile("short"), "y": hostile("unknown")})
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.reason == "no_source"
    assert "short_chunk" in failed.message and "refused:unknown_hash" in failed.message
    assert len([e for e in events if isinstance(e, PeerFailed)]) == 2  # "x" listed twice, tried once


def test_a_silent_source_stalls_late_answers_are_ignored_and_reject_moves_on() -> None:
    machine = PackageFetch(SHA, len(DATA), ["slow", "next"], ids(), stall_timeout=5.0)
    sent = machine.start(NOW)
    assert machine.handle_timer(NOW + 1) == []
    moved = machine.handle_timer(NOW + 6)
    assert isinstance(moved[0], PeerFailed) and moved[0].reason == "stalled"
    assert all(isinstance(o, SendRequest) and o.peer == "next" for o in moved[1:])
    late = sent[0]
    assert isinstance(late, SendRequest)
    assert machine.receive(ResponseReceived("slow", SPIRIT_PROTOCOL, late.request_id, b"", NOW + 7)) == []
    out = machine.reject("bad_signature", "refused by read_package", NOW + 8)
    assert isinstance(out[0], PeerFailed) and isinstance(out[-1], Failed)
    with pytest.raises(ValueError):
        PackageFetch(SHA, 0, ["a"], ids())


# -- the service, two nodes over an in-memory link -----------------------------------------------


class Wire:
    """Two market services' link ports joined in memory (the links engine's part)."""

    def __init__(self) -> None:
        self.ports: dict[str, MemPort] = {}

    def port(self, owner: str) -> MemPort:
        self.ports[owner] = MemPort(self, owner)
        return self.ports[owner]


class MemPort:
    def __init__(self, wire: Wire, owner: str) -> None:
        self.wire, self.owner = wire, owner
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.channels: dict[int, tuple[str, int]] = {}
        self.tamper: Callable[[bytes], bytes] | None = None

    def execute(self, instruction: SendRequest | Respond) -> None:
        if isinstance(instruction, SendRequest):
            target = self.wire.ports.get(instruction.peer)
            if target is None:
                self.queue.put_nowait(RequestFailed(instruction.peer, instruction.protocol, instruction.request_id, "no link", NOW))
                return
            channel = len(target.channels) + 1
            target.channels[channel] = (self.owner, instruction.request_id)
            target.queue.put_nowait(RequestReceived(self.owner, instruction.protocol, channel, instruction.payload, NOW))
        else:
            peer, request_id = self.channels.pop(instruction.channel)
            payload = self.tamper(instruction.payload) if self.tamper else instruction.payload
            self.wire.ports[peer].queue.put_nowait(ResponseReceived(self.owner, SPIRIT_PROTOCOL, request_id, payload, NOW))

    async def next_event(self) -> object:
        return await self.queue.get()


def market_pair(tmp_path: Path) -> tuple[Wire, dict[str, MarketService]]:
    wire = Wire()
    markets: dict[str, MarketService] = {}
    carriers: dict[str, Carrier] = {}

    def catalogues_seen_by(me: str) -> Callable[[], dict[str, Catalogue]]:
        def seen() -> dict[str, Catalogue]:
            out = {}
            for name, market in markets.items():
                if name != me:
                    value = market.gossip_values(NOW, carriers[name])["spirits"]
                    out[market.identity.node_id] = open_catalogue(value, carrier=carriers[name], now=NOW, ttl=60)
            return out
        return seen

    for name in ("a", "b"):
        init_data_dir(tmp_path / name)
        config = dataclasses.replace(NodeConfig(), data_dir=tmp_path / name)
        identity = load_identity(tmp_path / name)
        spirits = SpiritsService(config, identity)
        spirits.load_installed()
        carriers[name] = carrier_of(identity)
        markets[name] = MarketService(identity, spirits, lambda n=name: wire.port(n), catalogues_seen_by(name),
                                      lambda: frozenset(), clock=lambda: NOW)
    # the wire addresses ports by node id
    wire.ports = {}
    for market in markets.values():
        node_id = market.identity.node_id
        market._port_factory = lambda node_id=node_id: wire.port(node_id)
    return wire, markets


def test_publish_on_one_node_find_and_fetch_on_another(tmp_path: Path, author: Identity) -> None:
    wire, m = market_pair(tmp_path)
    data = package(author, name="hello", assets={"index.html": b"<p>hi</p>" * 5000})
    m["a"].spirits.install_bytes(data)
    offers = m["b"].marketplace()
    assert len(offers) == 1 and offers[0].offered_by == (m["a"].identity.node_id,) and not offers[0].installed_here
    assert offers[0].size == len(data) and offers[0].sha256 == read_package(data).sha256
    assert m["b"].marketplace("nothing") == [] and m["b"].marketplace("hel")[0].name == "hello"
    with pytest.raises(FetchRefused) as unknown:
        m["b"].start_fetch("nobody")
    assert unknown.value.reason == "not_offered"
    with pytest.raises(FetchRefused):
        m["a"].start_fetch("hello", "9.9.9")

    async def scenario() -> None:
        for market in m.values():
            await market.start()
        tasks = [asyncio.create_task(market.run(None)) for market in m.values()]  # type: ignore[arg-type]
        job = m["b"].start_fetch("hello")
        assert job.state == "fetching" and job.size == len(data)
        assert m["b"].start_fetch("hello", "1.0.0").id == job.id  # one download per package
        done = await asyncio.wait_for(m["b"].wait(job.id), 30)
        assert done is not None and done.state == "installed", done
        assert done.received == len(data) and done.source == m["a"].identity.node_id
        assert done.fetched_at is not None and done.finished_at is not None and done.started_at <= done.fetched_at <= done.finished_at
        assert m["b"].spirits.installed_sha256("hello") == read_package(data).sha256
        assert m["b"].marketplace()[0].installed_here
        again = m["b"].start_fetch("hello")
        assert again.state == "installed"  # already here: nothing to download
        assert m["a"].start_fetch("hello").state == "installed"
        assert m["b"].fetch_status(job.id) == done and m["b"].fetch_status(999) is None
        for market in m.values():
            await market.stop()
        for port in wire.ports.values():
            port.queue.put_nowait(None)
        await asyncio.gather(*tasks)

    run_async(scenario())
    assert (tmp_path / "b" / "spirits" / "hello" / "package.spirit").read_bytes() == data


def test_a_fetch_from_a_lying_peer_fails_cleanly_and_unknown_hashes_are_refused(tmp_path: Path, author: Identity) -> None:
    wire, m = market_pair(tmp_path)
    data = package(author, name="hello")
    m["a"].spirits.install_bytes(data)

    async def scenario() -> None:
        for market in m.values():
            await market.start()
        wire.ports[m["a"].identity.node_id].tamper = lambda payload: payload[:-1] + bytes([payload[-1] ^ 1])
        tasks = [asyncio.create_task(market.run(None)) for market in m.values()]  # type: ignore[arg-type]
        job = m["b"].start_fetch("hello")
        done = await asyncio.wait_for(m["b"].wait(job.id), 30)
        assert done is not None and done.state == "failed" and done.error_reason == "no_source"
        assert done.tried == ((m["a"].identity.node_id, "hash_mismatch"),)
        assert m["b"].spirits.installed_sha256("hello") is None
        # a request for a package "a" does not offer
        port = wire.ports[m["b"].identity.node_id]
        port.execute(SendRequest(m["a"].identity.node_id, SPIRIT_PROTOCOL, 10**6, encode(GetChunk("ef" * 32, 0, 10))))
        await asyncio.sleep(0.1)
        assert m["a"].server.refused.get("unknown_hash") == 1
        m["a"].receive(LinkUp("x", "/ip4/127.0.0.1/tcp/1", "inbound", NOW))
        m["a"].receive(LinkDown("x", "closed", NOW))
        for market in m.values():
            await market.stop()
        for p in wire.ports.values():
            p.queue.put_nowait(None)
        await asyncio.gather(*tasks)

    run_async(scenario())


# -- the membership policy opens catalogues only under their carrier ---------------------------------


def test_the_membership_policy_keeps_verified_catalogues_and_refuses_copied_or_overfull_ones() -> None:
    from vudo.hyphal.announcement import ANNOUNCEMENT_KEY, NodeAnnouncement, announce
    from vudo.hyphal.capability import Compute
    from vudo.hyphal.membership import GossipMember, GossipObserved, Membership, ValueRejected
    from vudo.spirits.catalogue import CATALOGUE_KEY

    def kv(ident: Identity, gen: int, extra: str) -> dict[str, str]:
        carrier = Carrier(ident.node_id, gen, "127.0.0.1:1")
        ann = NodeAnnouncement(ident.node_id, "127.0.0.1:1", "", (Compute(cores=1, memory_mb=1),), "0", NOW)
        return {ANNOUNCEMENT_KEY: announce(ident, ann, carrier=carrier), CATALOGUE_KEY: extra}

    me, a, b, c = (Identity.generate() for _ in range(4))
    a_catalogue = seal_catalogue(a, [entry()], NOW, carrier=Carrier(a.node_id, 1, "127.0.0.1:1"))
    overfull = seal(c, Catalogue(c.node_id, NOW, tuple(entry(f"s{k}", author="x") for k in range(MAX_ENTRIES + 1))),
                    carrier=Carrier(c.node_id, 1, "127.0.0.1:1"))
    policy = Membership(self_id=me.node_id, announcement_ttl=60)
    members = (GossipMember(a.node_id, 1, "127.0.0.1:1", True, False, kv(a, 1, a_catalogue)),
               GossipMember(b.node_id, 1, "127.0.0.1:1", True, False, kv(b, 1, a_catalogue)),  # b re-gossips a's catalogue
               GossipMember(c.node_id, 1, "127.0.0.1:1", True, False, kv(c, 1, overfull)))
    events = policy.receive(GossipObserved(members, NOW))
    assert policy.members[a.node_id].catalogue is not None and policy.members[a.node_id].catalogue.spirits == (entry(),)  # type: ignore[union-attr]
    assert policy.members[b.node_id].catalogue is None and policy.members[c.node_id].catalogue is None
    rejected = sorted((e.node_id == b.node_id, e.reason) for e in events if isinstance(e, ValueRejected) and e.key == CATALOGUE_KEY)
    assert rejected == [(False, "too_many"), (True, "wrong_owner")]
    again = policy.receive(GossipObserved(members, NOW + 1))
    assert not [e for e in again if isinstance(e, ValueRejected)]  # counted once per distinct value


# -- the HTTP routes --------------------------------------------------------------------------------


def test_marketplace_and_fetch_routes(tmp_path: Path, author: Identity) -> None:
    from fastapi.testclient import TestClient

    from vudo.api.app import create_app
    from vudo.identity import load_api_token
    from vudo.node import Node

    init_data_dir(tmp_path / "n")
    node = Node(dataclasses.replace(NodeConfig(), data_dir=tmp_path / "n"))
    run_async(node.spirits.start())
    try:
        client = TestClient(create_app(node.queries), base_url="http://127.0.0.1:7500")
        token = {"Authorization": f"Bearer {load_api_token(tmp_path / 'n')}"}
        assert client.get("/v1/marketplace").json() == {"offers": []}
        data = package(author, name="hello")
        node.spirits.install_bytes(data)
        offers = client.get("/v1/marketplace").json()["offers"]
        assert len(offers) == 1 and offers[0]["offered_by"] == [node.identity.node_id] and offers[0]["installed_here"]
        assert offers[0]["size"] == len(data) and offers[0]["tier"] == "free"
        assert client.get("/v1/marketplace", params={"q": "zzz"}).json() == {"offers": []}
        assert client.post("/v1/spirits/fetch", json={"name": "hello"}).status_code == 401
        here = client.post("/v1/spirits/fetch", json={"name": "hello@1.0.0"}, headers=token)
        assert here.status_code == 202 and here.json()["state"] == "installed" and here.json()["source"] is None
        assert client.get(f"/v1/spirits/fetch/{here.json()['id']}").json()["state"] == "installed"
        unknown = client.post("/v1/spirits/fetch", json={"name": "nobody"}, headers=token)
        assert unknown.status_code == 404 and unknown.json()["reason"] == "not_offered"
        bad = client.post("/v1/spirits/fetch", json={"name": "Bad@Name"}, headers=token)
        assert bad.status_code == 422 and bad.json()["reason"] == "bad_name"
        assert client.get("/v1/spirits/fetch/42").status_code == 404
        assert client.get("/v1/spirits/fetch/0").status_code == 422
        gossip = node.market.gossip_values(NOW, Carrier(node.identity.node_id, 1, "127.0.0.1:1"))
        opened = open_catalogue(gossip["spirits"], carrier=Carrier(node.identity.node_id, 1, "127.0.0.1:1"), now=NOW, ttl=60)
        assert [e.name for e in opened.spirits] == ["hello"]
        assert node.market.gossip_values(NOW + 1, Carrier(node.identity.node_id, 1, "127.0.0.1:1")) == gossip  # not re-signed
    finally:
        run_async(node.spirits.stop())


def test_a_stored_package_is_served_by_range_and_refused_once_it_changed(tmp_path: Path) -> None:
    from vudo.services.market import FileSource

    path = tmp_path / "package.spirit"
    path.write_bytes(DATA)
    server = ChunkServer(lambda sha: FileSource(path, len(DATA)) if sha == SHA else None)
    chunk = decode_response(server.handle("p", encode(GetChunk(SHA, 10, 100)), NOW))
    assert isinstance(chunk, Chunk) and chunk.data == DATA[10:110]
    path.write_bytes(DATA[:-1])
    refused = decode_response(server.handle("p", encode(GetChunk(SHA, 10, 100)), NOW))
    assert isinstance(refused, Refused) and refused.reason == "unavailable"


def test_a_rate_limiting_source_is_asked_again_after_a_backoff_not_dropped() -> None:
    machine = PackageFetch(SHA, len(DATA), ["busy"], ids(), window=2)
    server = server_for(DATA)
    limited = encode(Refused("rate_limited", "slow down"))
    sent = machine.start(NOW)
    assert len(sent) == 2
    first, second = sent
    assert isinstance(first, SendRequest) and isinstance(second, SendRequest)
    assert machine.receive(ResponseReceived("busy", SPIRIT_PROTOCOL, first.request_id, limited, NOW)) == []
    assert machine.receive(ResponseReceived("busy", SPIRIT_PROTOCOL, second.request_id, limited, NOW)) == []
    assert machine.handle_timer(NOW + 0.05) == []  # still backing off (0.1 s after the first refusal)
    resent = machine.handle_timer(NOW + 0.5)
    assert [decode_offset(r) for r in resent] == [0, MAX_CHUNK]  # the same chunks, asked again
    queue: list[object] = list(resent)
    events: list[object] = []
    now = NOW + 0.5
    while queue:
        item = queue.pop(0)
        if isinstance(item, SendRequest):
            queue.extend(machine.receive(ResponseReceived("busy", SPIRIT_PROTOCOL, item.request_id, server.handle("me", item.payload, now), now)))
        else:
            events.append(item)
    assert isinstance(events[-1], Completed) and events[-1].data == DATA
    assert not [e for e in events if isinstance(e, PeerFailed)] and machine.tried == []


def test_a_source_that_only_rate_limits_is_eventually_dropped() -> None:
    machine = PackageFetch(SHA, len(DATA), ["stingy", "good"], ids(), window=1)
    limited = encode(Refused("rate_limited", "slow down"))
    out = machine.start(NOW)
    now = NOW
    failures: list[PeerFailed] = []
    for _ in range(200):
        request = next(o for o in out if isinstance(o, SendRequest))
        if request.peer == "good":
            break
        out = machine.receive(ResponseReceived("stingy", SPIRIT_PROTOCOL, request.request_id, limited, now))
        failures += [o for o in out if isinstance(o, PeerFailed)]
        if not any(isinstance(o, SendRequest) for o in out):
            now += 3.0  # past the longest backoff
            out = machine.handle_timer(now)
    assert [(f.peer, f.reason) for f in failures] == [("stingy", "refused:rate_limited")]
    assert machine.peer == "good" and now - NOW >= 40 * 0.1


def decode_offset(request: object) -> int:
    assert isinstance(request, SendRequest)
    return msgspec.msgpack.decode(request.payload, type=GetChunk).offset
