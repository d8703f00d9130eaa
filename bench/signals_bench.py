"""Signals benchmark: Plumtree broadcast trees beside plain flooding, in simulation.

For each network size N and message-loss rate it builds one seeded random
connected topology (``vudo.testing.signalsim``: real Ed25519 identities,
per-link latency of 1..3 ticks, lost requests reported to the sender after a
timeout as the real request/response links do) and runs, on that same
topology and the same sequence of sources, each flood algorithm:

* one warm-up broadcast (Plumtree builds its tree on it; its cost is shown
  in its own column), then ``--signals`` broadcasts from random sources;
* per broadcast: delivery ratio (nodes that handled it / nodes within the
  TTL), last-delivery hop (largest hop count at which a node handled it),
  latency in ticks (emission to last delivery), payload messages (pushes,
  resends included) and control messages (IHAVE, GRAFT, PRUNE);
* relative message redundancy, as in Leitão et al. 2007:
  RMR = payload messages / (nodes reached - 1) - 1.

The anchors: the ideal (every node once, RMR 0, delivery 100 %), and plain
flooding measured in the same run (the ratio column is Plumtree's payload
messages over plain flooding's). Nothing is asserted: this is a benchmark.

    .venv/bin/python bench/signals_bench.py [--sizes 30,100,300] [--losses 0,0.1] [--signals 20] [--seed 1] [--real 10] [--real-only]

``--real N`` (default 10) then starts N real ``vudo node`` processes per flood
algorithm and loss (the loss injected with the nodes' ``signal_fault_loss``
fault-injection knob) and prints the same columns measured over the links.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from vudo.signals.envelope import ActionPotential, Directed, Flood, Gradient, SignalType
from vudo.signals.network import SignalConfig
from vudo.testing.signalsim import SignalSim, random_connected_edges


@dataclass
class Result:
    algorithm: str
    n: int
    loss: float
    delivery: float
    last_hop: float
    latency_ticks: float
    rmr: float
    payload_per_signal: float
    control_per_signal: float
    warmup_payload: int
    wall_s: float


def run(algorithm: str, n: int, loss: float, signals: int, seed: int, mean_degree: float) -> Result:
    edges = random_connected_edges(n, mean_degree, random.Random(seed))
    sim = SignalSim(n, seed=seed, loss=loss, edges=edges, config=SignalConfig(flood=algorithm))  # type: ignore[arg-type]
    sources = random.Random(seed + 1).choices(range(n), k=signals + 1)
    started = time.perf_counter()
    before = sim.frames["push"]
    sim.emit(sources[0], Flood(), b"warm-up")
    sim.run()
    warmup_payload = sim.frames["push"] - before
    deliveries, hops, latencies, rmrs, payloads, controls = [], [], [], [], [], []
    for src in sources[1:]:
        frames_before = dict(sim.frames)
        s = sim.emit(src, Flood(), b"benchmark")
        sim.run()
        ttl_reach = {i for i, d in sim.distances(src).items() if d <= s.ttl}
        records = sim.deliveries[s.id]
        reached = {r.node for r in records}
        payload = sim.frames["push"] - frames_before.get("push", 0)
        control = sum(sim.frames[k] - frames_before.get(k, 0) for k in ("ihave", "graft", "prune"))
        deliveries.append(len(reached & ttl_reach) / len(ttl_reach))
        hops.append(max(r.event.hops for r in records))
        latencies.append(max(r.tick for r in records) - sim.emitted_at[s.id])
        rmrs.append(payload / max(1, len(reached) - 1) - 1)
        payloads.append(payload)
        controls.append(control)
    return Result(
        algorithm,
        n,
        loss,
        statistics.fmean(deliveries),
        statistics.fmean(hops),
        statistics.fmean(latencies),
        statistics.fmean(rmrs),
        statistics.fmean(payloads),
        statistics.fmean(controls),
        warmup_payload,
        time.perf_counter() - started,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="30,100,300")
    parser.add_argument("--losses", default="0,0.1")
    parser.add_argument("--signals", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mean-degree", type=float, default=5.0)
    parser.add_argument("--real", type=int, default=10, help="also N real `vudo node` processes on loopback, per algorithm and loss (0: skip)")
    parser.add_argument("--real-only", action="store_true", help="skip the simulation tables")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    losses = [float(x) for x in args.losses.split(",")]

    if args.real_only:
        real_processes(args.real, args.signals, losses)
        return
    print(f"# Signals: Plumtree vs plain flooding (simulation, mean degree {args.mean_degree:g}, {args.signals} broadcasts each, seed {args.seed})\n")
    print("Anchors: ideal = every node once, RMR 0, delivery 100 %; plain flooding measured on the same topology and sources.\n")
    print("| N | loss | algorithm | delivery | last-delivery hop | latency (ticks) | RMR | payload msgs / signal | vs ideal (N-1) | vs plain | control msgs / signal | warm-up payload msgs |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        for loss in losses:
            results = {a: run(a, n, loss, args.signals, args.seed, args.mean_degree) for a in ("plumtree", "plain")}
            plain = results["plain"]
            print(f"| {n} | {loss:.0%} | ideal | 100.0% | – | – | 0.00 | {n - 1} | 1.00 | – | 0 | – |")
            for name in ("plumtree", "plain"):
                r = results[name]
                print(
                    f"| {n} | {loss:.0%} | {name} | {r.delivery:.1%} | {r.last_hop:.1f} | {r.latency_ticks:.1f} | {r.rmr:.2f} "
                    f"| {r.payload_per_signal:.0f} | {r.payload_per_signal / (n - 1):.2f} | {r.payload_per_signal / plain.payload_per_signal:.2f} "
                    f"| {r.control_per_signal:.0f} | {r.warmup_payload} |"
                )
    modes(args.seed, args.mean_degree)
    if args.real:
        real_processes(args.real, args.signals, losses)


def real_processes(n: int, signals: int, losses: list[float]) -> None:
    """Floods between real node processes over their links: each flood algorithm at each injected
    loss (``signal_fault_loss``: every node drops that fraction of its outgoing signal frames)."""
    print(f"\n# Real processes: {n} `vudo node` processes on loopback, {signals} floods each (after one warm-up)\n")
    print("Loss is injected with the nodes' `signal_fault_loss` fault-injection knob (TCP links do not lose single messages).")
    print("Anchors: ideal = every node once; plain flooding measured in the same run at the same loss (a fresh cluster per row).\n")
    print("| N | loss | algorithm | delivery | last-delivery hop | latency (ms, wall clock, polled) | RMR | payload msgs / signal | vs ideal (N-1) | vs plain | control msgs / signal |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for loss in losses:
        results = {algorithm: _real_run(n, signals, algorithm, loss) for algorithm in ("plumtree", "plain")}
        print(f"| {n} | {loss:.0%} | ideal | 100.0% | – | – | 0.00 | {n - 1} | 1.00 | – | 0 |")
        for algorithm, m in results.items():
            print(
                f"| {n} | {loss:.0%} | {algorithm} | {m[0]:.1%} | {m[1]:.1f} | {m[2] * 1000:.0f} | {m[3]:.2f} | {m[4]:.1f} "
                f"| {m[4] / (n - 1):.2f} | {m[4] / results['plain'][4]:.2f} | {m[5]:.1f} |"
            )


def _real_run(n: int, signals: int, algorithm: str, loss: float) -> list[float]:
    """Means over ``signals`` floods: delivery, last-delivery hop, latency (s), RMR, payload msgs, control msgs."""
    import shutil
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from cluster import LocalCluster, metric_value, wait_for
    from linkgraph import graph_of

    root = Path(tempfile.mkdtemp(prefix="vudo-signals-bench-"))
    rows = []
    try:
        extra = ("--signal-flood", algorithm, "--signal-fault-loss", str(loss))
        with LocalCluster(root, n, seeds=2, gossip_interval_ms=200, extra_args=extra) as cluster:
            cluster.start()
            nodes = cluster.nodes

            def ready() -> bool:
                g = graph_of((x.node_id, x.api) for x in nodes)
                if g is None or not all(g.links.get(x.node_id) for x in nodes):
                    return False
                return all(sum(1 for m in x.members().values() if m["verified"] and m["status"] == "alive") == n for x in nodes)

            wait_for(ready, timeout=180, what="the nodes linked and verified", interval=0.5)

            def pushes() -> float:
                return sum(metric_value(x.metrics(), "vudo_signals_frames_sent_total", {"frame": "push"}) for x in nodes)

            def control() -> float:
                return sum(metric_value(x.metrics(), "vudo_signals_frames_sent_total", {"frame": k}) for x in nodes for k in ("ihave", "graft", "prune"))

            for k in range(signals + 1):
                src = nodes[k % n]
                p0, c0 = pushes(), control()
                t0 = time.time()
                r = src.post("/v1/signals", json={"type": "flood", "payload": f"bench {k}"}, headers={"Authorization": f"Bearer {src.token}"})
                sid = r.json()["id"]
                # With loss a flood may never reach some nodes: wait for all, or give up after a while.
                deadline = time.monotonic() + (60.0 if loss == 0 else 15.0)
                while True:
                    got = [next((e for e in x.get("/v1/signals").json()["signals"] if e["id"] == sid), None) for x in nodes]
                    reached = [e for e in got if e is not None]
                    if len(reached) == n or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                time.sleep(0.5)  # let late duplicates and announcements land before counting
                if k == 0:
                    continue  # warm-up: builds the tree
                payload, ctrl = pushes() - p0, control() - c0
                rows.append((
                    len(reached) / n,
                    max(e["hops"] for e in reached),
                    max(e["received_at"] for e in reached) - t0,
                    payload / max(1, len(reached) - 1) - 1,
                    payload,
                    ctrl,
                ))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [statistics.fmean(col) for col in zip(*rows, strict=True)]


def modes(seed: int, mean_degree: float, n: int = 100, signals: int = 10) -> None:
    """Cost of the other modes on one topology (no loss): payload messages per signal, and who handled it."""
    edges = random_connected_edges(n, mean_degree, random.Random(seed))
    sim = SignalSim(n, seed=seed, edges=edges)
    rng = random.Random(seed + 2)
    print(f"\n# The other modes (simulation, N = {n}, no loss, {signals} signals each)\n")
    print("| mode | payload msgs / signal | anchor (same signals) | anchor msgs | ratio | handled by exactly the expected nodes |")
    print("|---|---:|---|---:|---:|---|")
    kinds: list[tuple[str, str, Callable[[int], SignalType], str]] = [
        ("gradient (decay 0.5, floor 0.05)", "nodes within 4 hops", lambda _: Gradient(0.5), "plain flood to 4 hops"),
        ("directed (full topology view)", "the target only", lambda t: Directed(sim.ids[t]), "shortest path length"),
        ("action potential", "every node", lambda k: ActionPotential(0, f"k{k}"), "plain flood"),
    ]
    for name, expected, make, anchor in kinds:
        payloads, correct, anchors = [], 0, []
        for k in range(signals):
            src, target = rng.randrange(n), rng.randrange(n)
            before = sim.frames["push"]
            s = sim.emit(src, make(target if "directed" in name else k))
            sim.run()
            payloads.append(sim.frames["push"] - before)
            dist = sim.distances(src)
            handled = set(sim.handled_by(s.id))
            if "gradient" in name:
                want = {i for i, d in dist.items() if d <= 4}
                anchors.append(sum(len(sim.neighbours(i)) - (i != src) for i in want if dist[i] < 4))
            elif "directed" in name:
                want = {target}
                anchors.append(dist[target])
            else:
                want = set(range(n))
                anchors.append(sum(len(sim.neighbours(i)) - (i != src) for i in range(n)))
            correct += handled == want
        mean, ideal = statistics.fmean(payloads), statistics.fmean(anchors)
        print(f"| {name} | {mean:.0f} | {anchor} | {ideal:.0f} | {mean / ideal:.2f} | {expected}: {correct}/{signals} |")


if __name__ == "__main__":
    main()
