"""Spirit runtime benchmark: summon latency (cold, cached) and per-call overhead.

Anchor: bare wasmtime calls, measured in the same run — the same module and
export called through a plain ``wasmtime.Engine``/``Store`` with neither fuel
nor epochs and no spirit runtime around it. Rows:

* summon cold: verify the package (signature + hashes + archive), compile,
  instantiate under the grant, call ``summon`` — the module cache emptied first;
* summon cached: the same with the compiled module cached by hash;
* per call: ``SpiritInstance.call("tick", …)`` of a trivial hook, with fuel and
  epochs (the node's configuration), fuel only, epochs only, neither; and the
  bare wasmtime call.

Run: ``.venv/bin/python bench/spirits_bench.py [--calls 20000] [--summons 30]``
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


def time_calls(call: Callable[[], object], calls: int, repeats: int = 5) -> float:
    """Median over ``repeats`` batches of the mean time of one call (µs)."""
    for _ in range(min(1000, calls)):
        call()
    batches = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        batches.append((time.perf_counter() - start) / calls)
    return _median_us(batches)


def bench_runtime_call(data: bytes, calls: int, *, fuel: bool, epochs: bool) -> tuple[float, int]:
    runtime = SpiritRuntime(fuel=fuel, epochs=epochs)
    try:
        package = read_package(data)
        entry = package.manifest.entry_module()
        instance = runtime.instantiate(package.manifest, package.files[entry.path], _Host())
        us = time_calls(lambda: instance.call("tick", 0), calls)
        return us, instance.stats.fuel_last_call
    finally:
        runtime.close()


def bench_bare(module_bytes: bytes, calls: int) -> float:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_func("vudo", "log", wasmtime.FuncType([wasmtime.ValType.i32()] * 3, []), lambda a, b, c: None)
    linker.define_func("vudo", "now_ms", wasmtime.FuncType([], [wasmtime.ValType.i64()]), lambda: 0)
    instance = linker.instantiate(store, wasmtime.Module(engine, module_bytes))
    tick = instance.exports(store)["tick"]
    assert isinstance(tick, wasmtime.Func)
    return time_calls(lambda: tick(store, 0), calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per batch for the per-call rows")
    parser.add_argument("--summons", type=int, default=30, help="summons per row (cold and cached)")
    args = parser.parse_args()

    author = Identity.generate()
    module_bytes = wasm(HELLO)
    manifest, files = manifest_for(author, module_bytes)
    data = pack(manifest, files, author)

    bare = bench_bare(module_bytes, args.calls)
    rows: list[tuple[str, float, str]] = []
    cold, cached = bench_summon(data, args.summons)
    rows.append(("summon, cold (verify + compile + instantiate + summon hook)", cold, f"{cold / bare:.0f}×"))
    rows.append(("summon, cached module", cached, f"{cached / bare:.0f}×"))
    for label, fuel, epochs in (("fuel + epochs (node default)", True, True), ("fuel only", True, False),
                                ("epochs only", False, True), ("neither", False, False)):
        us, used = bench_runtime_call(data, args.calls, fuel=fuel, epochs=epochs)
        note = f", {used} fuel/call" if fuel else ""
        rows.append((f"call tick(): {label}{note}", us, f"{us / bare:.2f}×"))
    rows.append(("call tick(): bare wasmtime (anchor)", bare, "1.00×"))

    print(f"Spirit runtime, {args.calls} calls per batch (median of 5), {args.summons} summons per row; "
          f"wasmtime-py {importlib.metadata.version('wasmtime')}")
    print()
    print("| measurement | median µs | ratio to a bare wasmtime call |")
    print("|---|---:|---:|")
    for label, us, ratio in rows:
        print(f"| {label} | {us:,.1f} | {ratio} |")


if __name__ == "__main__":
    main()
