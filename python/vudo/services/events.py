"""What services report to the node's lifecycle (the supervisor's inbox)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Joined:
    """Membership found enough verified peers: the node has joined."""

    peers: int
    now: float


@dataclass(frozen=True, slots=True)
class JoinFailed:
    """Membership gave up joining (``message`` names each seed and why)."""

    message: str
    now: float


ServiceEvent = Joined | JoinFailed
