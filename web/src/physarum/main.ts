// The Physarum spirit page: loads /physarum.wasm (the same module the node runs
// under wasmtime), steps the model in requestAnimationFrame and renders the tube
// network in 3D with WebGL, or SVG when WebGL is unavailable or ?renderer=svg.
//
// URL options: ?renderer=svg  ?seed=N  ?graph=/same/origin/G.json  ?paused=1
// Test hook: window.__physarum = { renderer, edgesDrawn, step, alive, cells, residual }.

import { type GraphData, loadModule, P, type PxExports, Sim } from "./kernel";
import { GlRenderer } from "./render_gl";
import { project } from "./scene";
import { SvgRenderer } from "./render_svg";

interface PhysarumStatus {
  renderer: "webgl" | "svg";
  edgesDrawn: number;
  step: number;
  alive: number;
  cells: number;
  residual: number;
  ready: boolean;
  error: string | null;
}

declare global {
  interface Window { __physarum: PhysarumStatus }
}

const status: PhysarumStatus = { renderer: "svg", edgesDrawn: 0, step: 0, alive: 0, cells: 0, residual: 0, ready: false, error: null };
window.__physarum = status;

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

/** Demo: a jittered 14x14 lattice on a gentle dome, with 7 food sources. */
function demoGraph(seed: number): GraphData {
  let s = seed >>> 0 || 1;
  const rnd = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const n = 14, xyz: number[] = [], ends: number[] = [];
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < n; i++) {
      const x = i + (rnd() - 0.5) * 0.6, y = j + (rnd() - 0.5) * 0.6;
      const z = 2.5 * Math.exp(-((x - n / 2) ** 2 + (y - n / 2) ** 2) / 30);
      xyz.push(x, y, z);
    }
  }
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < n; i++) {
      const v = j * n + i;
      if (i + 1 < n) ends.push(v, v + 1);
      if (j + 1 < n) ends.push(v, v + n);
      if (i + 1 < n && j + 1 < n) {
        if (rnd() < 0.5) ends.push(v, v + n + 1);
        else ends.push(v + 1, v + n);
      }
    }
  }
  const at = (i: number, j: number): number => j * n + i;
  const food = [at(1, 1), at(12, 2), at(7, 7), at(2, 12), at(12, 12), at(7, 1), at(1, 7)];
  return { xyz, ends: dedupe(ends), lengths: null, food };
}

function dedupe(ends: number[]): number[] {
  const seen = new Set<string>(), out: number[] = [];
  for (let k = 0; k < ends.length; k += 2) {
    const a = ends[k]!, b = ends[k + 1]!;
    if (a === b) continue;
    const key = a < b ? `${a},${b}` : `${b},${a}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(a, b);
  }
  return out;
}

async function fetchGraph(url: string): Promise<GraphData> {
  const u = new URL(url, location.href);
  if (u.origin !== location.origin) throw new Error("graph must be same-origin");
  const g = (await (await fetch(u)).json()) as {
    nodes: Array<{ id: string | number; x: number; y: number; z?: number }>;
    edges: Array<{ a: string | number; b: string | number; length?: number }>;
    food: Array<string | number>;
  };
  const index = new Map<string | number, number>();
  const xyz: number[] = [];
  g.nodes.forEach((nd, i) => { index.set(nd.id, i); xyz.push(nd.x, nd.y, nd.z ?? 0); });
  const id = (v: string | number): number => {
    const i = index.get(v);
    if (i === undefined) throw new Error(`unknown node id ${String(v)}`);
    return i;
  };
  const ends: number[] = [], lengths: number[] = [];
  for (const e of g.edges) { ends.push(id(e.a), id(e.b)); lengths.push(e.length ?? NaN); }
  return { xyz, ends, lengths, food: g.food.map(id) };
}

function readParams(): Float64Array {
  const p = new Float64Array(P.count).fill(NaN);
  p[P.model] = $<HTMLSelectElement>("model").value === "power" ? 0 : 1;
  p[P.gamma] = Number($<HTMLInputElement>("gamma").value);
  p[P.mu] = Number($<HTMLInputElement>("gamma").value);
  p[P.i0] = Number($<HTMLInputElement>("i0").value);
  p[P.dt] = 0.2;
  p[P.scheme] = 2; // one source at random, the other food are sinks
  p[P.pruneThreshold] = 0.03;
  $("gamma-v").textContent = Number(p[P.gamma]).toFixed(2);
  $("i0-v").textContent = Number(p[P.i0]).toFixed(2);
  return p;
}

async function main(): Promise<void> {
  const q = new URLSearchParams(location.search);
  const exportsP: Promise<PxExports> = loadModule("/physarum.wasm");
  const canvas = $<HTMLCanvasElement>("view");
  const svgEl = document.getElementById("view-svg") as unknown as SVGSVGElement;
  const gl = q.get("renderer") === "svg" ? null : GlRenderer.create(canvas);
  const renderer = gl ?? new SvgRenderer(svgEl);
  status.renderer = gl ? "webgl" : "svg";
  (gl ? svgEl : canvas).style.display = "none";
  $("renderer").textContent = status.renderer;

  const x = await exportsP;
  const graphUrl = q.get("graph");
  let playing = q.get("paused") !== "1";
  let sim: Sim;
  let graph: GraphData;
  const reset = async (): Promise<void> => {
    const seed = Number($<HTMLInputElement>("seed").value) || 0;
    graph = graphUrl ? await fetchGraph(graphUrl) : demoGraph(seed + 1);
    sim?.free();
    sim = new Sim(x, readParams(), seed, graph);
    draw();
  };
  const angle0 = performance.now();
  const draw = (): void => {
    const w = gl ? canvas.width : 800, h = gl ? canvas.height : 600;
    const frame = project(sim, graph.food, (performance.now() - angle0) * 0.00012, w, h);
    status.edgesDrawn = renderer.draw(frame);
    status.step = sim.steps;
    status.alive = sim.alive;
    status.cells = sim.nodes;
    status.residual = sim.residual;
    $("i-step").textContent = String(sim.steps);
    $("i-cells").textContent = String(sim.nodes);
    $("i-tubes").textContent = String(sim.alive);
    $("i-length").textContent = sim.totalLength.toFixed(2);
    $("i-residual").textContent = sim.residual.toExponential(1);
    $("i-cg").textContent = String(sim.cgIterations);
  };
  $("seed").setAttribute("value", q.get("seed") ?? "0");
  ($<HTMLInputElement>("seed")).value = q.get("seed") ?? "0";
  await reset();
  $("play").textContent = playing ? "Pause" : "Play";
  $("play").addEventListener("click", () => { playing = !playing; $("play").textContent = playing ? "Pause" : "Play"; });
  $("step").addEventListener("click", () => { sim.step(1); draw(); });
  $("reset").addEventListener("click", () => { void reset(); });
  for (const id of ["model", "gamma", "i0"]) {
    $(id).addEventListener("input", () => { try { sim.setParams(readParams()); } catch (e) { status.error = String(e); } });
  }
  status.ready = true;
  const tick = (): void => {
    if (playing && sim.steps < 5000) sim.step(2);
    draw();
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

main().catch((e: unknown) => {
  status.error = String(e);
  const el = document.getElementById("error");
  if (el) el.textContent = `Physarum failed to start: ${String(e)}`;
});
