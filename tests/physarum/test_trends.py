"""Tero et al. 2010 trends with many food sources and the sigmoid model: raising
gamma lowers total length and fault tolerance; raising I0 raises fault
tolerance; a high-gamma, low-I0 network ends near the food MST's length."""

from __future__ import annotations

import functools
import statistics
from typing import Any

import numpy as np
from scipy.spatial import Delaunay

from vudo.physarum import Graph, PhysarumParams, graph_from_arrays, result_document
from vudo.physarum.run import load, make_kernel

SEEDS = (1, 2, 3)


@functools.lru_cache(maxsize=1)
def food_field() -> Graph:
    """150 random points, Delaunay tubes, 8 food sources spread over the square."""
    pts = np.random.default_rng(1).random((150, 2))
    edges: set[tuple[int, int]] = set()
    for s in Delaunay(pts).simplices:
        for i in range(3):
            a, b = sorted((int(s[i]), int(s[(i + 1) % 3])))
            edges.add((a, b))
    targets = np.array([[0.1, 0.1], [0.9, 0.1], [0.5, 0.5], [0.1, 0.9], [0.9, 0.9], [0.5, 0.1], [0.1, 0.5], [0.8, 0.5]])
    food = [int(np.argmin(((pts - t) ** 2).sum(1))) for t in targets]
    return graph_from_arrays(pts, sorted(edges), food)


def metrics(gamma: float, i0: float, seed: int) -> dict[str, Any]:
    g = food_field()
    p = PhysarumParams(model="sigmoid", gamma=gamma, i0=i0, scheme="one_to_all", dt=0.2, prune_threshold=0.03)
    k = make_kernel(p, seed)
    load(k, g)
    k.step(1000)
    assert k.max_residual < 1e-9
    m: dict[str, Any] = result_document(k, g, 1000, seed)["metrics"]
    return m


def mean_of(key: str, gamma: float, i0: float) -> float:
    return statistics.mean(float(metrics(gamma, i0, s)[key]) for s in SEEDS)


def test_raising_gamma_lowers_length_and_fault_tolerance() -> None:
    assert mean_of("total_length", 3.0, 1.0) < 0.8 * mean_of("total_length", 1.1, 1.0)
    assert mean_of("fault_tolerance", 3.0, 1.0) < mean_of("fault_tolerance", 1.1, 1.0) - 0.3


def test_raising_i0_raises_fault_tolerance() -> None:
    assert mean_of("fault_tolerance", 1.1, 4.0) > mean_of("fault_tolerance", 1.1, 0.2)
    assert mean_of("fault_tolerance", 3.0, 5.0) > mean_of("fault_tolerance", 3.0, 0.5)


def test_high_gamma_low_i0_ends_near_the_mst_length() -> None:
    ratios = [metrics(2.0, 0.5, s) for s in SEEDS]
    for m in ratios:
        assert m["food_connected"]
    assert abs(statistics.median(m["total_length_ratio"] for m in ratios) - 1.0) <= 0.10
