"""``G.json`` decoding and validation.

Format::

    {"nodes": [{"id": 0, "x": 0.0, "y": 0.0, "z": 0.0}, ...],   # z optional (0)
     "edges": [{"a": 0, "b": 1, "length": 1.5}, ...],           # length optional (Euclidean)
     "food":  [0, 7]}                                           # >= 2 node ids

Ids are integers or strings. With exactly two food sources the first is the
source and the second the sink (scheme "pair"). Sizes are bounded; every error
raises ValueError naming the field (``edges[3].b: unknown node id 9``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import msgspec
import numpy as np
import numpy.typing as npt

from vudo.codec import decode_json

MAX_NODES = 1_000_000
MAX_EDGES = 2_000_000
#: A graph file larger than this is refused before parsing.
MAX_GRAPH_BYTES = 512 * 2**20

NodeId = int | str


class NodeSpec(msgspec.Struct, forbid_unknown_fields=True):
    id: NodeId
    x: float
    y: float
    z: float = 0.0


class EdgeSpec(msgspec.Struct, forbid_unknown_fields=True):
    a: NodeId
    b: NodeId
    length: float | None = None


class GraphSpec(msgspec.Struct, forbid_unknown_fields=True):
    nodes: Annotated[list[NodeSpec], msgspec.Meta(min_length=2, max_length=MAX_NODES)]
    edges: Annotated[list[EdgeSpec], msgspec.Meta(min_length=1, max_length=MAX_EDGES)]
    food: Annotated[list[NodeId], msgspec.Meta(min_length=2, max_length=MAX_NODES)]


@dataclass(frozen=True)
class Graph:
    """A validated graph in kernel form: nodes are indices 0..n-1."""

    ids: list[NodeId]
    xyz: npt.NDArray[np.float64]  # (n, 3)
    ends: npt.NDArray[np.uint32]  # (m, 2)
    length: npt.NDArray[np.float64]  # (m,) resolved (Euclidean where absent)
    food: list[int]

    @property
    def n_nodes(self) -> int:
        return len(self.ids)

    @property
    def n_edges(self) -> int:
        return int(self.ends.shape[0])


def validate(spec: GraphSpec) -> Graph:
    """Check ids, coordinates, lengths and food; return the index form."""
    index: dict[NodeId, int] = {}
    xyz = np.empty((len(spec.nodes), 3), dtype=np.float64)
    for i, node in enumerate(spec.nodes):
        if node.id in index:
            raise ValueError(f"nodes[{i}].id: duplicate node id {node.id!r}")
        for axis in ("x", "y", "z"):
            value = getattr(node, axis)
            if not math.isfinite(value):
                raise ValueError(f"nodes[{i}].{axis}: must be finite, got {value}")
        index[node.id] = i
        xyz[i] = (node.x, node.y, node.z)
    ends = np.empty((len(spec.edges), 2), dtype=np.uint32)
    length = np.empty(len(spec.edges), dtype=np.float64)
    for k, edge in enumerate(spec.edges):
        for side in ("a", "b"):
            if getattr(edge, side) not in index:
                raise ValueError(f"edges[{k}].{side}: unknown node id {getattr(edge, side)!r}")
        a, b = index[edge.a], index[edge.b]
        if a == b:
            raise ValueError(f"edges[{k}]: self-loop on node {edge.a!r}")
        if edge.length is None:
            dist = float(np.linalg.norm(xyz[a] - xyz[b]))
            if not dist > 0.0:
                raise ValueError(f"edges[{k}].length: absent and nodes {edge.a!r}, {edge.b!r} coincide")
            length[k] = dist
        else:
            if not (math.isfinite(edge.length) and edge.length > 0.0):
                raise ValueError(f"edges[{k}].length: must be a finite number > 0, got {edge.length}")
            length[k] = edge.length
        ends[k] = (a, b)
    food: list[int] = []
    seen: set[int] = set()
    for j, fid in enumerate(spec.food):
        if fid not in index:
            raise ValueError(f"food[{j}]: unknown node id {fid!r}")
        if index[fid] in seen:
            raise ValueError(f"food[{j}]: node id {fid!r} listed twice")
        seen.add(index[fid])
        food.append(index[fid])
    return Graph(ids=[n.id for n in spec.nodes], xyz=xyz, ends=ends, length=length, food=food)


def decode_graph(data: bytes) -> Graph:
    """Decode and validate ``G.json`` bytes."""
    return validate(decode_json(data, GraphSpec, what="graph", max_bytes=MAX_GRAPH_BYTES))


def graph_from_arrays(
    xyz: npt.ArrayLike, ends: npt.ArrayLike, food: list[int], length: npt.ArrayLike | None = None
) -> Graph:
    """Build a :class:`Graph` directly (tests, benchmarks); validated like JSON input."""
    pts = np.asarray(xyz, dtype=np.float64)
    if pts.shape[1] == 2:
        pts = np.column_stack([pts, np.zeros(len(pts))])
    e = np.asarray(ends, dtype=np.int64)
    lens = None if length is None else np.asarray(length, dtype=np.float64)
    spec = GraphSpec(
        nodes=[NodeSpec(i, float(p[0]), float(p[1]), float(p[2])) for i, p in enumerate(pts)],
        edges=[
            EdgeSpec(int(a), int(b), None if lens is None else float(lens[k])) for k, (a, b) in enumerate(e)
        ],
        food=list(food),
    )
    return validate(spec)
