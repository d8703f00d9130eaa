"""Link healing benchmark: how long real nodes take to be one link component again.

For each cluster size N it starts N ``python -m vudo node`` processes on
loopback, waits until their link graph (every node's ``/v1/links``) is
symmetric, one component, and every degree within
[link_min_connections, link_max_connections]; then SIGKILLs a quarter of
the nodes (never the seeds) at once and measures, from the kill:

* heal (component): the survivors list no link to a dead node and are one
  connected component again;
* heal (degrees): additionally every survivor is back to at least
  ``link_min_connections`` links;
* anchor — gossip death detection of the same kill, measured in the same
  run: every survivor's ``/v1/members`` lists every victim as dead (the
  phi-accrual detector of chitchat). The ratio heal/anchor says how the
  link layer's repair compares with the membership layer noticing at all.

A benchmark, not a test: it asserts nothing and prints a markdown table.

    .venv/bin/python bench/links_heal_bench.py --sizes 20,40 [--seed 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cluster import LocalCluster  # noqa: E402
from linkgraph import read_graph  # noqa: E402
from vudo.config import NodeConfig  # noqa: E402

ANCHOR_TEXT = "gossip death detection of the same victims (every survivor lists every victim dead), same run"
MIN_DEGREE = NodeConfig().link_min_connections
MAX_DEGREE = NodeConfig().link_max_connections
POLL_S = 0.25


async def _until(check: Any, deadline: float) -> float | None:
    while time.time() < deadline:
        started = time.time()
        if await check():
            return time.time()
        await asyncio.sleep(max(0.0, POLL_S - (time.time() - started)))
    return None


async def measure(size: int, root: Path, seed: int, interval_ms: int, limit_s: float) -> dict[str, Any]:
    cluster = LocalCluster(root / f"n{size}", size, gossip_interval_ms=interval_ms, seeds=2)
    try:
        cluster.start()
        apis = {n.node_id: n.api for n in cluster.nodes}
        async with httpx.AsyncClient(timeout=5.0) as client:
            async def formed() -> bool:
                graph = await read_graph(client, apis)
                return graph is not None and graph.healthy(min_degree=MIN_DEGREE, max_degree=MAX_DEGREE)

            t_formed = await _until(formed, time.time() + limit_s)
            if t_formed is None:
                return {"nodes": size, "error": "the link graph never formed"}
            before = await read_graph(client, apis)
            assert before is not None
            candidates = [n for n in cluster.nodes if n.index >= 2]
            victims = random.Random(seed).sample(candidates, size // 4)
            t_kill = time.time()
            for victim in victims:
                victim.kill()
            dead = {v.node_id for v in victims}
            survivors = {n.node_id: n.api for n in cluster.nodes if n.node_id not in dead}

            async def detected() -> bool:
                async def sees_all_dead(api: str) -> bool:
                    try:
                        members = {m["node_id"]: m for m in (await client.get(api + "/v1/members")).json()["members"]}
                    except (httpx.HTTPError, ValueError, KeyError):
                        return False
                    return all(members.get(v, {}).get("status") == "dead" for v in dead)

                return all(await asyncio.gather(*(sees_all_dead(a) for a in survivors.values())))

            # One graph read per poll decides both heal conditions, so they are never out of order.
            t_component = t_degrees = t_detect = None
            deadline = t_kill + limit_s
            while time.time() < deadline and None in (t_component, t_degrees, t_detect):
                started = time.time()
                graph, seen_dead = await asyncio.gather(read_graph(client, survivors), detected())
                now = time.time()
                if graph is not None:
                    component = not graph.dangling() and not graph.asymmetric() and len(graph.components()) == 1
                    if component and t_component is None:
                        t_component = now
                    if component and graph.healthy(min_degree=MIN_DEGREE, max_degree=MAX_DEGREE) and t_degrees is None:
                        t_degrees = now
                if seen_dead and t_detect is None:
                    t_detect = now
                await asyncio.sleep(max(0.0, POLL_S - (time.time() - started)))
        return {
            "nodes": size,
            "killed": len(victims),
            "links_before": sum(before.degrees()) // 2,
            "heal_component_s": None if t_component is None else t_component - t_kill,
            "heal_degrees_s": None if t_degrees is None else t_degrees - t_kill,
            "anchor_detect_s": None if t_detect is None else t_detect - t_kill,
        }
    finally:
        cluster.close()


def _fmt(v: float | None) -> str:
    return "timeout" if v is None else f"{v:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20,40")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--interval-ms", type=int, default=300, help="gossip interval of the nodes")
    parser.add_argument("--limit-s", type=float, default=180.0, help="give up on a phase after this long")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vudo-links-bench-"))
    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            rows.append(asyncio.run(measure(size, root, args.seed, args.interval_ms, args.limit_s)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"Link healing after SIGKILL of 25 % of the nodes (gossip interval {args.interval_ms} ms, "
          f"degree bounds [{MIN_DEGREE}, {MAX_DEGREE}]).")
    print(f"Anchor: {ANCHOR_TEXT}.\n")
    print("| nodes | killed | links before | heal: one component (s) | heal: degrees ≥ min (s) | anchor: gossip detection (s) | heal / anchor |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['nodes']} | - | - | {r['error']} | | | |")
            continue
        ratio = "-" if not r["heal_component_s"] or not r["anchor_detect_s"] else f"{r['heal_component_s'] / r['anchor_detect_s']:.2f}"
        print(f"| {r['nodes']} | {r['killed']} | {r['links_before']} | {_fmt(r['heal_component_s'])} | {_fmt(r['heal_degrees_s'])} "
              f"| {_fmt(r['anchor_detect_s'])} | {ratio} |")


if __name__ == "__main__":
    main()
