"""The five signal modes on 100+ simulated nodes: seeded random topologies, loss, links dying mid-broadcast."""

from __future__ import annotations

import random

import msgspec
import pytest

from vudo.signals import envelope as env
from vudo.signals.envelope import ActionPotential, Directed, Flood, Gradient, Push, Quorum, decode_frame
from vudo.signals.network import SignalConfig, SignalRejected, TopologyChanged
from vudo.testing.signalsim import SignalSim, identities

N = 120


def assert_exactly_once(sim: SignalSim, signal_id: str, nodes: set[int]) -> None:
    handled = sim.handled_by(signal_id)
    assert set(handled) == nodes, f"missing {sorted(nodes - set(handled))[:10]}, extra {sorted(set(handled) - nodes)[:10]}"
    assert max(handled.values()) == 1


@pytest.mark.parametrize("algorithm", ["plumtree", "plain"])
def test_flood_is_handled_exactly_once_by_every_node(algorithm: str) -> None:
    sim = SignalSim(N, seed=11, config=SignalConfig(flood=algorithm))  # type: ignore[arg-type]
    for k in range(6):
        s = sim.emit(k * 17 % N, Flood(), f"hello {k}".encode())
        sim.run()
        assert_exactly_once(sim, s.id, set(range(N)))


def test_plumtree_settles_on_a_tree_about_one_push_per_node() -> None:
    sim = SignalSim(N, seed=12)
    sim.emit(0, Flood())
    sim.run()
    for k in range(5):
        before = sim.frames["push"]
        s = sim.emit(k * 31 % N, Flood())
        sim.run()
        assert_exactly_once(sim, s.id, set(range(N)))
        # A spanning tree has N-1 links: one push per node but the source.
        assert sim.frames["push"] - before == N - 1


def test_flood_with_ten_percent_loss() -> None:
    """Never twice, whatever is lost. Delivery is probabilistic (resends are bounded): on seed 13 a plain
    flood loses all six tries toward one node; the tree's announcements and grafts still get it there."""
    for seed in (3, 13):
        for algorithm in ("plumtree", "plain"):
            sim = SignalSim(N, seed=seed, loss=0.10, config=SignalConfig(flood=algorithm))  # type: ignore[arg-type]
            handled = 0
            for k in range(5):
                s = sim.emit(k * 7 % N, Flood())
                sim.run()
                counts = sim.handled_by(s.id)
                assert max(counts.values()) == 1
                handled += len(counts)
                if algorithm == "plumtree":
                    assert_exactly_once(sim, s.id, set(range(N)))
            assert handled >= 0.99 * 5 * N
            assert sum(n.stats["push_failed"] for n in sim.nodes) > 0  # loss happened


def test_plumtree_grafts_recover_what_lost_pushes_missed() -> None:
    # No resends: a node whose tree push is lost can only recover through announcements and a graft.
    sim = SignalSim(N, seed=14, config=SignalConfig(push_retries=0))
    sim.emit(0, Flood())
    sim.run()
    victims = [i for i in range(N) if len(sim.neighbours(i)) >= 3][:10]
    s = sim.emit(42, Flood())
    lost: set[int] = set()

    def drop_first_push(src: int, dst: int, payload: bytes) -> bool:
        frame = decode_frame(payload)
        if dst in victims and dst not in lost and isinstance(frame, Push) and frame.signal.id == s.id:
            lost.add(dst)
            return True
        return False

    sim.drop = drop_first_push
    grafts_before = sum(n.broadcast.grafts_sent for n in sim.nodes)  # type: ignore[union-attr]
    sim.run()
    assert len(lost) >= 5  # (a victim may get its first copy as a graft answer, which is not dropped)
    assert sum(n.broadcast.grafts_sent for n in sim.nodes) - grafts_before >= len(lost)  # type: ignore[union-attr]
    assert_exactly_once(sim, s.id, set(range(N)))


def test_links_dying_mid_broadcast() -> None:
    sim = SignalSim(N, seed=15, mean_degree=5.0)
    sim.emit(0, Flood())
    sim.run()  # the tree is built
    rng = random.Random(5)
    s = sim.emit(3, Flood())
    sim.run_for(2)
    # Kill a third of the links the signal is travelling on right now, keeping the network connected.
    in_flight = sorted({(min(a, b), max(a, b)) for t, a, b, _ in sim.sent_log if t >= sim.ticks - 2})
    for a, b in rng.sample(in_flight, len(in_flight) // 3):
        sim.kill_link(a, b)
        if len(sim.distances(0)) < N:
            sim.add_link(a, b)
    sim.run()
    assert_exactly_once(sim, s.id, set(range(N)))
    # And the repaired tree carries the next one everywhere too.
    s2 = sim.emit(50, Flood())
    sim.run()
    assert_exactly_once(sim, s2.id, set(range(N)))


@pytest.mark.parametrize("algorithm", ["plumtree", "plain"])
def test_flood_reaches_exactly_the_nodes_within_the_ttl(algorithm: str) -> None:
    sim = SignalSim(N, seed=16, max_latency=4, config=SignalConfig(flood=algorithm))  # type: ignore[arg-type]
    for k in range(3):  # shape the Plumtree tree around other sources first
        sim.emit(k * 40 + 1, Flood())
        sim.run()
    src, ttl = 77, 3
    s = sim.emit(src, Flood(), ttl=ttl)
    sim.run()
    within = {n for n, d in sim.distances(src).items() if d <= ttl}
    assert len(within) < N  # the TTL really cuts the network
    handled = sim.handled_by(s.id)
    assert set(handled) <= within and max(handled.values()) == 1
    if algorithm == "plumtree":
        # Tree paths are longer than shortest paths; adopting shorter hop counts still reaches all of them.
        assert set(handled) == within


def test_gradient_strength_falls_with_hop_distance() -> None:
    decay, floor = 0.7, 0.05
    sim = SignalSim(N, seed=17, max_latency=4, config=SignalConfig(min_strength=floor))
    src = 9
    s = sim.emit(src, Gradient(decay, "load"))
    sim.run()
    dist = sim.distances(src)
    readings = {i: dict(sim.nodes[i].read_gradient("load", now=sim.now)).get(sim.ids[src]) for i in range(N)}
    for i, d in dist.items():
        expected = decay**d
        if expected >= floor:
            assert readings[i] == pytest.approx(expected), (i, d)
        else:
            assert readings[i] is None
    by_distance: dict[int, float] = {}
    for i, d in dist.items():
        if readings[i] is not None:
            by_distance[d] = readings[i]  # type: ignore[assignment]
    ordered = [by_distance[d] for d in sorted(by_distance)]
    assert len(ordered) >= 3 and ordered == sorted(ordered, reverse=True) and len(set(ordered)) == len(ordered)
    assert max(sim.handled_by(s.id).values()) == 1


@pytest.mark.parametrize("view", ["complete", "partial", "none"])
def test_directed_is_delivered_to_the_target_only(view: str) -> None:
    sim = SignalSim(N, seed=18, share_topology=view == "complete")
    if view == "partial":
        sim.share_topology(nodes=range(0, N, 2))  # half the nodes know the topology
    src, target = 4, 101
    s = sim.emit(src, Directed(sim.ids[target]), b"for you")
    sim.run()
    assert_exactly_once(sim, s.id, {target})
    if view == "complete":
        # Shortest known path: one push per hop.
        assert sim.frames["push"] == sim.distances(src)[target]


def test_directed_survives_a_dead_link_on_its_route() -> None:
    sim = SignalSim(N, seed=19)
    src, target = 2, 90
    # Learn the route, then kill its first link without telling anyone's topology view.
    probe = sim.emit(src, Directed(sim.ids[target]))
    sim.run()
    first_hop = next(dst for _, s, dst, payload in sim.sent_log if s == src and isinstance(decode_frame(payload), Push))
    sim.kill_link(src, first_hop)
    sim.add_link(src, (first_hop + 1) % N if (first_hop + 1) % N != src else (first_hop + 2) % N)
    sim.share_topology()
    s = sim.emit(src, Directed(sim.ids[target]))
    sim.run()
    assert_exactly_once(sim, probe.id, {target})
    assert_exactly_once(sim, s.id, {target})


def test_quorum_fires_once_at_the_threshold_and_never_before() -> None:
    sim = SignalSim(N, seed=20, loss=0.05)
    threshold = 0.25
    needed = 30  # 30 / 120 = 0.25
    contributors = random.Random(3).sample(range(N), needed)
    for c in contributors[:-1]:
        sim.emit(c, Quorum(threshold, "move"))
        sim.run()
    assert sim.fired == []  # never before
    sim.emit(contributors[-1], Quorum(threshold, "move"))
    sim.run()
    fired_nodes = [i for i, _ in sim.fired]
    assert sorted(fired_nodes) == list(range(N))  # every node, exactly once
    assert all(f.contributors == needed and f.network_size == N for _, f in sim.fired)
    # More contributions do not fire again.
    sim.emit(next(i for i in range(N) if i not in contributors), Quorum(threshold, "move"))
    sim.run()
    assert len(sim.fired) == N


def test_second_action_potential_inside_the_refractory_period_is_ignored() -> None:
    sim = SignalSim(N, seed=21)
    first = sim.emit(0, ActionPotential(2000, "alarm"))
    sim.run()
    assert_exactly_once(sim, first.id, set(range(N)))
    second = sim.emit(60, ActionPotential(2000, "alarm"))
    sim.run()
    assert sim.handled_by(second.id) == {}
    # Another key is independent; and after the period the same key fires again.
    other = sim.emit(60, ActionPotential(2000, "fire"))
    sim.run()
    assert_exactly_once(sim, other.id, set(range(N)))
    sim.run_for(int(2.0 / sim.tick_s) + 1)
    third = sim.emit(60, ActionPotential(2000, "alarm"))
    sim.run()
    assert_exactly_once(sim, third.id, set(range(N)))


def test_action_potential_overtakes_a_backlog() -> None:
    # Each node sends one frame per tick: floods queue up, the action potential still goes first.
    sim = SignalSim(N, seed=22, send_budget=1)
    for k in range(8):
        sim.emit(0, Flood(), bytes([k]))
    ap = sim.emit(0, ActionPotential(1000, "alarm"))
    sim.run()
    first_sent = [t for t, src, _, payload in sim.sent_log if src == 0 and decode_frame(payload) == Push(ap, 1)]
    flood_sent = [t for t, src, _, payload in sim.sent_log if src == 0 and isinstance(decode_frame(payload), Push) and decode_frame(payload).signal.kind == "flood"]  # type: ignore[union-attr]
    assert min(first_sent) < max(flood_sent)
    assert_exactly_once(sim, ap.id, set(range(N)))
    last_ap = max(r.tick for r in sim.deliveries[ap.id])
    last_flood = max(r.tick for sid, recs in sim.deliveries.items() if sid != ap.id for r in recs)
    assert last_ap < last_flood


def test_forged_and_replayed_signals_go_no_further_than_the_first_honest_node() -> None:
    sim = SignalSim(N, seed=23)
    liar = 5
    victim = sim.neighbours(liar)[0]
    real = sim.emit(7, Flood(), b"genuine")
    sim.run()
    forged = msgspec.structs.replace(real, payload=b"evil", signature=bytes(64))
    body = env.signed_bytes(1, real.source, real.signal_type, b"evil", real.ttl, real.timestamp, real.nonce)
    forged = msgspec.structs.replace(forged, id=env.signal_id(body))
    for frame in (Push(forged, 2), Push(real, 2)):  # a forgery, then a replay
        sim.inject(liar, victim, env.encode_frame(frame))
    sim.run()
    assert sim.handled_by(forged.id) == {}
    assert max(sim.handled_by(real.id).values()) == 1
    rejected = [o.reason for i, o in sim.outputs if isinstance(o, SignalRejected)]
    assert rejected == [env.BAD_SIGNATURE]
    assert sim.nodes[victim].rejected[env.DUPLICATE] >= 1


def test_topology_views_can_change_between_signals() -> None:
    sim = SignalSim(N, seed=24)
    for node in sim.nodes:
        node.receive(TopologyChanged((), sim.now))
    s = sim.emit(1, Directed(sim.ids[2]))
    sim.run()
    assert_exactly_once(sim, s.id, {2})


def test_a_flood_of_unique_signals_keeps_memory_bounded_and_honest_signals_flowing() -> None:
    config = SignalConfig(dedup_capacity=64, peer_rate=20.0, peer_burst=40.0)
    sim = SignalSim(N, seed=25, config=config)
    attacker = 8
    victim = sim.neighbours(attacker)[0]
    sybils = identities(N + 50)[N:]
    honest = []
    for burst in range(5):  # 100 valid signals a second from made-up keys, each with a new id
        for i in range(100):
            s = env.create(sybils[i % 50], Flood(), b"spam", ttl=16, now=sim.now, nonce=(burst * 100 + i).to_bytes(8, "big"))
            sim.inject(attacker, victim, env.encode_frame(Push(s, 2)))
        honest.append(sim.emit(100 + burst, Flood(), b"still here"))
        sim.run_for(100)  # one second
        assert all(len(node.dedup) <= 64 for node in sim.nodes)
    sim.run()
    limited = [o for i, o in sim.outputs if i == victim and isinstance(o, SignalRejected) and o.peer == sim.ids[attacker]]
    assert len(limited) >= 500 - 40 - 4 * 20 and {o.reason for o in limited} == {env.RATE_LIMITED}
    assert sim.nodes[victim].dedup.evicted_early > 0
    for h in honest:
        assert_exactly_once(sim, h.id, set(range(N)))
