"""The sparse Cholesky pressure solver (default) against the CG paths: Kirchhoff
residual at every step through pruning and growth, re-analysis when the
pattern changes, the CG preconditioners still selectable, native and wasm
bit-identical, memory reported and bounded."""

from __future__ import annotations

import numpy as np
import pytest

from vudo.physarum import PhysarumParams
from vudo.physarum.native import NativeKernel
from vudo.physarum.wasm import WasmPhysarum

from .conftest import maze


def lattice(side: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(side, dtype=float), np.arange(side, dtype=float))
    xyz = np.column_stack([xs.ravel(), ys.ravel(), np.zeros(side * side)])
    xyz[:, :2] += rng.uniform(-0.25, 0.25, size=(side * side, 2))
    v = np.arange(side * side).reshape(side, side)
    ends = np.vstack([np.column_stack([v[:, :-1].ravel(), v[:, 1:].ravel()]),
                      np.column_stack([v[:-1, :].ravel(), v[1:, :].ravel()])])
    s = side - 1
    food = [int(v[1, 1]), int(v[1, s - 1]), int(v[s - 1, 1]), int(v[s - 1, s - 1]), int(v[s // 2, s // 2])]
    return xyz, ends, food


def build(k: WasmPhysarum | NativeKernel, g: tuple[np.ndarray, np.ndarray, list[int]]) -> None:
    k.add_nodes(g[0])
    k.add_edges(g[1])
    k.set_food(g[2])


def params(**kw: object) -> list[float]:
    base: dict[str, object] = {"model": "sigmoid", "gamma": 1.8, "dt": 0.2, "scheme": "one_to_all", "prune_threshold": 0.03}
    base.update(kw)
    return PhysarumParams(**base).to_array()  # type: ignore[arg-type]


def test_residual_below_1e9_every_step_through_pruning_and_growth() -> None:
    g = lattice(18, seed=4)
    k = NativeKernel(params(exploration_probability=0.05, step_size=0.7), seed=11)
    build(k, g)
    cells0, alive0 = k.node_count, k.alive_count
    analyses = []
    for _ in range(160):
        k.step(1)
        assert k.residual < 1e-9, f"Kirchhoff residual {k.residual} at step {k.steps}"
        assert k.converged
        analyses.append(k.analyses)
    assert k.max_residual < 1e-9
    assert k.node_count > cells0, "exploration should have grown the network"
    assert k.alive_count < alive0, "thin tubes should have been pruned"
    # The analysis is reused across steps, and redone when growth or pruning changes the pattern.
    assert 1 < analyses[-1] < 160
    assert analyses.count(analyses[0]) > 1
    # A direct solve: about one polishing CG iteration per step, not hundreds.
    assert k.total_cg_iterations <= 3 * 160
    assert k.factor_nnz > 0 and 0 < k.factor_n <= k.node_count and k.total_factor_flops > 0


@pytest.mark.parametrize("precond", ["jacobi", "ic0", "mic0"])
def test_cg_paths_stay_selectable_and_agree_with_cholesky(precond: str) -> None:
    g = lattice(12, seed=2)
    direct = NativeKernel(params(), seed=3)
    iterative = NativeKernel(params(cg_precond=precond), seed=3)
    for k in (direct, iterative):
        build(k, g)
        k.step(90)
        assert k.max_residual < 1e-9
    assert iterative.factor_nnz == 0 and iterative.total_factor_flops == 0.0
    assert iterative.total_cg_iterations > 3 * direct.total_cg_iterations
    a, b = direct.conductivity(), iterative.conductivity()
    assert (direct.alive() == iterative.alive()).all()
    assert np.max(np.abs(a - b)) <= 1e-9 * np.max(np.abs(a))


@pytest.mark.parametrize("precond", ["cholesky", "mic0"])
def test_native_and_wasm_bit_identical_on_a_pruning_maze(precond: str) -> None:
    xyz, ends = maze(9, 9, seed=7, extra=20)
    arr = params(cg_precond=precond, exploration_probability=0.1, prune_threshold=0.05)
    kernels = (WasmPhysarum(arr, seed=5), NativeKernel(arr, seed=5))
    for k in kernels:
        k.add_nodes(xyz)
        k.add_edges(ends)
        k.set_food([0, 8, 40, 72, 80])
        k.step(120)
    a, b = kernels
    for getter in ("conductivity", "flow", "pressure", "positions"):
        assert getattr(a, getter)().tobytes() == getattr(b, getter)().tobytes(), getter
    # Same decisions and sizes on both platforms (array bytes are counted per element, not per pointer width).
    for attr in ("total_factor_flops", "analyses", "factor_n", "factor_nnz", "memory_bytes", "peak_memory_bytes", "graph_bytes"):
        assert getattr(a, attr) == getattr(b, attr), attr
    assert a.peak_memory_bytes >= a.memory_bytes > a.graph_bytes > 0


def test_memory_is_reported_and_a_small_multiple_of_the_graph() -> None:
    g = lattice(40, seed=1)
    k = NativeKernel(params(), seed=1)
    build(k, g)
    k.step(3)
    assert k.graph_bytes > 0
    assert k.memory_bytes >= k.graph_bytes
    assert k.peak_memory_bytes >= k.memory_bytes
    assert k.peak_memory_bytes < 8 * k.graph_bytes
    w = WasmPhysarum(params(), seed=1)
    build(w, g)
    w.step(3)
    assert w.linear_memory_bytes >= w.peak_memory_bytes > 0
