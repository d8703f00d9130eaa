"""Gossip keyring benchmark: what sealing every datagram costs, against open gossip.

For each mode (open gossip -- the anchor -- and a cluster keyring) it starts
N gossip engines (``vudo._core.Gossip``, real UDP sockets on loopback, all
in this process on the engine's shared runtime), each publishing an
announcement-sized and a gradient-sized value re-set every refresh interval
as a node does, waits until every engine sees all N live, then measures for
``--seconds``:

* gossip CPU per node per minute: CPU time of the engine's runtime threads
  (``/proc/self/task/*``, threads named ``vudo-gossip``: chitchat, the
  transport, sealing and opening), divided by N, scaled to one minute;
* datagrams per second (cluster total, sent on the sockets);
* datagrams sealed+opened per CPU-second (keyring) and datagrams sent+received
  per CPU-second (both): the per-core throughput at that load.

The anchor is open gossip measured in the same run; the table gives the
keyring/open ratio. Python's own work (the policies) is not counted: it is
the same in both modes. This is a benchmark, not a test: it asserts nothing.

    .venv/bin/python bench/keyring_bench.py --nodes 30 --seconds 60 [--interval-ms 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from vudo import _core

VALUE_SIZES = {"announcement": 900, "gradient": 400}


def gossip_cpu_s() -> float:
    """CPU seconds of this process's threads named vudo-gossip (schedstat: nanoseconds on a CPU)."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            if name.startswith("vudo-gossip"):
                total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def values(i: int, now: float) -> dict[str, str]:
    return {key: f"{i}:{now:.3f}:" + "v" * size for key, size in VALUE_SIZES.items()}


def totals(nodes: list[_core.Gossip]) -> dict[str, int]:
    out = {"sent": 0, "received": 0, "sealed": 0, "opened": 0, "rejected": 0}
    for node in nodes:
        s = node.transport_stats()
        out["sent"] += s.sent
        out["received"] += s.received
        out["sealed"] += s.sealed
        out["opened"] += s.opened
        out["rejected"] += sum(s.rejected.values())
    return out


def measure(mode: str, n: int, seconds: float, interval_ms: int, refresh_s: float, timeout: float) -> dict[str, Any]:
    keys = [_core.generate_gossip_key()] if mode == "keyring" else []
    ports = free_ports(n)
    seeds = [f"127.0.0.1:{p}" for p in ports[:2]]
    now = time.time()
    nodes = [
        _core.Gossip(
            node_id=f"bench-{mode}-{i:03d}", generation=1, listen_addr=f"127.0.0.1:{p}", advertise_addr=f"127.0.0.1:{p}",
            seeds=[s for s in seeds if s != f"127.0.0.1:{p}"], cluster_id=f"bench-{mode}", gossip_interval_ms=interval_ms,
            phi_threshold=8.0, dead_node_grace_period_ms=3_600_000, max_interval_ms=10_000,
            initial_key_values=values(i, now), keys=keys,
        )
        for i, p in enumerate(ports)
    ]
    try:
        deadline = time.monotonic() + timeout
        while True:
            if all(sum(1 for m in node.snapshot() if m.live) == n for node in nodes):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mode}: the {n} engines did not all see each other live within {timeout:.0f}s")
            time.sleep(0.5)
        cpu0, t0, c0 = gossip_cpu_s(), time.monotonic(), totals(nodes)
        next_refresh = t0
        while (elapsed := time.monotonic() - t0) < seconds:
            if time.monotonic() >= next_refresh:
                stamp = time.time()
                for i, node in enumerate(nodes):
                    for key, value in values(i, stamp).items():
                        node.set(key, value)
                next_refresh += refresh_s
            time.sleep(0.05)
        cpu1, c1 = gossip_cpu_s(), totals(nodes)
        live = min(sum(1 for m in node.snapshot() if m.live) for node in nodes)
    finally:
        for node in nodes:
            node.shutdown()
    cpu = cpu1 - cpu0
    d = {k: c1[k] - c0[k] for k in c0}
    return {
        "mode": mode, "nodes": n, "seconds": elapsed, "interval_ms": interval_ms, "gossip_cpu_s": cpu,
        "cpu_ms_per_node_per_min": 1000 * cpu / n * 60 / elapsed,
        "datagrams_per_s": d["sent"] / elapsed,
        "sent_received_per_cpu_s": (d["sent"] + d["received"]) / cpu if cpu else 0.0,
        "sealed_opened_per_s": (d["sealed"] + d["opened"]) / elapsed,
        "sealed_opened_per_cpu_s": (d["sealed"] + d["opened"]) / cpu if cpu and mode == "keyring" else None,
        "rejected": d["rejected"], "min_live_at_end": live,
    }


def render(results: list[dict[str, Any]]) -> str:
    anchor = next(r for r in results if r["mode"] == "open")
    head = ["gossip", "N", "CPU ms/node/min", "vs open", "datagrams/s", "sent+recv per CPU-s",
            "sealed+opened/s", "sealed+opened per CPU-s", "rejected", "min live"]
    rows = []
    for r in results:
        rows.append([
            r["mode"], str(r["nodes"]), f"{r['cpu_ms_per_node_per_min']:.0f}",
            f"{r['cpu_ms_per_node_per_min'] / max(anchor['cpu_ms_per_node_per_min'], 1e-9):.2f}x",
            f"{r['datagrams_per_s']:.0f}", f"{r['sent_received_per_cpu_s']:.0f}",
            f"{r['sealed_opened_per_s']:.0f}",
            "-" if r["sealed_opened_per_cpu_s"] is None else f"{r['sealed_opened_per_cpu_s']:.0f}",
            str(r["rejected"]), str(r["min_live_at_end"]),
        ])
    lines = [f"| {' | '.join(head)} |", f"|{'|'.join('---' for _ in head)}|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    lines += [
        "",
        f"gossip interval {anchor['interval_ms']} ms, {anchor['seconds']:.0f} s measured per mode, "
        f"{len(os.sched_getaffinity(0))} CPU(s) shared; anchor: open gossip (plain chitchat over UDP) in the same run.",
        "CPU = the engine's runtime threads (chitchat + transport + AEAD); 'per CPU-s' = datagrams handled per",
        "second of one core at this load (a per-core throughput, not a saturation test).",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=30, help="engines per mode [30]")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time per mode [60]")
    parser.add_argument("--interval-ms", type=int, default=300, help="gossip interval [300, the node default]")
    parser.add_argument("--refresh-s", type=float, default=5.0, help="values re-set this often, as nodes do [5]")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up waiting for convergence [120]")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args()
    results = []
    for mode in ("open", "keyring"):
        print(f"measuring {mode} gossip, N={args.nodes} ...", file=sys.stderr, flush=True)
        results.append(measure(mode, args.nodes, args.seconds, args.interval_ms, args.refresh_s, args.timeout))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"anchor": "open", "results": results}, indent=2) if args.json else render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
