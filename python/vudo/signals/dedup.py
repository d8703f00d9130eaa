"""Bounded memory of the signal ids this node has handled.

Theory of operation
-------------------
Each id is remembered until ``retention`` seconds after it was inserted, and
at most ``capacity`` ids are remembered at once. Retention must cover a
signal's whole acceptable life (maximum age plus tolerated clock skew): a
replay of a forgotten id is then refused by the age check instead.

A flood of unique ids could otherwise push a young id out early and open a
replay window for it. So when the cache must evict an id before its time, it
raises a *floor*: the signed timestamp of the evicted signal. Signals whose
timestamp is not above the floor are refused (``replay_window``). Under
attack the node thus drops some old-but-valid signals rather than accept a
replay; honest traffic, which is rate limited per peer far below capacity,
never reaches the floor. Memory stays ``O(capacity)`` whatever arrives.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    expires: float
    timestamp: float
    tag: bytes


class DedupCache:
    def __init__(self, *, capacity: int, retention: float) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if retention <= 0:
            raise ValueError(f"retention must be positive, got {retention}")
        self.capacity = capacity
        self.retention = retention
        self.floor = float("-inf")
        self.evicted_early = 0
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, signal_id: object) -> bool:
        return signal_id in self._entries

    def below_floor(self, timestamp: float) -> bool:
        """True when a signal this old could have been forgotten early (refuse it)."""
        return timestamp <= self.floor

    def tag(self, signal_id: str) -> bytes | None:
        """What was stored with ``signal_id`` (the signature: a copy must carry the same)."""
        entry = self._entries.get(signal_id)
        return None if entry is None else entry.tag

    def add(self, signal_id: str, timestamp: float, now: float, tag: bytes = b"") -> bool:
        """Remember ``signal_id``; False when it was already known."""
        if signal_id in self._entries:
            return False
        self.expire(now)
        while len(self._entries) >= self.capacity:
            _, oldest = self._entries.popitem(last=False)
            self.floor = max(self.floor, oldest.timestamp)
            self.evicted_early += 1
        self._entries[signal_id] = _Entry(now + self.retention, timestamp, tag)
        return True

    def expire(self, now: float) -> int:
        """Forget ids whose retention is over (insertion order = expiry order)."""
        dropped = 0
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                break
            del self._entries[key]
            dropped += 1
        return dropped
