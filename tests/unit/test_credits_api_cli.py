"""The credit routes and `vudo credits|witness` against a live HTTP server over a real one-witness ledger."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from fastapi import FastAPI

from vudo.api.credits import credits_router
from vudo.cli.main import cli
from vudo.config import NodeConfig
from vudo.credits import UNITS_PER_CREDIT
from vudo.credits.transaction import ActionKind
from vudo.credits.wire import ReadWhat, Response
from vudo.identity import Identity
from vudo.portcheck import free_ports
from vudo.services.credits import CreditsService, CreditsSources
from vudo.testing.signalports import MemoryLinkHub

TOKEN = "c" * 32
U = UNITS_PER_CREDIT
OTHER = Identity.generate().node_id


class Queries:
    """The credit part of NodeQuery over one service (what the supervisor's NodeQueries does)."""

    def __init__(self, service: CreditsService) -> None:
        self.s = service

    def token_matches(self, token: str) -> bool:
        return token == TOKEN

    async def credits_read(self, what: ReadWhat, key: str = "", *, linearizable: bool = True, limit: int = 100) -> Response:
        return await self.s.read(what, key, linearizable=linearizable, limit=limit)

    async def credits_transfer(self, *, to: str, amount: int, fee: int, memo: str, op_id: str | None) -> tuple[str, Response]:
        return await self.s.transfer(to=to, amount=amount, fee=fee, memo=memo, op_id=op_id)

    async def credits_propose(self, *, action: ActionKind, target: str, amount: int, op_id: str | None) -> tuple[str, Response]:
        return await self.s.propose(action=action, target=target, amount=amount, op_id=op_id)

    async def credits_vote(self, *, proposal_id: str, approve: bool) -> Response:
        return await self.s.vote(proposal_id=proposal_id, approve=approve)

    async def credits_init(self, witnesses: list[str]) -> list[str]:
        await self.s.initialize(witnesses)
        summary = self.s.local_summary()
        return [] if summary is None else sorted(summary.voters)

    async def credits_genesis(self, allocations: dict[str, int], *, threshold_permille: int) -> Response:
        return await self.s.genesis(allocations, threshold_permille=threshold_permille)


def _free_port() -> int:
    return free_ports(1, socket.SOCK_STREAM)[0]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, CreditsService]]:
    me = Identity.generate()
    data: Path = tmp_path_factory.mktemp("witness")
    hub, hub2 = MemoryLinkHub(), MemoryLinkHub()
    config = NodeConfig(data_dir=data, witness=True, raft_heartbeat_ms=50, raft_election_min_ms=200, raft_election_max_ms=400)
    service = CreditsService(config, me, lambda: hub.port(me.node_id), lambda: hub2.port(me.node_id),
                             CreditsSources(lambda: frozenset({me.node_id})), tick_s=0.02)
    app = FastAPI()
    app.include_router(credits_router(Queries(service), lambda t: t == TOKEN))  # type: ignore[arg-type]
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))

    def serve() -> None:
        async def main() -> None:
            await service.start()
            runner = asyncio.create_task(service.run(None))  # type: ignore[arg-type]
            await server.serve()
            await service.stop()
            hub.close()
            hub2.close()
            await asyncio.wait_for(runner, 30)

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}", service
    server.should_exit = True
    thread.join(60)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_found_transfer_read_and_refusals_over_http(api: tuple[str, CreditsService]) -> None:
    url, service = api
    me = service.identity.node_id
    assert httpx.post(url + "/v1/credits/witnesses/init", json={"witnesses": [me]}).status_code == 401
    assert httpx.post(url + "/v1/credits/witnesses/init", json={"witnesses": ["nope"]}, headers=auth()).json()["code"] == "invalid_node_id"
    r = httpx.post(url + "/v1/credits/witnesses/init", json={"witnesses": [me]}, headers=auth(), timeout=30)
    assert r.status_code == 200, r.text
    assert httpx.post(url + "/v1/credits/witnesses/init", json={"witnesses": [me]}, headers=auth(), timeout=30).status_code == 200  # idempotent
    assert httpx.post(url + "/v1/credits/witnesses/init", json={"witnesses": [me, OTHER]}, headers=auth(), timeout=30).json()["code"] == "already_initialized"

    deadline = time.monotonic() + 60
    while True:
        g = httpx.post(url + "/v1/credits/genesis", json={"allocations": {me: 1000 * U, OTHER: 10 * U}}, headers=auth(), timeout=30)
        if g.status_code == 200 or time.monotonic() > deadline:
            break
        assert g.json()["code"] == "no_leader"
        time.sleep(0.1)
    assert g.status_code == 200, g.text
    again = httpx.post(url + "/v1/credits/genesis", json={"allocations": {me: 5}}, headers=auth(), timeout=30)
    assert again.status_code == 409 and again.json()["code"] in ("id_conflict", "minting_closed")

    t = httpx.post(url + "/v1/credits/transfers", json={"id": "x-1", "to": OTHER, "amount": 3 * U, "fee": U, "memo": "m"}, headers=auth(), timeout=30)
    assert t.json() == {"id": "x-1", "status": "committed", "index": t.json()["index"]}
    same = httpx.post(url + "/v1/credits/transfers", json={"id": "x-1", "to": OTHER, "amount": 3 * U, "fee": U, "memo": "m"}, headers=auth(), timeout=30)
    assert same.json()["status"] == "exists"  # applied once: its record keeps the first index (below)
    poor = httpx.post(url + "/v1/credits/transfers", json={"to": OTHER, "amount": 10**6 * U}, headers=auth(), timeout=30)
    assert poor.status_code == 409 and poor.json()["code"] == "insufficient_funds"
    long_memo = httpx.post(url + "/v1/credits/transfers", json={"to": OTHER, "amount": 1, "memo": "x" * 300}, headers=auth(), timeout=30)
    assert long_memo.status_code == 422 and long_memo.json()["code"] == "memo_too_long"
    assert httpx.post(url + "/v1/credits/transfers", json={"to": "bogus", "amount": 1}, headers=auth()).json()["code"] == "invalid_node_id"
    assert httpx.post(url + "/v1/credits/transfers", json={"to": OTHER, "amount": -1}, headers=auth()).status_code == 422

    accounts = httpx.get(url + "/v1/credits/accounts", timeout=30).json()
    rows = {a["node_id"]: a for a in accounts["accounts"]}
    assert rows[OTHER]["balance"] == 13 * U and rows[me]["available"] == 996 * U and rows[me]["spent_total"] == 4 * U
    assert sum(a["balance"] for a in accounts["accounts"]) + accounts["pool"] == accounts["total_minted"] == 1010 * U
    hist = httpx.get(url + f"/v1/credits/accounts/{me}/history", params={"limit": 10}, timeout=30).json()["entries"]
    assert [(e["op_id"], e["status"], e["incoming"]) for e in hist[:2]] == [(hist[0]["op_id"], "rejected", False), ("x-1", "applied", False)]
    assert hist[1]["fee"] == U and hist[1]["counterparty"] == OTHER and hist[-1]["kind"] == "genesis"
    one = httpx.get(url + f"/v1/credits/accounts/{OTHER}", timeout=30).json()
    assert one["balance"] == 13 * U
    assert httpx.get(url + "/v1/credits/accounts/bogus").status_code == 404
    record = httpx.get(url + "/v1/credits/transfers/x-1", timeout=30).json()
    assert record["status"] == "applied" and record["index"] == t.json()["index"]
    assert httpx.get(url + "/v1/credits/transfers/none", timeout=30).status_code == 404
    summary = httpx.get(url + "/v1/credits/summary", timeout=30).json()
    assert summary["leader"] == me and summary["witnesses"] == [me] and summary["pool"] == U
    assert summary["sum_balances"] + summary["pool"] == summary["total_minted"]
    local = httpx.get(url + "/v1/credits/summary", params={"linearizable": "false"}).json()
    assert local["state_hash"] == summary["state_hash"] and local["state"] == "leader"

    p = httpx.post(url + "/v1/credits/proposals", json={"id": "p-1", "action": "mint", "target": OTHER, "amount": 7 * U}, headers=auth(), timeout=30)
    assert p.status_code == 200, p.text
    v = httpx.post(url + "/v1/credits/proposals/p-1/votes", json={"approve": True}, headers=auth(), timeout=30)
    assert v.status_code == 200, v.text
    proposal = httpx.get(url + "/v1/credits/proposals/p-1", timeout=30).json()
    assert proposal["approvals"] == 1 and proposal["action"] == "mint"
    assert httpx.get(url + "/v1/credits/proposals/none", timeout=30).status_code == 404


def test_cli_reads_and_transfers(api: tuple[str, CreditsService]) -> None:
    url, service = api
    runner = CliRunner()
    common = ["--api", url]
    me = service.identity.node_id
    init = runner.invoke(cli, ["witness", "init", me, "--token", TOKEN, *common])  # idempotent if already founded
    assert init.exit_code == 0 and "founded" in init.output, init.output
    deadline = time.monotonic() + 60
    while True:  # the genesis (or the one an earlier test gave)
        g = runner.invoke(cli, ["witness", "genesis", f"{me}=1000", f"{OTHER}=10", "--token", TOKEN, *common])
        if g.exit_code == 0 or "id_conflict" in g.output or "minting_closed" in g.output:
            break
        assert "no_leader" in g.output and time.monotonic() < deadline, g.output
        time.sleep(0.1)
    status = runner.invoke(cli, ["credits", "status", *common, "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["leader"] == service.identity.node_id
    table = runner.invoke(cli, ["credits", "status", *common])
    assert "total minted" in table.output and "leader" in table.output
    sent = runner.invoke(cli, ["credits", "transfer", OTHER, "1.25", "--id", "cli-1", "--token", TOKEN, *common])
    assert sent.exit_code == 0 and "cli-1 committed" in sent.output, sent.output
    again = runner.invoke(cli, ["credits", "transfer", OTHER, "1.25", "--id", "cli-1", "--token", TOKEN, *common])
    assert "already committed" in again.output
    bad = runner.invoke(cli, ["credits", "transfer", OTHER, "1.0000001", "--token", TOKEN, *common])
    assert bad.exit_code == 2 and "6 decimals" in bad.output
    poor = runner.invoke(cli, ["credits", "transfer", OTHER, "99999999", "--token", TOKEN, *common])
    assert poor.exit_code == 2 and "insufficient_funds" in poor.output
    balance = runner.invoke(cli, ["credits", "balance", OTHER, *common, "--json"])
    assert json.loads(balance.output)["balance"] >= 10 * U + 1_250_000
    every = runner.invoke(cli, ["credits", "balance", "--all", *common])
    assert OTHER in every.output and "total minted" in every.output
    ops_out = runner.invoke(cli, ["credits", "tx", "cli-1", *common, "--json"])
    ops: list[dict[str, Any]] = json.loads(ops_out.output)["operations"]
    assert ops[0]["status"] == "applied"
    history = runner.invoke(cli, ["credits", "history", OTHER, "--limit", "3", *common, "--json"])
    entries = json.loads(history.output)["entries"]
    assert (entries[0]["status"], entries[0]["code"]) == ("rejected", "insufficient_funds")  # the refused one, newest
    assert entries[1]["op_id"] == "cli-1" and entries[1]["incoming"] is True and entries[1]["amount"] == 1_250_000
    assert len(entries) == 3 and [e["index"] for e in entries] == sorted((e["index"] for e in entries), reverse=True)
    shown = runner.invoke(cli, ["credits", "history", OTHER, *common])
    assert "+1.25" in shown.output and "rejected: insufficient_funds" in shown.output
    wstatus = runner.invoke(cli, ["witness", "status", *common])
    assert "raft state: leader" in wstatus.output
    pid = runner.invoke(cli, ["witness", "propose", "mint", OTHER, "--amount", "2", "--token", TOKEN, *common])
    assert pid.exit_code == 0, pid.output
    voted = runner.invoke(cli, ["witness", "vote", pid.output.strip(), "--token", TOKEN, *common])
    assert voted.exit_code == 0 and "mint" in voted.output, voted.output
    down = runner.invoke(cli, ["credits", "status", "--api", "http://127.0.0.1:9"])
    assert down.exit_code == 1 and "cannot reach" in down.output
