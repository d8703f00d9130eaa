// The live link graph of the dashboard.
//
// Draws /v1/topology (nodes and the links both ends confirm) as an SVG
// graph: every node a circle, every link a line; the node the page is
// served by is marked "you", and its own links are drawn as thick as they
// are strong (bandwidth_score from /v1/links). The layout is deterministic:
// nodes start on a circle ordered by id and a short spring relaxation pulls
// linked nodes together; positions persist between polls so the picture
// only moves when the graph changes. Untrusted input: anything malformed is
// skipped, never thrown.

import type { components } from "./api.gen";

type Schemas = components["schemas"];
type TopologyOut = Schemas["TopologyOut"];
type LinksOut = Schemas["LinksOut"];
type LinkOut = Schemas["LinkOut"];

type Obj = Record<string, unknown>;

const SVG_NS = "http://www.w3.org/2000/svg";
const SIZE = 480;
const MARGIN = 36;
/** Caps on what one payload may make us draw. */
const MAX_NODES = 500;
const MAX_EDGES = 5000;

export interface Topology {
  self: string;
  nodes: string[];
  edges: [string, string][];
  /** Strength (0..1) of this node's own links, by peer. */
  strength: Map<string, number>;
}

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function get<T extends object>(o: Obj, key: keyof T & string): unknown {
  return o[key];
}

export function parseTopology(topology: unknown, links: unknown): Topology | null {
  if (!isObj(topology)) return null;
  const self = get<TopologyOut>(topology, "self");
  const rawNodes = get<TopologyOut>(topology, "nodes");
  const rawEdges = get<TopologyOut>(topology, "edges");
  if (typeof self !== "string" || !Array.isArray(rawNodes) || !Array.isArray(rawEdges)) return null;
  const nodes = [...new Set(rawNodes.filter((n): n is string => typeof n === "string"))].slice(0, MAX_NODES);
  if (!nodes.includes(self)) nodes.push(self);
  const known = new Set(nodes);
  const edges: [string, string][] = [];
  const seen = new Set<string>();
  for (const e of rawEdges.slice(0, MAX_EDGES)) {
    if (!Array.isArray(e) || e.length !== 2) continue;
    const [a, b] = e as unknown[];
    if (typeof a !== "string" || typeof b !== "string" || a === b || !known.has(a) || !known.has(b)) continue;
    const key = a < b ? `${a}|${b}` : `${b}|${a}`;
    if (seen.has(key)) continue;
    seen.add(key);
    edges.push(a < b ? [a, b] : [b, a]);
  }
  const strength = new Map<string, number>();
  const list = isObj(links) ? get<LinksOut>(links, "links") : null;
  if (Array.isArray(list)) {
    for (const l of list) {
      if (!isObj(l)) continue;
      const peer = get<LinkOut>(l, "peer");
      const score = get<LinkOut>(l, "bandwidth_score");
      if (typeof peer === "string" && typeof score === "number" && Number.isFinite(score)) {
        strength.set(peer, Math.min(1, Math.max(0, score)));
      }
    }
  }
  return { self, nodes: nodes.sort(), edges, strength };
}

interface Point {
  x: number;
  y: number;
}

const positions = new Map<string, Point>();
let layoutKey = "";

function layout(t: Topology): void {
  const key = t.nodes.join(",") + "#" + t.edges.map((e) => e.join("|")).join(",");
  if (key === layoutKey) return;
  layoutKey = key;
  const n = t.nodes.length;
  const c = SIZE / 2;
  const r = SIZE / 2 - MARGIN;
  const pos = new Map<string, Point>();
  t.nodes.forEach((id, i) => {
    const old = positions.get(id);
    const angle = (2 * Math.PI * i) / Math.max(1, n) - Math.PI / 2;
    pos.set(id, old ?? { x: c + r * Math.cos(angle), y: c + r * Math.sin(angle) });
  });
  // A short Fruchterman-Reingold relaxation (deterministic: no randomness).
  const k = Math.sqrt((SIZE * SIZE) / Math.max(1, n)) * 0.6;
  for (let iter = 0; iter < 60 && n > 1; iter++) {
    const disp = new Map<string, Point>(t.nodes.map((id) => [id, { x: 0, y: 0 }]));
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const ia = t.nodes[i] ?? "";
        const ib = t.nodes[j] ?? "";
        const a = pos.get(ia)!;
        const b = pos.get(ib)!;
        const dx = a.x - b.x || 0.01;
        const dy = a.y - b.y || 0.01;
        const d = Math.max(1, Math.hypot(dx, dy));
        const f = (k * k) / d;
        const da = disp.get(ia)!;
        const db = disp.get(ib)!;
        da.x += (dx / d) * f;
        da.y += (dy / d) * f;
        db.x -= (dx / d) * f;
        db.y -= (dy / d) * f;
      }
    }
    for (const [a, b] of t.edges) {
      const pa = pos.get(a)!;
      const pb = pos.get(b)!;
      const dx = pa.x - pb.x;
      const dy = pa.y - pb.y;
      const d = Math.max(1, Math.hypot(dx, dy));
      const f = (d * d) / k;
      const da = disp.get(a)!;
      const db = disp.get(b)!;
      da.x -= (dx / d) * f;
      da.y -= (dy / d) * f;
      db.x += (dx / d) * f;
      db.y += (dy / d) * f;
    }
    const step = 12 * (1 - iter / 60);
    for (const id of t.nodes) {
      const p = pos.get(id)!;
      const d = disp.get(id)!;
      const len = Math.max(1e-9, Math.hypot(d.x, d.y));
      p.x = Math.min(SIZE - MARGIN, Math.max(MARGIN, p.x + (d.x / len) * Math.min(step, len)));
      p.y = Math.min(SIZE - MARGIN, Math.max(MARGIN, p.y + (d.y / len) * Math.min(step, len)));
    }
  }
  positions.clear();
  for (const [id, p] of pos) positions.set(id, p);
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string>): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function short(id: string): string {
  return id.length > 10 ? `…${id.slice(-6)}` : id;
}

/** Redraw the graph inside `host` (an <svg>); returns the number of components drawn. */
export function renderTopology(host: SVGSVGElement, t: Topology): number {
  layout(t);
  host.setAttribute("viewBox", `0 0 ${SIZE} ${SIZE}`);
  host.replaceChildren();
  const edgeLayer = svg("g", { class: "edges" });
  const nodeLayer = svg("g", { class: "nodes" });
  host.append(edgeLayer, nodeLayer);
  for (const [a, b] of t.edges) {
    const pa = positions.get(a)!;
    const pb = positions.get(b)!;
    const own = a === t.self || b === t.self;
    const peer = a === t.self ? b : a;
    const strength = own ? t.strength.get(peer) ?? 0 : null;
    const line = svg("line", {
      x1: pa.x.toFixed(1),
      y1: pa.y.toFixed(1),
      x2: pb.x.toFixed(1),
      y2: pb.y.toFixed(1),
      class: own ? "edge edge-own" : "edge",
      "data-edge": `${a}|${b}`,
      "stroke-width": strength === null ? "1.5" : (1.5 + 6 * strength).toFixed(2),
    });
    if (strength !== null) line.setAttribute("data-strength", strength.toFixed(3));
    const title = svg("title", {});
    title.textContent = strength === null ? `${a} — ${b}` : `${a} — ${b}: strength ${strength.toFixed(2)}`;
    line.append(title);
    edgeLayer.append(line);
  }
  const degree = new Map<string, number>();
  for (const [a, b] of t.edges) {
    degree.set(a, (degree.get(a) ?? 0) + 1);
    degree.set(b, (degree.get(b) ?? 0) + 1);
  }
  for (const id of t.nodes) {
    const p = positions.get(id)!;
    const isSelf = id === t.self;
    const g = svg("g", { class: isSelf ? "node node-self" : "node", "data-node-id": id });
    g.append(svg("circle", { cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: isSelf ? "11" : "7" }));
    const label = svg("text", { x: p.x.toFixed(1), y: (p.y - (isSelf ? 15 : 11)).toFixed(1), "text-anchor": "middle" });
    label.textContent = isSelf ? "you" : short(id);
    const title = svg("title", {});
    title.textContent = `${id}${isSelf ? " (this node)" : ""} — ${degree.get(id) ?? 0} link(s)`;
    g.append(label, title);
    nodeLayer.append(g);
  }
  return countComponents(t);
}

export function countComponents(t: Topology): number {
  const parent = new Map<string, string>(t.nodes.map((n) => [n, n]));
  const find = (x: string): string => {
    let r = x;
    while (parent.get(r) !== r) r = parent.get(r)!;
    return r;
  };
  for (const [a, b] of t.edges) {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent.set(ra, rb);
  }
  return new Set(t.nodes.map(find)).size;
}
