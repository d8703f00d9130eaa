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

Run: ``.venv/bin/python bench/spirits_bench.py [--calls 20000] [--summons 30] [--loop 1000000]``
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
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
