"""Trait ``gradientPropagation``: the neighbour gradient field.

Incoming gradients are decayed by one hop and merged CRDT-style: the newest
timestamp wins. ``flow_direction`` names the neighbour with the highest
value strictly above our own, or ``None`` when we are a local maximum.
"""

from __future__ import annotations

from vudo.gradient.vector import GradientVector, Resource


class GradientField:
    def __init__(self) -> None:
        self.neighbors: dict[str, GradientVector] = {}

    def receive_gradient(self, sender: str, gradient: GradientVector) -> bool:
        """Merge; returns True when the stored value changed."""
        decayed = gradient.decay(1)
        existing = self.neighbors.get(sender)
        if existing is not None and existing.timestamp >= decayed.timestamp:
            return False
        self.neighbors[sender] = decayed
        return True

    def forget(self, sender: str) -> None:
        self.neighbors.pop(sender, None)

    def flow_direction(self, resource: Resource, local: GradientVector) -> str | None:
        own = local.get(resource)
        best: tuple[float, str] | None = None
        for node_id, gradient in sorted(self.neighbors.items()):
            value = gradient.get(resource)
            if value > own and (best is None or value > best[0]):
                best = (value, node_id)
        return None if best is None else best[1]
