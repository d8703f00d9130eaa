"""The topology view: only edges both ends sign, and connected components."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vudo.errors import RemoteValueError
from vudo.hyphal.signed import seal
from vudo.hyphal.topology import MAX_LISTED_LINKS, LinkList, build_topology, connected_components, publish_links, verify_links
from vudo.identity import Identity

T0 = 1_800_000_000.0


def test_edges_need_both_ends() -> None:
    view = build_topology("me", ["a", "b"], {"a": ["me", "b"], "b": ["a"], "c": ["me", "a"]})
    assert view.nodes == ("a", "b", "c", "me")
    assert view.edges == (("a", "b"), ("a", "me"))  # me—b: b does not list me; c's claims are one-sided


def test_components() -> None:
    comps = connected_components(["a", "b", "c", "d", "e"], [("a", "b"), ("b", "c"), ("d", "e")])
    assert comps == [frozenset("abc"), frozenset("de")]
    assert connected_components([], []) == []


@given(st.lists(st.tuples(st.integers(0, 15), st.integers(0, 15)), max_size=40))
def test_components_partition_the_nodes(pairs: list[tuple[int, int]]) -> None:
    nodes = [str(i) for i in range(16)]
    edges = [(str(a), str(b)) for a, b in pairs]
    comps = connected_components(nodes, edges)
    assert sorted(n for c in comps for n in c) == sorted(nodes)
    for a, b in edges:
        assert any(a in c and b in c for c in comps)


def test_signed_link_lists_round_trip_and_bind_the_owner() -> None:
    me, other = Identity.generate(), Identity.generate()
    value = publish_links(me, [f"p{i}" for i in range(MAX_LISTED_LINKS + 5)], T0)
    listed = verify_links(value, owner=me.node_id, now=T0 + 1, ttl=60)
    assert len(listed.peers) == MAX_LISTED_LINKS
    with pytest.raises(RemoteValueError) as err:
        verify_links(value, owner=other.node_id, now=T0 + 1, ttl=60)
    assert err.value.reason == "wrong_owner"
    forged = seal(other, LinkList(node_id=other.node_id, timestamp=T0, peers=tuple(f"p{i}" for i in range(MAX_LISTED_LINKS + 1))))
    with pytest.raises(RemoteValueError) as err:
        verify_links(forged, owner=other.node_id, now=T0, ttl=60)
    assert err.value.reason == "malformed"
