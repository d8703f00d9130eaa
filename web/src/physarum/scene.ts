// Projection of the tube network to screen space, shared by both renderers so
// the WebGL and SVG pictures show exactly the same tubes.

import type { Sim } from "./kernel";

export interface Segment {
  x1: number; y1: number; x2: number; y2: number;
  /** Screen width in pixels (∝ tube radius, perspective-scaled). */
  width: number;
  /** 0..1, ∝ |flow| / max |flow|. */
  glow: number;
}

export interface Frame {
  segments: Segment[];
  food: Array<{ x: number; y: number }>;
}

export function project(sim: Sim, food: number[], angle: number, w: number, h: number): Frame {
  const pos = sim.positions();
  const ends = sim.ends();
  const flow = sim.flow();
  const rad = sim.radius();
  const alive = sim.aliveFlags();
  const n = pos.length / 3;
  let cx = 0, cy = 0, cz = 0;
  for (let i = 0; i < n; i++) { cx += pos[3 * i]!; cy += pos[3 * i + 1]!; cz += pos[3 * i + 2]!; }
  cx /= n || 1; cy /= n || 1; cz /= n || 1;
  let r = 1e-9;
  for (let i = 0; i < n; i++) {
    const dx = pos[3 * i]! - cx, dy = pos[3 * i + 1]! - cy, dz = pos[3 * i + 2]! - cz;
    r = Math.max(r, Math.hypot(dx, dy, dz));
  }
  const c = Math.cos(angle), s = Math.sin(angle), tilt = 0.5;
  const ct = Math.cos(tilt), st = Math.sin(tilt);
  const fov = 2.2, scale = Math.min(w, h) * 0.5;
  const px = new Float64Array(2 * n), depth = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const x = (pos[3 * i]! - cx) / r, y = (pos[3 * i + 1]! - cy) / r, z = (pos[3 * i + 2]! - cz) / r;
    // Rotate about the vertical (y) axis, then tilt towards the viewer.
    const x1 = c * x + s * z, z1 = -s * x + c * z;
    const y2 = ct * y - st * z1, z2 = st * y + ct * z1;
    const k = fov / (fov + 1.2 + z2);
    px[2 * i] = w / 2 + x1 * k * scale;
    px[2 * i + 1] = h / 2 - y2 * k * scale;
    depth[i] = k;
  }
  let maxQ = 1e-12, maxR = 1e-12;
  for (let t = 0; t < alive.length; t++) {
    if (alive[t]) { maxQ = Math.max(maxQ, Math.abs(flow[t]!)); maxR = Math.max(maxR, rad[t]!); }
  }
  const segments: Segment[] = [];
  for (let t = 0; t < alive.length; t++) {
    if (!alive[t]) continue;
    const a = ends[2 * t]!, b = ends[2 * t + 1]!;
    const k = 0.5 * (depth[a]! + depth[b]!);
    segments.push({
      x1: px[2 * a]!, y1: px[2 * a + 1]!, x2: px[2 * b]!, y2: px[2 * b + 1]!,
      width: Math.max(0.75, (rad[t]! / maxR) * 7 * k),
      glow: Math.abs(flow[t]!) / maxQ,
    });
  }
  return { segments, food: food.map((f) => ({ x: px[2 * f] ?? 0, y: px[2 * f + 1] ?? 0 })) };
}

/** Tube colour: dim amber (no flow) to bright yellow-white (max flow). */
export function tubeRGB(glow: number): [number, number, number] {
  const g = Math.sqrt(Math.min(1, Math.max(0, glow)));
  return [0.55 + 0.45 * g, 0.3 + 0.65 * g, 0.05 + 0.6 * g];
}
