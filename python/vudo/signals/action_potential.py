"""Trait ``ActionPotentialPropagation``: all-or-nothing urgent signals with a refractory period.

Theory of operation
-------------------
An action potential for ``key`` fires on a node at once: it is handled and
pushed to every link (but the one it came on) ahead of any other queued
traffic. Firing starts the node's refractory period for that key,
``refractory_period_ms`` as signed by the source, measured on this node's
clock from the moment it fired. Any further action potential of the same key
that arrives inside the period — another source's, or a late copy — is
ignored: neither handled nor forwarded, which also stops the wave from
echoing back. The table of refractory deadlines is bounded.
"""

from __future__ import annotations

from collections import OrderedDict


class Refractory:
    def __init__(self, *, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._until: OrderedDict[str, float] = OrderedDict()

    def refractory(self, key: str, now: float) -> bool:
        until = self._until.get(key)
        return until is not None and now < until

    def fire(self, key: str, period_s: float, now: float) -> bool:
        """Fire unless refractory; True when it fired (and the period started)."""
        if self.refractory(key, now):
            return False
        self._until.pop(key, None)
        while len(self._until) >= self.capacity:
            self._until.popitem(last=False)
        self._until[key] = now + period_s
        return True
