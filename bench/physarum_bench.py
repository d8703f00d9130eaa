"""Physarum kernel benchmark: steps/s and CG iterations/step on lattice graphs of
~1k, 10k and 50k tubes, for

* the wasm module under wasmtime (``vudo.physarum.WasmPhysarum``),
* the same module in headless Chromium (Playwright driving /usr/bin/chromium),
* the native build via ``vudo._core`` (if built),
* a NumPy/SciPy implementation of the same step written here (scipy.sparse
  Laplacian + scipy.sparse.linalg.cg, Jacobi preconditioner, warm start) — the
  anchor; ratios are steps/s relative to it, measured in the same run.

Model for all: sigmoid, gamma 1.8, I0 1, dt 0.2, one_to_all over 6 food cells.
The NumPy version does flow + adaptation + pruning only (no growth, nutrients
or oscillations, which are O(E) and cheap in the kernel).

    python bench/physarum_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import http.server
import json
import threading
import time
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix, diags
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import LinearOperator, cg

from vudo.physarum import PhysarumParams
from vudo.physarum.wasm import WASM_PATH, WasmPhysarum

PARAMS = PhysarumParams(model="sigmoid", gamma=1.8, i0=1.0, dt=0.2, scheme="one_to_all", prune_threshold=0.03)


def lattice(side: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], list[int]]:
    rng = np.random.default_rng(side)
    xs, ys = np.meshgrid(np.arange(side, dtype=float), np.arange(side, dtype=float))
    xyz = np.column_stack([xs.ravel(), ys.ravel(), np.zeros(side * side)])
    xyz[:, :2] += rng.uniform(-0.25, 0.25, size=(side * side, 2))
    v = np.arange(side * side).reshape(side, side)
    ends = np.vstack([np.column_stack([v[:, :-1].ravel(), v[:, 1:].ravel()]),
                      np.column_stack([v[:-1, :].ravel(), v[1:, :].ravel()])])
    s = side - 1
    food = [int(v[j, i]) for i, j in ((1, 1), (s - 1, 1), (1, s - 1), (s - 1, s - 1), (s // 2, s // 2), (s // 2, 1))]
    return xyz, ends.astype(np.int64), food


class NumpyPhysarum:
    """The same step with NumPy/SciPy: Kirchhoff solve, sigmoid adaptation, pruning."""

    def __init__(self, xyz: npt.NDArray[np.float64], ends: npt.NDArray[np.int64], food: list[int], seed: int) -> None:
        self.n = len(xyz)
        self.a, self.b = ends[:, 0], ends[:, 1]
        self.length = np.linalg.norm(xyz[self.a] - xyz[self.b], axis=1)
        self.d = np.full(len(ends), PARAMS.initial_conductivity)
        self.alive = np.ones(len(ends), dtype=bool)
        self.food = np.array(food)
        self.p = np.zeros(self.n)
        self.rng = np.random.default_rng(seed)
        self.iters = 0

    def step(self) -> None:
        P = PARAMS
        w = np.where(self.alive, self.d / self.length, 0.0)
        n = self.n
        lap = coo_matrix((np.concatenate([-w, -w]), (np.concatenate([self.a, self.b]), np.concatenate([self.b, self.a]))), shape=(n, n)).tocsr()
        deg = -np.asarray(lap.sum(axis=1)).ravel()
        lap = lap + diags(deg)
        _, comp = connected_components(lap != 0, directed=False)
        # Ground one cell per component (the first food cell, else the lowest id).
        grounded = np.zeros(n, dtype=bool)
        seen: set[int] = set()
        for c in self.food.tolist() + list(np.unique(comp, return_index=True)[1]):
            if comp[c] not in seen:
                seen.add(int(comp[c]))
                grounded[c] = True
        src = int(self.rng.integers(len(self.food)))
        rhs = np.zeros(n)
        rhs[self.food] = -P.i0 / (len(self.food) - 1)
        rhs[self.food[src]] = P.i0
        keep = diags((~grounded).astype(float))
        a_mat = (keep @ lap @ keep + diags(grounded.astype(float))).tocsr()
        rhs[grounded] = 0.0
        dinv = 1.0 / np.where(a_mat.diagonal() > 0, a_mat.diagonal(), 1.0)
        m = LinearOperator((n, n), matvec=lambda x: dinv * x)
        count = [0]

        def cb(_: Any) -> None:
            count[0] += 1

        self.p[grounded] = 0.0
        self.p, _ = cg(a_mat, rhs, x0=self.p, rtol=0.0, atol=1e-12 * P.i0, maxiter=P.cg_max_iter, M=m, callback=cb)
        self.iters += count[0]
        q = w * (self.p[self.a] - self.p[self.b])
        qg = np.abs(q) ** P.gamma
        self.d = self.d + P.dt * (P.growth_rate * qg / (1 + qg) - P.decay * self.d)
        dead = self.alive & (self.d ** 0.25 < P.prune_threshold)
        self.alive &= ~dead
        self.d[~self.alive] = 0.0


def timed(step: Any, steps: int) -> float:
    t = time.perf_counter()
    step(steps)
    return steps / (time.perf_counter() - t)


def bench_wasmtime(g: Any, warm: int, steps: int) -> tuple[float, float]:
    k = WasmPhysarum(PARAMS.to_array(), seed=1)
    k.add_nodes(g[0])
    k.add_edges(g[1])
    k.set_food(g[2])
    k.step(warm)
    it0 = k.total_cg_iterations
    rate = timed(k.step, steps)
    return rate, (k.total_cg_iterations - it0) / steps


def bench_native(g: Any, warm: int, steps: int) -> tuple[float, float] | None:
    try:
        from vudo.physarum.native import NativeKernel
    except ImportError:
        return None
    k = NativeKernel(PARAMS.to_array(), seed=1)
    k.add_nodes(g[0])
    k.add_edges(g[1])
    k.set_food(g[2])
    k.step(warm)
    it0 = k.total_cg_iterations
    rate = timed(k.step, steps)
    return rate, (k.total_cg_iterations - it0) / steps


def bench_numpy(g: Any, warm: int, steps: int) -> tuple[float, float]:
    k = NumpyPhysarum(g[0], g[1], g[2], seed=1)
    for _ in range(warm):
        k.step()
    it0 = k.iters

    def run(n: int) -> None:
        for _ in range(n):
            k.step()

    rate = timed(run, steps)
    return rate, (k.iters - it0) / steps


CHROMIUM_JS = """async ([xyz, ends, food, params, warm, steps]) => {
  const { instance } = await WebAssembly.instantiateStreaming(fetch('/physarum.wasm'), {});
  const x = instance.exports;
  const put = (arr) => { const p = x.px_alloc(arr.byteLength);
    new Uint8Array(x.memory.buffer, p, arr.byteLength).set(new Uint8Array(arr.buffer)); return p; };
  const pp = new Float64Array(params);
  const h = x.px_new(put(pp), pp.length, 1n);
  x.px_add_nodes(h, put(new Float64Array(xyz)), xyz.length / 3);
  x.px_add_edges(h, put(new Uint32Array(ends)), 0, ends.length / 2);
  x.px_set_food(h, put(new Uint32Array(food)), food.length);
  x.px_step(h, warm);
  const it0 = x.px_total_cg_iterations(h);
  const t = performance.now();
  x.px_step(h, steps);
  const dt = (performance.now() - t) / 1000;
  return [steps / dt, (x.px_total_cg_iterations(h) - it0) / steps];
}"""


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/physarum.wasm":
            body, ctype = WASM_PATH.read_bytes(), "application/wasm"
        else:
            body, ctype = b"<!doctype html><title>bench</title>", "text/html"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def bench_chromium(graphs: list[Any], warm: int, steps_for: list[int]) -> list[tuple[float, float] | None]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return [None] * len(graphs)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    out: list[tuple[float, float] | None] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{srv.server_address[1]}/")
            for g, steps in zip(graphs, steps_for):
                args = [g[0].ravel().tolist(), g[1].ravel().tolist(), g[2], PARAMS.to_array(), warm, steps]
                r = page.evaluate(CHROMIUM_JS, args)
                out.append((float(r[0]), float(r[1])))
            browser.close()
    finally:
        srv.shutdown()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps (about a minute)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = ap.parse_args()
    sides = [23, 71, 159]  # 2*s*(s-1) tubes: 1012, 9940, 50244
    steps_for = [100, 20, 5] if args.quick else [400, 80, 20]
    warm = 5
    graphs = [lattice(s) for s in sides]
    chromium = bench_chromium(graphs, warm, steps_for)
    rows: list[dict[str, Any]] = []
    for g, steps, ch in zip(graphs, steps_for, chromium):
        anchor = bench_numpy(g, warm, max(2, steps // 4))
        results: dict[str, tuple[float, float] | None] = {
            "numpy/scipy": anchor,
            "wasmtime": bench_wasmtime(g, warm, steps),
            "chromium": ch,
            "native": bench_native(g, warm, steps),
        }
        for name, r in results.items():
            if r is not None:
                rows.append({"edges": len(g[1]), "impl": name, "steps_per_s": r[0], "cg_iter_per_step": r[1],
                             "ratio_vs_numpy": r[0] / anchor[0]})
    print(f"{'edges':>7}  {'implementation':<12} {'steps/s':>10} {'CG it/step':>11} {'vs numpy':>9}")
    for r in rows:
        print(f"{r['edges']:>7}  {r['impl']:<12} {r['steps_per_s']:>10.1f} {r['cg_iter_per_step']:>11.1f} {r['ratio_vs_numpy']:>8.2f}x")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
