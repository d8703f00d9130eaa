"""Physarum kernel benchmark: the whole run (warm-up, then steps through the
pruning phase) on jittered square lattices of ~1k, 10k, 50k and 200k tubes.

Implementations, all timed over the **same steps after the same warm-up**:

* the kernel: native (``vudo._core``), the wasm module under wasmtime, and the
  same module in headless Chromium (Playwright driving Debian's /usr/bin/chromium);
* anchors, the same model written with NumPy/SciPy (flow, sigmoid adaptation,
  pruning; the system compacted to the unpinned cells):
  - ``scipy-splu``: SuperLU, MMD(AᵀA+A) ordering, symmetric mode, rebuilt every step;
  - ``cholmod``: CHOLMOD (scikit-sparse over Debian's SuiteSparse), symbolic
    analysis once per sparsity pattern, numeric refactorization every step,
    supernodal (library default) and simplicial;
  - ``pyamg``: classical (Ruge–Stüben) AMG hierarchy built each step, preconditioning SciPy's CG;
  - ``scipy-cg``: CG + Jacobi, warm-started.
  Missing optional packages (scikit-sparse, pyamg, Playwright) drop that row.

Timing is paired: every implementation advances through the run in chunks of
steps, interleaved (rotating order), so load from other processes on the
machine hits all of them alike. Each run is repeated and medians reported.
Ratios are against the **best anchor** (highest steps/s) of the same repeat,
by wall clock and by the CPU time of the thread doing the work (every
implementation is single-threaded: BLAS is held to one thread).

Solver work per step: for the kernel, nnz(L), the multiply–adds of one
factorization (averaged over the steps) and the direct solves (a second one
only when the first leaves a residual above the tolerance); nnz of the factor
for the direct anchors; CG iterations for the iterative ones.

Agreement: the anchors replay the kernel's source sequence (one_to_all picks a
random source each step; the sequence is recorded from the native kernel) and
must end within 1e-9 relative (max-norm) of the kernel's conductivities; the
wasm builds must be bit-identical to native. Any mismatch fails the run
(exit 1). Memory: peak RSS growth of a separate process that builds the
implementation and runs the warm-up plus a few steps (the peak comes first,
when the network is largest); for the kernel also its own array bytes
relative to the graph's (``px_peak_memory_bytes / px_graph_bytes``) and the
wasm linear memory (which never shrinks: its size is the module's peak).

Model: sigmoid, gamma 1.8, I0 1, dt 0.2, one_to_all over 6 food cells, prune 0.03;
oscillators still (sync_strength 0, osc_frequency 0) as the anchors have none,
except in the ``native+oscillations`` row (the kernel's defaults, K 0.5, ω 1).

    python bench/physarum_bench.py            # 1k, 10k, 50k, 200k tubes; steps 6-205
    python bench/physarum_bench.py --quick    # 1k, 10k, 50k tubes; steps 6-105, one repeat
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# One BLAS thread: every implementation gets one core (the kernel is single-threaded).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
from scipy.sparse import coo_matrix, csc_matrix  # noqa: E402
from scipy.sparse.csgraph import connected_components  # noqa: E402
from scipy.sparse.linalg import LinearOperator, cg, splu  # noqa: E402

from vudo.physarum import PhysarumParams  # noqa: E402
from vudo.physarum.wasm import WASM_PATH, WasmPhysarum  # noqa: E402

# The anchors model the flow, sigmoid adaptation and pruning, not the oscillators:
# the kernel runs with them still (K = ω = 0) so that every row does the same
# work. The `native+oscillations` row runs them (the kernel's defaults) and shows
# their cost; they never change the conductivities (checked: bit-identical).
PARAMS = PhysarumParams(model="sigmoid", gamma=1.8, i0=1.0, dt=0.2, scheme="one_to_all", prune_threshold=0.03,
                       sync_strength=0.0, osc_frequency=0.0)
OSC_PARAMS = PhysarumParams(model="sigmoid", gamma=1.8, i0=1.0, dt=0.2, scheme="one_to_all", prune_threshold=0.03)
OSC = "native+oscillations"
BIT_IDENTICAL = ("wasmtime", "chromium", OSC)
WARM = 5
AGREE_TOL = 1e-9
# The flags of tests/browser_support.py (Debian Chromium, headless, no network chatter).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

Graph = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], list[int]]


def lattice(side: int) -> Graph:
    """side x side jittered square lattice (2·side·(side−1) tubes) with 6 food cells."""
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


# ------------------------------------------------------------------ anchors ---


class PyPhysarum:
    """The kernel's flow + adaptation + pruning step in NumPy/SciPy, with a
    pluggable linear solver. The pressure system is compacted to the unpinned
    cells (one pinned cell per component: its first food cell, else its lowest
    id, as in the kernel); its CSC pattern is built once per sparsity pattern
    and refilled by one bincount per step. Sources are replayed from `sources`."""

    def __init__(self, g: Graph, solver: str, sources: list[int]) -> None:
        xyz, ends, food = g
        self.n = len(xyz)
        self.a, self.b = ends[:, 0].copy(), ends[:, 1].copy()
        diff = xyz[self.a] - xyz[self.b]
        self.length = np.sqrt((diff * diff).sum(axis=1))
        self.d = np.full(len(ends), PARAMS.initial_conductivity)
        self.alive = np.ones(len(ends), dtype=bool)
        self.food = list(food)
        self.p = np.zeros(self.n)
        self.solver = solver
        self.sources = sources
        self.steps = 0
        self.iterations = 0
        self.fill = 0  # nnz of the factor(s) at the last factorization
        self.n_alive = -1
        self.factor: Any = None

    def _pattern(self) -> None:
        n = self.n
        idx = np.flatnonzero(self.alive)
        a, b = self.a[idx], self.b[idx]
        ncomp, comp = connected_components(coo_matrix((np.ones(len(idx)), (a, b)), shape=(n, n)), directed=False)
        ground = np.full(ncomp, -1, dtype=np.int64)
        for f in reversed(self.food):
            ground[comp[f]] = f
        lowest = np.full(ncomp, n, dtype=np.int64)
        np.minimum.at(lowest, comp, np.arange(n))
        ground = np.where(ground < 0, lowest, ground)
        grounded = np.zeros(n, dtype=bool)
        grounded[ground] = True
        keep = ~grounded
        pos = np.cumsum(keep) - 1
        m = int(keep.sum())
        ka, kb = keep[a], keep[b]
        off = ka & kb
        rows = np.concatenate([pos[a[off]], pos[b[off]], np.arange(m)])
        cols = np.concatenate([pos[b[off]], pos[a[off]], np.arange(m)])
        key = cols * m + rows
        uniq, inv = np.unique(key, return_inverse=True)
        self.inv = inv
        self.indices = (uniq % m).astype(np.int32)
        self.indptr = np.searchsorted(uniq // m, np.arange(m + 1)).astype(np.int32)
        self.nnz = len(uniq)
        self.idx, self.off, self.ka, self.kb = idx, off, ka, kb
        self.pos_a, self.pos_b = pos[a], pos[b]
        self.keep, self.m, self.comp = keep, m, comp
        self.n_alive = len(idx)
        self.factor = None

    def step(self) -> None:
        P = PARAMS
        if int(self.alive.sum()) != self.n_alive:
            self._pattern()
        idx = self.idx
        w = self.d[idx] / self.length[idx]
        m = self.m
        diag = np.bincount(self.pos_a[self.ka], w[self.ka], minlength=m) + np.bincount(self.pos_b[self.kb], w[self.kb], minlength=m)
        diag[diag == 0.0] = 1.0
        vals = np.concatenate([-w[self.off], -w[self.off], diag])
        data = np.bincount(self.inv, vals, minlength=self.nnz)
        mat = csc_matrix((data, self.indices, self.indptr), shape=(m, m))
        # Right-hand side exactly as the kernel builds it (food.rs).
        src = self.sources[self.steps]
        k = len(self.food)
        rhs_full = np.zeros(self.n)
        share = P.i0 / (k - 1)
        for j, f in enumerate(self.food):
            rhs_full[f] += P.i0 if j == src else -share
        sums: dict[int, list[float]] = {}
        for f in self.food:
            if rhs_full[f] != 0.0:
                c = int(self.comp[f])
                s = sums.setdefault(c, [0.0, 0.0])
                s[0] += rhs_full[f]
                s[1] += 1
        for f in self.food:
            if rhs_full[f] != 0.0:
                s = sums[int(self.comp[f])]
                rhs_full[f] -= s[0] / s[1]
        rhs = rhs_full[self.keep]
        x = self._solve(mat, rhs, self.p[self.keep])
        self.p[:] = 0.0
        self.p[self.keep] = x
        q = w * (self.p[self.a[idx]] - self.p[self.b[idx]])
        qg = np.abs(q) ** P.gamma
        d = self.d[idx]
        d_new = d + P.dt * (P.growth_rate * qg / (1.0 + qg) - P.decay * d)
        d_new[~(d_new > 1e-200)] = 0.0
        r = np.sqrt(np.sqrt(d_new))
        dead = (d_new == 0.0) | (r < P.prune_threshold)
        d_new = np.where(r > P.max_thickness, P.max_thickness**4, d_new)
        d_new[dead] = 0.0
        self.d[idx] = d_new
        self.alive[idx[dead]] = False
        self.steps += 1

    def _solve(self, mat: csc_matrix, rhs: npt.NDArray[np.float64], x0: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        tol = PARAMS.cg_tol * PARAMS.i0
        if self.solver == "scipy-splu":
            lu = splu(mat, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})
            self.fill = lu.L.nnz + lu.U.nnz - 2 * self.m
            return np.asarray(lu.solve(rhs))
        if self.solver.startswith("cholmod"):
            from sksparse.cholmod import analyze

            if self.factor is None:
                mode = "simplicial" if self.solver.endswith("simplicial") else "supernodal"
                self.factor = analyze(mat, mode=mode)
                self.factor.cholesky_inplace(mat)
                self.fill = self.factor.L().nnz - self.m
            else:
                self.factor.cholesky_inplace(mat)
            return np.asarray(self.factor(rhs))
        count = [0]

        def cb(_: Any) -> None:
            count[0] += 1

        if self.solver == "pyamg":
            import pyamg

            # Classical AMG hierarchy of this step's matrix as the preconditioner
            # of SciPy's CG, to the same absolute tolerance as every other path.
            ml = pyamg.ruge_stuben_solver(mat.tocsr())
            x, info = cg(mat, rhs, x0=x0, rtol=0.0, atol=tol, maxiter=PARAMS.cg_max_iter, M=ml.aspreconditioner(cycle="V"),
                         callback=cb)
            self.iterations += count[0]
            return np.asarray(x)
        dinv = 1.0 / mat.diagonal()
        x, _ = cg(mat, rhs, x0=x0, rtol=0.0, atol=tol, maxiter=PARAMS.cg_max_iter,
                  M=LinearOperator(mat.shape, matvec=lambda v: dinv * v), callback=cb)
        self.iterations += count[0]
        return np.asarray(x)


def available_anchors() -> list[str]:
    names = ["scipy-splu"]
    try:
        import sksparse.cholmod  # noqa: F401

        names += ["cholmod", "cholmod-simplicial"]
    except ImportError:
        print("# scikit-sparse missing: CHOLMOD anchors skipped (VUDO_BENCH_EXTRAS=1 scripts/setup.sh)", file=sys.stderr)
    try:
        import pyamg  # noqa: F401

        names.append("pyamg")
    except ImportError:
        print("# pyamg missing: AMG anchor skipped", file=sys.stderr)
    names.append("scipy-cg")
    return names


# ------------------------------------------------------------------ runners ---


@dataclass
class Runner:
    """One implementation advancing through the run; `advance(n)` returns
    (wall seconds, CPU seconds of this thread or None when not measurable)."""

    name: str
    advance: Callable[[int], tuple[float, float | None]]
    conductivity: Callable[[], npt.NDArray[np.float64]]
    work: Callable[[int], str]
    times: list[float] = field(default_factory=list)
    cpu: list[float | None] = field(default_factory=list)


def clocked(fn: Callable[[], None]) -> tuple[float, float]:
    w, c = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - w, time.thread_time() - c


def kernel_on(name: str, g: Graph, steps: int) -> Any:
    """Kernel `name` (native, wasmtime or native+oscillations) loaded with graph `g`, run `steps` steps."""
    if name in ("native", OSC):
        from vudo.physarum.native import NativeKernel

        k: Any = NativeKernel((OSC_PARAMS if name == OSC else PARAMS).to_array(), seed=1)
    else:
        k = WasmPhysarum(PARAMS.to_array(), seed=1)
    k.add_nodes(g[0])
    k.add_edges(g[1])
    k.set_food(g[2])
    k.step(steps)
    return k


def kernel_runner(name: str, g: Graph) -> Runner:
    k = kernel_on(name, g, WARM)
    start = (k.total_cg_iterations, k.total_factor_flops, k.factor_nnz)

    def advance(n: int) -> tuple[float, float | None]:
        return clocked(lambda: k.step(n))

    def work(steps: int) -> str:
        it = (k.total_cg_iterations - start[0]) / steps
        mf = (k.total_factor_flops - start[1]) / steps / 1e6
        return f"nnz(L) {start[2] / 1e3:.0f}k, {mf:.1f} M madd, {it:.1f} solves"

    return Runner(name, advance, lambda: np.asarray(k.conductivity()), work)


def anchor_runner(name: str, g: Graph, sources: list[int]) -> Runner:
    k = PyPhysarum(g, name, sources)
    for _ in range(WARM):
        k.step()
    fill0, it0 = k.fill, k.iterations

    def advance(n: int) -> tuple[float, float | None]:
        def run() -> None:
            for _ in range(n):
                k.step()

        return clocked(run)

    def work(steps: int) -> str:
        if name.startswith(("scipy-cg", "pyamg")):
            return f"{(k.iterations - it0) / steps:.1f} CG it"
        return f"nnz({'L+U' if name == 'scipy-splu' else 'L'}) {fill0 / 1e3:.0f}k"

    return Runner(name, advance, lambda: k.d.copy(), work)


CHROMIUM_SETUP = """async ([xyz, ends, food, params, warm]) => {
  if (!window.__pxi) {
    // The module also carries the spirit ABI; its host functions are no-ops for the kernel ABI (px_*).
    const stubs = { vudo: { log: () => undefined, topology: () => 0, now_ms: () => BigInt(Date.now()) } };
    const { instance } = await WebAssembly.instantiateStreaming(fetch('/physarum.wasm'), stubs);
    window.__pxi = instance.exports;
  }
  const x = window.__pxi;
  const put = (arr) => { const p = x.px_alloc(arr.byteLength);
    new Uint8Array(x.memory.buffer, p, arr.byteLength).set(new Uint8Array(arr.buffer)); return p; };
  if (window.__pxh) x.px_free_sim(window.__pxh);
  const pp = new Float64Array(params);
  const h = x.px_new(put(pp), pp.length, 1n);
  x.px_add_nodes(h, put(new Float64Array(xyz)), xyz.length / 3);
  x.px_add_edges(h, put(new Uint32Array(ends)), 0, ends.length / 2);
  x.px_set_food(h, put(new Uint32Array(food)), food.length);
  x.px_step(h, warm);
  window.__pxh = h;
  return [x.px_total_cg_iterations(h), x.px_total_factor_flops(h), x.px_factor_nnz(h)];
}"""
CHROMIUM_STEP = """(n) => { const x = window.__pxi; const t = performance.now(); x.px_step(window.__pxh, n);
  return (performance.now() - t) / 1000; }"""
CHROMIUM_READ = """() => { const x = window.__pxi, h = window.__pxh, ne = x.px_edge_count(h);
  return [Array.from(new Float64Array(x.memory.buffer, x.px_conductivity(h), ne)),
          x.px_total_cg_iterations(h), x.px_total_factor_flops(h), x.memory.buffer.byteLength]; }"""


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


class Chromium:
    """Headless Debian Chromium serving physarum.wasm from a loopback server."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.pw = sync_playwright().start()
        self.browser = self.pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.page = self.browser.new_page()
        self.page.goto(f"http://127.0.0.1:{self.srv.server_address[1]}/")
        self.linear_memory = 0

    def runner(self, g: Graph) -> Runner:
        args = [g[0].ravel().tolist(), g[1].ravel().tolist(), g[2], PARAMS.to_array(), WARM]
        start = self.page.evaluate(CHROMIUM_SETUP, args)

        def advance(n: int) -> tuple[float, float | None]:
            return float(self.page.evaluate(CHROMIUM_STEP, n)), None

        def read() -> npt.NDArray[np.float64]:
            d, *_ = self.page.evaluate(CHROMIUM_READ)
            return np.asarray(d, dtype=np.float64)

        def work(steps: int) -> str:
            _, it, fl, mem = self.page.evaluate(CHROMIUM_READ)
            self.linear_memory = int(mem)
            return f"nnz(L) {start[2] / 1e3:.0f}k, {(fl - start[1]) / steps / 1e6:.1f} M madd, {(it - start[0]) / steps:.1f} solves"

        return Runner("chromium", advance, read, work)

    def close(self) -> None:
        self.browser.close()
        self.pw.stop()
        self.srv.shutdown()


# ------------------------------------------------------------------- memory ---


def memory_probe(name: str, side: int, steps: int) -> dict[str, float]:
    """Run in a child process: build `name`, warm up, run `steps` steps; report
    the peak RSS growth over the process's RSS before building (MiB)."""
    g = lattice(side)
    sources = [] if name in ("native", "wasmtime", OSC) else source_sequence(g, WARM + steps)

    def status_mib(key: str) -> float:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError(f"{key} missing from /proc/self/status")

    # Reset the peak-RSS watermark (Linux >= 4.0), so only what follows counts.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status_mib("VmRSS")
    out: dict[str, float] = {}
    if name in ("native", "wasmtime", OSC):
        k = kernel_on(name, g, WARM + steps)
        out["own_peak_mib"] = k.peak_memory_bytes / 2**20
        out["graph_mib"] = k.graph_bytes / 2**20
        if name == "wasmtime":
            out["linear_mib"] = k.linear_memory_bytes / 2**20
    else:
        a = PyPhysarum(g, name, sources)
        for _ in range(WARM + steps):
            a.step()
    out["rss_mib"] = max(status_mib("VmHWM") - base, 0.0)
    return out


def probe_in_child(name: str, side: int, steps: int) -> dict[str, float] | None:
    proc = subprocess.run([sys.executable, __file__, "--memory-probe", name, "--side", str(side), "--probe-steps", str(steps)],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        print(f"# memory probe {name} failed: {proc.stderr[-400:]}", file=sys.stderr)
        return None
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------- main ---


def source_sequence(g: Graph, steps: int) -> list[int]:
    """Index (into the food list) of the source the kernel picks at each step
    (native build if present; the wasm module gives the same sequence)."""
    try:
        from vudo.physarum.native import NativeKernel

        k: Any = NativeKernel(PARAMS.to_array(), seed=1)
    except ImportError:
        k = WasmPhysarum(PARAMS.to_array(), seed=1)
    k.add_nodes(g[0])
    k.add_edges(g[1])
    k.set_food(g[2])
    out = []
    for _ in range(steps):
        k.step(1)
        out.append(g[2].index(k.last_source))
    return out


def run_once(g: Graph, steps: int, chunk: int, anchors: list[str], chromium: Chromium | None,
             kernels: list[str]) -> tuple[dict[str, float], dict[str, float], dict[str, str], dict[str, float]]:
    """One paired run. Returns steps/s (wall clock and CPU time), work description
    and agreement per implementation."""
    sources = source_sequence(g, WARM + steps)
    runners = [kernel_runner(k, g) for k in kernels]
    if chromium is not None:
        runners.append(chromium.runner(g))
    runners += [anchor_runner(a, g, sources) for a in anchors]
    done = 0
    rnd = 0
    while done < steps:
        n = min(chunk, steps - done)
        order = runners[rnd % len(runners):] + runners[: rnd % len(runners)]
        for r in order:
            wall, cpu = r.advance(n)
            r.times.append(wall)
            r.cpu.append(cpu)
        done += n
        rnd += 1
    rate = {r.name: steps / sum(r.times) for r in runners}
    cpu_rate = {r.name: steps / sum(c for c in r.cpu if c is not None) for r in runners if None not in r.cpu}
    work = {r.name: r.work(steps) for r in runners}
    ref = runners[0].conductivity()
    scale = float(np.max(np.abs(ref)))
    agree: dict[str, float] = {}
    for r in runners[1:]:
        d = r.conductivity()
        if r.name in (*BIT_IDENTICAL, "native"):
            agree[r.name] = 0.0 if d.tobytes() == ref.tobytes() else float("inf")
        else:
            agree[r.name] = float(np.max(np.abs(d - ref))) / scale
    return rate, cpu_rate, work, agree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1k-50k tubes, steps 6-105, one repeat (a few minutes)")
    ap.add_argument("--sides", default="", help="comma-separated lattice sides (overrides the size list)")
    ap.add_argument("--repeats", type=int, default=0, help="repeats per size (default: 3 below 100k tubes, else 1; --quick 1)")
    ap.add_argument("--steps", type=int, default=0, help="timed steps after the warm-up (default 200; --quick 100)")
    ap.add_argument("--no-chromium", action="store_true")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON too")
    ap.add_argument("--memory-probe", default="", help=argparse.SUPPRESS)
    ap.add_argument("--side", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--probe-steps", type=int, default=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe, args.side, args.probe_steps)))
        return
    sides = [int(s) for s in args.sides.split(",")] if args.sides else ([23, 71, 159] if args.quick else [23, 71, 159, 317])
    steps = args.steps or (100 if args.quick else 200)
    chunk = 10 if args.quick else 20
    anchors = available_anchors()
    kernels = ["native", "wasmtime", OSC]
    try:
        import vudo._core  # noqa: F401
    except ImportError:
        kernels = ["wasmtime"]
        print("# vudo._core not built: native kernel skipped", file=sys.stderr)
    chromium: Chromium | None = None
    if not args.no_chromium:
        try:
            chromium = Chromium()
        except Exception as e:  # noqa: BLE001 - the browser is optional for a bench run
            print(f"# Chromium unavailable ({e}); its row is skipped", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    failed = False
    print(f"Steps {WARM + 1}-{WARM + steps} after {WARM} warm-up steps; medians of paired, interleaved runs; "
          "ratio = steps/s ÷ best anchor's steps/s in the same repeat (wall clock, and CPU time of the\n"
          "running thread, which a loaded machine distorts less; Chromium's CPU time is not measurable from the page).\n")
    print("| tubes | implementation | steps/s | vs best anchor | CPU steps/s | vs best (CPU) | solver work / step "
          "| peak memory | agreement |")
    print("|---:|---|---:|---:|---:|---:|---|---|---|", flush=True)
    try:
        for side in sides:
            g = lattice(side)
            tubes = len(g[1])
            repeats = args.repeats or (1 if args.quick or tubes > 100_000 else 3)
            rates: dict[str, list[float]] = {}
            ratios: dict[str, list[float]] = {}
            cpu_rates: dict[str, list[float]] = {}
            cpu_ratios: dict[str, list[float]] = {}
            agree_all: dict[str, float] = {}
            work: dict[str, str] = {}
            for rep in range(repeats):
                t0 = time.perf_counter()
                rate, cpu_rate, work, agree = run_once(g, steps, chunk, anchors, chromium, kernels)
                best = max(rate[a] for a in anchors)
                cpu_best = max(cpu_rate[a] for a in anchors)
                for name, r in rate.items():
                    rates.setdefault(name, []).append(r)
                    ratios.setdefault(name, []).append(r / best)
                for name, r in cpu_rate.items():
                    cpu_rates.setdefault(name, []).append(r)
                    cpu_ratios.setdefault(name, []).append(r / cpu_best)
                for name, v in agree.items():
                    agree_all[name] = max(agree_all.get(name, 0.0), v)
                print(f"# {tubes} tubes, repeat {rep + 1}/{repeats}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            probes = {name: probe_in_child(name, side, 5) for name in rates if name != "chromium"}
            med = {name: statistics.median(v) for name, v in rates.items()}
            best_anchor = max(anchors, key=lambda a: med[a])
            for name in rates:
                pr = probes.get(name) or {}
                if name == "chromium":
                    mem = f"linear {chromium.linear_memory / 2**20:.0f} MiB" if chromium else "-"
                else:
                    mem = f"{pr.get('rss_mib', float('nan')):.0f} MiB"
                    if "own_peak_mib" in pr:
                        mem += f" (arrays {pr['own_peak_mib']:.1f} MiB = {pr['own_peak_mib'] / pr['graph_mib']:.1f}× graph"
                        mem += f", linear {pr['linear_mib']:.0f} MiB)" if "linear_mib" in pr else ")"
                if name == kernels[0]:
                    agreement = "reference"
                elif name in BIT_IDENTICAL:
                    agreement = "bit-identical" if agree_all[name] == 0.0 else "DIFFERS"
                else:
                    agreement = f"{agree_all[name]:.1e}"
                if name in agree_all and agree_all[name] > AGREE_TOL:
                    failed = True
                    agreement += " FAIL"
                row = {"tubes": tubes, "impl": name + (" (best anchor)" if name == best_anchor else ""),
                       "steps_per_s": med[name], "ratio": statistics.median(ratios[name]),
                       "cpu_steps_per_s": statistics.median(cpu_rates[name]) if name in cpu_rates else None,
                       "cpu_ratio": statistics.median(cpu_ratios[name]) if name in cpu_ratios else None,
                       "work": work[name], "memory": mem, "agreement": agreement, "repeats": repeats}
                rows.append(row)
                cpu = f"{row['cpu_steps_per_s']:.1f} | {row['cpu_ratio']:.2f}×" if row["cpu_ratio"] is not None else "– | –"
                print(f"| {row['tubes']} | {row['impl']} | {row['steps_per_s']:.1f} | {row['ratio']:.2f}× | {cpu} | {row['work']} "
                      f"| {row['memory']} | {row['agreement']} |", flush=True)
    finally:
        if chromium is not None:
            chromium.close()
    if args.json:
        print(json.dumps(rows))
    if failed:
        print(f"\nFAIL: an implementation disagrees with the kernel by more than {AGREE_TOL:g} (or wasm is not bit-identical).")
        sys.exit(1)


if __name__ == "__main__":
    main()
