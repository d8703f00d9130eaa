"""The native build (vudo._core.NativePhysarum) and the wasm module give
bit-identical results for the same seed, with growth, oscillation and random
food schemes all active."""

from __future__ import annotations

import numpy as np

from vudo.physarum import PhysarumParams
from vudo.physarum.native import NativeKernel
from vudo.physarum.wasm import WasmPhysarum


def build(k: WasmPhysarum | NativeKernel) -> None:
    w = 6
    xyz = np.array([[x, y, 0.0] for y in range(w) for x in range(w)])
    ends = [(i, i + 1) for i in range(w * w) if i % w + 1 < w] + [(i, i + w) for i in range(w * w - w)]
    k.add_nodes(xyz)
    k.add_edges(np.array(ends))
    k.add_node(2.5, 2.5, 1.0)  # a pendant tip so exploration starts at once
    k.add_edge(14, 36)
    k.set_food([0, 5, 30, 35])


def test_native_and_wasm_agree_bit_for_bit() -> None:
    for params in (
        PhysarumParams(model="sigmoid", gamma=2.2, scheme="one_to_all", exploration_probability=0.3),
        PhysarumParams(model="power", mu=1.3, scheme="random_pair", exploration_probability=0.1),
    ):
        arr = params.to_array()
        kernels = (WasmPhysarum(arr, seed=2024), NativeKernel(arr, seed=2024))
        for k in kernels:
            build(k)
            k.step(150)
        a, b = kernels
        assert a.node_count == b.node_count > 37
        for getter in ("conductivity", "radius", "flow", "pressure", "positions", "phase", "nutrient", "age", "edge_length"):
            va, vb = getattr(a, getter)(), getattr(b, getter)()
            assert va.tobytes() == vb.tobytes(), getter
        assert (a.alive() == b.alive()).all() and (a.edge_ends() == b.edge_ends()).all()
        assert a.residual == b.residual and a.total_cg_iterations == b.total_cg_iterations
