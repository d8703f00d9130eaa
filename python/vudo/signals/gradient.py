"""Trait ``GradientPropagation``: signals whose strength decays with distance.

Theory of operation
-------------------
The strength of a gradient signal is never carried on the wire: it is
``decay_factor ** hops``, with ``decay_factor`` signed by the source and
``hops`` the links the copy crossed (1.0 at the source). A forwarder cannot
make a signal stronger than the source allowed, only report fewer hops —
which at worst gives its neighbours the strength of nodes two hops from the
source (a copy with one hop must come from the source itself).

A node forwards a gradient copy to every link but the one it came on, as
long as the next hop would still read at least ``min_strength`` and the TTL
allows. Copies can arrive over a longer path first; a later copy with fewer
hops replaces the reading and is forwarded again, so each node ends up
reading ``decay ** distance``: nearer the source, stronger. Each source
keeps one reading per gradient ``key`` (the newest signal wins); readings
expire after ``retention`` seconds and at most ``capacity`` are kept.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from vudo.signals.envelope import Gradient, Signal


@dataclass(frozen=True, slots=True)
class Reading:
    source: str
    signal_id: str
    strength: float
    hops: int
    timestamp: float
    expires: float


def strength(decay_factor: float, hops: int) -> float:
    return float(decay_factor**hops)


class GradientField:
    def __init__(self, *, min_strength: float, retention: float, capacity: int) -> None:
        if not 0.0 < min_strength <= 1.0:
            raise ValueError(f"min_strength must be in (0, 1], got {min_strength}")
        self.min_strength = min_strength
        self.retention = retention
        self.capacity = capacity
        # (key, source) -> reading, oldest first.
        self._readings: OrderedDict[tuple[str, str], Reading] = OrderedDict()

    def __len__(self) -> int:
        return len(self._readings)

    def observe(self, signal: Signal, hops: int, now: float) -> float | None:
        """Record a copy; returns the strength read when it changed the field, else None."""
        assert isinstance(signal.signal_type, Gradient)
        slot = (signal.signal_type.key, signal.source)
        old = self._readings.get(slot)
        if old is not None:
            newer = signal.timestamp > old.timestamp
            closer = signal.id == old.signal_id and hops < old.hops
            if not (newer or closer):
                return None
            del self._readings[slot]
        self._expire(now)
        while len(self._readings) >= self.capacity:
            self._readings.popitem(last=False)
        value = strength(signal.signal_type.decay_factor, hops)
        self._readings[slot] = Reading(signal.source, signal.id, value, hops, signal.timestamp, now + self.retention)
        return value

    def should_forward(self, signal: Signal, hops: int) -> bool:
        assert isinstance(signal.signal_type, Gradient)
        return hops < signal.ttl and strength(signal.signal_type.decay_factor, hops + 1) >= self.min_strength

    def read_gradient(self, key: str = "", *, now: float) -> list[tuple[str, float]]:
        """(source, strength) pairs of the live readings of gradient ``key``, strongest first."""
        self._expire(now)
        pairs = [(r.source, r.strength) for (k, _), r in self._readings.items() if k == key]
        return sorted(pairs, key=lambda p: (-p[1], p[0]))

    def reading(self, key: str, source: str) -> Reading | None:
        return self._readings.get((key, source))

    def _expire(self, now: float) -> None:
        # Insertion order is expiry order (every reading lives ``retention`` from its insertion).
        while self._readings:
            slot, reading = next(iter(self._readings.items()))
            if reading.expires > now:
                break
            del self._readings[slot]
