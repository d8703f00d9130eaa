"""The native kernel (``vudo._core.NativePhysarum``) behind the same interface as
:class:`vudo.physarum.wasm.WasmPhysarum` (NumPy arrays in and out)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .._core import NativePhysarum


class NativeKernel:
    def __init__(self, params: list[float], seed: int) -> None:
        self.raw = NativePhysarum([float(v) for v in params], int(seed))

    def set_params(self, params: list[float]) -> None:
        self.raw.set_params([float(v) for v in params])

    def add_node(self, x: float, y: float, z: float = 0.0) -> int:
        return self.raw.add_node(x, y, z)

    def add_nodes(self, xyz: npt.ArrayLike) -> int:
        return self.raw.add_nodes(np.asarray(xyz, dtype=np.float64).reshape(-1).tolist())

    def add_edge(self, a: int, b: int, length: float = float("nan")) -> int:
        return self.raw.add_edge(a, b, length)

    def add_edges(self, ends: npt.ArrayLike, lengths: npt.ArrayLike | None = None) -> int:
        flat = np.asarray(ends, dtype=np.int64).reshape(-1).tolist()
        lens = None if lengths is None else np.asarray(lengths, dtype=np.float64).reshape(-1).tolist()
        return self.raw.add_edges(flat, lens)

    def set_food(self, ids: list[int]) -> None:
        self.raw.set_food([int(i) for i in ids])

    def step(self, n: int = 1) -> None:
        self.raw.step(n)

    @property
    def node_count(self) -> int:
        return self.raw.node_count

    @property
    def edge_count(self) -> int:
        return self.raw.edge_count

    @property
    def alive_count(self) -> int:
        return self.raw.alive_count

    @property
    def steps(self) -> int:
        return self.raw.steps

    @property
    def residual(self) -> float:
        return self.raw.residual

    @property
    def max_residual(self) -> float:
        return self.raw.max_residual

    @property
    def last_cg_iterations(self) -> int:
        return self.raw.last_cg_iterations

    @property
    def total_cg_iterations(self) -> int:
        return self.raw.total_cg_iterations

    @property
    def converged(self) -> bool:
        return self.raw.converged

    @property
    def factor_nnz(self) -> int:
        """Off-diagonal entries of the current sparse Cholesky factor (0 before the first factorization)."""
        return self.raw.factor_nnz

    @property
    def factor_n(self) -> int:
        """Unknowns of the current sparse Cholesky factor."""
        return self.raw.factor_n

    @property
    def analyses(self) -> int:
        """Symbolic analyses (orderings) done so far by the Cholesky solver."""
        return self.raw.analyses

    @property
    def total_factor_flops(self) -> float:
        """Multiply-add pairs spent in Cholesky factorizations over all steps."""
        return self.raw.total_factor_flops

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the simulation's arrays now (network + solver)."""
        return self.raw.memory_bytes

    @property
    def peak_memory_bytes(self) -> int:
        """Largest memory_bytes seen after a step."""
        return self.raw.peak_memory_bytes

    @property
    def graph_bytes(self) -> int:
        """Bytes held by the network's own arrays (cells, tubes, food)."""
        return self.raw.graph_bytes

    @property
    def total_length(self) -> float:
        return self.raw.total_length

    @property
    def order_parameter(self) -> float:
        return self.raw.order_parameter

    @property
    def last_source(self) -> int:
        return self.raw.last_source

    def edge_ends(self) -> npt.NDArray[np.uint32]:
        return np.asarray(self.raw.edge_ends(), dtype=np.uint32).reshape(-1, 2)

    def edge_length(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.raw.edge_length(), dtype=np.float64)

    def conductivity(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.raw.conductivity(), dtype=np.float64)

    def radius(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.raw.radius(), dtype=np.float64)

    def flow(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.raw.flow(), dtype=np.float64)

    def age(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.raw.age(), dtype=np.float64)

    def alive(self) -> npt.NDArray[np.bool_]:
        return np.asarray(self.raw.alive(), dtype=bool)

    def pressure(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.raw.pressure(), dtype=np.float64)

    def positions(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.raw.positions(), dtype=np.float64).reshape(-1, 3)

    def phase(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.raw.phase(), dtype=np.float64)

    def nutrient(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.raw.nutrient(), dtype=np.float64)

    def food(self) -> list[int]:
        return list(self.raw.food())
