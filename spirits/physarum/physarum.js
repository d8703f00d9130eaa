// The physarum spirit's page. It loads the very module the node runs (./physarum.wasm),
// links the spirit ABI v1 host functions itself (vudo.log, vudo.topology from this
// node's /v1/members), calls summon / tick / query like the node does, and draws the
// network. No inline script (the page is served under a strict CSP).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  let instance = null;
  let topology = enc.encode("[]");
  const logLines = [];

  function log(level, text) {
    logLines.push(["debug", "info", "warn", "error"][level] + " " + text);
    while (logLines.length > 50) logLines.shift();
    $("log").textContent = logLines.join("\n");
  }

  function memory() {
    return new Uint8Array(instance.exports.memory.buffer);
  }

  const imports = {
    vudo: {
      log(level, ptr, len) {
        log(level, dec.decode(memory().slice(ptr, ptr + len)));
      },
      topology(ptr, cap) {
        if (topology.length <= cap) memory().set(topology, ptr);
        return topology.length;
      },
      now_ms() {
        return BigInt(Date.now());
      },
    },
  };

  function putBytes(bytes) {
    const ptr = instance.exports.alloc(bytes.length);
    memory().set(bytes, ptr);
    return ptr;
  }

  function query() {
    const ptr = putBytes(enc.encode("state"));
    const packed = instance.exports.query(ptr, 5);
    const outPtr = Number(BigInt.asUintN(64, packed) >> 32n);
    const outLen = Number(BigInt.asUintN(64, packed) & 0xffffffffn);
    return JSON.parse(dec.decode(memory().slice(outPtr, outPtr + outLen)));
  }

  async function refreshTopology() {
    const resp = await fetch("/v1/members", { cache: "no-store" });
    if (!resp.ok) throw new Error("/v1/members answered " + resp.status);
    const body = await resp.json();
    const members = body.members.map((m) => ({ node_id: m.node_id, status: m.status, is_self: m.is_self, verified: m.verified }));
    topology = enc.encode(JSON.stringify(members));
    $("members").textContent = members.length + " (" + members.filter((m) => m.status === "alive").length + " alive)";
  }

  async function refreshNode() {
    const resp = await fetch("/v1/spirits/physarum", { cache: "no-store" });
    if (!resp.ok) {
      $("node-state").textContent = "not installed (" + resp.status + ")";
      return;
    }
    const s = await resp.json();
    $("node-state").textContent = s.state + ", " + s.calls + " calls, " + s.fuel_used_total + " fuel";
  }

  function draw(state) {
    const canvas = $("net");
    const ctx = canvas.getContext("2d");
    const w = canvas.width;
    const h = canvas.height;
    const px = (p) => [w / 2 + p[0] * w * 0.42, h / 2 - p[1] * h * 0.42];
    ctx.clearRect(0, 0, w, h);
    let rmax = 0;
    for (const t of state.tubes) rmax = Math.max(rmax, t[2]);
    ctx.lineCap = "round";
    for (const [a, b, r] of state.tubes) {
      const [x1, y1] = px(state.cells[a]);
      const [x2, y2] = px(state.cells[b]);
      ctx.strokeStyle = "rgba(242, 201, 76, " + (0.2 + 0.8 * (rmax > 0 ? r / rmax : 0)).toFixed(3) + ")";
      ctx.lineWidth = 1 + 7 * (rmax > 0 ? r / rmax : 0);
      ctx.beginPath();
      ctx.moveTo(x1, y1);
      ctx.lineTo(x2, y2);
      ctx.stroke();
    }
    ctx.font = "12px ui-monospace, monospace";
    state.members.forEach((id, k) => {
      const [x, y] = px(state.cells[k]);
      ctx.fillStyle = "#6fcf97";
      ctx.beginPath();
      ctx.arc(x, y, 7, 0, 2 * Math.PI);
      ctx.fill();
      ctx.fillStyle = "#e8eee0";
      ctx.fillText(id.slice(0, 10) + "…", x + 9, y - 9);
    });
    $("page-state").textContent = "running: " + state.steps + " steps, " + state.tubes.length + " tubes alive, length " + state.length;
    document.body.dataset.steps = String(state.steps);
  }

  async function main() {
    const resp = await fetch("physarum.wasm");
    if (!resp.ok) throw new Error("physarum.wasm answered " + resp.status);
    const result = await WebAssembly.instantiate(await resp.arrayBuffer(), imports);
    instance = result.instance;
    await refreshTopology();
    const context = enc.encode(JSON.stringify({ abi: 1, name: "physarum", node_id: "browser", rev: 0, version: "page" }));
    if (instance.exports.summon(putBytes(context), context.length) !== 0) throw new Error("summon failed");
    let n = 0;
    setInterval(async () => {
      try {
        if (n++ % 10 === 0) {
          await refreshTopology();
          await refreshNode();
        }
        if (instance.exports.tick(BigInt(Date.now())) !== 0) log(3, "tick failed");
        draw(query());
      } catch (err) {
        log(3, String(err));
      }
    }, 200);
  }

  main().catch((err) => {
    $("page-state").textContent = "failed: " + err;
    log(3, String(err));
  });
})();
