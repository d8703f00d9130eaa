"""Spirit runtime benchmark: summon latency (cold, cached) and per-call overhead.

Anchor: bare wasmtime calls, measured in the same run — the same module and
export called through a plain ``wasmtime.Engine``/``Store`` with neither fuel
nor epochs and no spirit runtime around it. Rows:

* summon cold: verify the package (signature + hashes + archive), compile,
  instantiate under the grant, call ``summon`` — the module cache emptied first;
* summon cached: the same with the compiled module cached by hash;
* per call: ``SpiritInstance.call("tick", …)`` with fuel and epochs (the
  node's configuration), fuel only, epochs only, neither; and the bare
  wasmtime call — once for an empty hook (the cost of crossing into wasm and
  arming the budget) and once for a hook looping ``--loop`` times (the cost
  of fuel counting and epoch checks inside generated code). Batches of the
  five are interleaved, so load from other processes on the machine falls on
  all of them alike; the median is shown.

Package fetch throughput (a second table, ``--fetch-only`` to run just it):
two real ``vudo node`` processes on loopback; node 0 installs ``--fetches``
packages of ``--fetch-mib`` MiB each (a random asset), node 1 finds them in
its marketplace and fetches each over its link (``/vudo/spirit/1``: Noise +
yamux, 256 KiB chunks, a window of 4, every chunk checked, the whole
hashed, the signature verified and the package installed); the time is the
node's own fetch job (started → installed). Anchor: the same bytes copied
over a plain loopback TCP socket in this process, measured in the same run.

Run: ``.venv/bin/python bench/spirits_bench.py [--calls 20000] [--summons 30] [--loop 1000000] [--fetch-mib 8] [--fetches 5]``
"""

from __future__ import annotations

import argparse
import importlib.metadata
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from spirits.support import HELLO, manifest_for, wasm  # noqa: E402
from vudo.identity import Identity  # noqa: E402
from vudo.spirits.package import pack, read_package  # noqa: E402
from vudo.spirits.runtime import SpiritRuntime, summon_context  # noqa: E402

# tick(n) runs an n-iteration LCG loop (no imports): what fuel and epoch checks cost in generated code.
BUSY = """(module (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 8))
  (func (export "tick") (param $n i64) (result i32)
    (local $acc i64)
    (block $done (loop $l
      (br_if $done (i64.eqz (local.get $n)))
      (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 6364136223846793005)) (local.get $n)))
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br $l)))
    (i32.wrap_i64 (local.get $acc))))"""


class _Host:
    def topology(self) -> bytes:
        return b"[]"

    def emit(self, spirit: str, payload: bytes) -> bool:
        return True

    def log(self, spirit: str, level: str, text: str) -> None:
        pass

    def now_ms(self) -> int:
        return 0


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def bench_summon(data: bytes, summons: int) -> tuple[float, float]:
    runtime = SpiritRuntime()
    cold: list[float] = []
    cached: list[float] = []
    try:
        for i in range(summons * 2):
            if i % 2 == 0:
                runtime.forget_modules()
            start = time.perf_counter()
            package = read_package(data)
            entry = package.manifest.entry_module()
            instance = runtime.instantiate(package.manifest, package.files[entry.path], _Host())
            ptr, length = instance.put_bytes(summon_context(package.manifest, "bench"))
            instance.hook("summon", ptr, length)
            (cold if i % 2 == 0 else cached).append(time.perf_counter() - start)
    finally:
        runtime.close()
    return _median_us(cold), _median_us(cached)


def time_batch(call: Callable[[], object], calls: int) -> float:
    """Mean time of one call over a batch (seconds)."""
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def runtime_caller(data: bytes, arg: int, *, fuel: bool, epochs: bool) -> tuple[SpiritRuntime, Callable[[], object], Callable[[], int]]:
    runtime = SpiritRuntime(fuel=fuel, epochs=epochs)
    package = read_package(data)
    entry = package.manifest.entry_module()
    instance = runtime.instantiate(package.manifest, package.files[entry.path], _Host())
    return runtime, lambda: instance.call("tick", arg), lambda: instance.stats.fuel_last_call


def bare_caller(module_bytes: bytes, arg: int) -> Callable[[], object]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_func("vudo", "log", wasmtime.FuncType([wasmtime.ValType.i32()] * 3, []), lambda a, b, c: None)
    linker.define_func("vudo", "now_ms", wasmtime.FuncType([], [wasmtime.ValType.i64()]), lambda: 0)
    instance = linker.instantiate(store, wasmtime.Module(engine, module_bytes))
    tick = instance.exports(store)["tick"]
    assert isinstance(tick, wasmtime.Func)
    return lambda: tick(store, arg)


MODES = (("fuel + epochs (node default)", True, True), ("fuel only", True, False),
         ("epochs only", False, True), ("neither", False, False))


def bench_calls(data: bytes, module_bytes: bytes, arg: int, calls: int, repeats: int) -> tuple[float, list[tuple[str, float, int]]]:
    """Per-call time of each mode and of bare wasmtime, batches interleaved so machine load hits all alike."""
    callers: list[tuple[str, Callable[[], object], Callable[[], int] | None]] = []
    runtimes: list[SpiritRuntime] = []
    for label, fuel, epochs in MODES:
        runtime, call, fuel_used = runtime_caller(data, arg, fuel=fuel, epochs=epochs)
        runtimes.append(runtime)
        callers.append((label, call, fuel_used if fuel else None))
    callers.append(("bare", bare_caller(module_bytes, arg), None))
    samples: dict[str, list[float]] = {label: [] for label, _, _ in callers}
    try:
        for _, call, _ in callers:
            time_batch(call, max(1, min(1000, calls // 10)))  # warm up
        for _ in range(repeats):
            for label, call, _ in callers:
                samples[label].append(time_batch(call, calls))
    finally:
        for runtime in runtimes:
            runtime.close()
    bare = _median_us(samples["bare"])
    rows = [(label, _median_us(samples[label]), fuel_used() if fuel_used else 0) for label, _, fuel_used in callers[:-1]]
    return bare, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per batch for the per-call rows")
    parser.add_argument("--summons", type=int, default=30, help="summons per row (cold and cached)")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved batches per call row (median)")
    parser.add_argument("--loop", type=int, default=1_000_000, help="iterations of the busy hook")
    parser.add_argument("--fetch-mib", type=int, default=8, help="size of each fetched package (MiB)")
    parser.add_argument("--fetches", type=int, default=5, help="packages fetched over the link (median)")
    parser.add_argument("--fetch-only", action="store_true", help="only the package fetch table")
    parser.add_argument("--no-fetch", action="store_true", help="skip the package fetch table (no processes)")
    args = parser.parse_args()
    if args.fetch_only:
        bench_fetch(args.fetch_mib, args.fetches)
        return

    author = Identity.generate()
    module_bytes = wasm(HELLO)
    manifest, files = manifest_for(author, module_bytes)
    data = pack(manifest, files, author)
    busy_bytes = wasm(BUSY)
    busy_manifest, busy_files = manifest_for(author, busy_bytes, name="busy", exports=("memory", "alloc", "tick"), imports=())
    busy = pack(busy_manifest, busy_files, author)

    bare, call_rows = bench_calls(data, module_bytes, 0, args.calls, args.repeats)
    busy_calls = max(20, args.calls // 500)
    busy_bare, busy_rows = bench_calls(busy, busy_bytes, args.loop, busy_calls, args.repeats)
    rows: list[tuple[str, float, str]] = []
    cold, cached = bench_summon(data, args.summons)
    rows.append(("summon, cold (verify + compile + instantiate + summon hook)", cold, f"{cold / bare:.0f}× an empty bare call"))
    rows.append(("summon, cached module", cached, f"{cached / bare:.0f}× an empty bare call"))
    for label, us, used in call_rows:
        note = f", {used} fuel/call" if used else ""
        rows.append((f"empty tick(): {label}{note}", us, f"{us / bare:.2f}×"))
    rows.append(("empty tick(): bare wasmtime (anchor)", bare, "1.00×"))
    for label, us, used in busy_rows:
        note = f", {used:,} fuel/call" if used else ""
        rows.append((f"tick({args.loop:,}) loop: {label}{note}", us, f"{us / busy_bare:.2f}×"))
    rows.append((f"tick({args.loop:,}) loop: bare wasmtime (anchor)", busy_bare, "1.00×"))

    print(f"Spirit runtime, {args.calls} empty / {busy_calls} busy calls per batch (median of {args.repeats}, modes interleaved), "
          f"{args.summons} summons per row; "
          f"wasmtime-py {importlib.metadata.version('wasmtime')}")
    print()
    print("| measurement | median µs per call | ratio to the bare wasmtime call of the same hook |")
    print("|---|---:|---:|")
    for label, us, ratio in rows:
        print(f"| {label} | {us:,.1f} | {ratio} |")
    if not args.no_fetch:
        print()
        bench_fetch(args.fetch_mib, args.fetches)


# -- package fetch throughput over a real link ----------------------------------------------------


def tcp_copy_seconds(data: bytes) -> float:
    """The anchor: ``data`` over one loopback TCP connection (sendall → recv until all arrived)."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def send() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(data)

    sender = threading.Thread(target=send)
    sender.start()
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as client:
        got = 0
        while got < len(data):
            chunk = client.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    elapsed = time.perf_counter() - start
    sender.join()
    server.close()
    if got != len(data):
        raise RuntimeError(f"TCP anchor received {got} of {len(data)} bytes")
    return elapsed


def bench_fetch(mib: int, fetches: int) -> None:
    import os
    import tempfile

    from cluster import LocalCluster, kill_all_children, wait_for

    author = Identity.generate()
    module_bytes = wasm(HELLO)
    packages = []
    for k in range(fetches):
        manifest, files = manifest_for(author, module_bytes, name=f"bulk-{k}", assets={"blob.bin": os.urandom(mib << 20)})
        packages.append(pack(manifest, files, author))
    with tempfile.TemporaryDirectory(prefix="vudo-fetch-bench-") as tmp, LocalCluster(Path(tmp), 2) as cluster:
        try:
            cluster.start()
            source, sink = cluster.nodes
            token = {"Content-Type": "application/octet-stream", "Authorization": f"Bearer {source.token}"}
            for data in packages:
                r = source.post("/v1/spirits", content=data, headers=token)
                if r.status_code != 201:
                    raise RuntimeError(f"install on node 0 failed: {r.text}")
            wait_for(lambda: len([o for o in sink.get("/v1/marketplace", params={"q": "bulk"}).json()["offers"]
                                  if source.node_id in o["offered_by"]]) == fetches,
                     timeout=120, what="node 1 to see every package in node 0's catalogue")
            wait_for(lambda: source.node_id in {link["peer"] for link in sink.get("/v1/links").json()["links"]},
                     timeout=120, what="node 1 to link with node 0")
            seconds: list[float] = []
            transfers: list[float] = []
            anchors: list[float] = []
            auth = {"Authorization": f"Bearer {sink.token}"}
            for k, data in enumerate(packages):
                anchors.append(tcp_copy_seconds(data))
                job = sink.post("/v1/spirits/fetch", json={"name": f"bulk-{k}"}, headers=auth).json()
                job = wait_for(lambda job=job: (j := sink.get(f"/v1/spirits/fetch/{job['id']}").json())["state"] != "fetching" and j,
                               timeout=300, what=f"fetch of bulk-{k}", interval=0.05)
                if job["state"] != "installed":
                    raise RuntimeError(f"fetch failed: {job}")
                seconds.append(job["finished_at"] - job["started_at"])
                transfers.append(job["fetched_at"] - job["started_at"])
        finally:
            cluster.close()
            kill_all_children()
    size = len(packages[0])
    fetch_s, transfer_s, tcp_s = statistics.median(seconds), statistics.median(transfers), statistics.median(anchors)
    mibs = size / (1 << 20)
    print(f"Package fetch over one real link between 2 `vudo node` processes on loopback: {fetches} packages of {mibs:.1f} MiB "
          "(median); anchor: the same bytes over a plain loopback TCP socket, same run")
    print()
    print("| measurement | median s | MiB/s | ratio to the TCP copy |")
    print("|---|---:|---:|---:|")
    print(f"| fetch transfer over the link (/vudo/spirit/1: 256 KiB chunks, window 4, every chunk checked, whole hashed) "
          f"| {transfer_s:.3f} | {mibs / transfer_s:,.1f} | {transfer_s / tcp_s:,.1f}× slower |")
    print(f"| vudo spirit fetch, whole job (transfer + signature and archive verified + installed) "
          f"| {fetch_s:.3f} | {mibs / fetch_s:,.1f} | {fetch_s / tcp_s:,.1f}× slower |")
    print(f"| plain TCP copy, loopback (anchor) | {tcp_s:.4f} | {mibs / tcp_s:,.1f} | 1.0× |")


if __name__ == "__main__":
    main()
