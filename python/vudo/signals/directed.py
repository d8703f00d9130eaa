"""Directed signals: routed toward one target over the known topology.

Theory of operation
-------------------
Each node keeps a *topology view*: its own live links (always current) plus
the nodes and edges the rest of the system has told it about (the links
service's view of the network; it may be stale or incomplete). To route a
signal for ``target`` a node ranks its live links by their distance to the
target in that view (breadth-first search from the target, ties broken by
node id) and sends the signal on the best one; only the target handles it.

When the view has no path, when every ranked link failed, or when a copy
comes back to a node that already routed it (the views disagree and made a
loop), the node switches that signal to *spreading*: it pushes it, marked
``spread``, to all its links but the sender. A node that receives a spread
copy spreads it too, once. Every node spreads a given signal at most once
and routes it at most once, so the cost is bounded, and because spreading is
a flood, the signal reaches the target whenever a path within the TTL
exists.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class TopologyView:
    def __init__(self, self_id: str, *, max_nodes: int = 100_000) -> None:
        self.self_id = self_id
        self.max_nodes = max_nodes
        self.links: set[str] = set()
        self._adjacency: dict[str, set[str]] = {}
        self._distances: dict[str, dict[str, int]] = {}

    def link_up(self, peer: str) -> None:
        self.links.add(peer)
        self._distances.clear()

    def link_down(self, peer: str) -> None:
        self.links.discard(peer)
        self._distances.clear()

    def update(self, edges: Iterable[tuple[str, str]]) -> None:
        """Replace the known topology (undirected edges between node ids)."""
        adjacency: dict[str, set[str]] = {}
        for a, b in edges:
            if a == b:
                continue
            if len(adjacency) >= self.max_nodes and (a not in adjacency or b not in adjacency):
                continue
            adjacency.setdefault(a, set()).add(b)
            adjacency.setdefault(b, set()).add(a)
        self._adjacency = adjacency
        self._distances.clear()

    def _neighbours(self, node: str) -> set[str]:
        known = self._adjacency.get(node, set())
        if node == self.self_id:
            return known | self.links
        if node in self.links:
            return known | {self.self_id}
        return known

    def distances_to(self, target: str) -> dict[str, int]:
        """Hop distance from every known node to ``target`` (breadth-first, cached per view)."""
        cached = self._distances.get(target)
        if cached is not None:
            return cached
        dist = {target: 0}
        queue = deque([target])
        while queue:
            node = queue.popleft()
            for nxt in self._neighbours(node):
                if nxt not in dist:
                    dist[nxt] = dist[node] + 1
                    queue.append(nxt)
        if len(self._distances) > 1024:
            self._distances.clear()
        self._distances[target] = dist
        return dist

    def eccentricity(self, network_size: int) -> int | None:
        """Hops from this node to the farthest node of the view; None when the view does not cover
        ``network_size`` nodes (then nothing is known about how far the network reaches)."""
        dist = {self.self_id: 0}
        queue = deque([self.self_id])
        while queue:
            node = queue.popleft()
            for nxt in self._neighbours(node):
                if nxt not in dist:
                    dist[nxt] = dist[node] + 1
                    queue.append(nxt)
        if network_size <= 0 or len(dist) < network_size:
            return None
        return max(dist.values())

    def next_hops(self, target: str, *, exclude: Iterable[str] = ()) -> list[str]:
        """This node's live links that lead to ``target``, best first (empty: no known path)."""
        banned = set(exclude)
        if target in self.links and target not in banned:
            return [target]
        dist = self.distances_to(target)
        ranked = sorted((dist[p], p) for p in self.links if p in dist and p not in banned)
        return [p for _, p in ranked]
