"""The link graph of a running cluster, read from every node's ``/v1/links``.

Plain module shared by the multi-process tests and the benchmarks. A graph
is "healthy" when it is symmetric (a lists b exactly when b lists a), has
no link to a node outside it, is one connected component, and every degree
lies within the given bounds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class LinkGraph:
    links: dict[str, frozenset[str]]  # node id -> peers it reports

    def asymmetric(self) -> list[tuple[str, str]]:
        return sorted((a, b) for a, peers in self.links.items() for b in peers if b in self.links and a not in self.links[b])

    def dangling(self) -> list[tuple[str, str]]:
        """Links to nodes that are not in the graph (dead or never started)."""
        return sorted((a, b) for a, peers in self.links.items() for b in peers if b not in self.links)

    def components(self) -> list[set[str]]:
        seen: set[str] = set()
        parts: list[set[str]] = []
        for start in sorted(self.links):
            if start in seen:
                continue
            part, stack = set(), [start]
            while stack:
                node = stack.pop()
                if node in part:
                    continue
                part.add(node)
                stack.extend(p for p in self.links[node] if p in self.links and node in self.links[p])
            seen |= part
            parts.append(part)
        return parts

    def degrees(self) -> list[int]:
        return sorted(len(p) for p in self.links.values())

    def problems(self, *, min_degree: int, max_degree: int) -> list[str]:
        out = []
        if self.asymmetric():
            out.append(f"asymmetric: {len(self.asymmetric())}")
        if self.dangling():
            out.append(f"links to absent nodes: {len(self.dangling())}")
        parts = self.components()
        if len(parts) != 1:
            out.append(f"{len(parts)} components of sizes {sorted(len(p) for p in parts)}")
        bad = [d for d in self.degrees() if not min_degree <= d <= max_degree]
        if bad:
            out.append(f"degrees outside [{min_degree}, {max_degree}]: {bad}")
        return out

    def healthy(self, *, min_degree: int, max_degree: int) -> bool:
        return not self.problems(min_degree=min_degree, max_degree=max_degree)


async def read_graph(client: httpx.AsyncClient, apis: dict[str, str]) -> LinkGraph | None:
    """node id -> api URL in; the graph, or None when some node did not answer."""

    async def one(node_id: str, api: str) -> tuple[str, frozenset[str]] | None:
        try:
            response = await client.get(api + "/v1/links")
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        return node_id, frozenset(link["peer"] for link in response.json()["links"])

    answers = await asyncio.gather(*(one(n, a) for n, a in apis.items()))
    if any(a is None for a in answers):
        return None
    return LinkGraph(dict(a for a in answers if a is not None))


def graph_of(apis: Iterable[tuple[str, str]], timeout: float = 5.0) -> LinkGraph | None:
    """Synchronous :func:`read_graph` (usable where an event loop already runs, e.g. under Playwright)."""
    links: dict[str, frozenset[str]] = {}
    with httpx.Client(timeout=timeout) as client:
        for node_id, api in apis:
            try:
                response = client.get(api + "/v1/links")
            except httpx.HTTPError:
                return None
            if response.status_code != 200:
                return None
            links[node_id] = frozenset(link["peer"] for link in response.json()["links"])
    return LinkGraph(links)
