"""Run ``physarum.wasm`` (the one kernel module, also used by the browser) under
wasmtime. :class:`WasmPhysarum` mirrors ``vudo._core.NativePhysarum`` method for
method; array getters return NumPy copies of the module's linear memory.

The store is sandboxed: linear memory is capped (``memory_limit`` bytes) and,
when ``fuel`` is given, every call is metered and traps when fuel runs out.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import wasmtime

WASM_PATH = Path(__file__).with_name("physarum.wasm")
DEFAULT_MEMORY_LIMIT = 1 << 30  # 1 GiB


class KernelError(ValueError):
    """The kernel rejected an input (message from the module)."""


@functools.lru_cache(maxsize=4)
def _compiled(path: str, metered: bool) -> tuple[wasmtime.Engine, wasmtime.Module]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} not found: build it with scripts/build-wasm.sh")
    config = wasmtime.Config()
    config.consume_fuel = metered
    engine = wasmtime.Engine(config)
    return engine, wasmtime.Module.from_file(engine, path)


def _spirit_host_stubs(store: wasmtime.Store, module: wasmtime.Module) -> list[wasmtime.Func]:
    """No-op host functions for the module's spirit ABI imports (``vudo.log``, ``vudo.topology``):
    the kernel ABI (``px_*``) never calls them; the spirit runtime links the real ones."""
    stubs: list[wasmtime.Func] = []
    for imp in module.imports:
        ty = imp.type
        if imp.module != "vudo" or not isinstance(ty, wasmtime.FuncType):
            raise KernelError(f"physarum.wasm imports {imp.module}.{imp.name}, which no host provides")
        result = 0 if list(ty.results) else None
        stubs.append(wasmtime.Func(store, ty, lambda *args, _r=result: _r))
    return stubs


class WasmPhysarum:
    """One simulation inside its own wasmtime store."""

    def __init__(
        self,
        params: list[float],
        seed: int,
        *,
        wasm_path: Path | None = None,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        fuel: int | None = None,
    ) -> None:
        engine, module = _compiled(str(wasm_path or WASM_PATH), fuel is not None)
        self._store = wasmtime.Store(engine)
        self._store.set_limits(memory_size=memory_limit)
        if fuel is not None:
            self._store.set_fuel(fuel)
        instance = wasmtime.Instance(self._store, module, _spirit_host_stubs(self._store, module))
        exports = instance.exports(self._store)
        self._fn: dict[str, Any] = {}
        for name in (
            "px_alloc px_free px_new px_free_sim px_set_params px_add_node px_add_nodes px_add_edge "
            "px_add_edges px_set_food px_step px_node_count px_edge_count px_alive_count px_food_count "
            "px_steps px_residual px_max_residual px_last_cg_iterations px_total_cg_iterations px_converged "
            "px_total_length px_order_parameter px_last_source px_edge_ends px_edge_length px_conductivity "
            "px_flow px_age px_alive px_pressure px_positions px_phase px_nutrient px_food px_radius "
            "px_error_ptr px_error_len px_abi_version px_factor_nnz px_factor_n px_analyses px_total_factor_flops "
            "px_memory_bytes px_peak_memory_bytes px_graph_bytes"
        ).split():
            self._fn[name] = exports[name]
        memory = exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self._mem = memory
        if len(params) > 64:
            raise KernelError(f"too many parameters ({len(params)})")
        ptr = self._put(np.asarray(params, dtype=np.float64))
        try:
            seed_i64 = int(seed) & 0xFFFF_FFFF_FFFF_FFFF
            if seed_i64 >= 1 << 63:
                seed_i64 -= 1 << 64
            self._h = int(self._call("px_new", ptr, len(params), seed_i64))
        finally:
            self._release(ptr, len(params) * 8)
        if self._h == 0:
            raise KernelError(self._error())

    # --- plumbing ---------------------------------------------------------
    def _call(self, name: str, *args: Any) -> Any:
        return self._fn[name](self._store, *args)

    def _error(self) -> str:
        p, n = self._call("px_error_ptr"), self._call("px_error_len")
        return bytes(self._mem.read(self._store, p, p + n)).decode("utf-8", "replace")

    def _put(self, arr: npt.NDArray[Any]) -> int:
        data = np.ascontiguousarray(arr).tobytes()
        ptr = int(self._call("px_alloc", max(len(data), 1)))
        if data:
            self._mem.write(self._store, data, ptr)
        return ptr

    def _release(self, ptr: int, n_bytes: int) -> None:
        self._call("px_free", ptr, max(n_bytes, 1))

    def _array(self, getter: str, dtype: type, count: int) -> npt.NDArray[Any]:
        ptr = int(self._call(getter, self._h))
        size = np.dtype(dtype).itemsize * count
        if count == 0:
            return np.zeros(0, dtype=dtype)
        raw = self._mem.read(self._store, ptr, ptr + size)
        return np.frombuffer(bytes(raw), dtype=dtype).copy()

    def _check(self, code: int) -> int:
        if code < 0:
            raise KernelError(self._error())
        return code

    def close(self) -> None:
        if getattr(self, "_h", 0):
            self._call("px_free_sim", self._h)
            self._h = 0

    def __enter__(self) -> WasmPhysarum:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- building ---------------------------------------------------------
    def set_params(self, params: list[float]) -> None:
        ptr = self._put(np.asarray(params, dtype=np.float64))
        try:
            self._check(self._call("px_set_params", self._h, ptr, len(params)))
        finally:
            self._release(ptr, len(params) * 8)

    def add_node(self, x: float, y: float, z: float = 0.0) -> int:
        return self._check(self._call("px_add_node", self._h, float(x), float(y), float(z)))

    def add_nodes(self, xyz: npt.ArrayLike) -> int:
        pts = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        ptr = self._put(pts)
        try:
            return self._check(self._call("px_add_nodes", self._h, ptr, len(pts)))
        finally:
            self._release(ptr, pts.nbytes)

    def add_edge(self, a: int, b: int, length: float = float("nan")) -> int:
        return self._check(self._call("px_add_edge", self._h, a, b, float(length)))

    def add_edges(self, ends: npt.ArrayLike, lengths: npt.ArrayLike | None = None) -> int:
        ab = np.asarray(ends, dtype=np.uint32).reshape(-1, 2)
        n = len(ab)
        p_ab = self._put(ab)
        p_len = 0
        lens = None
        if lengths is not None:
            lens = np.asarray(lengths, dtype=np.float64).reshape(-1)
            if len(lens) != n:
                raise KernelError(f"lengths has {len(lens)} entries for {n} edges")
            p_len = self._put(lens)
        try:
            return self._check(self._call("px_add_edges", self._h, p_ab, p_len, n))
        finally:
            self._release(p_ab, ab.nbytes)
            if lens is not None:
                self._release(p_len, lens.nbytes)

    def set_food(self, ids: list[int]) -> None:
        arr = np.asarray(ids, dtype=np.uint32)
        ptr = self._put(arr)
        try:
            self._check(self._call("px_set_food", self._h, ptr, len(arr)))
        finally:
            self._release(ptr, arr.nbytes)

    def step(self, n: int = 1) -> None:
        if not 0 <= n <= 0xFFFF_FFFF:
            raise KernelError(f"step count must be in [0, 2^32), got {n}")
        self._check(self._call("px_step", self._h, n))

    # --- scalars ----------------------------------------------------------
    @property
    def node_count(self) -> int:
        return int(self._call("px_node_count", self._h))

    @property
    def edge_count(self) -> int:
        return int(self._call("px_edge_count", self._h))

    @property
    def alive_count(self) -> int:
        return int(self._call("px_alive_count", self._h))

    @property
    def steps(self) -> int:
        return int(self._call("px_steps", self._h))

    @property
    def residual(self) -> float:
        return float(self._call("px_residual", self._h))

    @property
    def max_residual(self) -> float:
        return float(self._call("px_max_residual", self._h))

    @property
    def last_cg_iterations(self) -> int:
        return int(self._call("px_last_cg_iterations", self._h))

    @property
    def total_cg_iterations(self) -> int:
        return int(self._call("px_total_cg_iterations", self._h))

    @property
    def converged(self) -> bool:
        return bool(self._call("px_converged", self._h))

    @property
    def factor_nnz(self) -> int:
        """Off-diagonal entries of the current sparse Cholesky factor (0 before the first factorization)."""
        return int(self._call("px_factor_nnz", self._h))

    @property
    def factor_n(self) -> int:
        """Unknowns of the current sparse Cholesky factor."""
        return int(self._call("px_factor_n", self._h))

    @property
    def analyses(self) -> int:
        """Symbolic analyses (orderings) done so far by the Cholesky solver."""
        return int(self._call("px_analyses", self._h))

    @property
    def total_factor_flops(self) -> float:
        """Multiply-add pairs spent in Cholesky factorizations over all steps."""
        return float(self._call("px_total_factor_flops", self._h))

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the simulation's arrays now (network + solver)."""
        return int(self._call("px_memory_bytes", self._h))

    @property
    def peak_memory_bytes(self) -> int:
        """Largest memory_bytes seen after a step."""
        return int(self._call("px_peak_memory_bytes", self._h))

    @property
    def graph_bytes(self) -> int:
        """Bytes held by the network's own arrays (cells, tubes, food)."""
        return int(self._call("px_graph_bytes", self._h))

    @property
    def linear_memory_bytes(self) -> int:
        """Size of the module's linear memory: it never shrinks, so this is the
        module's peak heap (plus its static data and stack)."""
        return int(self._mem.data_len(self._store))

    @property
    def total_length(self) -> float:
        return float(self._call("px_total_length", self._h))

    @property
    def order_parameter(self) -> float:
        return float(self._call("px_order_parameter", self._h))

    @property
    def last_source(self) -> int:
        return int(self._call("px_last_source", self._h))

    # --- arrays -----------------------------------------------------------
    def edge_ends(self) -> npt.NDArray[np.uint32]:
        return self._array("px_edge_ends", np.uint32, 2 * self.edge_count).reshape(-1, 2)

    def edge_length(self) -> npt.NDArray[np.float64]:
        return self._array("px_edge_length", np.float64, self.edge_count)

    def conductivity(self) -> npt.NDArray[np.float64]:
        return self._array("px_conductivity", np.float64, self.edge_count)

    def radius(self) -> npt.NDArray[np.float64]:
        return self._array("px_radius", np.float64, self.edge_count)

    def flow(self) -> npt.NDArray[np.float64]:
        return self._array("px_flow", np.float64, self.edge_count)

    def age(self) -> npt.NDArray[np.float64]:
        return self._array("px_age", np.float64, self.edge_count)

    def alive(self) -> npt.NDArray[np.bool_]:
        return self._array("px_alive", np.uint8, self.edge_count).astype(bool)

    def pressure(self) -> npt.NDArray[np.float64]:
        return self._array("px_pressure", np.float64, self.node_count)

    def positions(self) -> npt.NDArray[np.float64]:
        return self._array("px_positions", np.float64, 3 * self.node_count).reshape(-1, 3)

    def phase(self) -> npt.NDArray[np.float64]:
        return self._array("px_phase", np.float64, self.node_count)

    def nutrient(self) -> npt.NDArray[np.float64]:
        return self._array("px_nutrient", np.float64, self.node_count)

    def food(self) -> list[int]:
        n = int(self._call("px_food_count", self._h))
        return [int(v) for v in self._array("px_food", np.uint32, n)]
