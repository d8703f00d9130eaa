"""The spirits service behind the HTTP API (in-process): install, summon, tick, dismiss, serve."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from spirits.support import INFINITE_LOOP, NETWORKED, package, run_async
from vudo.api.app import SPIRIT_CSP, create_app
from vudo.config import NodeConfig
from vudo.identity import Identity, init_data_dir, load_api_token
from vudo.node import Node
from vudo.spirits.manifest import Permissions, Tier

HELLO_NO_IMPORTS = '(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 8)))'

HELLO_ASKS = Permissions(display="required")


@pytest.fixture()
def node(tmp_path: Path) -> Iterator[Node]:
    init_data_dir(tmp_path / "n")
    config = dataclasses.replace(NodeConfig(), data_dir=tmp_path / "n", spirit_tick_ms=10,
                                 spirit_grants=(("hello", HELLO_ASKS), ("looper", Permissions()), ("net", Permissions(network="write")),
                                                ("ear", Permissions())))
    node = Node(config)
    run_async(node.spirits.start())
    try:
        yield node
    finally:
        run_async(node.spirits.stop())


@pytest.fixture()
def client(node: Node) -> TestClient:
    return TestClient(create_app(node.queries), base_url="http://127.0.0.1:7500")


def auth(node: Node) -> dict[str, str]:
    return {"Authorization": f"Bearer {load_api_token(node.config.data_dir)}"}


def install(client: TestClient, node: Node, data: bytes) -> dict:  # type: ignore[type-arg]
    response = client.post("/v1/spirits", content=data, headers={**auth(node), "Content-Type": "application/octet-stream"})
    return {"status": response.status_code, **response.json()}


def test_install_summon_serve_dismiss(client: TestClient, node: Node, author: Identity) -> None:
    data = package(author, permissions=HELLO_ASKS, assets={"index.html": b"<p>hi</p>", "app.js": b"1"})
    assert client.get("/v1/spirits").json() == {"spirits": []}
    assert client.post("/v1/spirits", content=data).status_code == 401
    body = install(client, node, data)
    assert body["status"] == 201 and body["state"] == "installed" and body["missing"] == []
    assert (node.config.data_dir / "spirits" / "hello" / "package.spirit").read_bytes() == data
    assert client.get("/spirits/hello/").status_code == 404  # not running: nothing served

    assert client.post("/v1/spirits/hello/summon").status_code == 401
    summoned = client.post("/v1/spirits/hello/summon", headers=auth(node)).json()
    assert summoned["state"] == "running" and summoned["fuel_used_total"] > 0 and summoned["memory_bytes"] == 65536
    assert summoned["web"] is True
    assert 'vudo_spirit_calls_total{spirit="hello"} 2.0' in client.get("/metrics").text  # alloc + summon

    page = client.get("/spirits/hello/")
    assert page.status_code == 200 and page.text == "<p>hi</p>"
    assert page.headers["content-security-policy"] == SPIRIT_CSP and "default-src 'none'" in SPIRIT_CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    redirect = client.get("/spirits/hello", follow_redirects=False)
    assert redirect.status_code == 308 and redirect.headers["location"] == "/spirits/hello/"
    assert client.get("/spirits/hello/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/spirits/hello/../../api-token").status_code == 404
    assert client.get("/spirits/hello/spirit.toml").status_code == 404

    async def tick_a_while() -> None:
        deadline = time.monotonic() + 30
        while node.spirits.spirits["hello"].instance.stats.calls < 6 and time.monotonic() < deadline:  # type: ignore[union-attr]
            await node.spirits.tick(time.time())
            await asyncio.sleep(0.02)

    run_async(tick_a_while())
    detail = client.get("/v1/spirits/hello").json()
    assert detail["calls"] >= 6 and detail["fuel_last_call"] > 0
    assert detail["files"] == sorted(detail["files"], key=lambda f: f["path"]) and len(detail["files"]) == 3

    dismissed = client.post("/v1/spirits/hello/dismiss", headers=auth(node)).json()
    assert dismissed["state"] == "dismissed" and dismissed["memory_bytes"] == 0
    texts = [line["text"] for line in client.get("/v1/spirits/hello/logs").json()["lines"]]
    assert "summoned" in texts and "dismissed" in texts and any("installed hello@1.0.0" in t for t in texts)
    conflict = client.post("/v1/spirits/hello/dismiss", headers=auth(node))
    assert conflict.status_code == 409 and conflict.json()["reason"] == "wrong_state"


def test_summon_beyond_the_grant_is_refused_with_what_is_missing(client: TestClient, node: Node, author: Identity) -> None:
    data = package(author, name="greedy", permissions=Permissions(compute="heavy", wasi=False))
    body = install(client, node, data)
    assert body["missing"] == ["compute=heavy (granted minimal)"]
    refused = client.post("/v1/spirits/greedy/summon", headers=auth(node))
    assert refused.status_code == 403
    assert refused.json()["reason"] == "not_granted" and "compute=heavy" in refused.json()["detail"]
    assert "[spirits.allow.greedy]" in refused.json()["detail"]
    assert client.get("/v1/spirits/greedy").json()["state"] == "installed"


def test_a_premium_spirit_is_never_run_without_its_lock(client: TestClient, node: Node, author: Identity) -> None:
    install(client, node, package(author, name="looper", tier=Tier("premium", 5), exports=("memory", "alloc"), imports=(),
                                  wat=HELLO_NO_IMPORTS))
    refused = client.post("/v1/spirits/looper/summon", headers=auth(node))  # the credits service is not running here
    assert refused.status_code == 503 and refused.json()["reason"] == "unavailable"
    looper = client.get("/v1/spirits/looper").json()
    assert looper["tier"] == "premium" and looper["state"] == "failed" and looper["error_reason"] == "unavailable"


def test_a_runaway_spirit_fails_alone(client: TestClient, node: Node, author: Identity) -> None:
    install(client, node, package(author, permissions=HELLO_ASKS))
    install(client, node, package(author, INFINITE_LOOP, name="looper", exports=("memory", "alloc", "tick"), imports=()))
    for name in ("hello", "looper"):
        assert client.post(f"/v1/spirits/{name}/summon", headers=auth(node)).json()["state"] == "running"

    async def until_failed() -> None:
        deadline = time.monotonic() + 60
        while node.spirits.spirits["looper"].policy.state.value != "failed" and time.monotonic() < deadline:
            await node.spirits.tick(time.time())
            await asyncio.sleep(0.02)

    run_async(until_failed())
    looper = client.get("/v1/spirits/looper").json()
    assert looper["state"] == "failed" and looper["error_reason"] in ("out_of_fuel", "timeout")
    metrics = client.get("/metrics").text
    assert f'vudo_spirit_failures_total{{reason="{looper["error_reason"]}",spirit="looper"}} 1.0' in metrics
    assert 'vudo_spirits{state="failed"} 1.0' in metrics and 'vudo_spirits{state="running"} 1.0' in metrics
    assert client.get("/v1/spirits/hello").json()["state"] == "running"
    assert client.post("/v1/spirits/looper/summon", headers=auth(node)).json()["state"] == "running"  # may be summoned again


def test_upgrades_wrong_author_lower_rev_tamper_and_unknown(client: TestClient, node: Node, author: Identity) -> None:
    assert install(client, node, package(author, rev=2))["status"] == 201
    lower = install(client, node, package(author, rev=1))
    assert lower["status"] == 409 and lower["reason"] == "stale_rev"
    foreign = install(client, node, package(Identity.generate(), rev=9))
    assert foreign["status"] == 409 and foreign["reason"] == "wrong_author"
    tampered = bytearray(package(author, rev=3))
    tampered[-1100] ^= 0xFF
    assert install(client, node, bytes(tampered))["status"] == 400
    metrics = client.get("/metrics").text
    assert 'vudo_spirit_packages_rejected_total{reason="stale_rev"} 1.0' in metrics
    assert 'vudo_spirit_packages_rejected_total{reason="wrong_author"} 1.0' in metrics
    assert install(client, node, package(author, rev=3))["rev"] == 3
    assert client.get("/v1/spirits/nobody").status_code == 404
    assert client.post("/v1/spirits/nobody/summon", headers=auth(node)).status_code == 404
    assert client.get("/v1/spirits/Bad_Name").status_code == 422


def test_installed_spirits_survive_a_restart_and_a_tampered_store_is_refused(tmp_path: Path, author: Identity) -> None:
    init_data_dir(tmp_path / "n")
    config = dataclasses.replace(NodeConfig(), data_dir=tmp_path / "n", spirit_grants=(("hello", HELLO_ASKS),))

    async def scenario() -> None:
        first = Node(config)
        await first.spirits.start()
        first.spirits.install_bytes(package(author, permissions=HELLO_ASKS))
        await first.spirits.stop()
        second = Node(config)
        await second.spirits.start()
        assert [v.name for v in second.spirits.view()] == ["hello"]
        stored = config.data_dir / "spirits" / "hello" / "package.spirit"
        data = bytearray(stored.read_bytes())
        data[-1500] ^= 0x01
        stored.write_bytes(bytes(data))
        with pytest.raises(Exception) as info:
            await second.spirits.summon("hello")
        assert getattr(info.value, "fault", None) == "remote"
        assert second.spirits.view_one("hello").state == "failed"  # type: ignore[union-attr]
        await second.spirits.stop()
        third = Node(config)
        await third.spirits.start()
        assert third.spirits.view() == []  # a stored package that no longer verifies is skipped
        await third.spirits.stop()

    run_async(scenario())


EAR = """(module (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "signal") (param $p i32) (param $len i32) (result i32)
    (global.set $n (i32.add (global.get $n) (local.get $len))) (i32.const 0))
  (func (export "query") (param i32 i32) (result i64) (i64.extend_i32_u (global.get $n))))"""


def test_a_spirit_reads_the_topology_and_its_signal_reaches_another_spirit(client: TestClient, node: Node, author: Identity) -> None:
    install(client, node, package(author, NETWORKED, name="net", exports=("memory", "alloc", "tick"),
                                  imports=("vudo.topology", "vudo.emit"), permissions=Permissions(network="write")))
    install(client, node, package(author, EAR, name="ear", exports=("memory", "alloc", "signal", "query"), imports=()))
    for name in ("ear", "net"):
        assert client.post(f"/v1/spirits/{name}/summon", headers=auth(node)).json()["state"] == "running"
    topology = node.queries.topology()
    assert topology == b"[]"  # membership has not started: no members yet

    async def until_heard() -> None:
        deadline = time.monotonic() + 30
        while node.spirits.signals_emitted < 2 and time.monotonic() < deadline:
            await node.spirits.tick(time.time())
            await asyncio.sleep(0.02)

    run_async(until_heard())
    ear = node.spirits.spirits["ear"].instance
    assert ear is not None and ear.call_with_bytes("query", b"").value >= len(topology)
    assert client.get("/v1/spirits/net").json()["state"] == "running"


def test_uninstall_deletes_the_package_and_waits_for_a_dismiss(client: TestClient, node: Node, author: Identity) -> None:
    data = package(author, permissions=HELLO_ASKS, assets={"index.html": b"<p>hi</p>"})
    install(client, node, data)
    stored = node.config.data_dir / "spirits" / "hello"
    assert client.post("/v1/spirits/hello/summon", headers=auth(node)).json()["state"] == "running"
    assert client.delete("/v1/spirits/hello").status_code == 401
    busy = client.delete("/v1/spirits/hello", headers=auth(node))
    assert busy.status_code == 409 and busy.json()["reason"] == "wrong_state" and "dismiss it" in busy.json()["detail"]
    assert (stored / "package.spirit").read_bytes() == data
    assert client.post("/v1/spirits/hello/dismiss", headers=auth(node)).json()["state"] == "dismissed"
    gone = client.delete("/v1/spirits/hello", headers=auth(node))
    assert gone.status_code == 200 and (gone.json()["name"], gone.json()["rev"]) == ("hello", 1)
    assert not stored.exists()
    assert client.get("/v1/spirits").json() == {"spirits": []}
    assert client.get("/v1/spirits/hello").status_code == 404
    assert client.get("/spirits/hello/index.html").status_code == 404
    assert node.spirits.offers() == []
    again = client.delete("/v1/spirits/hello", headers=auth(node))
    assert again.status_code == 404 and again.json()["reason"] == "unknown_spirit"
    # The name is free on this node again: the same package installs and runs.
    assert install(client, node, data)["status"] == 201
    assert client.post("/v1/spirits/hello/summon", headers=auth(node)).json()["state"] == "running"


def test_an_uninstall_the_disk_refuses_keeps_the_spirit(
    client: TestClient, node: Node, author: Identity, monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(client, node, package(author, permissions=HELLO_ASKS))

    def refuse(path: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("vudo.services.spirits.shutil.rmtree", refuse)
    failed = client.delete("/v1/spirits/hello", headers=auth(node))
    assert failed.status_code == 500 and failed.json()["reason"] == "storage_error", failed.text
    assert "Permission denied" in failed.json()["detail"] and "permissions" in failed.json()["detail"]
    assert client.get("/v1/spirits/hello").json()["state"] == "installed"


def test_a_package_gone_from_disk_fails_the_summon_cleanly(client: TestClient, node: Node, author: Identity) -> None:
    install(client, node, package(author, permissions=HELLO_ASKS))
    (node.config.data_dir / "spirits" / "hello" / "package.spirit").unlink()
    response = client.post("/v1/spirits/hello/summon", headers=auth(node))
    assert response.status_code == 500 and response.json()["reason"] == "storage_error"
    assert "install the package again" in response.json()["detail"]
    assert client.get("/v1/spirits/hello").json()["state"] == "failed"


def test_no_install_over_a_running_spirit_and_oversize_bodies_are_refused(
    client: TestClient, node: Node, author: Identity, monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(client, node, package(author, permissions=HELLO_ASKS))
    assert client.post("/v1/spirits/hello/summon", headers=auth(node)).json()["state"] == "running"
    busy = install(client, node, package(author, rev=2, permissions=HELLO_ASKS))
    assert busy["status"] == 409 and busy["reason"] == "wrong_state" and "dismiss it" in busy["detail"]
    assert client.get("/v1/spirits/hello").json()["rev"] == 1
    import vudo.api.app

    monkeypatch.setattr(vudo.api.app, "MAX_ARCHIVE_BYTES", 1000)
    big = install(client, node, b"\0" * 5000)
    assert big["status"] == 413 and big["reason"] == "oversize"
