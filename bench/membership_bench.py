"""Membership benchmark: convergence and failure-detection time of real nodes.

For each cluster size N it starts N ``python -m vudo node`` processes on
loopback (in parallel, all seeded to node 0 and node 1) and measures:

* convergence: seconds from the moment every process is up (its API answers
  ``/livez``; gossip is bound before the API) until every node lists all N
  nodes as alive+verified. Also from the last process *spawn*, which
  includes interpreter start-up.
* detection: a non-seed node is SIGKILLed; seconds until every survivor
  lists it as dead.

Both are also given in gossip rounds (seconds / gossip interval), printed
beside the anchor: chitchat's published bound, "death detected in < 10 s at
100 nodes with a 300 ms gossip interval", with the ratio measured/anchor.

Nodes are polled concurrently (httpx, async); a node that has reached the
target state is not polled again, so the measurement disturbs the cluster
less as it completes. This is a benchmark, not a test: it asserts nothing.

    .venv/bin/python bench/membership_bench.py --sizes 10,30,60 --interval-ms 300 [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cluster import LocalCluster  # noqa: E402

ANCHOR_TEXT = "chitchat's published bound: death detected in < 10 s at 100 nodes with a 300 ms gossip interval"
ANCHOR_DETECTION_S = 10.0
ANCHOR_NODES = 100
ANCHOR_INTERVAL_MS = 300


async def _first_success(client: httpx.AsyncClient, urls: list[str], path: str, ok: Any, deadline: float,
                         poll_s: float, concurrency: int) -> dict[str, float]:
    """url -> wall-clock time at which ``ok(response)`` first held. Stops polling a url once it holds."""
    done: dict[str, float] = {}
    sem = asyncio.Semaphore(concurrency)

    async def one(url: str) -> None:
        async with sem:
            try:
                response = await client.get(url + path)
            except httpx.HTTPError:
                return
        if ok(response):
            done.setdefault(url, time.time())

    while len(done) < len(urls) and time.time() < deadline:
        started = time.time()
        await asyncio.gather(*(one(u) for u in urls if u not in done))
        await asyncio.sleep(max(0.0, poll_s - (time.time() - started)))
    return done


def _members_ok(ids: set[str], want: str, subject: str | None = None) -> Any:
    def ok(response: httpx.Response) -> bool:
        if response.status_code != 200:
            return False
        members = {m["node_id"]: m for m in response.json()["members"]}
        if subject is not None:
            m = members.get(subject)
            return m is not None and m["status"] == want
        return ids <= set(members) and all(members[i]["status"] == "alive" and members[i]["verified"] for i in ids)

    return ok


async def _generation(client: httpx.AsyncClient, api: str, node_id: str) -> int:
    members = (await client.get(api + "/v1/members")).json()["members"]
    return int(next(m["generation"] for m in members if m["node_id"] == node_id))


def _rejoined_ok(node_id: str, old_generation: int) -> Any:
    def ok(response: httpx.Response) -> bool:
        if response.status_code != 200:
            return False
        m = next((m for m in response.json()["members"] if m["node_id"] == node_id), None)
        return m is not None and m["status"] == "alive" and m["verified"] and m["generation"] > old_generation

    return ok


def _gossip_started_at(log: Path, start_number: int, deadline: float) -> float:
    """Wall-clock time of the "gossiping on" log line of the node's ``start_number``-th start."""
    marker = f"===== harness: start #{start_number}:"
    while time.time() < deadline:
        text = log.read_text(errors="replace")
        _, found, after = text.partition(marker)
        for line in after.splitlines() if found else ():
            if " gossiping on " in line:
                stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                return stamp.timestamp()
        time.sleep(0.05)
    raise RuntimeError(f"no 'gossiping on' line in {log}")


async def measure(size: int, interval_ms: int, root: Path, timeout: float, poll_s: float, concurrency: int) -> dict[str, Any]:
    cluster = LocalCluster(root / f"n{size}", size, gossip_interval_ms=interval_ms, seeds=2,
                           extra_args=["--bootstrap-timeout-s", str(max(600.0, timeout))])
    result: dict[str, Any] = {"nodes": size, "interval_ms": interval_ms}
    try:
        cluster.init()
        t_first_spawn = time.time()
        for node in cluster.nodes:
            node.start()
        t_last_spawn = time.time()
        urls = [n.api for n in cluster.nodes]
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
            up = await _first_success(client, urls, "/livez", lambda r: r.status_code == 200,
                                      time.time() + timeout, poll_s, concurrency)
            if len(up) < size:
                dead = [str(n) for n in cluster.nodes if not n.running]
                raise RuntimeError(f"only {len(up)}/{size} nodes came up (exited: {dead})\n{cluster.diagnostics(10)}")
            t_all_up = max(up.values())
            ids = {n.node_id for n in cluster.nodes}
            converged = await _first_success(client, urls, "/v1/members", _members_ok(ids, "alive"),
                                             time.time() + timeout, poll_s, concurrency)
            if len(converged) < size:
                raise RuntimeError(f"only {len(converged)}/{size} nodes converged within {timeout}s\n{cluster.diagnostics(10)}")
            t_conv = max(converged.values())
            result.update(
                startup_s=t_all_up - t_first_spawn,
                converge_s=max(0.0, t_conv - t_all_up),
                converge_from_spawn_s=t_conv - t_last_spawn,
            )

            victim = cluster.nodes[-1]
            survivors = [n.api for n in cluster.nodes[:-1]]
            t_kill = time.time()
            victim.kill()
            detected = await _first_success(client, survivors, "/v1/members", _members_ok(ids, "dead", victim.node_id),
                                            time.time() + timeout, poll_s, concurrency)
            if len(detected) < len(survivors):
                raise RuntimeError(f"only {len(detected)}/{len(survivors)} survivors saw the kill within {timeout}s")
            times = sorted(t - t_kill for t in detected.values())
            result.update(detect_s=times[-1], detect_first_s=times[0], detect_median_s=times[len(times) // 2])

            # rejoin: the killed node comes back (same id, new generation); from the moment its
            # gossip socket is bound (its log line) until every survivor lists it alive+verified
            old_generation = await _generation(client, cluster.nodes[0].api, victim.node_id)
            victim.restart()
            t_gossip = await asyncio.to_thread(_gossip_started_at, victim.log_path, victim.starts, time.time() + timeout)
            rejoined = await _first_success(client, survivors, "/v1/members",
                                            _rejoined_ok(victim.node_id, old_generation),
                                            time.time() + timeout, poll_s, concurrency)
            if len(rejoined) < len(survivors):
                raise RuntimeError(f"only {len(rejoined)}/{len(survivors)} survivors saw the rejoin within {timeout}s")
            result.update(rejoin_s=max(rejoined.values()) - t_gossip)
    finally:
        cluster.close()
    interval = interval_ms / 1000
    for key in ("converge_s", "converge_from_spawn_s", "detect_s", "rejoin_s"):
        if key in result:
            result[key[:-2] + "_rounds"] = result[key] / interval
    if "detect_s" in result:
        result["detect_vs_anchor"] = result["detect_s"] / ANCHOR_DETECTION_S
    return result


def render(results: list[dict[str, Any]], interval_ms: int) -> str:
    head = ["N", "startup s", "converge s", "rounds", "from spawn s", "rounds", "detect s", "rounds",
            "first/median s", "vs anchor", "rejoin s", "rounds"]
    rows = []
    for r in results:
        if "error" in r:
            rows.append([str(r["nodes"]), "error: " + r["error"].splitlines()[0][:80]] + [""] * (len(head) - 2))
            continue
        rows.append([
            str(r["nodes"]), f"{r['startup_s']:.1f}", f"{r['converge_s']:.2f}", f"{r['converge_rounds']:.1f}",
            f"{r['converge_from_spawn_s']:.1f}", f"{r['converge_from_spawn_rounds']:.0f}",
            f"{r['detect_s']:.2f}", f"{r['detect_rounds']:.1f}",
            f"{r['detect_first_s']:.2f}/{r['detect_median_s']:.2f}", f"{r['detect_vs_anchor']:.2f}x",
            f"{r['rejoin_s']:.2f}", f"{r['rejoin_rounds']:.1f}",
        ])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = [f"membership benchmark, gossip interval {interval_ms} ms, local processes on {_cpus()} CPU(s)", ""]
    lines.append("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
    lines += [
        "",
        f"anchor: {ANCHOR_TEXT}",
        f"        = {ANCHOR_DETECTION_S / (ANCHOR_INTERVAL_MS / 1000):.1f} rounds; 'vs anchor' = measured detect s / {ANCHOR_DETECTION_S:.0f} s",
        "startup: first spawn to every API answering /livez. converge: from every process up (/livez)",
        "  to every node listing all N alive+verified; 'from spawn': the same from the last process spawn.",
        "detect: from SIGKILL of one node to every survivor listing it dead (slowest; first/median survivor).",
        "rejoin: the killed node restarted; from its gossip socket bound (log) to every survivor listing",
        "  its new generation alive+verified.",
    ]
    return "\n".join(lines)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,30,60", help="comma-separated cluster sizes [10,30,60]")
    parser.add_argument("--interval-ms", type=int, default=ANCHOR_INTERVAL_MS, help="gossip interval [300, as the anchor]")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up on a phase after this many seconds [300]")
    parser.add_argument("--poll-ms", type=int, default=200, help="API polling period [200]")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent API requests [16]")
    parser.add_argument("--dir", help="keep node data and logs here [a temporary directory, removed]")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="vudo-bench-"))
    results = []
    try:
        for size in sizes:
            print(f"measuring N={size} ...", file=sys.stderr, flush=True)
            try:
                r = asyncio.run(measure(size, args.interval_ms, root, args.timeout, args.poll_ms / 1000, args.concurrency))
            except RuntimeError as err:
                r = {"nodes": size, "interval_ms": args.interval_ms, "error": str(err)}
                print(str(err), file=sys.stderr)
            results.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps({"anchor": {"text": ANCHOR_TEXT, "detect_s": ANCHOR_DETECTION_S, "nodes": ANCHOR_NODES,
                                     "interval_ms": ANCHOR_INTERVAL_MS}, "results": results}, indent=2))
    else:
        print(render(results, args.interval_ms))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
