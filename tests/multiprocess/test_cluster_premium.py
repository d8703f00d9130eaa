"""A premium summon across 3 real `vudo node` processes (all witnesses of the credit ledger, as `vudo dev` founds it).

Node 0 publishes a premium spirit it authored (price 5 credits per summon); node 2 finds it in the
marketplace, fetches it over the links and summons it: 5 credits move from node 2 to node 0 exactly
once, with no lock left open and the ledger still summing to what was minted. A second summon after a
dismiss is a second summon and pays again (pay per summon). Publishing recorded the name on the
ledger: another author's package under that name is refused on every node. A summon that fails after its lock (the
stored package was tampered with) voids the lock: nothing moves.
"""

from __future__ import annotations

import json
from typing import Any

from cluster import LocalCluster, NodeProc, metric_value, run_vudo, wait_for
from spirits.support import package
from vudo.identity import load_identity
from vudo.spirits.manifest import Tier
from vudo.spirits.package import read_package

U = 1_000_000
GENESIS = 1000 * U
PRICE = 5
DEADLINE = 120.0
NO_IMPORTS = '(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 8)))'


def auth(node: NodeProc) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.token}"}


def found(cluster: LocalCluster) -> None:
    ids = sorted(n.node_id for n in cluster.nodes)
    for n in cluster.nodes:
        r = n.post("/v1/credits/witnesses/init", json={"witnesses": ids}, headers=auth(n), timeout=30.0)
        assert r.status_code == 200, r.text
    first = cluster.nodes[0]

    def genesis() -> bool:
        r = first.post("/v1/credits/genesis", json={"allocations": {i: GENESIS for i in ids}}, headers=auth(first), timeout=40.0)
        assert r.status_code in (200, 503), r.text
        return r.status_code == 200

    wait_for(genesis, timeout=DEADLINE, what="the genesis to commit", diagnostics=cluster.diagnostics, interval=0.5)


def ledger(node: NodeProc) -> dict[str, Any]:
    r = node.get("/v1/credits/accounts", timeout=40.0)
    assert r.status_code == 200, r.text
    out = r.json()
    assert sum(a["balance"] for a in out["accounts"]) + out["pool"] == out["total_minted"] == 3 * GENESIS
    return {a["node_id"]: a for a in out["accounts"]}


def test_a_premium_summon_moves_credits_exactly_once(make_cluster: Any) -> None:
    cluster: LocalCluster = make_cluster(3)
    cluster.init()
    publisher, _, summoner = cluster.nodes
    (summoner.data_dir / "vudo.toml").write_text('[spirits.allow.fancy]\nnetwork = "none"\ncompute = "minimal"\ndisplay = "none"\n')
    for node in cluster.nodes:
        node.argv += ["--witness"]
    cluster.start()
    found(cluster)

    author = load_identity(publisher.data_dir)
    data = package(author, NO_IMPORTS, name="fancy", tier=Tier("premium", PRICE), exports=("memory", "alloc"), imports=())
    sha = read_package(data).sha256
    r = publisher.post("/v1/spirits", content=data, headers={**auth(publisher), "Content-Type": "application/octet-stream"},
                       timeout=90.0)  # publishing waits for the ledger to record the name
    assert r.status_code == 201, r.text

    # the publisher's install recorded the name on the ledger: another author cannot take it, on any node
    squatter = cluster.nodes[1]
    squat = package(load_identity(squatter.data_dir), NO_IMPORTS, name="fancy", rev=9, exports=("memory", "alloc"), imports=())
    for node in (squatter, summoner):
        refused = node.post("/v1/spirits", content=squat, headers={**auth(node), "Content-Type": "application/octet-stream"}, timeout=60.0)
        assert refused.status_code == 409 and refused.json()["reason"] == "name_owned", refused.text
        assert publisher.node_id in refused.json()["detail"]

    def offered() -> bool:
        found = run_vudo("spirit", "search", "fancy", "--data-dir", str(summoner.data_dir), "--json")
        assert found.returncode == 0, found.stderr
        offers = json.loads(found.stdout)["offers"]
        return bool(offers) and offers[0]["sha256"] == sha and offers[0]["tier"] == "premium" and offers[0]["price"] == PRICE

    wait_for(offered, timeout=DEADLINE, what="node 2 to see node 0 offer the premium spirit", diagnostics=summoner.describe_log)
    wait_for(lambda: publisher.node_id in {link["peer"] for link in summoner.get("/v1/links").json()["links"]},
             timeout=DEADLINE, what="node 2 to link with node 0", diagnostics=summoner.describe_log)
    fetched = run_vudo("spirit", "fetch", "fancy", "--data-dir", str(summoner.data_dir), timeout=180)
    assert fetched.returncode == 0, fetched.stderr

    before = ledger(summoner)
    assert before[summoner.node_id]["balance"] == before[publisher.node_id]["balance"] == GENESIS

    summoned = summoner.post("/v1/spirits/fancy/summon", headers=auth(summoner), timeout=60.0)
    assert summoned.status_code == 200 and summoned.json()["state"] == "running", summoned.text
    after = ledger(summoner)
    assert after[summoner.node_id]["balance"] == GENESIS - PRICE * U and after[summoner.node_id]["locked"] == 0
    assert after[publisher.node_id]["balance"] == GENESIS + PRICE * U
    assert all(a["locked"] == 0 for a in after.values())
    assert ledger(publisher) == after  # the same committed state read through another node

    # pay per summon: dismissing and summoning again is a second summon, paid once more
    assert summoner.post("/v1/spirits/fancy/dismiss", headers=auth(summoner)).json()["state"] == "dismissed"
    again = summoner.post("/v1/spirits/fancy/summon", headers=auth(summoner), timeout=60.0)
    assert again.status_code == 200, again.text
    twice = ledger(summoner)
    assert twice[summoner.node_id]["balance"] == GENESIS - 2 * PRICE * U and twice[publisher.node_id]["balance"] == GENESIS + 2 * PRICE * U
    assert summoner.post("/v1/spirits/fancy/dismiss", headers=auth(summoner)).json()["state"] == "dismissed"

    # a summon that fails after its lock (the stored package no longer matches) voids the lock: nothing moves
    stored = summoner.data_dir / "spirits" / "fancy" / "package.spirit"
    tampered = bytearray(stored.read_bytes())
    tampered[len(tampered) // 2] ^= 0x01
    stored.write_bytes(bytes(tampered))
    failed = summoner.post("/v1/spirits/fancy/summon", headers=auth(summoner), timeout=60.0)
    assert failed.status_code in (400, 409), failed.text
    assert ledger(summoner) == twice
    history = summoner.get(f"/v1/credits/accounts/{summoner.node_id}/history", timeout=40.0).json()
    kinds = [e["kind"] for e in history["entries"] if e["status"] == "applied"]
    assert kinds.count("lock") == 3 and kinds.count("post") == 2 and kinds.count("void") == 1, history
    metrics = summoner.metrics()
    assert metric_value(metrics, "vudo_spirit_payments_total", {"outcome": "paid"}) == 2.0
    assert metric_value(metrics, "vudo_spirit_payments_total", {"outcome": "voided"}) == 1.0
    assert not json.loads((summoner.data_dir / "spirits" / "payments.json").read_text())["open"]
