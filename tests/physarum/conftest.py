"""Shared graph builders for the Physarum tests."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from vudo.physarum.wasm import WASM_PATH


@pytest.fixture(scope="session", autouse=True)
def _wasm_built() -> None:
    assert WASM_PATH.is_file(), f"{WASM_PATH} missing: run scripts/build-wasm.sh first"


def power_array(**overrides: float) -> list[float]:
    """Power model, mu = 1, dt*decay = 1 (the discrete Bonifaci dynamics D <- |Q|)."""
    from vudo.physarum import PhysarumParams

    return PhysarumParams(model="power", mu=1.0, dt=1.0, decay=1.0, **overrides).to_array()  # type: ignore[arg-type]


def shortest_path_edges(n: int, ends: np.ndarray, length: np.ndarray, s: int, t: int) -> set[int]:
    """Edge ids of the Dijkstra path from s to t (parallel-free graphs)."""
    adj = csr_matrix(
        (np.concatenate([length, length]), (np.concatenate([ends[:, 0], ends[:, 1]]), np.concatenate([ends[:, 1], ends[:, 0]]))),
        shape=(n, n),
    )
    _, pred = dijkstra(adj, directed=False, indices=s, return_predecessors=True)
    eid = {(min(a, b), max(a, b)): k for k, (a, b) in enumerate(ends.tolist())}
    path: set[int] = set()
    v = t
    while v != s:
        u = int(pred[v])
        path.add(eid[(min(u, v), max(u, v))])
        v = u
    return path


def make_path_unique(n: int, ends: np.ndarray, length: np.ndarray, s: int, t: int, margin: float = 0.05) -> np.ndarray:
    """Stretch tubes off the Dijkstra path until every path that leaves it is at
    least `margin` longer (the shortest path itself is unchanged)."""
    length = length.astype(np.float64).copy()
    for _ in range(60):
        path = shortest_path_edges(n, ends, length, s, t)
        adj = csr_matrix(
            (np.concatenate([length, length]), (np.concatenate([ends[:, 0], ends[:, 1]]), np.concatenate([ends[:, 1], ends[:, 0]]))),
            shape=(n, n),
        )
        d = dijkstra(adj, directed=False, indices=[s, t])
        best = d[0, t]
        ok = True
        for k, (a, b) in enumerate(ends.tolist()):
            if k in path:
                continue
            via = min(d[0, a] + length[k] + d[1, b], d[0, b] + length[k] + d[1, a])
            if via < (1 + margin) * best:
                ok = False
                length[k] *= 1.3
        if ok:
            return length
    raise AssertionError("could not separate the shortest path")


def maze(w: int, h: int, seed: int, extra: int) -> tuple[np.ndarray, np.ndarray]:
    """A w x h grid maze: randomized DFS spanning tree plus `extra` opened walls."""
    rnd = random.Random(seed)
    seen = {0}
    stack = [0]
    edges: set[tuple[int, int]] = set()
    while stack:
        v = stack[-1]
        x, y = v % w, v // w
        nbrs = [(x + dx, y + dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        nbrs = [yy * w + xx for xx, yy in nbrs if 0 <= xx < w and 0 <= yy < h and yy * w + xx not in seen]
        if not nbrs:
            stack.pop()
            continue
        u = rnd.choice(nbrs)
        seen.add(u)
        edges.add((min(u, v), max(u, v)))
        stack.append(u)
    walls = [(v, v + 1) for v in range(w * h) if v % w + 1 < w] + [(v, v + w) for v in range(w * h - w)]
    walls = [e for e in walls if e not in edges]
    rnd.shuffle(walls)
    edges.update(walls[:extra])
    xyz = np.array([[v % w, v // w, 0.0] for v in range(w * h)])
    return xyz, np.array(sorted(edges), dtype=np.int64)
