"""The HTTP interface against a node object that has not started gossiping."""

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from vudo.api.app import create_app
from vudo.config import NodeConfig
from vudo.identity import init_data_dir, load_api_token
from vudo.node import Node
from vudo.node.lifecycle import StopRequested
from vudo.services.events import Joined


@pytest.fixture()
def node(tmp_path: Path) -> Node:
    init_data_dir(tmp_path / "n")
    return Node(dataclasses.replace(NodeConfig(), data_dir=tmp_path / "n", witness_stake=7))


@pytest.fixture()
def client(node: Node) -> TestClient:
    return TestClient(create_app(node.queries), base_url="http://127.0.0.1:7500")


def test_node_document(client: TestClient, node: Node) -> None:
    body = client.get("/v1/node").json()
    assert body["node_id"] == node.identity.node_id
    assert body["addrs"] == {"gossip": "127.0.0.1:7400", "api": "http://127.0.0.1:7500"}
    kinds = [c["kind"] for c in body["capabilities"]]
    assert kinds == ["compute", "storage", "gateway", "witness"]
    assert body["witness"] is True and body["status"] == "bootstrapping"


def test_not_ready_until_joined(client: TestClient, node: Node) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 503
    node.lifecycle.receive(Joined(peers=1, now=0.0))
    assert client.get("/readyz").json() == {"status": "ready"}


def test_members_and_gradients_shape(client: TestClient) -> None:
    assert client.get("/v1/members").json() == {"members": []}
    body = client.get("/v1/gradients").json()
    assert body["local"] is None and body["neighbors"] == {}
    assert set(body["flow"]) == {"compute", "storage", "bandwidth", "credit"}


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    assert "vudo_node_ready 0.0" in response.text


def test_openapi_lists_endpoints(client: TestClient) -> None:
    paths = client.get("/v1/openapi.json").json()["paths"]
    for path in ("/v1/node", "/v1/members", "/v1/gradients", "/v1/links", "/v1/topology", "/v1/node/leave", "/livez", "/readyz"):
        assert path in paths


def test_mutation_requires_bearer_token(client: TestClient, node: Node) -> None:
    token = load_api_token(node.config.data_dir)
    assert client.post("/v1/node/leave").status_code == 401
    assert client.post(f"/v1/node/leave?token={token}").status_code == 401
    assert client.post("/v1/node/leave", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.post("/v1/node/leave", headers={"Authorization": f"Basic {token}"}).status_code == 401
    assert node.inbox.empty()
    response = client.post("/v1/node/leave", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 202 and response.json() == {"status": "leaving"}
    event = node.inbox.get_nowait()
    assert isinstance(event, StopRequested) and "API" in event.reason


def test_links_and_topology_without_a_link_engine(client: TestClient, node: Node) -> None:
    assert client.get("/v1/links").json() == {"links": []}
    assert client.get("/v1/topology").json() == {"self": node.identity.node_id, "nodes": [node.identity.node_id], "edges": []}


def test_links_and_topology_from_the_links_service(client: TestClient, node: Node) -> None:
    import random

    from vudo.hyphal.links import HyphalLink
    from vudo.services.links import LinksService, LinksSources

    m = node.membership
    sources = LinksSources(m.members, m.sealed_announcements, m.own_announcement,
                           lambda: {"peer-b": (node.identity.node_id, "peer-c"), "peer-c": ("peer-b",), "peer-d": ("peer-b",)})

    def no_engine() -> Any:
        raise AssertionError("the views need no engine")

    node.links = LinksService(node.config, node.identity, node.metrics, node.capabilities, sources, no_engine, rng=random.Random(1))
    node.links.policy.connections["peer-b"] = HyphalLink("peer-b", 10.0, 12.0, 3, 0.75, "/ip4/127.0.0.1/tcp/7601", "outbound")
    body = client.get("/v1/links").json()
    assert body == {"links": [{"peer": "peer-b", "established": 10.0, "last_seen": 12.0, "latency_ms": 3, "bandwidth_score": 0.75,
                               "reputation": 0.5, "addr": "/ip4/127.0.0.1/tcp/7601", "direction": "outbound"}]}
    topo = client.get("/v1/topology").json()
    me = node.identity.node_id
    assert topo["self"] == me
    assert set(topo["nodes"]) == {me, "peer-b", "peer-c", "peer-d"}
    assert sorted(map(sorted, topo["edges"])) == sorted([sorted([me, "peer-b"]), ["peer-b", "peer-c"]])  # peer-d's claim is one-sided
