"""This node's view of the link graph, from signed link lists.

Each node publishes its current links as a sealed gossip value under
:data:`LINKS_KEY` (a :class:`LinkList` signed by its owner, bounded). A node
builds the network's topology from its own links and the lists of verified
members: an edge ``a — b`` is shown only when both ends' signed lists (ours
counting as signed) name each other, so no single node can invent an edge
to another, and a half-open or one-sided link is not drawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated

import msgspec

from vudo.hyphal.signed import Carrier, open_sealed, seal
from vudo.identity import Identity

LINKS_KEY = "links"
#: Most peers one published link list may name (well above any max_connections).
MAX_LISTED_LINKS = 64

_NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class LinkList(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    node_id: _NodeId
    timestamp: Annotated[float, msgspec.Meta(ge=0)]
    peers: Annotated[tuple[_NodeId, ...], msgspec.Meta(max_length=MAX_LISTED_LINKS)]


def publish_links(identity: Identity, peers: Iterable[str], now: float, *, carrier: Carrier | None = None) -> str:
    """Our signed link list, bound to the gossip identity (``carrier``) that publishes it."""
    listed = tuple(sorted(peers))[:MAX_LISTED_LINKS]
    return seal(identity, LinkList(node_id=identity.node_id, timestamp=now, peers=listed), carrier=carrier)


def verify_links(value: str, *, owner: str, now: float, ttl: float) -> LinkList:
    return open_sealed(value, LinkList, owner=owner, now=now, ttl=ttl)


@dataclass(frozen=True, slots=True)
class TopologyView:
    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]  # each undirected edge once, (smaller id, larger id), sorted


def build_topology(self_id: str, own_links: Iterable[str], lists: Mapping[str, Iterable[str]]) -> TopologyView:
    """Nodes: us and every node with a verified list. Edges: links both ends list."""
    claims: dict[str, frozenset[str]] = {node: frozenset(peers) for node, peers in lists.items() if node != self_id}
    claims[self_id] = frozenset(own_links)
    edges = {
        (min(a, b), max(a, b))
        for a, peers in claims.items()
        for b in peers
        if b != a and a in claims.get(b, frozenset())
    }
    return TopologyView(nodes=tuple(sorted(claims)), edges=tuple(sorted(edges)))


def connected_components(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[frozenset[str]]:
    """The connected components (union-find), largest first, ties by smallest member."""
    parent: dict[str, str] = {n: n for n in nodes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, set[str]] = {}
    for n in parent:
        groups.setdefault(find(n), set()).add(n)
    return sorted((frozenset(g) for g in groups.values()), key=lambda g: (-len(g), min(g)))
