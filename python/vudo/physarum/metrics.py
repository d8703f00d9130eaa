"""Network quality metrics (Tero et al. 2010) of a Physarum result.

* total length (TL) of surviving tubes;
* mean shortest-path distance (MD) between all pairs of food sources over the
  surviving tubes (``None`` when the food is disconnected);
* fault tolerance (FT): share of single-tube failures (over surviving tubes)
  after which all food stays connected; computed in O(V+E) from bridges;
* the same three for the minimum spanning tree (MST) of the food sources on the
  metric closure of the *input* graph (complete graph on food, weighted by
  shortest-path distance), expanded to the union of the realising paths for FT,
  and the ratios TL/TL_MST, MD/MD_MST, FT/FT_MST (``None`` when FT_MST = 0,
  which is the usual case: every tree tube is a bridge).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra, minimum_spanning_tree

FloatArray = npt.NDArray[np.float64]


def _adjacency(n: int, ends: npt.NDArray[Any], length: FloatArray, mask: npt.NDArray[np.bool_]) -> csr_matrix:
    e = ends[mask]
    w = length[mask]
    # Parallel tubes: csr sums duplicates, so keep the shortest by sorting and de-duplicating.
    a = np.minimum(e[:, 0], e[:, 1]).astype(np.int64)
    b = np.maximum(e[:, 0], e[:, 1]).astype(np.int64)
    if len(a):
        order = np.lexsort((w, b, a))
        a, b, w = a[order], b[order], w[order]
        first = np.ones(len(a), dtype=bool)
        first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        a, b, w = a[first], b[first], w[first]
    return csr_matrix((np.concatenate([w, w]), (np.concatenate([a, b]), np.concatenate([b, a]))), shape=(n, n))


def food_connected(n: int, ends: npt.NDArray[Any], mask: npt.NDArray[np.bool_], food: list[int]) -> bool:
    adj = _adjacency(n, ends, np.ones(len(ends)), mask)
    _, labels = connected_components(adj, directed=False)
    return len({int(labels[f]) for f in food}) == 1


def fault_tolerance(n: int, ends: npt.NDArray[Any], mask: npt.NDArray[np.bool_], food: list[int]) -> float:
    """Share of the tubes in ``mask`` whose single failure keeps all food connected."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return 0.0
    if not food_connected(n, ends, mask, food):
        return 0.0
    # Iterative Tarjan bridge search with subtree food counts (handles parallel tubes).
    adj: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for tube in idx.tolist():
        a, b = int(ends[tube, 0]), int(ends[tube, 1])
        adj[a].append((b, tube))
        adj[b].append((a, tube))
    is_food = np.zeros(n, dtype=bool)
    is_food[food] = True
    total_food = len(food)
    disc = [-1] * n
    low = [0] * n
    sub_food = [0] * n
    bad = 0
    timer = 0
    root = food[0]
    disc[root] = low[root] = timer
    timer += 1
    sub_food[root] = int(is_food[root])
    stack: list[tuple[int, int, int]] = [(root, -1, 0)]  # node, parent tube, next neighbour index
    while stack:
        v, pt, i = stack[-1]
        if i < len(adj[v]):
            stack[-1] = (v, pt, i + 1)
            u, t = adj[v][i]
            if t == pt:
                continue
            if disc[u] == -1:
                disc[u] = low[u] = timer
                timer += 1
                sub_food[u] = int(is_food[u])
                stack.append((u, t, 0))
            else:
                low[v] = min(low[v], disc[u])
        else:
            stack.pop()
            if stack:
                p = stack[-1][0]
                low[p] = min(low[p], low[v])
                sub_food[p] += sub_food[v]
                if low[v] > disc[p] and 0 < sub_food[v] < total_food:
                    bad += 1  # a bridge with food on both sides
    return 1.0 - bad / len(idx)


def _mean_pair(dist: FloatArray, food: list[int]) -> float | None:
    pairs = [float(dist[i, food[j]]) for i, j in combinations(range(len(food)), 2)]
    if not pairs or not all(np.isfinite(pairs)):
        return None
    return float(np.mean(pairs))


def compute_metrics(
    n: int,
    ends: npt.NDArray[Any],
    length: FloatArray,
    alive: npt.NDArray[np.bool_],
    food: list[int],
) -> dict[str, float | bool | None]:
    """TL, MD, FT of the surviving network and of the food MST, with ratios."""
    all_mask = np.ones(len(ends), dtype=bool)
    full = _adjacency(n, ends, length, all_mask)
    d_full = dijkstra(full, directed=False, indices=food)
    closure = d_full[:, food]
    if not np.all(np.isfinite(closure)):
        raise ValueError("food sources are not connected in the input graph")
    mst = minimum_spanning_tree(csr_matrix(np.triu(closure, 1))).toarray()
    mst = mst + mst.T
    mst_length = float(mst.sum() / 2.0)
    d_tree = dijkstra(csr_matrix(mst), directed=False)
    mst_md = _mean_pair(d_tree, list(range(len(food))))
    # Expand MST edges to input-graph tubes along shortest paths for FT_MST.
    _, pred = dijkstra(full, directed=False, indices=food, return_predecessors=True)
    pair_to_tube: dict[tuple[int, int], int] = {}
    for t in np.argsort(length, kind="stable"):
        key = (int(min(ends[t])), int(max(ends[t])))
        pair_to_tube.setdefault(key, int(t))
    tree_mask = np.zeros(len(ends), dtype=bool)
    for i, j in zip(*np.nonzero(np.triu(mst, 1))):
        v = food[j]
        while v != food[i]:
            u = int(pred[i, v])
            tree_mask[pair_to_tube[(min(u, v), max(u, v))]] = True
            v = u
    mst_ft = fault_tolerance(n, ends, tree_mask, food)

    tl = float(length[alive].sum())
    d_alive = dijkstra(_adjacency(n, ends, length, alive), directed=False, indices=food)
    md = _mean_pair(d_alive, food)
    ft = fault_tolerance(n, ends, alive, food)
    return {
        "total_length": tl,
        "mean_distance": md,
        "fault_tolerance": ft,
        "food_connected": md is not None,
        "mst_total_length": mst_length,
        "mst_mean_distance": mst_md,
        "mst_fault_tolerance": mst_ft,
        "total_length_ratio": tl / mst_length if mst_length > 0 else None,
        "mean_distance_ratio": (md / mst_md) if (md is not None and mst_md) else None,
        "fault_tolerance_ratio": (ft / mst_ft) if mst_ft > 0 else None,
        "alive_tubes": int(alive.sum()),
    }
