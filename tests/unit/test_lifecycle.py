"""The node's lifecycle policy and the supervisor that executes it."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vudo.config import NodeConfig
from vudo.identity import init_data_dir
from vudo.node import Node, data_dir_runtime
from vudo.node.lifecycle import (
    AnnounceLeave,
    ArmLeaveTimer,
    LeaveGraceElapsed,
    Lifecycle,
    LifecycleEvent,
    MarkNotReady,
    MarkReady,
    Phase,
    ServiceFailed,
    StopRequested,
    StopServices,
)
from vudo.portcheck import free_ports
from vudo.services.base import NodeEvents
from vudo.services.events import Joined, JoinFailed


def test_join_then_stop_then_grace() -> None:
    life = Lifecycle(leave_grace_s=1.5)
    assert life.phase is Phase.JOINING and not life.ready
    assert life.receive(Joined(2, 1.0)) == [MarkReady(2)]
    assert life.ready
    assert life.receive(StopRequested("signal", 2.0)) == [MarkNotReady(), AnnounceLeave(), ArmLeaveTimer(1.5)]
    assert life.phase is Phase.LEAVING and not life.ready
    assert life.receive(StopRequested("again", 2.1)) == []
    assert life.receive(LeaveGraceElapsed(3.5)) == [StopServices(0)]
    assert life.phase is Phase.STOPPED and life.exit_code == 0
    assert [h.id for h in life.history] == [1, 2, 3]


def test_join_failure_leaves_and_exits_1() -> None:
    life = Lifecycle(leave_grace_s=0)
    assert life.receive(JoinFailed("no seed answered", 1.0)) == [AnnounceLeave(), ArmLeaveTimer(0)]
    assert life.receive(Joined(1, 1.1)) == []  # too late
    assert life.receive(LeaveGraceElapsed(1.2)) == [StopServices(1)]


def test_service_failure_while_leaving_still_exits_1() -> None:
    life = Lifecycle(leave_grace_s=1)
    life.receive(StopRequested("x", 0))
    assert life.receive(ServiceFailed("api", "boom", 0.5)) == []
    assert life.receive(LeaveGraceElapsed(1)) == [StopServices(1)]


def test_negative_grace_is_refused() -> None:
    with pytest.raises(ValueError):
        Lifecycle(leave_grace_s=-1)


_events = st.one_of(
    st.builds(Joined, st.integers(0, 5), st.floats(0, 100)),
    st.builds(JoinFailed, st.text(max_size=5), st.floats(0, 100)),
    st.builds(StopRequested, st.text(max_size=5), st.floats(0, 100)),
    st.builds(ServiceFailed, st.sampled_from(["api", "membership"]), st.text(max_size=5), st.floats(0, 100)),
    st.builds(LeaveGraceElapsed, st.floats(0, 100)),
)


@given(st.lists(_events, max_size=30))
def test_any_event_sequence_keeps_the_rules(events: list[LifecycleEvent]) -> None:
    """Phases only move forward, the node stops at most once, and never stops without announcing its leave."""
    life = Lifecycle(leave_grace_s=1)
    order = list(Phase)
    announced = stops = 0
    for event in events:
        before = life.phase
        out = life.receive(event)
        assert order.index(life.phase) >= order.index(before)
        announced += sum(isinstance(i, AnnounceLeave) for i in out)
        stops += sum(isinstance(i, StopServices) for i in out)
        assert life.ready == (life.phase is Phase.ALIVE)
    assert announced <= 1 and stops <= 1
    assert stops == 0 or announced == 1


def _free_port(kind: int) -> int:
    return free_ports(1, kind)[0]


class _Crashing:
    name = "crashing"

    def __init__(self) -> None:
        self.left = False
        self.stopped = False

    async def start(self) -> None:
        pass

    async def run(self, events: NodeEvents) -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("engine exploded")

    def leave(self, now: float) -> None:
        self.left = True

    async def stop(self) -> None:
        self.stopped = True


def test_a_crashing_service_makes_the_node_leave_and_exit_1(tmp_path: Path) -> None:
    init_data_dir(tmp_path / "n")
    config = dataclasses.replace(
        NodeConfig(), data_dir=tmp_path / "n", gossip_port=_free_port(socket.SOCK_DGRAM),
        api_port=_free_port(socket.SOCK_STREAM), leave_grace_ms=50,
    )
    node = Node(config)
    crashing = _Crashing()
    node.services = (*node.services, crashing)
    seen: list[dict[str, object] | None] = []

    async def main() -> int:
        task = asyncio.create_task(node.run())
        while data_dir_runtime(config.data_dir) is None and not task.done():
            await asyncio.sleep(0.01)
        seen.append(data_dir_runtime(config.data_dir))
        return await task

    # Its own thread: a session-wide Playwright driver may already run a loop in this one.
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, main()).result(timeout=120) == 1
    assert crashing.left and crashing.stopped
    assert node.lifecycle.phase is Phase.STOPPED
    failed = [h.event for h in node.lifecycle.history if isinstance(h.event, ServiceFailed)]
    assert failed and failed[0].service == "crashing" and "exploded" in failed[0].error
    assert seen[0] is not None and seen[0]["node_id"] == node.identity.node_id
    assert data_dir_runtime(config.data_dir) is None  # removed on the way out
    gossip = node.membership.gossip
    assert gossip is not None and not gossip.running


def test_node_builds_its_signals_service_from_the_signal_settings(tmp_path: Path) -> None:
    from vudo.signals.flood import PlainFlood, Plumtree

    init_data_dir(tmp_path / "n")
    base = dataclasses.replace(NodeConfig(), data_dir=tmp_path / "n")
    node = Node(base)
    assert isinstance(node.signals.policy.broadcast, Plumtree)
    assert node.signals.fault_loss == 0.0
    node = Node(dataclasses.replace(base, signal_flood="plain", signal_fault_loss=0.1))
    assert isinstance(node.signals.policy.broadcast, PlainFlood)
    assert node.signals.fault_loss == 0.1


def test_node_command_refuses_an_unknown_flood_algorithm_and_a_loss_above_one(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vudo.cli.main import cli

    for args in (["--signal-flood", "gossipsub"], ["--signal-fault-loss", "1.5"]):
        result = CliRunner().invoke(cli, ["node", "--data-dir", str(tmp_path), *args])
        assert result.exit_code == 2, result.output
        assert args[0] in result.output
