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


#: Seconds of imagined half-uptime every peer starts with (so one short link says little).
UPTIME_PRIOR_S = 60.0
#: Most peers the tracker remembers (least recently observed ones are forgotten first).
MAX_TRACKED = 4096


@dataclass(slots=True)
class _Observations:
    touched: float
    first_up: float | None = None
    up_since: float | None = None
    up_total: float = 0.0
    delivered: int = 0
    undelivered: int = 0
    honest: int = 0
    dishonest: int = 0


class ReputationTracker:
    """Per-peer :class:`ReputationScore` built from link observations (sans-I/O: ``now`` is passed in).

    * uptime — the share of time since we first linked with the peer that a
      link to it was up, smoothed with :data:`UPTIME_PRIOR_S` seconds at 0.5;
    * delivery — requests it answered vs. requests that failed, as the mean
      of a Beta(1, 1) prior (an unknown peer scores 0.5, every outcome moves it);
    * honesty — verified vs. failed verifications of what it sent us
      (announcements, introductions), same estimator.

    Memory is bounded by :data:`MAX_TRACKED` peers.
    """

    def __init__(self, *, max_tracked: int = MAX_TRACKED) -> None:
        self.max_tracked = max_tracked
        self._peers: dict[str, _Observations] = {}

    def __contains__(self, peer: object) -> bool:
        return peer in self._peers

    def __len__(self) -> int:
        return len(self._peers)

    def _get(self, peer: str, now: float) -> _Observations:
        obs = self._peers.get(peer)
        if obs is None:
            if len(self._peers) >= self.max_tracked:
                stale = min(self._peers, key=lambda p: (self._peers[p].up_since is not None, self._peers[p].touched, p))
                del self._peers[stale]
            obs = self._peers[peer] = _Observations(touched=now)
        obs.touched = max(obs.touched, now)
        return obs

    def link_up(self, peer: str, now: float) -> None:
        obs = self._get(peer, now)
        if obs.first_up is None:
            obs.first_up = now
        if obs.up_since is None:
            obs.up_since = now

    def link_down(self, peer: str, now: float) -> None:
        obs = self._get(peer, now)
        if obs.up_since is not None:
            obs.up_total += max(0.0, now - obs.up_since)
            obs.up_since = None

    def delivered(self, peer: str, now: float, ok: bool) -> None:
        obs = self._get(peer, now)
        if ok:
            obs.delivered += 1
        else:
            obs.undelivered += 1

    def verified(self, peer: str, now: float, honest: bool) -> None:
        obs = self._get(peer, now)
        if honest:
            obs.honest += 1
        else:
            obs.dishonest += 1

    def score(self, peer: str, now: float) -> ReputationScore:
        obs = self._peers.get(peer)
        if obs is None:
            return ReputationScore(0.5, 0.5, 0.5)
        up = obs.up_total
        observed = 0.0
        if obs.first_up is not None:
            observed = max(0.0, now - obs.first_up)
            if obs.up_since is not None:
                up += max(0.0, now - obs.up_since)
        uptime = (min(up, observed) + 0.5 * UPTIME_PRIOR_S) / (observed + UPTIME_PRIOR_S)
        delivery = (obs.delivered + 1) / (obs.delivered + obs.undelivered + 2)
        honesty = (obs.honest + 1) / (obs.honest + obs.dishonest + 2)
        return ReputationScore(uptime, delivery, honesty)

    def aggregate(self, peer: str, now: float) -> float:
        return self.score(peer, now).aggregate()
