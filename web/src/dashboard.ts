// VUDO node dashboard.
//
// Served by every node at `/`, same origin as the HTTP API. Polls
// /v1/node, /v1/members, /v1/gradients, /v1/topology and /v1/links once a
// second and renders the node summary, the live link graph and the members
// table; the Signals panel follows the event stream /v1/events. Every field coming from the API is
// treated as untrusted and possibly missing: rendering never throws on a
// partial or unexpected payload.

import type { components } from "./api.gen";
import { parseTopology, renderTopology } from "./topology";

// ---------------------------------------------------------------- state ---

interface DashboardState {
  /** Number of members in the last successful poll. */
  members: number;
  /** Date.now() of the last successful poll (0 = never). */
  lastUpdate: number;
  /** Number of failed polls since the page loaded. */
  errors: number;
  /** Whether the last poll succeeded. */
  connected: boolean;
  /** Number of polls attempted. */
  polls: number;
  /** name -> state of every spirit in the last successful poll. */
  spirits: Record<string, string>;
  /** The link graph drawn last: node and link counts, connected components (-1 = not drawn). */
  topology: { nodes: number; edges: number; components: number };
  /** Signals shown in the Signals panel. */
  signals: number;
  /** State of the /v1/events stream: connecting, live, reconnecting. */
  stream: string;
  /** The Credits panel: accounts shown, total minted (units) and leader of the last read; "unavailable" without a ledger. */
  credits: { accounts: number; minted: number | null; leader: string | null; status: string };
  /** Stream events received (well-formed or not) and those ignored as malformed. */
  events: number;
  badEvents: number;
}

declare global {
  interface Window {
    __vudoDashboard: DashboardState;
  }
}

const POLL_INTERVAL_MS = 1000;
const REQUEST_TIMEOUT_MS = 3000;

const state: DashboardState = {
  members: 0,
  lastUpdate: 0,
  errors: 0,
  connected: false,
  polls: 0,
  spirits: {},
  topology: { nodes: 0, edges: 0, components: -1 },
  signals: 0,
  credits: { accounts: 0, minted: null, leader: null, status: "loading" },
  stream: "connecting",
  events: 0,
  badEvents: 0,
};
window.__vudoDashboard = state;

// ------------------------------------------------------ loose JSON access ---

type Obj = Record<string, unknown>;

// Field names come from the API's own OpenAPI document (api.gen.ts is
// generated from /v1/openapi.json by the build): a field the API renames or
// drops is a type error here, while values are still checked at run time.
type Schemas = components["schemas"];
type GradientOut = Schemas["GradientOut"];
type MembersOut = Schemas["MembersOut"];
type MemberOut = Schemas["MemberOut"];
type NodeOut = Schemas["NodeOut"];
type GradientsOut = Schemas["GradientsOut"];
type ComputeCap = Schemas["ComputeCap"];
type StorageCap = Schemas["StorageCap"];
type GatewayCap = Schemas["GatewayCap"];
type WitnessCap = Schemas["WitnessCap"];
type SpiritsOut = Schemas["SpiritsOut"];
type SpiritOut = Schemas["SpiritOut"];
type SpiritPermissionsOut = Schemas["SpiritPermissionsOut"];
type SignalsOut = Schemas["SignalsOut"];
type CreditAccountsOut = Schemas["CreditAccountsOut"];
type CreditAccountOut = Schemas["CreditAccountOut"];
type CreditSummaryOut = Schemas["CreditSummaryOut"];
// A `signal` event on /v1/events carries the same fields as a SignalOut (without the payload).
type SignalOut = Schemas["SignalOut"];
/** The data of a `quorum_fired` event (the stream is not described by OpenAPI). */
interface QuorumFiredEvent {
  key: string;
  threshold: number;
  contributors: number;
  network_size: number;
  at: number;
}

function field<T extends object>(o: Obj, key: keyof T & string): unknown {
  return o[key];
}

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

// ------------------------------------------------------------ normalised ---

interface Gradient {
  compute: number | null;
  storage: number | null;
  bandwidth: number | null;
  credit: number | null;
  timestamp: number | null;
  hops: number | null;
}

interface Member {
  key: string;
  id: string;
  status: string;
  verified: boolean | null;
  isSelf: boolean;
  gossipAddr: string | null;
  capabilities: unknown[];
  gradient: Gradient | null;
  generation: number | null;
  rejected: string[];
}

function parseGradient(v: unknown): Gradient | null {
  if (!isObj(v)) return null;
  return {
    compute: num(field<GradientOut>(v, "compute_available")),
    storage: num(field<GradientOut>(v, "storage_available")),
    bandwidth: num(field<GradientOut>(v, "bandwidth_available")),
    credit: num(field<GradientOut>(v, "credit_balance")),
    timestamp: num(field<GradientOut>(v, "timestamp")),
    hops: num(field<GradientOut>(v, "hops")),
  };
}

function parseMembers(payload: unknown): Member[] {
  const list = isObj(payload) ? arr(field<MembersOut>(payload, "members")) : arr(payload);
  const seen = new Map<string, number>();
  const out: Member[] = [];
  list.forEach((raw, index) => {
    const m: Obj = isObj(raw) ? raw : {};
    const id = str(field<MemberOut>(m, "node_id")) ?? `(unknown #${index + 1})`;
    const n = seen.get(id) ?? 0;
    seen.set(id, n + 1);
    const verified = field<MemberOut>(m, "verified");
    out.push({
      key: n === 0 ? id : `${id}#${n}`,
      id,
      status: str(field<MemberOut>(m, "status")) ?? "unknown",
      verified: typeof verified === "boolean" ? verified : null,
      isSelf: field<MemberOut>(m, "is_self") === true,
      gossipAddr: str(field<MemberOut>(m, "gossip_addr")),
      capabilities: arr(field<MemberOut>(m, "capabilities")),
      gradient: parseGradient(field<MemberOut>(m, "gradient")),
      generation: num(field<MemberOut>(m, "generation")),
      rejected: arr(field<MemberOut>(m, "rejected")).map((r) => (typeof r === "string" ? r : JSON.stringify(r))),
    });
  });
  // This node first, then by id: rows stay put when a status changes.
  out.sort((a, b) => {
    if (a.isSelf !== b.isSelf) return a.isSelf ? -1 : 1;
    return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
  });
  return out;
}

// ------------------------------------------------------------ formatting ---

const PEER_ID_PREFIX = "12D3KooW"; // every Ed25519 libp2p PeerId starts so

function shortId(id: string): string {
  const body = id.startsWith(PEER_ID_PREFIX) && id.length > 20 ? id.slice(PEER_ID_PREFIX.length) : id;
  if (body.length <= 14) return body;
  return `${body.slice(0, 6)}…${body.slice(-6)}`;
}

function formatDuration(seconds: number | null): string {
  if (seconds === null) return "—";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function formatMb(mb: number): string {
  if (mb >= 1024 * 1024) return `${(mb / (1024 * 1024)).toFixed(1)} TB`;
  if (mb >= 1024) return `${(mb / 1024).toFixed(mb >= 10240 ? 0 : 1)} GB`;
  return `${mb} MB`;
}

interface CapView {
  kind: string;
  label: string;
  detail: string;
}

function describeCapability(c: unknown): CapView {
  if (!isObj(c)) return { kind: "unknown", label: "?", detail: JSON.stringify(c) ?? "?" };
  const kind = str(field<ComputeCap>(c, "kind")) ?? "unknown";
  const parts: string[] = [];
  switch (kind) {
    case "compute": {
      const cores = num(field<ComputeCap>(c, "cores"));
      const mem = num(field<ComputeCap>(c, "memory_mb"));
      if (cores !== null) parts.push(`${cores} cores`);
      if (mem !== null) parts.push(formatMb(mem));
      break;
    }
    case "storage": {
      const cap = num(field<StorageCap>(c, "capacity_mb"));
      const iops = num(field<StorageCap>(c, "iops"));
      if (cap !== null) parts.push(formatMb(cap));
      if (iops !== null) parts.push(`${iops} IOPS`);
      break;
    }
    case "gateway": {
      const protocols = arr(field<GatewayCap>(c, "protocols")).filter((p): p is string => typeof p === "string");
      if (protocols.length > 0) parts.push(protocols.join(", "));
      break;
    }
    case "witness": {
      const stake = num(field<WitnessCap>(c, "stake"));
      if (stake !== null) parts.push(`stake ${stake}`);
      break;
    }
    default:
      break;
  }
  const label = parts.length > 0 ? `${kind} · ${parts.join(" · ")}` : kind;
  return { kind, label, detail: JSON.stringify(c) };
}

function formatNumber(v: number): string {
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(2);
}

// ------------------------------------------------------------------- DOM ---

function el(id: string): HTMLElement {
  // Missing elements are replaced by detached ones so rendering never throws.
  return document.getElementById(id) ?? document.createElement("span");
}

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function setText(e: Element, text: string): void {
  if (e.textContent !== text) e.textContent = text;
}

function setAttr(e: Element, name: string, value: string | null): void {
  if (value === null) {
    if (e.hasAttribute(name)) e.removeAttribute(name);
  } else if (e.getAttribute(name) !== value) {
    e.setAttribute(name, value);
  }
}

function setClass(e: Element, className: string): void {
  if (e.className !== className) e.className = className;
}

function statusClass(status: string): string {
  const known = ["alive", "dead", "left", "bootstrapping", "leaving"];
  return `status status-${known.includes(status) ? status : "unknown"}`;
}

function renderCaps(container: HTMLElement, caps: unknown[]): void {
  const signature = JSON.stringify(caps);
  if (container.dataset["sig"] === signature) return;
  container.dataset["sig"] = signature;
  container.replaceChildren();
  if (caps.length === 0) {
    container.append(h("span", "none", "none"));
    return;
  }
  for (const c of caps) {
    const view = describeCapability(c);
    const chip = h("span", `cap cap-${view.kind.replace(/[^a-z0-9_-]/gi, "")}`, view.label);
    chip.title = view.detail;
    container.append(chip);
  }
}

// ------------------------------------------------------------ this node ---

function renderNode(node: unknown, gradients: unknown, members: Member[]): void {
  const n: Obj = isObj(node) ? node : {};
  const id = str(field<NodeOut>(n, "node_id")) ?? "unknown";
  setText(el("self-id"), id);
  const status = str(field<NodeOut>(n, "status")) ?? "unknown";
  const statusEl = el("self-status");
  setText(statusEl, status);
  setClass(statusEl, statusClass(status));
  setText(el("self-cluster"), str(field<NodeOut>(n, "cluster_id")) ?? "—");
  setText(el("self-version"), str(field<NodeOut>(n, "version")) ?? "—");
  const started = num(field<NodeOut>(n, "started_at"));
  setText(el("self-uptime"), started === null ? "—" : formatDuration(Date.now() / 1000 - started));

  const addrsEl = el("self-addrs");
  const addrs = field<NodeOut>(n, "addrs");
  const addrSig = JSON.stringify(addrs ?? null);
  if (addrsEl.dataset["sig"] !== addrSig) {
    addrsEl.dataset["sig"] = addrSig;
    addrsEl.replaceChildren();
    const entries = isObj(addrs) ? Object.entries(addrs) : [];
    if (entries.length === 0) addrsEl.append(h("span", "none", "—"));
    for (const [label, value] of entries) {
      const line = h("span", "addr");
      line.append(h("span", "addr-label", label), document.createTextNode(typeof value === "string" ? value : JSON.stringify(value)));
      addrsEl.append(line);
    }
  }

  renderCaps(el("self-caps"), arr(field<NodeOut>(n, "capabilities")));
  renderFlow(gradients, members);
  document.title = `VUDO node ${shortId(id)}`;
}

function renderFlow(gradients: unknown, members: Member[]): void {
  const flowEl = el("self-flow");
  const rawFlow = isObj(gradients) ? field<GradientsOut>(gradients, "flow") : null;
  const flow = isObj(rawFlow) ? rawFlow : null;
  const sig = JSON.stringify(flow);
  if (flowEl.dataset["sig"] === sig) return;
  flowEl.dataset["sig"] = sig;
  flowEl.replaceChildren();
  if (flow === null) {
    flowEl.append(h("span", "none", "—"));
    return;
  }
  const selfId = members.find((m) => m.isSelf)?.id ?? null;
  const chips: HTMLElement[] = [];
  for (const [resource, target] of Object.entries(flow)) {
    const t = str(target);
    const text = t === null ? `${resource} → —` : `${resource} → ${t === selfId ? "self" : shortId(t)}`;
    const chip = h("span", "cap", text);
    chip.title = t === null ? `no better ${resource} neighbour` : `${resource} flows toward ${t}`;
    chips.push(chip);
  }
  if (chips.length === 0) flowEl.append(h("span", "none", "—"));
  const wrap = h("span", "caps");
  wrap.append(...chips);
  flowEl.append(wrap);
}

// --------------------------------------------------------- members table ---

interface Bar {
  root: HTMLElement;
  fill: HTMLElement;
  value: HTMLElement;
}

interface Row {
  tr: HTMLTableRowElement;
  idCell: HTMLElement;
  idText: HTMLElement;
  selfTag: HTMLElement;
  status: HTMLElement;
  verified: HTMLElement;
  caps: HTMLElement;
  compute: Bar;
  storage: Bar;
  bandwidth: Bar;
  credit: Bar;
  hops: HTMLElement;
  age: HTMLElement;
}

const rows = new Map<string, Row>();

function makeBar(kind: string): Bar {
  const root = h("div", `bar bar-${kind}`);
  const track = h("div", "bar-track");
  const fill = h("div", "bar-fill");
  track.append(fill);
  const value = h("span", "bar-value", "—");
  root.append(track, value);
  root.setAttribute("role", "meter");
  root.setAttribute("aria-valuemin", "0");
  root.setAttribute("aria-valuemax", "100");
  root.setAttribute("aria-label", kind);
  return { root, fill, value };
}

function makeRow(): Row {
  const tr = h("tr");
  const idCell = h("th");
  idCell.scope = "row";
  const idText = h("span", "node-id mono");
  const selfTag = h("span", "self-tag", "this node");
  selfTag.hidden = true;
  idCell.append(idText, selfTag);

  const statusTd = h("td", "col-status");
  const status = h("span", "status");
  statusTd.append(status);

  const verifiedTd = h("td", "col-verified");
  const verified = h("span", "verified");
  verified.setAttribute("role", "img");
  verifiedTd.append(verified);

  const capsTd = h("td", "col-caps");
  const caps = h("div", "caps");
  capsTd.append(caps);

  const compute = makeBar("compute");
  const storage = makeBar("storage");
  const bandwidth = makeBar("bandwidth");
  const credit = makeBar("credit");
  const barCells = [compute, storage, bandwidth, credit].map((b) => {
    const td = h("td", "col-bar");
    td.append(b.root);
    return td;
  });

  const hops = h("td", "col-hops num");
  const age = h("td", "col-age num");
  tr.append(idCell, statusTd, verifiedTd, capsTd, ...barCells, hops, age);
  return { tr, idCell, idText, selfTag, status, verified, caps, compute, storage, bandwidth, credit, hops, age };
}

/** value is rendered as a fraction of `scale` (clamped to 0..1). */
function updateBar(bar: Bar, value: number | null, scale: number, asPercent: boolean): void {
  if (value === null) {
    bar.fill.style.width = "0%";
    setText(bar.value, "—");
    setAttr(bar.root, "aria-valuenow", null);
    setAttr(bar.root, "title", "not reported");
    return;
  }
  const frac = scale > 0 ? Math.min(1, Math.max(0, value / scale)) : 0;
  const pct = Math.round(frac * 100);
  const width = `${pct}%`;
  if (bar.fill.style.width !== width) bar.fill.style.width = width;
  const text = asPercent ? `${Math.round(Math.min(1, Math.max(0, value)) * 100)}%` : formatNumber(value);
  setText(bar.value, text);
  setAttr(bar.root, "aria-valuenow", String(pct));
  setAttr(bar.root, "title", asPercent ? `${(value * 100).toFixed(1)}% available` : `balance ${value}`);
}

function updateRow(row: Row, m: Member, creditScale: number, nowS: number): void {
  setAttr(row.tr, "data-node-id", m.id);
  setAttr(row.tr, "data-status", m.status);
  setClass(row.tr, [m.isSelf ? "is-self" : "", `is-${m.status}`].filter(Boolean).join(" "));

  setText(row.idText, shortId(m.id));
  const hover = [m.id];
  if (m.gossipAddr) hover.push(`gossip ${m.gossipAddr}`);
  if (m.generation !== null) hover.push(`generation ${m.generation}`);
  setAttr(row.idText, "title", hover.join("\n"));
  row.selfTag.hidden = !m.isSelf;

  setText(row.status, m.status);
  setClass(row.status, statusClass(m.status));

  if (m.verified === true) {
    setText(row.verified, "✓");
    setClass(row.verified, "verified verified-yes");
    setAttr(row.verified, "aria-label", "verified");
    setAttr(row.verified, "title", "identity verified");
  } else if (m.verified === false) {
    setText(row.verified, "✗");
    setClass(row.verified, "verified verified-no");
    setAttr(row.verified, "aria-label", "not verified");
    setAttr(row.verified, "title", m.rejected.length > 0 ? `rejected: ${m.rejected.join("; ")}` : "not verified");
  } else {
    setText(row.verified, "?");
    setClass(row.verified, "verified verified-unknown");
    setAttr(row.verified, "aria-label", "verification unknown");
    setAttr(row.verified, "title", "verification unknown");
  }

  renderCaps(row.caps, m.capabilities);

  const g = m.gradient;
  updateBar(row.compute, g?.compute ?? null, 1, true);
  updateBar(row.storage, g?.storage ?? null, 1, true);
  updateBar(row.bandwidth, g?.bandwidth ?? null, 1, true);
  updateBar(row.credit, g?.credit ?? null, creditScale, false);
  setText(row.hops, g?.hops !== null && g?.hops !== undefined ? String(g.hops) : "—");
  const ts = g?.timestamp ?? null;
  setText(row.age, ts === null ? "—" : formatDuration(nowS - ts));
  setAttr(row.age, "title", ts === null ? "no gradient reported" : new Date(ts * 1000).toISOString());
}

function renderMembers(members: Member[]): void {
  const tbody = el("members-body");
  for (const p of Array.from(tbody.querySelectorAll("tr.waiting-row"))) p.remove();

  // Credit is a balance, not a fraction: scale bars to the richest member
  // unless every balance already fits in 0..1.
  const credits = members.map((m) => m.gradient?.credit ?? null).filter((c): c is number => c !== null);
  const maxCredit = credits.reduce((a, b) => Math.max(a, b), 0);
  const creditScale = maxCredit > 1 ? maxCredit : 1;
  const nowS = Date.now() / 1000;

  const live = new Set<string>();
  members.forEach((m, index) => {
    live.add(m.key);
    let row = rows.get(m.key);
    if (!row) {
      row = makeRow();
      rows.set(m.key, row);
    }
    updateRow(row, m, creditScale, nowS);
    if (tbody.children[index] !== row.tr) tbody.insertBefore(row.tr, tbody.children[index] ?? null);
  });
  for (const [key, row] of rows) {
    if (!live.has(key)) {
      row.tr.remove();
      rows.delete(key);
    }
  }
  if (members.length === 0) {
    const tr = h("tr", "waiting-row");
    const td = h("td", undefined, "No members known yet");
    td.colSpan = 10;
    tr.append(td);
    tbody.append(tr);
  }

  const counts = new Map<string, number>();
  for (const m of members) counts.set(m.status, (counts.get(m.status) ?? 0) + 1);
  const parts = [`${members.length} member${members.length === 1 ? "" : "s"}`];
  for (const s of ["alive", "dead", "left"]) {
    const c = counts.get(s);
    if (c) parts.push(`${c} ${s}`);
  }
  for (const [s, c] of counts) if (!["alive", "dead", "left"].includes(s)) parts.push(`${c} ${s}`);
  setText(el("members-summary"), parts.join(" · "));
}

// --------------------------------------------------------------- spirits ---

interface Spirit {
  name: string;
  version: string;
  state: string;
  asks: string;
  missing: string[];
  fuel: number | null;
  memory: number | null;
  memoryCap: number | null;
  web: boolean;
  error: string | null;
}

function parseSpirits(payload: unknown): Spirit[] {
  const list = isObj(payload) ? arr(field<SpiritsOut>(payload, "spirits")) : [];
  const out: Spirit[] = [];
  for (const raw of list) {
    if (!isObj(raw)) continue;
    const name = str(field<SpiritOut>(raw, "name"));
    if (name === null) continue;
    const p = field<SpiritOut>(raw, "permissions");
    const perms: Obj = isObj(p) ? p : {};
    const asks = (["network", "compute", "display"] as const)
      .map((k) => `${k}=${str(field<SpiritPermissionsOut>(perms, k)) ?? "?"}`)
      .join(" ");
    out.push({
      name,
      version: str(field<SpiritOut>(raw, "version")) ?? "?",
      state: str(field<SpiritOut>(raw, "state")) ?? "unknown",
      asks,
      missing: arr(field<SpiritOut>(raw, "missing")).filter((m): m is string => typeof m === "string"),
      fuel: num(field<SpiritOut>(raw, "fuel_used_total")),
      memory: num(field<SpiritOut>(raw, "memory_bytes")),
      memoryCap: num(field<SpiritOut>(raw, "memory_cap")),
      web: field<SpiritOut>(raw, "web") === true,
      error: str(field<SpiritOut>(raw, "error")),
    });
  }
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return out;
}

function formatBytes(n: number | null): string {
  if (n === null) return "—";
  if (n === 0) return "0";
  return n >= 1024 * 1024 ? `${(n / (1024 * 1024)).toFixed(1)} MiB` : `${Math.round(n / 1024)} KiB`;
}

function renderSpirits(spirits: Spirit[]): void {
  const tbody = el("spirits-body");
  const rowsOut: HTMLTableRowElement[] = [];
  for (const s of spirits) {
    const tr = h("tr");
    tr.setAttribute("data-spirit", s.name);
    const nameCell = h("th", "mono", s.name);
    nameCell.scope = "row";
    const stateCell = h("td");
    const known = ["running", "failed", "installed", "summoning", "dismissing", "dismissed"];
    const badge = h("span", `status spirit-state status-${known.includes(s.state) ? s.state : "unknown"}`, s.state);
    if (s.error) badge.title = s.error;
    stateCell.append(badge);
    const pageCell = h("td");
    if (s.web) {
      const a = h("a", undefined, "open");
      a.href = `/spirits/${encodeURIComponent(s.name)}/`;
      pageCell.append(a);
    } else {
      pageCell.textContent = "—";
    }
    const mem = s.memoryCap !== null && s.memory ? `${formatBytes(s.memory)} / ${formatBytes(s.memoryCap)}` : formatBytes(s.memory);
    tr.append(
      nameCell,
      h("td", undefined, s.version),
      stateCell,
      h("td", "mono", s.asks),
      h("td", undefined, s.missing.length > 0 ? s.missing.join(", ") : "—"),
      h("td", "num", s.fuel === null ? "—" : formatNumber(s.fuel)),
      h("td", "num", mem),
      pageCell,
    );
    rowsOut.push(tr);
  }
  if (rowsOut.length === 0) {
    const tr = h("tr", "waiting-row");
    const td = h("td", undefined, "No spirits installed");
    td.colSpan = 8;
    tr.append(td);
    rowsOut.push(tr);
  }
  const sig = JSON.stringify(spirits);
  if (tbody.dataset["sig"] !== sig) {
    tbody.dataset["sig"] = sig;
    tbody.replaceChildren(...rowsOut);
  }
  const running = spirits.filter((s) => s.state === "running").length;
  setText(el("spirits-summary"), `${spirits.length} installed · ${running} running`);
  state.spirits = Object.fromEntries(spirits.map((s) => [s.name, s.state]));
}

// --------------------------------------------------------------- credits ---
//
// GET /v1/credits/accounts and /v1/credits/summary (linearizable: answered by
// the ledger's leader). Amounts are integer units, 1 credit = 1 000 000 units.

const UNITS_PER_CREDIT = 1_000_000;
const MAX_ACCOUNT_ROWS = 200;

interface CreditAccount {
  id: string;
  balance: number;
  available: number;
  locked: number;
  earned: number;
  spent: number;
}

function formatCredits(units: number | null): string {
  if (units === null) return "—";
  const whole = Math.trunc(units / UNITS_PER_CREDIT);
  const frac = Math.abs(units % UNITS_PER_CREDIT);
  const tail = frac === 0 ? "" : `.${String(frac).padStart(6, "0").replace(/0+$/, "")}`;
  return `${whole.toLocaleString("en-US")}${tail}`;
}

function parseAccounts(payload: unknown): CreditAccount[] | null {
  if (!isObj(payload)) return null;
  const list = field<CreditAccountsOut>(payload, "accounts");
  if (!Array.isArray(list)) return null;
  const out: CreditAccount[] = [];
  for (const raw of list.slice(0, MAX_ACCOUNT_ROWS)) {
    if (!isObj(raw)) continue;
    const id = str(field<CreditAccountOut>(raw, "node_id"));
    const balance = num(field<CreditAccountOut>(raw, "balance"));
    if (id === null || balance === null) continue;
    out.push({
      id,
      balance,
      available: num(field<CreditAccountOut>(raw, "available")) ?? balance,
      locked: num(field<CreditAccountOut>(raw, "locked")) ?? 0,
      earned: num(field<CreditAccountOut>(raw, "earned_total")) ?? 0,
      spent: num(field<CreditAccountOut>(raw, "spent_total")) ?? 0,
    });
  }
  out.sort((a, b) => b.balance - a.balance || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return out;
}

function renderCredits(accountsPayload: unknown, summaryPayload: unknown, selfId: string | null): void {
  const accounts = parseAccounts(accountsPayload);
  const summary: Obj = isObj(summaryPayload) ? summaryPayload : {};
  const tbody = el("credits-body");
  if (accounts === null) {
    state.credits = { accounts: 0, minted: null, leader: null, status: "unavailable" };
    setText(el("credits-summary"), "no ledger reachable (no leader, or no witness yet)");
    const tr = h("tr", "waiting-row");
    const td = h("td", undefined, "No credit ledger reachable from this node");
    td.colSpan = 6;
    tr.append(td);
    if (tbody.dataset["sig"] !== "none") {
      tbody.dataset["sig"] = "none";
      tbody.replaceChildren(tr);
    }
    return;
  }
  const minted = num(field<CreditAccountsOut>(accountsPayload as Obj, "total_minted"));
  const pool = num(field<CreditAccountsOut>(accountsPayload as Obj, "pool"));
  const leader = str(field<CreditSummaryOut>(summary, "leader"));
  const term = num(field<CreditSummaryOut>(summary, "term"));
  const rows: HTMLTableRowElement[] = accounts.map((a) => {
    const tr = h("tr", a.id === selfId ? "is-self" : "");
    tr.setAttribute("data-account", a.id);
    const idCell = h("th", "mono", shortId(a.id));
    idCell.scope = "row";
    idCell.title = a.id + (a.id === selfId ? " (this node)" : "");
    tr.append(
      idCell,
      h("td", "num credits-balance", formatCredits(a.balance)),
      h("td", "num", formatCredits(a.available)),
      h("td", "num", formatCredits(a.locked)),
      h("td", "num", formatCredits(a.earned)),
      h("td", "num", formatCredits(a.spent)),
    );
    return tr;
  });
  const sig = JSON.stringify([accounts, selfId]);
  if (tbody.dataset["sig"] !== sig) {
    tbody.dataset["sig"] = sig;
    tbody.replaceChildren(...rows);
  }
  const parts = [
    `${accounts.length} account${accounts.length === 1 ? "" : "s"}`,
    `minted ${formatCredits(minted)}`,
    `pool ${formatCredits(pool)}`,
    leader === null ? "no leader" : `leader ${shortId(leader)}${term === null ? "" : ` (term ${term})`}`,
  ];
  setText(el("credits-summary"), parts.join(" · "));
  state.credits = { accounts: accounts.length, minted, leader, status: "ok" };
}

// --------------------------------------------------------------- signals ---
//
// Seeded from GET /v1/signals, then fed by the server-sent event stream
// GET /v1/events. A `quorum_fired` event names the quorum key, which a
// `signal` event does not carry, so it triggers a re-read of /v1/signals
// (whose quorum entries say whether and when they fired).

const MAX_SIGNALS = 50;
const STREAM_RETRY_MS = 2000;

interface SignalView {
  id: string;
  type: string;
  source: string;
  hops: number | null;
  strength: number | null;
  receivedAt: number | null;
  fired: boolean | null;
  firedAt: number | null;
}

const signals = new Map<string, SignalView>();
let lastQuorum = "";

function parseSignal(raw: unknown): SignalView | null {
  if (!isObj(raw)) return null;
  const id = str(field<SignalOut>(raw, "id"));
  if (id === null || id === "") return null;
  const fired = field<SignalOut>(raw, "fired");
  return {
    id,
    type: str(field<SignalOut>(raw, "type")) ?? "unknown",
    source: str(field<SignalOut>(raw, "source")) ?? "unknown",
    hops: num(field<SignalOut>(raw, "hops")),
    strength: num(field<SignalOut>(raw, "strength")),
    receivedAt: num(field<SignalOut>(raw, "received_at")),
    fired: typeof fired === "boolean" ? fired : null,
    firedAt: num(field<SignalOut>(raw, "fired_at")),
  };
}

function mergeSignal(s: SignalView): void {
  const old = signals.get(s.id);
  // A stream event does not know about firing: keep what /v1/signals said.
  signals.set(s.id, old ? { ...s, fired: s.fired ?? old.fired, firedAt: s.firedAt ?? old.firedAt } : s);
  if (signals.size > MAX_SIGNALS) {
    const oldest = [...signals.values()].sort((a, b) => (a.receivedAt ?? 0) - (b.receivedAt ?? 0));
    for (const o of oldest.slice(0, signals.size - MAX_SIGNALS)) signals.delete(o.id);
  }
}

function formatTime(seconds: number | null): string {
  return seconds === null ? "—" : new Date(seconds * 1000).toLocaleTimeString();
}

function renderSignals(): void {
  const list = [...signals.values()].sort((a, b) => (b.receivedAt ?? 0) - (a.receivedAt ?? 0));
  const rowsOut: HTMLTableRowElement[] = [];
  for (const s of list) {
    const tr = h("tr");
    tr.setAttribute("data-signal-id", s.id);
    tr.setAttribute("data-type", s.type);
    const idCell = h("th", "mono signal-id", shortId(s.id));
    idCell.scope = "row";
    idCell.title = s.id;
    const source = h("td", "mono signal-source", shortId(s.source));
    source.title = s.source;
    const quorum = h("td", "signal-quorum");
    if (s.type === "quorum") {
      const badge = h("span", s.fired === true ? "fired fired-yes" : "fired fired-no", s.fired === true ? `fired ${formatTime(s.firedAt)}` : "not fired");
      if (s.firedAt !== null) badge.title = new Date(s.firedAt * 1000).toISOString();
      quorum.append(badge);
    } else {
      quorum.textContent = "—";
    }
    const received = h("td", "num signal-received", formatTime(s.receivedAt));
    if (s.receivedAt !== null) received.title = new Date(s.receivedAt * 1000).toISOString();
    tr.append(
      idCell,
      h("td", "signal-type", s.type),
      source,
      h("td", "num signal-hops", s.hops === null ? "—" : String(s.hops)),
      h("td", "num signal-strength", s.strength === null ? "—" : s.strength.toFixed(3)),
      received,
      quorum,
    );
    rowsOut.push(tr);
  }
  if (rowsOut.length === 0) {
    const tr = h("tr", "waiting-row");
    const td = h("td", undefined, "No signals yet");
    td.colSpan = 7;
    tr.append(td);
    rowsOut.push(tr);
  }
  el("signals-body").replaceChildren(...rowsOut);
  state.signals = list.length;
  setText(el("signals-summary"), `${list.length} recent${lastQuorum ? ` · ${lastQuorum}` : ""}`);
}

async function loadSignals(): Promise<void> {
  try {
    const payload = await getJson("/v1/signals");
    const list = isObj(payload) ? arr(field<SignalsOut>(payload, "signals")) : [];
    for (const raw of list) {
      const s = parseSignal(raw);
      if (s !== null) mergeSignal(s);
    }
  } catch (err) {
    console.warn("vudo dashboard: reading /v1/signals failed", err);
  }
  renderSignals();
}

function setStream(text: string): void {
  state.stream = text;
  const e = el("signals-stream");
  setText(e, text);
  setClass(e, `stream stream-${text}`);
}

function parseEventData(ev: Event): unknown {
  state.events += 1;
  const data = ev instanceof MessageEvent ? ev.data : null;
  if (typeof data !== "string") return undefined;
  try {
    return JSON.parse(data) as unknown;
  } catch {
    return undefined;
  }
}

function onSignalEvent(ev: Event): void {
  const s = parseSignal(parseEventData(ev));
  if (s === null) {
    state.badEvents += 1;
    return;
  }
  mergeSignal(s);
  renderSignals();
}

function onQuorumFired(ev: Event): void {
  const data = parseEventData(ev);
  if (!isObj(data)) {
    state.badEvents += 1;
    return;
  }
  const key = str(field<QuorumFiredEvent>(data, "key"));
  const contributors = num(field<QuorumFiredEvent>(data, "contributors"));
  const size = num(field<QuorumFiredEvent>(data, "network_size"));
  lastQuorum = `quorum ${key === null || key === "" ? "(no key)" : JSON.stringify(key)} fired` + (contributors !== null && size !== null ? ` (${contributors}/${size})` : "");
  void loadSignals();
}

function openStream(): void {
  if (typeof EventSource === "undefined") {
    setStream("unsupported");
    return;
  }
  setStream("connecting");
  const source = new EventSource("/v1/events");
  source.onopen = () => {
    setStream("live");
    // Signals may have arrived while the stream was down.
    void loadSignals();
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      // The browser gave up (e.g. an HTTP error): retry ourselves.
      setStream("reconnecting");
      source.close();
      window.setTimeout(openStream, STREAM_RETRY_MS);
    } else {
      setStream("reconnecting");
    }
  };
  source.addEventListener("signal", onSignalEvent);
  source.addEventListener("quorum_fired", onQuorumFired);
  for (const kind of ["rejected", "penalized"]) source.addEventListener(kind, (ev) => void parseEventData(ev));
}

// --------------------------------------------------------------- polling ---

async function getJson(path: string): Promise<unknown> {
  const ctrl = new AbortController();
  const timer = window.setTimeout(() => ctrl.abort(), REQUEST_TIMEOUT_MS);
  try {
    const resp = await fetch(path, {
      cache: "no-store",
      headers: { Accept: "application/json" },
      signal: ctrl.signal,
    });
    if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
    return (await resp.json()) as unknown;
  } finally {
    window.clearTimeout(timer);
  }
}

function setConnected(ok: boolean): void {
  state.connected = ok;
  el("banner").hidden = ok;
  document.body.classList.toggle("disconnected", !ok);
}

function renderLastUpdate(): void {
  const text =
    state.lastUpdate === 0
      ? "not updated yet"
      : `updated ${new Date(state.lastUpdate).toLocaleTimeString()}${state.connected ? "" : " (stale)"}`;
  setText(el("last-update"), text);
}

function renderGraph(topology: unknown, links: unknown): void {
  const host = document.getElementById("topology-graph");
  const t = parseTopology(topology, links);
  if (!(host instanceof SVGSVGElement) || t === null) return;
  const parts = renderTopology(host, t);
  state.topology = { nodes: t.nodes.length, edges: t.edges.length, components: parts };
  const own = t.edges.filter(([a, b]) => a === t.self || b === t.self).length;
  setText(
    el("topology-summary"),
    `${t.nodes.length} node${t.nodes.length === 1 ? "" : "s"} · ${t.edges.length} link${t.edges.length === 1 ? "" : "s"}` +
      ` · ${own} here · ${parts} component${parts === 1 ? "" : "s"}`,
  );
}

async function poll(): Promise<void> {
  state.polls += 1;
  let data: [unknown, unknown, unknown, unknown, unknown, unknown, unknown, unknown];
  try {
    data = await Promise.all([
      getJson("/v1/node"),
      getJson("/v1/members"),
      // The gradients and link views are optional: a node without them is still "up".
      getJson("/v1/gradients").catch(() => null),
      getJson("/v1/spirits").catch(() => null),
      getJson("/v1/topology").catch(() => null),
      getJson("/v1/links").catch(() => null),
      getJson("/v1/credits/accounts").catch(() => null),
      getJson("/v1/credits/summary").catch(() => null),
    ]);
  } catch (err) {
    state.errors += 1;
    setConnected(false);
    renderLastUpdate();
    console.warn("vudo dashboard: poll failed", err);
    return;
  }
  setConnected(true);
  try {
    const [node, membersPayload, gradients, spiritsPayload, topology, links, creditAccounts, creditSummary] = data;
    renderSpirits(parseSpirits(spiritsPayload));
    const members = parseMembers(membersPayload);
    renderMembers(members);
    renderNode(node, gradients, members);
    renderGraph(topology, links);
    renderCredits(creditAccounts, creditSummary, isObj(node) ? str(field<NodeOut>(node, "node_id")) : null);
    state.members = members.length;
    state.lastUpdate = Date.now();
  } catch (err) {
    // A rendering bug must not look like a lost connection.
    state.errors += 1;
    console.error("vudo dashboard: render failed", err);
  }
  renderLastUpdate();
}

async function loop(): Promise<void> {
  for (;;) {
    const started = Date.now();
    await poll();
    const wait = Math.max(100, POLL_INTERVAL_MS - (Date.now() - started));
    await new Promise<void>((resolve) => window.setTimeout(resolve, wait));
  }
}

void loadSignals();
openStream();
void loop();
