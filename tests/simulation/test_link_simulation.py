"""The link policies of hundreds of nodes in one process (seeded, virtual time).

The same `AdaptiveRouting` class a node runs is driven by `LinkSim`, which
plays the link engine (connections, requests, resets, RTTs) and the gossip
membership (with a failure-detection lag). Limits are in virtual seconds,
so nothing here depends on the speed of the machine.
"""

from __future__ import annotations

import zlib

from vudo.hyphal.routing import LinkLost, RoutingConfig
from vudo.testing.linksim import LinkSim

LIMIT = 300.0  # virtual seconds


def converge(sim: LinkSim) -> None:
    took = sim.run_until(sim.healthy, limit=LIMIT)
    assert took is not None, f"no convergence: components={len(sim.components())} degrees={sorted(sim.degrees())} symmetric={sim.symmetric()}"


def test_hundreds_of_nodes_form_one_symmetric_bounded_graph_and_heal_after_losing_a_quarter() -> None:
    sim = LinkSim(250, seed=11)
    converge(sim)
    config = sim.config
    assert all(config.min_connections <= d <= config.max_connections for d in sim.degrees())
    victims = sim.kill_fraction(0.25)
    assert len(victims) == 62
    converge(sim)  # survivors dropped every dead link and are one component again
    assert sim.links_to_dead() == 0 and len(sim.alive()) == 188
    sim.run(60)  # and it stays that way (no oscillation, degrees stay in bounds)
    assert sim.healthy()


def test_a_run_is_deterministic_under_its_seed() -> None:
    def run(seed: int) -> tuple[list[tuple[float, str, str]], set[tuple[str, str]]]:
        sim = LinkSim(60, seed=seed)
        sim.run(20)
        sim.kill_fraction(0.25)
        sim.run(20)
        return sim.trace, sim.edges()

    first, second, other = run(5), run(5), run(6)
    assert first == second
    assert first[1] != other[1]


def test_lossy_network_still_converges_and_heals() -> None:
    sim = LinkSim(100, seed=3, drop_rate=0.05)
    converge(sim)
    sim.kill_fraction(0.25)
    converge(sim)


def test_idle_links_are_pruned_to_1_5_target_and_busy_links_survive() -> None:
    def hot(a: str, b: str) -> bool:
        return zlib.crc32("".join(sorted((a, b))).encode()) % 3 == 0

    sim = LinkSim(120, seed=8, traffic=lambda a, b: 2_000_000 if hot(a, b) else 0)
    converge(sim)
    sim.run(120)  # idle scores decay below the prune threshold within ~20 s
    assert sim.healthy()
    threshold, ceiling = sim.config.prune_threshold, sim.config.target_degree * 1.5
    for node in sim.alive():  # above 1.5 x target only strong (busy or brand-new) links remain
        links = node.routing.connections.values()
        assert len(links) <= ceiling or all(link.bandwidth_score >= threshold for link in links)
    assert sum(d > ceiling for d in sim.degrees()) < len(sim.alive()) / 4
    pruned = [(me, e.peer) for me, node in ((n.node_id, n) for n in sim.nodes.values()) for e in node.events
              if isinstance(e, LinkLost) and e.reason == "pruned"]
    assert pruned, "some idle link above 1.5 x target should have been pruned"
    assert not [pair for pair in pruned if hot(*pair)]


def test_an_impostor_at_a_nodes_address_gets_no_link_and_the_network_is_fine() -> None:
    sim = LinkSim(40, seed=21)
    nodes = sorted(sim.nodes.values(), key=lambda n: n.index)
    victim, impostor = nodes[0], nodes[1]
    sim.impersonate(victim.addr, impostor.node_id)  # dials to the victim reach the impostor's key
    converge(sim)
    # every link the victim has, it dialled itself: no dial to its address succeeded
    assert all(link.direction == "outbound" for link in victim.routing.connections.values())
    failures = sum(n.routing.counters.dial_failures for n in sim.nodes.values())
    assert failures > 0


def test_small_degree_targets_hold_their_invariants() -> None:
    config = RoutingConfig(min_connections=1, target_degree=2, max_connections=3)
    sim = LinkSim(80, seed=2, config=config)
    converge(sim)
    sim.kill_fraction(0.25)
    converge(sim)
    assert all(1 <= d <= 3 for d in sim.degrees())
