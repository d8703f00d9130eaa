"""Gene ``reputationScore``: accumulated trust, bounded to [0, 1]."""

from __future__ import annotations

import math
from dataclasses import dataclass

UPTIME_WEIGHT = 0.3
DELIVERY_WEIGHT = 0.5
HONESTY_WEIGHT = 0.2


def _unit(name: str, value: float) -> float:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class ReputationScore:
    uptime_score: float
    delivery_score: float
    honesty_score: float

    def __post_init__(self) -> None:
        _unit("uptime_score", self.uptime_score)
        _unit("delivery_score", self.delivery_score)
        _unit("honesty_score", self.honesty_score)

    def aggregate(self) -> float:
        """0.3·uptime + 0.5·delivery + 0.2·honesty, clamped against rounding."""
        total = (
            UPTIME_WEIGHT * self.uptime_score
            + DELIVERY_WEIGHT * self.delivery_score
            + HONESTY_WEIGHT * self.honesty_score
        )
        return min(1.0, max(0.0, total))
