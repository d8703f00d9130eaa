"""physarum.spirit: the build's signed package, run by the node, its page served, installed by `vudo dev`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
import tomllib
from pathlib import Path

from fastapi.testclient import TestClient

from spirits.support import run_async
from vudo.api.app import SPIRIT_CSP, create_app
from vudo.config import NodeConfig, load_config
from vudo.identity import init_data_dir, load_api_token
from vudo.node import Node
from vudo.physarum.wasm import WasmPhysarum
from vudo.spirits.builtin import PHYSARUM_PACKAGE, install_into
from vudo.spirits.manifest import Permissions
from vudo.spirits.package import read_package

GRANT = Permissions(network="read", compute="minimal", display="required")


def test_the_built_package_is_a_signed_free_spirit_with_the_kernel_module_and_its_page() -> None:
    package = read_package(PHYSARUM_PACKAGE.read_bytes())  # signature and every hash verified
    m = package.manifest
    assert (m.name, m.tier.kind, m.tier.price) == ("physarum", "free", 0)
    assert m.permissions == GRANT
    kernel = Path(PHYSARUM_PACKAGE).with_name("physarum.wasm").read_bytes()
    assert package.files["physarum.wasm"] == kernel  # one module for the page, the node and the kernel ABI
    assert set(m.entry_module().exports) == {"memory", "alloc", "summon", "tick", "dismiss", "query"}
    assert set(m.entry_module().imports) == {"vudo.log", "vudo.topology"}
    html = package.files["index.html"].decode()
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts and all("src=" in s for s in scripts)  # no inline script: the CSP forbids it
    assert "on" not in " ".join(re.findall(r"<\w+[^>]*\son\w+=", html))  # no inline handlers either


def test_the_kernel_abi_still_runs_from_the_same_module() -> None:
    sim = WasmPhysarum([], 1)
    a, b = sim.add_node(0, 0, 0), sim.add_node(1, 0, 0)
    sim.add_edge(a, b, 0.0)
    sim.set_food([a, b])
    sim.step(3)
    assert sim.steps == 3


def test_summoned_on_a_node_it_grows_a_network_over_the_topology_and_serves_its_page(tmp_path: Path) -> None:
    init_data_dir(tmp_path / "n")
    config = dataclasses.replace(NodeConfig(), data_dir=tmp_path / "n", spirit_tick_ms=10, spirit_grants=(("physarum", GRANT),))
    node = Node(config)
    members = [{"node_id": f"peer-{k}", "status": "alive", "is_self": k == 0, "verified": True} for k in range(4)]
    node.spirits._topology = lambda: json.dumps(members).encode()  # what the membership view would give
    node.spirits.topology_bytes = json.dumps(members).encode()
    client = TestClient(create_app(node.queries), base_url="http://127.0.0.1:7500")
    token = {"Authorization": f"Bearer {load_api_token(config.data_dir)}"}
    run_async(node.spirits.start())
    try:
        installed = client.post("/v1/spirits", content=PHYSARUM_PACKAGE.read_bytes(),
                                headers={**token, "Content-Type": "application/octet-stream"})
        assert installed.status_code == 201, installed.text
        summoned = client.post("/v1/spirits/physarum/summon", headers=token)
        assert summoned.status_code == 200 and summoned.json()["state"] == "running", summoned.text

        async def tick_a_while() -> None:
            deadline = time.monotonic() + 60
            while node.spirits.spirits["physarum"].instance.stats.calls < 12 and time.monotonic() < deadline:  # type: ignore[union-attr]
                await node.spirits.tick(time.time())
                await asyncio.sleep(0.02)

        run_async(tick_a_while())
        view = client.get("/v1/spirits/physarum").json()
        assert view["state"] == "running" and view["calls"] >= 12 and 0 < view["fuel_last_call"] < view["fuel_per_call"]
        instance = node.spirits.spirits["physarum"].instance
        assert instance is not None
        state, _ = instance.query(b"state")
        body = json.loads(state)
        assert body["members"] == [f"peer-{k}" for k in range(4)] and body["steps"] >= 8 and body["tubes"]
        logs = [line["text"] for line in client.get("/v1/spirits/physarum/logs").json()["lines"]]
        assert any("network of 4 member(s)" in t for t in logs)

        page = client.get("/spirits/physarum/")
        assert page.status_code == 200 and page.headers["content-security-policy"] == SPIRIT_CSP
        assert '<script src="physarum.js"' in page.text
        assert client.get("/spirits/physarum/physarum.js").headers["content-type"].startswith("text/javascript")
        assert client.get("/spirits/physarum/physarum.wasm").headers["content-type"] == "application/wasm"
        assert client.post("/v1/spirits/physarum/dismiss", headers=token).json()["state"] == "dismissed"
    finally:
        run_async(node.spirits.stop())


def test_install_into_a_data_dir_installs_once_and_grants_what_it_asks(tmp_path: Path) -> None:
    data_dir = tmp_path / "n"
    init_data_dir(data_dir)
    first = install_into(data_dir)
    assert first.startswith("installed physarum@") and "granted read/minimal/required" in first
    stored = data_dir / "spirits" / "physarum" / "package.spirit"
    assert stored.read_bytes() == PHYSARUM_PACKAGE.read_bytes()
    config = load_config({"data_dir": str(data_dir)}, env={})
    assert config.spirit_grant("physarum") == GRANT
    again = install_into(data_dir)
    assert again == "physarum@0.1.0 already installed"
    assert tomllib.loads((data_dir / "vudo.toml").read_text())["spirits"]["allow"]["physarum"]["network"] == "read"


def test_install_into_keeps_the_operators_grant_and_replaces_a_broken_store(tmp_path: Path) -> None:
    data_dir = tmp_path / "n"
    init_data_dir(data_dir)
    (data_dir / "vudo.toml").write_text('[spirits.allow.physarum]\nnetwork = "none"\n')
    stored = data_dir / "spirits" / "physarum" / "package.spirit"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"not a package")
    done = install_into(data_dir)
    assert done.startswith("installed") and "granted" not in done
    assert (data_dir / "vudo.toml").read_text() == '[spirits.allow.physarum]\nnetwork = "none"\n'
    assert read_package(stored.read_bytes()).name == "physarum"
