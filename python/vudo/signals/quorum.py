"""Trait ``QuorumAccumulation``: collective decisions that fire once enough nodes agree.

Theory of operation
-------------------
A quorum signal is one node's contribution to the accumulator named by its
``(key, threshold)``; it is flooded like any broadcast, so every node sees
every contribution. Each node counts the *distinct verified sources* that
contributed and are members of the network it knows (membership is passed in
as an event; outsiders' contributions are kept but not counted). When

    counted contributors / network size >= threshold

the accumulator fires: exactly once on this node, never before the ratio is
reached, and never with an unknown (zero) network size. It is checked both
when a contribution arrives and when membership changes. Accumulators are
forgotten ``retention`` seconds after their last contribution; at most
``capacity`` are kept (the oldest are dropped first), each remembering at
most ``max_contributors`` sources that are not members, so keys made up by
the thousand cost bounded memory and cannot crowd out real members.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

AccumulatorKey = tuple[str, float]


@dataclass(frozen=True, slots=True)
class Fired:
    key: str
    threshold: float
    contributors: int
    network_size: int
    at: float


@dataclass(slots=True)
class Accumulator:
    key: str
    threshold: float
    contributors: set[str] = field(default_factory=set)
    fired_at: float | None = None
    expires: float = 0.0


class QuorumState:
    def __init__(self, *, retention: float, capacity: int, max_contributors: int = 4096) -> None:
        self.retention = retention
        self.capacity = capacity
        self.max_contributors = max_contributors
        self.members: frozenset[str] = frozenset()
        self._accumulators: OrderedDict[AccumulatorKey, Accumulator] = OrderedDict()

    def __len__(self) -> int:
        return len(self._accumulators)

    @property
    def network_size(self) -> int:
        return len(self.members)

    def accumulator(self, key: str, threshold: float) -> Accumulator | None:
        return self._accumulators.get((key, threshold))

    def counted(self, acc: Accumulator) -> int:
        return len(acc.contributors & self.members)

    def contribute(self, key: str, threshold: float, source: str, now: float) -> Fired | None:
        self._expire(now)
        slot = (key, threshold)
        acc = self._accumulators.pop(slot, None)
        if acc is None:
            while len(self._accumulators) >= self.capacity:
                self._accumulators.popitem(last=False)
            acc = Accumulator(key, threshold)
        self._accumulators[slot] = acc  # most recently touched last
        acc.expires = now + self.retention
        # Members always count; sources not (yet) in the membership are kept up to a bound.
        if source in self.members or len(acc.contributors) < self.max_contributors:
            acc.contributors.add(source)
        return self._check(acc, now)

    def set_members(self, members: frozenset[str], now: float) -> list[Fired]:
        """Verified membership changed; a smaller network may complete a quorum."""
        self.members = members
        self._expire(now)
        return [f for acc in self._accumulators.values() if (f := self._check(acc, now)) is not None]

    def _check(self, acc: Accumulator, now: float) -> Fired | None:
        size = self.network_size
        if acc.fired_at is not None or size == 0:
            return None
        count = self.counted(acc)
        # Integer comparison: count/size >= threshold without rounding surprises at equality.
        if count >= acc.threshold * size - 1e-9:
            acc.fired_at = now
            return Fired(acc.key, acc.threshold, count, size, now)
        return None

    def _expire(self, now: float) -> None:
        for slot in [s for s, a in self._accumulators.items() if a.expires <= now]:
            del self._accumulators[slot]
