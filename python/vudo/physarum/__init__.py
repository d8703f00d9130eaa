"""Physarum: the slime-mould tube network model (Tero et al. 2007, 2010) run by
one wasm32 kernel (``physarum.wasm``) under wasmtime, or natively via
``vudo._core.NativePhysarum``.

Entry points: :func:`run_graph` (graph -> R.json document), the ``physarum``
click group (``vudo physarum run``), :class:`WasmPhysarum`.
"""

from .graph import Graph, decode_graph, graph_from_arrays
from .params import PhysarumParams, decode_params
from .run import result_document, run_graph
from .wasm import WasmPhysarum

__all__ = [
    "Graph",
    "PhysarumParams",
    "WasmPhysarum",
    "decode_graph",
    "decode_params",
    "graph_from_arrays",
    "result_document",
    "run_graph",
]
