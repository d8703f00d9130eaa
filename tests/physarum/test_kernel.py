"""Validation of the kernel (wasm module under wasmtime) against the literature:
Tero et al. 2007 (flow + adaptation), Bonifaci et al. 2012 (mu = 1 converges to
the shortest path), Kirchhoff's law at every step."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vudo.physarum import PhysarumParams
from vudo.physarum.wasm import KernelError, WasmPhysarum

from .conftest import make_path_unique, maze, power_array, shortest_path_edges


def run_checked(k: WasmPhysarum, steps: int) -> None:
    for _ in range(steps):
        k.step(1)
        assert k.residual < 1e-9, f"Kirchhoff residual {k.residual} at step {k.steps}"
    assert k.max_residual < 1e-9


def test_two_parallel_tubes_the_shorter_carries_everything() -> None:
    k = WasmPhysarum(power_array(), seed=1)
    k.add_nodes([[0, 0, 0], [1, 0, 0]])
    k.add_edges([[0, 1], [0, 1]], [1.0, 1.6])
    k.set_food([0, 1])
    run_checked(k, 200)
    assert k.alive().tolist() == [True, False]
    assert k.flow()[0] == pytest.approx(1.0, abs=1e-12)
    assert k.flow()[1] == 0.0
    assert k.radius()[0] == pytest.approx(1.0, abs=1e-9)  # D = |Q| = I0 = 1, r = D^(1/4)


def test_two_parallel_tubes_default_dt_also_converges() -> None:
    k = WasmPhysarum(PhysarumParams(model="power", mu=1.0).to_array(), seed=1)
    k.add_nodes([[0, 0, 0], [1, 0, 0]])
    k.add_edges([[0, 1], [0, 1]], [2.0, 1.0])
    k.set_food([0, 1])
    run_checked(k, 400)
    assert k.alive().tolist() == [False, True]


def check_dijkstra(xyz: np.ndarray, ends: np.ndarray, length: np.ndarray, s: int, t: int, steps: int) -> None:
    n = len(xyz)
    length = make_path_unique(n, ends, length, s, t)
    expect = shortest_path_edges(n, ends, length, s, t)
    k = WasmPhysarum(power_array(), seed=5)
    k.add_nodes(xyz)
    k.add_edges(ends, length)
    k.set_food([s, t])
    run_checked(k, steps)
    alive = set(np.flatnonzero(k.alive()).tolist())
    assert alive == expect
    assert np.allclose(np.abs(k.flow()[sorted(expect)]), 1.0, atol=1e-9)


@st.composite
def connected_graphs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(4, 14))
    edges: set[tuple[int, int]] = set()
    for v in range(1, n):  # random spanning tree keeps it connected
        u = draw(st.integers(0, v - 1))
        edges.add((u, v))
    extra = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=2 * n))
    edges.update((min(a, b), max(a, b)) for a, b in extra if a != b)
    ends = np.array(sorted(edges), dtype=np.int64)
    length = np.array(draw(st.lists(st.integers(1, 20), min_size=len(ends), max_size=len(ends))), dtype=np.float64)
    xyz = np.array([[float(i), float(i % 3), 0.0] for i in range(n)])
    return xyz, ends, length


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(connected_graphs())
def test_random_graphs_survivors_are_the_dijkstra_path(g: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    xyz, ends, length = g
    check_dijkstra(xyz, ends, length, 0, len(xyz) - 1, steps=900)


def test_grid_maze_survivor_is_the_dijkstra_path() -> None:
    xyz, ends = maze(8, 8, seed=3, extra=12)
    check_dijkstra(xyz, ends, np.ones(len(ends)), 0, 63, steps=900)


def test_invalid_inputs_raise_with_message() -> None:
    with pytest.raises(KernelError, match="i0"):
        WasmPhysarum([0, 1, 1.8, -1.0], seed=0)
    k = WasmPhysarum([], seed=0)
    k.add_nodes([[0, 0, 0], [1, 0, 0]])
    with pytest.raises(KernelError, match="does not exist"):
        k.add_edge(0, 5)
    with pytest.raises(KernelError, match="self-loop"):
        k.add_edge(1, 1)
    with pytest.raises(KernelError, match="twice"):
        k.set_food([0, 0])


def test_fuel_limit_traps_a_runaway_run() -> None:
    import wasmtime

    k = WasmPhysarum(power_array(), seed=1, fuel=200_000)
    k.add_nodes([[0, 0, 0], [1, 0, 0], [2, 0, 0]])
    k.add_edges([[0, 1], [1, 2]])
    k.set_food([0, 2])
    with pytest.raises(wasmtime.Trap):
        k.step(1_000_000)
