"""`vudo links` and `vudo topology` render what the API answers (table and --json)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from click.testing import CliRunner

from vudo.cli import main as cli_main

A, B, C, D = ("12D3KooWAAAA", "12D3KooWBBBB", "12D3KooWCCCC", "12D3KooWDDDD")
LINKS = {"links": [{"peer": B, "established": time.time() - 90, "last_seen": time.time() - 1, "latency_ms": 4,
                    "bandwidth_score": 0.625, "reputation": 0.71, "addr": "/ip4/127.0.0.1/tcp/7601", "direction": "outbound"}]}
TOPOLOGY = {"self": A, "nodes": [A, B, C, D], "edges": [[A, B], [B, C]]}


@pytest.fixture(autouse=True)
def fake_api(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def get(url: str) -> Any:
        asked.append(url)
        return {"http://n/v1/links": LINKS, "http://n/v1/topology": TOPOLOGY}[url]

    monkeypatch.setattr(cli_main, "_get", get)
    return asked


def test_links_table_and_json(fake_api: list[str]) -> None:
    table = CliRunner().invoke(cli_main.cli, ["links", "--api", "http://n/"])
    assert table.exit_code == 0, table.output
    header, _, row = table.stdout.splitlines()[:3]
    assert header.split() == ["PEER", "DIRECTION", "ADDR", "AGE", "SEEN", "LATENCY", "STRENGTH", "REPUTATION"]
    assert row.split()[:3] == [B, "outbound", "/ip4/127.0.0.1/tcp/7601"]
    assert "0.62" in row and "0.71" in row and "4 ms" in row
    as_json = CliRunner().invoke(cli_main.cli, ["links", "--api", "http://n", "--json"])
    assert json.loads(as_json.stdout) == LINKS
    assert fake_api == ["http://n/v1/links", "http://n/v1/links"]


def test_topology_table_and_json() -> None:
    result = CliRunner().invoke(cli_main.cli, ["topology", "--api", "http://n"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert rows[A].split()[1:3] == ["*", "1"]  # this node is starred
    assert rows[B].split()[1] == "2"
    assert rows[D].split()[1:] == ["0", "-"]
    assert "4 node(s), 2 link(s), 2 component(s)" in result.stderr
    as_json = CliRunner().invoke(cli_main.cli, ["topology", "--api", "http://n", "--json"])
    assert json.loads(as_json.stdout) == TOPOLOGY
