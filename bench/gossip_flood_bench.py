"""Open-gossip flood benchmark: what 20 000 made-up node ids cost a real node.

Two clusters of real ``vudo node`` processes run side by side in open gossip
(no keyring), each with ``--nodes`` nodes. Cluster *flooded*: ``vudo-outsider``
(plain chitchat 0.13, no VUDO code) joins with ``--participants`` chitchat
participants that each make up ``--ids / participants`` node states and gossip
them at node 0, the first also carrying ``--junk`` (20 000) distinct junk keys. Cluster
*quiet*: nothing. After both converge and the flood has started, both node 0s
are measured over the same ``--seconds`` window:

* RSS of the node process (``/proc/<pid>/status`` VmRSS) at the end;
* gossip CPU: CPU time of the node's engine threads (named ``vudo-gossip``:
  chitchat, the transport's parsing and admission), per minute;
* process CPU (all threads, Python included), per minute;
* the engine's table size (``vudo_gossip_engine_states``), identities refused
  per second, and the datagrams the node received per second;
* the key-values in the engine's table and their bytes
  (``vudo_gossip_engine_key_values`` / ``_value_bytes``: bounded per identity,
  while the flood pushes 20 000 junk keys) and the key-values refused since start.

The anchor is the quiet node 0 measured in the same run; the table gives the
flooded/quiet ratio. This is a benchmark, not a test: it asserts nothing.

    .venv/bin/python bench/gossip_flood_bench.py [--ids 20000] [--participants 40] [--seconds 60] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cluster import LocalCluster, NodeProc, metric_value  # noqa: E402
from outsider import Outsider  # noqa: E402

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def gossip_cpu_s(pid: int) -> float:
    """CPU seconds of the process's threads named vudo-gossip (schedstat: nanoseconds on a CPU)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip().startswith("vudo-gossip"):
                total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample(node: NodeProc) -> dict[str, float]:
    pid = node.pid
    assert pid is not None
    text = node.metrics()
    return {
        "t": time.monotonic(), "gossip_cpu": gossip_cpu_s(pid), "cpu": process_cpu_s(pid), "rss": rss_mib(pid),
        "states": metric_value(text, "vudo_gossip_engine_states", {}),
        "refused": metric_value(text, "vudo_gossip_ids_refused_total", {"reason": "cap"}),
        "received": metric_value(text, "vudo_gossip_datagrams_total", {"direction": "received"}),
        "kvs": metric_value(text, "vudo_gossip_engine_key_values", {}),
        "kv_bytes": metric_value(text, "vudo_gossip_engine_value_bytes", {}),
        "values_refused": sum(metric_value(text, "vudo_gossip_values_refused_total", {"reason": r})
                              for r in ("long_key", "long_value", "keys", "bytes")),
    }


def wait(cond: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.5)


def converged(cluster: LocalCluster) -> bool:
    ids = {n.node_id for n in cluster.nodes}
    try:
        return all(
            sum(1 for i, m in n.members().items() if i in ids and m["status"] == "alive" and m["verified"]) == len(ids)
            for n in cluster.nodes
        )
    except Exception:  # a node not answering yet
        return False


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="vudo-flood-bench-"))
    extra = ["--open-gossip", "--max-unverified", str(args.cap)]
    try:
        with LocalCluster(root / "flooded", args.nodes, gossip_interval_ms=args.interval_ms, extra_args=extra) as flooded, \
                LocalCluster(root / "quiet", args.nodes, gossip_interval_ms=args.interval_ms, extra_args=extra) as quiet, \
                Outsider.start(root / "outsider") as out:
            flooded.start()
            quiet.start()
            wait(lambda: converged(flooded) and converged(quiet), "both clusters to converge", args.timeout)
            target = flooded.nodes[0]
            per = args.ids // args.participants
            for i in range(args.participants):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind(("127.0.0.1", 0))
                    port = int(s.getsockname()[1])
                out.join(f"flood{i}", node_id=f"flooder-{i}", generation=1, port=port, seeds=[target.gossip],
                         cluster_id=flooded.cluster_id, gossip_interval_ms=args.flood_interval_ms)
                out.inject(f"flood{i}", count=per, prefix=f"stranger{i}", first_port=20_000 + i,
                           kv={"announcement": "forged", "leave": "forged"})
                if i == 0:  # first in: it speaks for itself from a free slot
                    out.fill("flood0", count=args.junk, prefix="junk", value="x" * 64)
            wait(lambda: metric_value(target.metrics(), "vudo_gossip_ids_refused_total", {"reason": "cap"}) >= args.ids,
                 "the flood to reach the target", args.timeout)
            time.sleep(args.warmup)
            nodes = {"quiet": quiet.nodes[0], "flooded": target}
            first = {k: sample(n) for k, n in nodes.items()}
            time.sleep(args.seconds)
            last = {k: sample(n) for k, n in nodes.items()}
            alive = {k: converged(c) for k, c in (("quiet", quiet), ("flooded", flooded))}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results = []
    for mode in ("quiet", "flooded"):
        a, b = first[mode], last[mode]
        dt = b["t"] - a["t"]
        results.append({
            "mode": mode, "nodes": args.nodes, "cap": args.cap, "ids": args.ids if mode == "flooded" else 0,
            "seconds": dt, "rss_mib": b["rss"],
            "gossip_cpu_ms_per_min": 1000 * (b["gossip_cpu"] - a["gossip_cpu"]) * 60 / dt,
            "process_cpu_ms_per_min": 1000 * (b["cpu"] - a["cpu"]) * 60 / dt,
            "engine_states": b["states"], "refused_per_s": (b["refused"] - a["refused"]) / dt,
            "received_per_s": (b["received"] - a["received"]) / dt, "converged_at_end": alive[mode],
            "engine_key_values": b["kvs"], "engine_value_kib": b["kv_bytes"] / 1024,
            "values_refused": b["values_refused"],
        })
    return results


def render(results: list[dict[str, Any]]) -> str:
    anchor = next(r for r in results if r["mode"] == "quiet")

    def ratio(r: dict[str, Any], key: str) -> str:
        return f"{r[key] / max(anchor[key], 1e-9):.2f}x"

    head = ["node 0 of", "made-up ids", "RSS MiB", "vs quiet", "gossip CPU ms/min", "vs quiet", "process CPU ms/min",
            "vs quiet", "engine table", "engine key-values", "value KiB", "ids refused/s", "key-values refused (total)",
            "datagrams in/s", "cluster converged"]
    rows = [[
        r["mode"], str(r["ids"]), f"{r['rss_mib']:.0f}", ratio(r, "rss_mib"), f"{r['gossip_cpu_ms_per_min']:.0f}",
        ratio(r, "gossip_cpu_ms_per_min"), f"{r['process_cpu_ms_per_min']:.0f}", ratio(r, "process_cpu_ms_per_min"),
        f"{r['engine_states']:.0f}", f"{r['engine_key_values']:.0f}", f"{r['engine_value_kib']:.1f}",
        f"{r['refused_per_s']:.0f}", f"{r['values_refused']:.0f}", f"{r['received_per_s']:.0f}",
        "yes" if r["converged_at_end"] else "no",
    ] for r in results]
    lines = [f"| {' | '.join(head)} |", f"|{'|'.join('---' for _ in head)}|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    lines += [
        "",
        f"{anchor['nodes']} real nodes per cluster, open gossip, --max-unverified {anchor['cap']}, "
        f"{anchor['seconds']:.0f} s measured on both at once, {len(os.sched_getaffinity(0))} CPU(s) shared.",
        "Anchor: node 0 of the quiet cluster in the same run. The engine table counts every identity the",
        "node's chitchat holds (real members + admitted strangers); it is bounded by members + cap.",
        "Key-values (tombstones included) and their key + value bytes are bounded per identity:",
        "8 keys / 64 KiB per unverified identity, 64 keys / 512 KiB per verified member.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3, help="real nodes per cluster [3]")
    parser.add_argument("--ids", type=int, default=20_000, help="made-up node ids pushed at the target [20000]")
    parser.add_argument("--junk", type=int, default=20_000, help="distinct junk keys the first participant carries [20000]")
    parser.add_argument("--participants", type=int, default=40, help="chitchat participants carrying them [40]")
    parser.add_argument("--cap", type=int, default=256, help="--max-unverified of every node [256]")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time [60]")
    parser.add_argument("--warmup", type=float, default=10.0, help="flood time before measuring [10]")
    parser.add_argument("--interval-ms", type=int, default=300, help="gossip interval of the nodes [300]")
    parser.add_argument("--flood-interval-ms", type=int, default=500, help="gossip interval of the participants [500]")
    parser.add_argument("--timeout", type=float, default=180.0, help="give up waiting [180]")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args()
    results = run(args)
    for r in results:
        print(json.dumps(r), file=sys.stderr, flush=True)
    print(json.dumps({"anchor": "quiet", "results": results}, indent=2) if args.json else render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
