// Thin TypeScript wrapper over physarum.wasm's C-ABI (see
// crates/vudo-physarum/ABI.md). The module has no imports; all state lives in
// its linear memory. Views into memory are re-created on every read because
// memory.buffer is replaced whenever the module grows its memory.

export interface PxExports {
  memory: WebAssembly.Memory;
  px_alloc(nBytes: number): number;
  px_free(ptr: number, nBytes: number): void;
  px_new(params: number, nParams: number, seed: bigint): number;
  px_free_sim(h: number): void;
  px_set_params(h: number, params: number, nParams: number): number;
  px_add_nodes(h: number, xyz: number, n: number): number;
  px_add_edges(h: number, ab: number, lengths: number, n: number): number;
  px_set_food(h: number, ids: number, n: number): number;
  px_step(h: number, n: number): number;
  px_node_count(h: number): number;
  px_edge_count(h: number): number;
  px_alive_count(h: number): number;
  px_steps(h: number): number;
  px_residual(h: number): number;
  px_max_residual(h: number): number;
  px_last_cg_iterations(h: number): number;
  px_total_length(h: number): number;
  px_edge_ends(h: number): number;
  px_flow(h: number): number;
  px_alive(h: number): number;
  px_positions(h: number): number;
  px_radius(h: number): number;
  px_error_ptr(): number;
  px_error_len(): number;
}

/** Parameter slots (ABI.md "Parameter array"); NaN = default. */
export const P = {
  model: 0, mu: 1, gamma: 2, i0: 3, decay: 4, dt: 5, scheme: 6, pruneThreshold: 7,
  explorationProbability: 11, stepSize: 12, cgPrecond: 21, count: 22,
} as const;

export interface GraphData {
  xyz: number[]; // 3 per node
  ends: number[]; // 2 per edge
  lengths: number[] | null;
  food: number[];
}

/** The module also carries the spirit ABI (docs/spirit-abi.md); its host functions are
 *  no-ops for a page that only uses the kernel ABI (px_*). */
const SPIRIT_HOST_STUBS: WebAssembly.Imports = {
  vudo: {
    log: () => undefined,
    topology: () => 0,
    now_ms: () => BigInt(Date.now()),
  },
};

export async function loadModule(url: string): Promise<PxExports> {
  const resp = fetch(url);
  let instance: WebAssembly.Instance;
  try {
    instance = (await WebAssembly.instantiateStreaming(resp, SPIRIT_HOST_STUBS)).instance;
  } catch {
    // Servers that do not send application/wasm: fall back to a buffer.
    const bytes = await (await fetch(url)).arrayBuffer();
    instance = (await WebAssembly.instantiate(bytes, SPIRIT_HOST_STUBS)).instance;
  }
  return instance.exports as unknown as PxExports;
}

export class Sim {
  private h: number;

  constructor(private readonly x: PxExports, params: Float64Array, seed: number, graph: GraphData) {
    const p = this.put(params);
    this.h = x.px_new(p, params.length, BigInt(seed));
    x.px_free(p, params.byteLength);
    if (this.h === 0) throw new Error(this.error());
    this.call(x.px_add_nodes(this.h, this.putF(graph.xyz), graph.xyz.length / 3));
    const ab = this.putU(graph.ends);
    const len = graph.lengths ? this.putF(graph.lengths) : 0;
    this.call(x.px_add_edges(this.h, ab, len, graph.ends.length / 2));
    this.call(x.px_set_food(this.h, this.putU(graph.food), graph.food.length));
    // (staging buffers are small and freed with the instance; see freeStaging)
    this.freeStaging();
  }

  private staging: Array<[number, number]> = [];
  private put(a: Float64Array | Uint32Array): number {
    const ptr = this.x.px_alloc(Math.max(a.byteLength, 1));
    new Uint8Array(this.x.memory.buffer, ptr, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    return ptr;
  }
  private putF(v: number[]): number {
    const a = new Float64Array(v);
    const p = this.put(a);
    this.staging.push([p, a.byteLength]);
    return p;
  }
  private putU(v: number[]): number {
    const a = new Uint32Array(v);
    const p = this.put(a);
    this.staging.push([p, a.byteLength]);
    return p;
  }
  private freeStaging(): void {
    for (const [p, n] of this.staging) this.x.px_free(p, Math.max(n, 1));
    this.staging = [];
  }
  private error(): string {
    const p = this.x.px_error_ptr();
    return new TextDecoder().decode(new Uint8Array(this.x.memory.buffer, p, this.x.px_error_len()));
  }
  private call(code: number): void {
    if (code < 0) throw new Error(this.error());
  }

  setParams(params: Float64Array): void {
    const p = this.put(params);
    const rc = this.x.px_set_params(this.h, p, params.length);
    this.x.px_free(p, params.byteLength);
    this.call(rc);
  }
  step(n: number): void { this.call(this.x.px_step(this.h, n)); }
  free(): void { if (this.h) this.x.px_free_sim(this.h); this.h = 0; }

  get steps(): number { return this.x.px_steps(this.h); }
  get nodes(): number { return this.x.px_node_count(this.h); }
  get edges(): number { return this.x.px_edge_count(this.h); }
  get alive(): number { return this.x.px_alive_count(this.h); }
  get residual(): number { return this.x.px_residual(this.h); }
  get cgIterations(): number { return this.x.px_last_cg_iterations(this.h); }
  get totalLength(): number { return this.x.px_total_length(this.h); }

  positions(): Float64Array { return new Float64Array(this.x.memory.buffer, this.x.px_positions(this.h), 3 * this.nodes).slice(); }
  ends(): Uint32Array { return new Uint32Array(this.x.memory.buffer, this.x.px_edge_ends(this.h), 2 * this.edges).slice(); }
  flow(): Float64Array { return new Float64Array(this.x.memory.buffer, this.x.px_flow(this.h), this.edges).slice(); }
  radius(): Float64Array { return new Float64Array(this.x.memory.buffer, this.x.px_radius(this.h), this.edges).slice(); }
  aliveFlags(): Uint8Array { return new Uint8Array(this.x.memory.buffer, this.x.px_alive(this.h), this.edges).slice(); }
}
