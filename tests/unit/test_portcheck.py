"""Port picking for `vudo dev` and the test clusters: free, distinct, and out of the kernel's ephemeral range."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from vudo import portcheck
from vudo.config import LINK_PORT_OFFSET


def test_picked_ports_are_distinct_free_and_outside_the_ephemeral_range() -> None:
    low, high = portcheck.ephemeral_range()
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        ports = portcheck.free_ports(40, kind)
        assert len(set(ports)) == 40
        assert all(1024 <= p < 65536 and not low <= p <= high for p in ports)
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", ports[0]))  # free: the picker let it go


def test_a_port_in_use_is_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    # the pool is 1024..1999 (everything above counts as "ephemeral"); hold one port of it
    monkeypatch.setattr(portcheck, "ephemeral_range", lambda: (2000, 65535))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held_port = next(p for p in range(1024, 2000) if _try_bind(held, p))
        ports = portcheck.free_ports(10, socket.SOCK_DGRAM, rng=random.Random(3))
        assert held_port not in ports and all(1024 <= p < 2000 for p in ports)


def test_picks_leave_room_for_the_derived_link_port(monkeypatch: pytest.MonkeyPatch) -> None:
    # only the top of the port space is outside the "ephemeral" range: 65000..65535
    monkeypatch.setattr(portcheck, "ephemeral_range", lambda: (1024, 64999))
    ports = portcheck.free_ports(50, socket.SOCK_DGRAM, rng=random.Random(5))
    assert all(65000 <= p and p + LINK_PORT_OFFSET <= 65535 for p in ports), ports


def _try_bind(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def test_the_ephemeral_range_falls_back_when_unreadable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(portcheck, "EPHEMERAL_RANGE_FILE", tmp_path / "missing")
    assert portcheck.ephemeral_range() == (32768, 60999)
    (tmp_path / "range").write_text("40000\t50000\n")
    monkeypatch.setattr(portcheck, "EPHEMERAL_RANGE_FILE", tmp_path / "range")
    assert portcheck.ephemeral_range() == (40000, 50000)
