"""Credit ledger benchmark: committed transfers/s and latency on a 3-witness cluster,
beside a 3-member etcd cluster doing the equivalent compare-and-swap transfer.

VUDO side: three ``vudo._core.Ledger`` members in this process, linked by the
in-memory RPC host, each with its durable redb file on disk (every commit is
fsync'd). Transfers between 16 funded accounts are signed in Python before
the clock starts; each is submitted to the leader and counted when its
"committed" event arrives (applied on the leader, replicated to a majority;
Ed25519 verified by every member on apply).

Anchor: Debian's etcd 3.4 (``apt-get install etcd-server``), three members on
loopback ports, each with its data dir on the same disk (WAL fsync per
commit). One transfer = read both balances (one range request per key), then
one transaction: if both keys' mod_revisions are unchanged, write both new
balances and the transfer id; on a lost race, read again and retry. It
goes through etcd's HTTP/JSON gateway with httpx (no signatures involved).

With ``--real``, the same transfers also go through real ``vudo node``
processes on loopback (3 witnesses + 1 plain node, started like
``vudo dev``): each is an authenticated ``POST /v1/credits/transfers``
(signed by the node), carried as Raft over the libp2p links, once sent to
the leader's API and once to the plain node's API (forwarded to the leader
on ``/vudo/credits/1``).

Both run with the same number of transfers in flight. The table reports
transfers/s and p50/p99 submit-to-commit latency, and the ratio VUDO / etcd
measured in this run. A benchmark, not a test: it asserts nothing.

    .venv/bin/python bench/ledger_bench.py --transfers 2000 --concurrency 1,32 [--real] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vudo import _core
from vudo.credits import UNITS_PER_CREDIT, CreditTransaction, LedgerClient
from vudo.identity import Identity

ACCOUNTS = 16
START_BALANCE = 1_000_000 * UNITS_PER_CREDIT


@dataclass(frozen=True)
class Result:
    system: str
    concurrency: int
    transfers: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    retries: int = 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(system: str, concurrency: int, latencies: list[float], seconds: float, retries: int = 0) -> Result:
    return Result(
        system=system,
        concurrency=concurrency,
        transfers=len(latencies),
        seconds=seconds,
        per_second=len(latencies) / seconds,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        retries=retries,
    )


async def run_pool(jobs: list[object], concurrency: int, one: object) -> tuple[list[float], float]:
    """Run ``one(job)`` for every job with ``concurrency`` in flight; per-job latencies and wall time."""
    queue: asyncio.Queue[object] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    latencies: list[float] = []

    async def worker() -> None:
        while not queue.empty():
            job = queue.get_nowait()
            t0 = time.perf_counter()
            await one(job)  # type: ignore[operator]
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - start


# ---------------------------------------------------------------- VUDO ledger


async def until(pred: object, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def bench_ledger(root: Path, transfers: int, levels: list[int], rng: random.Random) -> list[Result]:
    witnesses = [Identity.from_private_key(Ed25519PrivateKey.generate()) for _ in range(3)]
    people = [Identity.from_private_key(Ed25519PrivateKey.generate()) for _ in range(ACCOUNTS)]
    ids = [w.node_id for w in witnesses]
    net = _core.LedgerNetwork()
    ledgers = {
        w.node_id: _core.Ledger(peer_id=w.node_id, data_dir=root / f"vudo{i}", bootstrap_peers=ids, network=net)
        for i, w in enumerate(witnesses)
    }
    results: list[Result] = []
    clients: dict[str, LedgerClient] = {}
    try:
        clients = {p: LedgerClient(lg) for p, lg in ledgers.items()}
        await clients[ids[0]].initialize(ids)
        await until(lambda: all(lg.summary().leader for lg in ledgers.values()), "a leader")
        leader = ledgers[ids[0]].summary().leader
        assert leader is not None
        client = clients[leader]
        await client.genesis({p.node_id: START_BALANCE for p in people}, ids, timestamp=0)
        for level in levels:
            batch = []
            for i in range(transfers):
                src, dst = rng.sample(people, 2)
                tx = CreditTransaction(
                    id=f"c{level}-{i}", from_=src.node_id, to=dst.node_id, amount=rng.randint(1, 1000),
                    fee=1, memo="bench", timestamp=i,
                )
                batch.append(tx.signed(src))

            async def one(tx: object) -> None:
                assert isinstance(tx, CreditTransaction)
                committed = await client.transfer(tx)
                assert committed.outcome == "applied"

            latencies, seconds = await run_pool(batch, level, one)
            results.append(summarize("vudo ledger (openraft + redb)", level, latencies, seconds))
        summary = ledgers[leader].summary()
        assert summary.sum_balances + summary.pool == summary.total_minted
    finally:
        for peer, lg in ledgers.items():
            if peer in clients:
                clients[peer].close()
            lg.shutdown()
    return results


# ------------------------------------------------------- VUDO over real links


async def bench_real(root: Path, transfers: int, levels: list[int]) -> list[Result]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from cluster import LocalCluster, wait_for

    results: list[Result] = []
    with LocalCluster(root / "real", 4, gossip_interval_ms=100) as cluster:
        for node in cluster.nodes[:3]:
            node.argv += ["--witness"]
        cluster.start()
        witnesses = cluster.nodes[:3]
        ids = sorted(w.node_id for w in witnesses)
        for w in witnesses:
            r = w.post("/v1/credits/witnesses/init", json={"witnesses": ids}, headers={"Authorization": f"Bearer {w.token}"}, timeout=30)
            r.raise_for_status()
        allocations = {n.node_id: START_BALANCE for n in cluster.nodes}

        def genesis() -> bool:
            w = witnesses[0]
            r = w.post("/v1/credits/genesis", json={"allocations": allocations}, headers={"Authorization": f"Bearer {w.token}"}, timeout=60)
            return r.status_code == 200

        wait_for(genesis, timeout=120, what="the genesis", interval=0.5)

        def leader() -> object:
            for w in witnesses:
                s = w.get("/v1/credits/summary", params={"linearizable": "false"}).json()
                if s.get("state") == "leader":
                    return w
            return None

        lead = wait_for(leader, timeout=60, what="a leader")
        plain = cluster.nodes[3]
        targets = [(lead, "vudo nodes: API of the leader, Raft over links"), (plain, "vudo nodes: API of a plain node, forwarded")]
        for node, label in targets:
            for level in levels:
                latencies, seconds = await _post_transfers(node, [n.node_id for n in cluster.nodes if n is not node], level, transfers)
                results.append(summarize(label, level, latencies, seconds))
    return results


async def _post_transfers(node: Any, others: list[str], level: int, transfers: int) -> tuple[list[float], float]:
    async with httpx.AsyncClient(timeout=60.0, headers={"Authorization": f"Bearer {node.token}"}) as http:
        async def one(job: object) -> None:
            i = int(job)  # type: ignore[call-overload]
            body = {"id": f"r{node.index}-{level}-{i}", "to": others[i % len(others)], "amount": 1000 + i, "fee": 1}
            r = await http.post(node.api + "/v1/credits/transfers", json=body)
            assert r.status_code == 200 and r.json()["status"] == "committed", r.text

        return await run_pool(list(range(transfers)), level, one)


# ----------------------------------------------------------------------- etcd


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class EtcdCluster:
    def __init__(self, root: Path, base_port: int) -> None:
        self.root = root
        self.names = [f"e{i}" for i in range(3)]
        self.client_ports = [base_port + i for i in range(3)]
        self.peer_ports = [base_port + 10 + i for i in range(3)]
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(self.names, self.peer_ports, strict=True))
        for name, cport, pport in zip(self.names, self.client_ports, self.peer_ports, strict=True):
            log = (self.root / f"{name}.log").open("wb")
            self.procs.append(
                subprocess.Popen(
                    [
                        "etcd", "--name", name, "--data-dir", str(self.root / name),
                        "--listen-client-urls", f"http://127.0.0.1:{cport}",
                        "--advertise-client-urls", f"http://127.0.0.1:{cport}",
                        "--listen-peer-urls", f"http://127.0.0.1:{pport}",
                        "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
                        "--initial-cluster", initial, "--initial-cluster-state", "new",
                        "--initial-cluster-token", "vudo-bench",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def url(self, i: int = 0) -> str:
        return f"http://127.0.0.1:{self.client_ports[i]}"


async def bench_etcd(root: Path, transfers: int, levels: list[int], rng: random.Random, base_port: int) -> list[Result]:
    cluster = EtcdCluster(root, base_port)
    cluster.start()
    results: list[Result] = []
    try:
        limits = httpx.Limits(max_connections=max(levels) + 4)
        async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    health = [(await http.get(cluster.url(i) + "/health")).json() for i in range(3)]
                    if all(h.get("health") == "true" for h in health):
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("etcd did not become healthy")
                await asyncio.sleep(0.2)
            base = cluster.url(0)
            accounts = [f"acct/{i:02d}" for i in range(ACCOUNTS)]
            for key in accounts:
                await http.post(base + "/v3/kv/put", json={"key": b64(key), "value": b64(str(START_BALANCE))})
            retries = 0

            async def read(key: str) -> tuple[int, int]:
                response = (await http.post(base + "/v3/kv/range", json={"key": b64(key)})).json()
                kv = response["kvs"][0]
                return int(base64.b64decode(kv["value"])), int(kv["mod_revision"])

            for level in levels:
                jobs = [(f"c{level}-{i}", *rng.sample(accounts, 2), rng.randint(1, 1000)) for i in range(transfers)]

                async def one(job: object) -> None:
                    nonlocal retries
                    tx_id, src, dst, amount = job  # type: ignore[misc]
                    while True:
                        (src_bal, src_rev), (dst_bal, dst_rev) = await read(src), await read(dst)
                        if src_bal < amount + 1:
                            return
                        body = {
                            "compare": [
                                {"key": b64(src), "target": "MOD", "result": "EQUAL", "mod_revision": str(src_rev)},
                                {"key": b64(dst), "target": "MOD", "result": "EQUAL", "mod_revision": str(dst_rev)},
                                {"key": b64("tx/" + tx_id), "target": "VERSION", "result": "EQUAL", "version": "0"},
                            ],
                            "success": [
                                {"request_put": {"key": b64(src), "value": b64(str(src_bal - amount - 1))}},
                                {"request_put": {"key": b64(dst), "value": b64(str(dst_bal + amount))}},
                                {"request_put": {"key": b64("tx/" + tx_id), "value": b64(f"{src}>{dst}:{amount}")}},
                            ],
                        }
                        response = (await http.post(base + "/v3/kv/txn", json=body)).json()
                        if response.get("succeeded"):
                            return
                        retries += 1

                before = retries
                latencies, seconds = await run_pool(jobs, level, one)
                results.append(summarize("etcd 3.4 CAS txn (anchor)", level, latencies, seconds, retries - before))
    finally:
        cluster.stop()
    return results


def table(results: list[Result]) -> str:
    lines = [
        "| system | in flight | transfers | transfers/s | p50 ms | p99 ms | CAS retries |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.system} | {r.concurrency} | {r.transfers} | {r.per_second:.0f} | {r.p50_ms:.1f} | "
            f"{r.p99_ms:.1f} | {r.retries} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transfers", type=int, default=1000)
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--etcd-port", type=int, default=23790)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--real", action="store_true", help="also through real vudo node processes (HTTP API, Raft over links)")
    args = parser.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    root = Path(tempfile.mkdtemp(prefix="ledger-bench-", dir="/var/tmp"))
    try:
        ours = asyncio.run(bench_ledger(root, args.transfers, levels, random.Random(args.seed)))
        real = asyncio.run(bench_real(root, args.transfers, levels)) if args.real else []
        anchor: list[Result] = []
        if shutil.which("etcd"):
            anchor = asyncio.run(bench_etcd(root, args.transfers, levels, random.Random(args.seed), args.etcd_port))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results = ours + real + anchor
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return
    print(table(results))
    print()
    if not anchor:
        print("etcd not installed (apt-get install -y etcd-server): the anchor is missing from this run.")
        return
    print("| in flight | transfers/s ratio vudo/etcd | p50 ratio vudo/etcd | p99 ratio vudo/etcd |")
    print("|---:|---:|---:|---:|")
    for ours_r, etcd_r in zip(ours, anchor, strict=True):
        print(
            f"| {ours_r.concurrency} | {ours_r.per_second / etcd_r.per_second:.2f} | "
            f"{ours_r.p50_ms / etcd_r.p50_ms:.2f} | {ours_r.p99_ms / etcd_r.p99_ms:.2f} |"
        )
    if real:
        print()
        print("| real nodes | in flight | transfers/s ratio vs etcd | p50 ratio vs etcd | p99 ratio vs etcd |")
        print("|---|---:|---:|---:|---:|")
        by_level = {r.concurrency: r for r in anchor}
        for r in real:
            e = by_level[r.concurrency]
            print(f"| {r.system} | {r.concurrency} | {r.per_second / e.per_second:.2f} | {r.p50_ms / e.p50_ms:.2f} | {r.p99_ms / e.p99_ms:.2f} |")


if __name__ == "__main__":
    main()
