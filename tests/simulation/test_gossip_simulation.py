"""Many nodes in one process over the in-memory gossip network.

The same membership service that runs in a `vudo node` process (publish,
observe, leave) is driven here tick by tick, with chitchat's channel transport in
place of UDP sockets, so partitions can be cut and healed precisely.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from vudo import _core
from vudo.config import NodeConfig
from vudo.identity import init_data_dir
from vudo.node import Node
from vudo.node.lifecycle import AnnounceLeave, StopRequested

TICK = 0.05
DEADLINE = 60.0
BASE_PORT = 20000


def make_nodes(tmp_path: Path, count: int, net: _core.MemoryNetwork) -> list[Node]:
    nodes = []
    seed = f"127.0.0.1:{BASE_PORT}"
    for i in range(count):
        data_dir = tmp_path / f"n{i}"
        init_data_dir(data_dir)
        config = dataclasses.replace(
            NodeConfig(),
            data_dir=data_dir,
            gossip_port=BASE_PORT + i,
            seeds=() if i == 0 else (seed,),
            gossip_interval_ms=50,
            cluster_id="sim",
        )
        node = Node(config, network=net)
        node.membership.start_engine()
        node.membership.publish(time.time())
        nodes.append(node)
    return nodes


def statuses(observer: Node) -> dict[str, tuple[str, bool]]:
    return {m.node_id: (m.status, m.verified) for m in observer.membership.policy.members.values()}


def run_until(nodes: list[Node], condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        now = time.time()
        for node in nodes:
            gossip = node.membership.gossip
            if gossip is not None and gossip.running:
                node.membership.observe(now)
        if condition():
            return
        time.sleep(TICK)
    views = {n.identity.node_id[-6:]: {k[-6:]: v for k, v in statuses(n).items()} for n in nodes}
    pytest.fail(f"timed out waiting for {what}; views: {views}")


def sees(observers: Iterable[Node], subjects: Iterable[Node], status: str, verified: bool | None = None) -> bool:
    subject_ids = [s.identity.node_id for s in subjects]
    for observer in observers:
        view = statuses(observer)
        for node_id in subject_ids:
            got = view.get(node_id)
            if got is None or got[0] != status or (verified is not None and got[1] != verified):
                return False
    return True


@pytest.fixture()
def network() -> _core.MemoryNetwork:
    return _core.MemoryNetwork()


def stop_all(nodes: list[Node]) -> None:
    for node in nodes:
        gossip = node.membership.gossip
        if gossip is not None and gossip.running:
            gossip.shutdown()


def test_forty_nodes_converge_to_full_verified_membership(tmp_path: Path, network: _core.MemoryNetwork) -> None:
    nodes = make_nodes(tmp_path, 40, network)
    try:
        run_until(nodes, lambda: sees(nodes, nodes, "alive", verified=True), "full verified membership")
        for node in nodes:
            assert len(node.membership.policy.verified_peers()) == 39
            assert not node.membership.policy.rejections
            assert len(node.membership.gradients().neighbors) == 39
        messages, sent = network.statistics
        assert messages > 0 and sent > 0
    finally:
        stop_all(nodes)


def test_partition_marks_the_other_side_dead_and_healing_restores_it(tmp_path: Path, network: _core.MemoryNetwork) -> None:
    nodes = make_nodes(tmp_path, 8, network)
    left, right = nodes[:4], nodes[4:]
    try:
        run_until(nodes, lambda: sees(nodes, nodes, "alive", verified=True), "convergence")
        for a in left:
            for b in right:
                network.cut(a.config.gossip_advertise, b.config.gossip_advertise)
        run_until(nodes, lambda: sees(left, right, "dead") and sees(right, left, "dead"), "each side to see the other dead")
        assert sees(left, left, "alive") and sees(right, right, "alive")
        for a in left:
            for b in right:
                network.heal(a.config.gossip_advertise, b.config.gossip_advertise)
        run_until(nodes, lambda: sees(nodes, nodes, "alive", verified=True), "the healed network to reconverge")
    finally:
        stop_all(nodes)


def test_crash_is_dead_and_graceful_leave_is_left(tmp_path: Path, network: _core.MemoryNetwork) -> None:
    nodes = make_nodes(tmp_path, 5, network)
    try:
        run_until(nodes, lambda: sees(nodes, nodes, "alive", verified=True), "convergence")
        crashed, leaver, rest = nodes[3], nodes[4], nodes[:3]
        assert crashed.membership.gossip is not None
        crashed.membership.gossip.shutdown()
        for instruction in leaver.lifecycle.receive(StopRequested("test", time.time())):
            if isinstance(instruction, AnnounceLeave):
                leaver.membership.leave(time.time())
        run_until(nodes, lambda: sees(rest, [crashed], "dead") and sees(rest, [leaver], "left"), "dead and left")
        assert leaver.queries.info().status == "leaving"
    finally:
        stop_all(nodes)
