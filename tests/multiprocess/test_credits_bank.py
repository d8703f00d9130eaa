"""The bank test: credits between 5 real `vudo node` processes (3 witnesses) under faults.

Every node sends random transfers through its own API (concurrently, each
with its own id, retried with the same id when the answer is lost) while
readers check every successful read, and a nemesis, one fault at a time and
each time waiting until transfers commit again:

1. SIGKILLs the Raft leader, waits for a new leader, restarts the old one;
2. SIGSTOPs a follower witness, then SIGCONTs it;
3. partitions a follower witness: it drops every Raft frame to and from the
   other witnesses (``raft_fault_drop_file``: real frames dropped inside
   the node), then heals.

Checks: every successful read sums to the total minted (balances + pool) and
no balance is below its locks; after healing, every acknowledged transfer is
applied, every transfer applied (acknowledged or not) moves exactly its
amount once (final balances = genesis + applied transfers), and every
replica's state hash is the same. Waits are on conditions, never on time.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cluster import LocalCluster, NodeProc, metric_value, wait_for

U = 1_000_000
GENESIS = 1000 * U
N, K = 5, 3
DEADLINE = 120.0


def auth(node: NodeProc) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.token}"}


@dataclass
class Ledger:
    """What the clients saw."""

    acked: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # id -> (from, to, amount)
    unknown: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # code -> count
    reads: int = 0
    bad_reads: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)


def local_summary(node: NodeProc) -> dict[str, Any] | None:
    try:
        r = node.get("/v1/credits/summary", params={"linearizable": "false"}, timeout=5.0)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def leader_of(witnesses: list[NodeProc]) -> NodeProc | None:
    for w in witnesses:
        if not w.running:
            continue
        s = local_summary(w)
        if s is not None and s["state"] == "leader":
            return w
    return None


def client(node: NodeProc, ids: list[str], seen: Ledger, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    http = httpx.Client(timeout=40.0)
    n = 0
    try:
        while not stop.is_set():
            n += 1
            op_id = f"{node.index}-{n}"
            to = rng.choice([i for i in ids if i != node.node_id])
            amount = rng.randint(1, 20) * U
            body = {"id": op_id, "to": to, "amount": amount, "memo": f"bank {op_id}"}
            for _attempt in range(60):  # the same id every time: a retry can never pay twice
                if stop.is_set() and _attempt > 0:
                    break
                try:
                    r = http.post(node.api + "/v1/credits/transfers", json=body, headers=auth(node))
                except httpx.HTTPError:
                    time.sleep(0.5)  # the node is down or stopped: try again when it is back
                    continue
                if r.status_code == 200:
                    with seen.lock:
                        seen.acked[op_id] = (node.node_id, to, amount)
                    break
                code = r.json().get("code", str(r.status_code))
                if r.status_code == 503:
                    time.sleep(0.2)
                    continue
                with seen.lock:
                    seen.refused[code] = seen.refused.get(code, 0) + 1
                break
            else:
                with seen.lock:
                    seen.unknown[op_id] = (node.node_id, to, amount)
            if op_id not in seen.acked and op_id not in seen.unknown and stop.is_set():
                with seen.lock:
                    seen.unknown[op_id] = (node.node_id, to, amount)
    finally:
        http.close()


def reader(nodes: list[NodeProc], seen: Ledger, stop: threading.Event, total: int) -> None:
    rng = random.Random(99)
    http = httpx.Client(timeout=40.0)
    try:
        while not stop.is_set():
            node = rng.choice(nodes)
            try:
                r = http.get(node.api + "/v1/credits/accounts")
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if r.status_code != 200:
                time.sleep(0.1)
                continue
            data = r.json()
            balances = sum(a["balance"] for a in data["accounts"])
            problems = []
            if balances + data["pool"] != total or data["total_minted"] != total:
                problems.append(f"sum {balances} + pool {data['pool']} != minted {data['total_minted']} / {total}")
            problems += [f"{a['node_id']} locked {a['locked']} > balance {a['balance']}" for a in data["accounts"] if a["locked"] > a["balance"]]
            with seen.lock:
                seen.reads += 1
                seen.bad_reads += problems
    finally:
        http.close()


def found(cluster: LocalCluster, witnesses: list[NodeProc]) -> None:
    ids = sorted(w.node_id for w in witnesses)
    for w in witnesses:
        r = w.post("/v1/credits/witnesses/init", json={"witnesses": ids}, headers=auth(w), timeout=30.0)
        assert r.status_code == 200, r.text
    allocations = {n.node_id: GENESIS for n in cluster.nodes}

    def genesis() -> bool:
        r = witnesses[0].post("/v1/credits/genesis", json={"allocations": allocations}, headers=auth(witnesses[0]), timeout=40.0)
        assert r.status_code in (200, 503), r.text
        return r.status_code == 200

    wait_for(genesis, timeout=DEADLINE, what="the genesis to commit", diagnostics=cluster.diagnostics, interval=0.5)


def progress(seen: Ledger, cluster: LocalCluster, what: str, more: int = 5) -> None:
    start = seen.acked_count()
    wait_for(lambda: seen.acked_count() >= start + more, timeout=DEADLINE, what=f"{more} more transfers to commit {what}",
             diagnostics=cluster.diagnostics, interval=0.2)


def test_bank_under_leader_kill_pause_and_partition(make_cluster: Any, tmp_path: Path) -> None:
    cluster: LocalCluster = make_cluster(N)
    drop_files = {}
    for node in cluster.nodes[:K]:
        drop_files[node.index] = tmp_path / f"drop-{node.index}"
        drop_files[node.index].write_text("")
        node.argv += ["--witness", "--raft-fault-drop-file", str(drop_files[node.index])]
    cluster.start()
    witnesses = cluster.nodes[:K]
    found(cluster, witnesses)
    total = GENESIS * N
    ids = [n.node_id for n in cluster.nodes]
    seen = Ledger()
    stop = threading.Event()
    threads = [threading.Thread(target=client, args=(n, ids, seen, stop, i), daemon=True) for i, n in enumerate(cluster.nodes)]
    threads.append(threading.Thread(target=reader, args=(cluster.nodes, seen, stop, total), daemon=True))
    for t in threads:
        t.start()
    try:
        progress(seen, cluster, "before any fault", more=10)

        # 1. SIGKILL the leader; a new one takes over; the old one comes back and catches up.
        old = wait_for(lambda: leader_of(witnesses), timeout=DEADLINE, what="a leader", diagnostics=cluster.diagnostics)
        old.kill()
        wait_for(lambda: (lambda new: new is not None and new is not old)(leader_of(witnesses)), timeout=DEADLINE,
                 what="a new leader after the kill", diagnostics=cluster.diagnostics)
        progress(seen, cluster, "without the killed leader")
        old.restart()
        cluster.wait_ready([old])
        progress(seen, cluster, "after the old leader restarted")

        # 2. SIGSTOP a follower witness, then let it go.
        leader = wait_for(lambda: leader_of(witnesses), timeout=DEADLINE, what="a leader", diagnostics=cluster.diagnostics)
        paused = next(w for w in witnesses if w is not leader)
        paused.pause()
        try:
            progress(seen, cluster, "with a witness paused")
        finally:
            paused.resume()

        # 3. Partition a follower witness from the other witnesses (its Raft frames dropped both ways), then heal.
        leader = wait_for(lambda: leader_of(witnesses), timeout=DEADLINE, what="a leader", diagnostics=cluster.diagnostics)
        cut = next(w for w in witnesses if w is not leader)
        drop_files[cut.index].write_text("\n".join(w.node_id for w in witnesses if w is not cut) + "\n")
        progress(seen, cluster, "with a witness partitioned")

        def cut_off() -> bool:  # the partition is real: frames are dropped and the cut witness falls behind
            dropped = metric_value(cut.metrics(), "vudo_credits_raft_frames_total", {"fate": "fault_dropped"})
            mine, theirs = local_summary(cut), local_summary(leader)
            return dropped > 0 and mine is not None and theirs is not None and theirs["last_applied"] >= mine["last_applied"] + 5

        wait_for(cut_off, timeout=DEADLINE, what="the partitioned witness to fall behind", diagnostics=cluster.diagnostics)
        drop_files[cut.index].write_text("")
        progress(seen, cluster, "after healing")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=90)
    assert not any(t.is_alive() for t in threads), "a client thread never finished"

    # Every replica converges on the same state.
    def converged() -> list[dict[str, Any]] | None:
        summaries = [local_summary(w) for w in witnesses]
        if any(s is None for s in summaries):
            return None
        hashes = {s["state_hash"] for s in summaries if s is not None}
        applied = {s["last_applied"] for s in summaries if s is not None}
        return summaries if len(hashes) == 1 and len(applied) == 1 else None  # type: ignore[return-value]

    wait_for(converged, timeout=DEADLINE, what="every replica to reach the same state hash", diagnostics=cluster.diagnostics)

    assert seen.bad_reads == [], seen.bad_reads[:5]
    assert seen.reads > 0
    assert len(seen.acked) >= 30, (len(seen.acked), seen.refused)
    # Every acknowledged transfer is applied; every transfer applied moved its amount exactly once.
    expected = {i: GENESIS for i in ids}
    applied = 0
    for op_id, (src, dst, amount) in sorted({**seen.unknown, **seen.acked}.items()):
        r = cluster.nodes[0].get(f"/v1/credits/transfers/{op_id}", timeout=30.0)
        if op_id in seen.acked:
            assert r.status_code == 200, (op_id, r.text)
        if r.status_code == 404:
            continue
        assert r.status_code == 200, (op_id, r.text)
        record = r.json()
        if op_id in seen.acked:
            assert record["status"] == "applied", record
        if record["status"] == "applied":
            applied += 1
            expected[src] -= amount
            expected[dst] += amount
    accounts = {a["node_id"]: a for a in cluster.nodes[3].get("/v1/credits/accounts", timeout=30.0).json()["accounts"]}
    assert {i: accounts[i]["balance"] for i in ids} == expected
    assert applied >= len(seen.acked)
    print(f"\nbank: {len(seen.acked)} acknowledged, {len(seen.unknown)} unacknowledged ({applied} applied in all), "
          f"{seen.reads} reads checked, refusals {seen.refused}")
