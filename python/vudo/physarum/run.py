"""Run a graph through the kernel for N steps and build the ``R.json`` structure."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from .graph import Graph
from .params import PhysarumParams

Backend = Literal["wasm", "native"]


class Kernel(Protocol):
    """What both kernels (wasm via wasmtime, native via vudo._core) provide."""

    def add_nodes(self, xyz: npt.ArrayLike) -> int: ...
    def add_edges(self, ends: npt.ArrayLike, lengths: npt.ArrayLike | None = None) -> int: ...
    def set_food(self, ids: list[int]) -> None: ...
    def step(self, n: int = 1) -> None: ...
    @property
    def residual(self) -> float: ...
    @property
    def max_residual(self) -> float: ...
    @property
    def last_cg_iterations(self) -> int: ...
    @property
    def total_cg_iterations(self) -> int: ...
    @property
    def node_count(self) -> int: ...
    @property
    def order_parameter(self) -> float: ...
    def edge_ends(self) -> npt.NDArray[np.uint32]: ...
    def edge_length(self) -> npt.NDArray[np.float64]: ...
    def conductivity(self) -> npt.NDArray[np.float64]: ...
    def radius(self) -> npt.NDArray[np.float64]: ...
    def flow(self) -> npt.NDArray[np.float64]: ...
    def alive(self) -> npt.NDArray[np.bool_]: ...
    def pressure(self) -> npt.NDArray[np.float64]: ...


def make_kernel(params: PhysarumParams, seed: int, backend: Backend = "wasm") -> Kernel:
    if backend == "wasm":
        from .wasm import WasmPhysarum

        return WasmPhysarum(params.to_array(), seed)
    from .native import NativeKernel

    return NativeKernel(params.to_array(), seed)


def load(kernel: Kernel, graph: Graph) -> None:
    kernel.add_nodes(graph.xyz)
    kernel.add_edges(graph.ends, graph.length)
    kernel.set_food(graph.food)


def run_graph(
    graph: Graph,
    params: PhysarumParams,
    steps: int,
    seed: int,
    *,
    backend: Backend = "wasm",
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 50,
) -> dict[str, Any]:
    """Step the model and return the R.json document (see cli.py)."""
    kernel = make_kernel(params, seed, backend)
    load(kernel, graph)
    done = 0
    while done < steps:
        k = min(chunk, steps - done)
        kernel.step(k)
        done += k
        if progress is not None:
            progress(done, steps)
    return result_document(kernel, graph, steps, seed)


def result_document(kernel: Kernel, graph: Graph, steps: int, seed: int) -> dict[str, Any]:
    n = graph.n_nodes
    ends = kernel.edge_ends()[: graph.n_edges]
    alive = kernel.alive()[: graph.n_edges]
    cond, rad, flow = kernel.conductivity(), kernel.radius(), kernel.flow()
    pressure = kernel.pressure()
    edges = [
        {
            "a": graph.ids[int(ends[t, 0])],
            "b": graph.ids[int(ends[t, 1])],
            "alive": bool(alive[t]),
            "length": float(graph.length[t]),
            "conductivity": float(cond[t]),
            "radius": float(rad[t]),
            "flow": float(flow[t]),
        }
        for t in range(graph.n_edges)
    ]
    nodes = [{"id": graph.ids[i], "pressure": float(pressure[i])} for i in range(n)]
    from .metrics import compute_metrics  # scipy: loaded only when a result is built

    metrics: dict[str, Any] = compute_metrics(n, graph.ends, graph.length, alive, graph.food)
    metrics.update(
        steps=steps,
        seed=seed,
        kirchhoff_residual=kernel.residual,
        max_kirchhoff_residual=kernel.max_residual,
        last_cg_iterations=kernel.last_cg_iterations,
        mean_cg_iterations=(kernel.total_cg_iterations / steps) if steps else 0.0,
        order_parameter=kernel.order_parameter,
        cells=kernel.node_count,
    )
    return {"edges": edges, "nodes": nodes, "metrics": metrics}


def stderr_progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\rphysarum: step {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)
    else:
        print(f"physarum: step {done}/{total}", file=sys.stderr, flush=True)
