"""Gene ``hyphalLink``: one established link, and the EMA that strengthens it.

A :class:`HyphalLink` exists only after anastomosis verified both sides
(see :mod:`vudo.hyphal.anastomosis`); it is a frozen record that the routing
policy replaces whenever an observation changes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vudo.hyphal.linkproto import Direction

#: Weight of the newest sample in the bandwidth EMA (trait ``adaptiveRouting``).
EMA_ALPHA = 0.1
U32_MAX = 2**32 - 1


def ema(previous: float, sample: float, alpha: float = EMA_ALPHA) -> float:
    """Exponential moving average: ``alpha·sample + (1 - alpha)·previous``."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    return alpha * sample + (1.0 - alpha) * previous


def _unit(name: str, value: float) -> None:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


@dataclass(frozen=True, slots=True)
class HyphalLink:
    """A fused link to ``peer`` (a NodeId authenticated by Noise and by its signed announcement)."""

    peer: str
    established: float
    last_seen: float
    latency_ms: int  # u32
    bandwidth_score: float  # 0.0 to 1.0, measured capacity (EMA of traffic)
    addr: str  # the peer's link listener (from its announcement), else the connection's address
    direction: Direction

    def __post_init__(self) -> None:
        if not self.peer:
            raise ValueError("a link needs a peer")
        if not 0 <= self.latency_ms <= U32_MAX:
            raise ValueError(f"latency_ms must fit in a u32, got {self.latency_ms!r}")
        _unit("bandwidth_score", self.bandwidth_score)
        if self.last_seen < self.established:
            raise ValueError("last_seen cannot precede established")

    def healthy(self, now: float, timeout: float) -> bool:
        """Constraint ``healthy``: heard from within ``timeout`` seconds."""
        return now - self.last_seen < timeout


def latency_from_rtt(rtt_ms: float) -> int:
    """A measured round trip as the link's ``latency_ms`` (a u32; nonsense values are clamped)."""
    if not math.isfinite(rtt_ms) or rtt_ms < 0:
        return 0
    return min(U32_MAX, round(rtt_ms))
