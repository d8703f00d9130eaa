"""The runtime against hostile modules: every failure is the spirit's, never the node's."""

from __future__ import annotations

import json
import threading

import pytest
import wasmtime

from spirits.support import (
    FAILING_SUMMON,
    HELLO,
    INFINITE_LOOP,
    MEMORY_BOMB,
    NETWORKED,
    NO_PERMISSIONS,
    TRAPPING,
    WASI_IMPORTS,
    WASI_PROBE,
    manifest_for,
    wasm,
)
from vudo.identity import Identity
from vudo.spirits.errors import SpiritError, SpiritTrap
from vudo.spirits.manifest import Budget, Permissions
from vudo.spirits.runtime import SpiritInstance, SpiritRuntime, summon_context

EBADF = 8  # WASI errno: no such file descriptor


class Host:
    def __init__(self) -> None:
        self.logs: list[tuple[str, str, str]] = []
        self.emitted: list[tuple[str, bytes]] = []
        self.topo = json.dumps([{"node_id": "a"}, {"node_id": "b"}]).encode()

    def topology(self) -> bytes:
        return self.topo

    def emit(self, spirit: str, payload: bytes) -> bool:
        self.emitted.append((spirit, payload))
        return True

    def log(self, spirit: str, level: str, text: str) -> None:
        self.logs.append((spirit, level, text))

    def now_ms(self) -> int:
        return 1234


def make(runtime: SpiritRuntime, author: Identity, wat: str, *, exports: tuple[str, ...] = ("memory", "alloc", "tick"),
         imports: tuple[str, ...] = (), permissions: Permissions = NO_PERMISSIONS, granted: Permissions | None = None,
         budget: Budget | None = None, host: Host | None = None) -> SpiritInstance:
    manifest, files = manifest_for(author, wasm(wat), exports=exports, imports=imports, permissions=permissions)
    return runtime.instantiate(manifest, files["main.wasm"], host or Host(), granted=granted, budget=budget)


def test_a_well_behaved_spirit_reports_fuel_per_call(runtime: SpiritRuntime, author: Identity) -> None:
    host = Host()
    manifest, files = manifest_for(author, wasm(HELLO))
    inst = runtime.instantiate(manifest, files["main.wasm"], host)
    ptr, length = inst.put_bytes(summon_context(manifest, "node"))
    summoned = inst.hook("summon", ptr, length)
    assert summoned is not None and summoned.fuel_used > 0
    assert host.logs == [("hello", "info", "summoned")]
    for i in range(3):
        inst.hook("tick", i)
    out, result = inst.query(b"how many ticks?")
    assert int.from_bytes(out, "little") == 3
    assert inst.stats.calls == 1 + 1 + 3 + 2  # alloc, summon, 3 ticks, alloc + query
    assert inst.stats.fuel_used_total >= summoned.fuel_used + result.fuel_used
    assert inst.stats.fuel_last_call == result.fuel_used
    inst.hook("dismiss")
    assert host.logs[-1] == ("hello", "info", "dismissed")


def test_modules_are_compiled_once_per_hash(runtime: SpiritRuntime, author: Identity) -> None:
    manifest, files = manifest_for(author, wasm(HELLO))
    sha = manifest.entry_module().sha256
    assert not runtime.is_cached(sha)
    first = runtime.compile(sha, files["main.wasm"])
    assert runtime.is_cached(sha) and runtime.compile(sha, files["main.wasm"]) is first
    a = runtime.instantiate(manifest, files["main.wasm"], Host())
    b = runtime.instantiate(manifest, files["main.wasm"], Host())
    a.hook("tick", 0)
    assert a.store is not b.store  # one Store per instance: state is not shared
    assert int.from_bytes(a.query(b"")[0], "little") == 1 and int.from_bytes(b.query(b"")[0], "little") == 0


def test_an_infinite_loop_runs_out_of_fuel_and_the_runtime_lives_on(runtime: SpiritRuntime, author: Identity) -> None:
    inst = make(runtime, author, INFINITE_LOOP, budget=Budget(fuel_per_call=5_000_000, wall_ms=600_000, memory_bytes=1 << 20))
    with pytest.raises(SpiritTrap) as info:
        inst.call("tick", 0)
    assert info.value.reason == "out_of_fuel" and info.value.fault == "remote"
    assert inst.stats.fuel_last_call == 5_000_000
    healthy = make(runtime, author, HELLO, exports=("memory", "alloc", "tick", "query"), imports=("vudo.log", "vudo.now_ms"))
    assert healthy.hook("tick", 0) is not None


def test_an_infinite_loop_with_unlimited_fuel_hits_the_wall_clock_deadline(author: Identity) -> None:
    runtime = SpiritRuntime(fuel=False, epochs=True, epoch_tick_ms=5)
    try:
        inst = make(runtime, author, INFINITE_LOOP, budget=Budget(fuel_per_call=0, wall_ms=100, memory_bytes=1 << 20))
        with pytest.raises(SpiritTrap) as info:
            inst.call("tick", 0)
        assert info.value.reason == "timeout"
        assert "100 ms" in str(info.value)
    finally:
        runtime.close()


def test_epochs_stop_a_loop_even_when_fuel_is_plenty(runtime: SpiritRuntime, author: Identity) -> None:
    inst = make(runtime, author, INFINITE_LOOP, budget=Budget(fuel_per_call=10**15, wall_ms=50, memory_bytes=1 << 20))
    with pytest.raises(SpiritTrap) as info:
        inst.call("tick", 0)
    assert info.value.reason == "timeout"


def test_a_memory_bomb_is_capped(runtime: SpiritRuntime, author: Identity) -> None:
    cap = 4 * 65536
    inst = make(runtime, author, MEMORY_BOMB, exports=("memory", "alloc", "tick", "query"),
                budget=Budget(fuel_per_call=10_000_000, wall_ms=60_000, memory_bytes=cap))
    inst.hook("tick", 0)  # memory.grow returns -1 at the cap; the module gives up
    assert inst.memory_bytes == cap
    pages = inst.call_with_bytes("query", b"")
    assert pages.value == cap // 65536


def test_a_trap_is_the_spirits_error(runtime: SpiritRuntime, author: Identity) -> None:
    inst = make(runtime, author, TRAPPING)
    with pytest.raises(SpiritTrap) as info:
        inst.call("tick", 0)
    assert info.value.reason == "trap" and "unreachable" in str(info.value)
    assert inst.stats.traps == 1


def test_a_non_zero_hook_status_is_an_error(runtime: SpiritRuntime, author: Identity) -> None:
    inst = make(runtime, author, FAILING_SUMMON, exports=("memory", "alloc", "summon"))
    with pytest.raises(SpiritTrap, match="status 7"):
        inst.hook("summon", 0, 0)
    assert inst.hook("tick", 0) is None  # not exported: nothing to call


def test_an_import_without_its_grant_fails_to_instantiate(runtime: SpiritRuntime, author: Identity) -> None:
    asks = Permissions(network="write")
    with pytest.raises(SpiritTrap) as info:
        make(runtime, author, NETWORKED, imports=("vudo.topology", "vudo.emit"), permissions=asks, granted=Permissions(network="read"))
    assert info.value.reason == "import_not_granted" and "vudo.emit" in str(info.value) and "network=write" in str(info.value)


def test_the_linker_itself_holds_only_granted_functions(runtime: SpiritRuntime, author: Identity) -> None:
    """Defence in depth: even past the import check, an ungranted host function is not there to link."""
    inst = make(runtime, author, HELLO, exports=("memory", "alloc"), imports=("vudo.log", "vudo.now_ms"))
    module = wasmtime.Module(runtime.engine, wasm(NETWORKED))
    with pytest.raises(wasmtime.WasmtimeError, match="unknown import"):
        inst.linker.instantiate(wasmtime.Store(runtime.engine), module)


def test_a_module_importing_what_its_manifest_does_not_declare_is_refused(runtime: SpiritRuntime, author: Identity) -> None:
    with pytest.raises(SpiritTrap) as info:
        make(runtime, author, HELLO, exports=("memory", "alloc"), imports=("vudo.log",))
    assert info.value.reason == "undeclared_import" and "vudo.now_ms" in str(info.value)
    with pytest.raises(SpiritTrap) as info:
        make(runtime, author, TRAPPING, exports=("memory", "alloc", "tick", "query"))
    assert info.value.reason == "missing_export"


def test_wasi_is_absent_without_a_grant(runtime: SpiritRuntime, author: Identity) -> None:
    with pytest.raises(SpiritTrap) as info:
        make(runtime, author, WASI_PROBE, imports=WASI_IMPORTS, permissions=Permissions(wasi=True), granted=Permissions())
    assert info.value.reason == "import_not_granted" and "wasi=true" in str(info.value)


def test_with_wasi_granted_a_hostile_module_can_neither_open_files_nor_accept_sockets(runtime: SpiritRuntime, author: Identity) -> None:
    inst = make(runtime, author, WASI_PROBE, imports=WASI_IMPORTS, permissions=Permissions(wasi=True))
    result = inst.call("tick", 0)
    assert result.value == EBADF * 1000 + EBADF  # no preopened directory, no socket: fd 3 does not exist


def test_host_functions_topology_and_emit(runtime: SpiritRuntime, author: Identity) -> None:
    host = Host()
    inst = make(runtime, author, NETWORKED, imports=("vudo.topology", "vudo.emit"), permissions=Permissions(network="write"), host=host)
    assert inst.hook("tick", 0) is not None
    assert host.emitted == [("hello", host.topo)]


def test_not_wasm_binaries_are_refused(runtime: SpiritRuntime) -> None:
    with pytest.raises(SpiritTrap) as info:
        runtime.compile("0" * 64, b"(module)")  # wasmtime would happily compile WAT text
    assert info.value.reason == "bad_module"
    with pytest.raises(SpiritTrap) as info:
        runtime.compile("1" * 64, b"\0asm\x01\0\0\0\xff")
    assert info.value.reason == "bad_module"


def test_host_functions_reject_out_of_bounds_ranges(runtime: SpiritRuntime, author: Identity) -> None:
    wat = """(module (import "vudo" "log" (func $log (param i32 i32 i32)))
      (memory (export "memory") 1)
      (func (export "alloc") (param i32) (result i32) (i32.const 8))
      (func (export "tick") (param i64) (result i32)
        (call $log (i32.const 0) (i32.const 65530) (i32.const 100)) (i32.const 0)))"""
    inst = make(runtime, author, wat, imports=("vudo.log",))
    with pytest.raises(SpiritTrap, match="outside memory"):
        inst.call("tick", 0)


def test_a_bad_alloc_is_refused(runtime: SpiritRuntime, author: Identity) -> None:
    wat = """(module (memory (export "memory") 1)
      (func (export "alloc") (param i32) (result i32) (i32.const 70000))
      (func (export "signal") (param i32 i32) (result i32) (i32.const 0)))"""
    inst = make(runtime, author, wat, exports=("memory", "alloc", "signal"))
    inst.enqueue(b"hello")
    with pytest.raises(SpiritTrap) as info:
        inst.drain_signals()
    assert info.value.reason == "bad_alloc"


def test_signals_reach_the_signal_hook(runtime: SpiritRuntime, author: Identity) -> None:
    wat = """(module (memory (export "memory") 1)
      (global $n (mut i32) (i32.const 0))
      (func (export "alloc") (param i32) (result i32) (i32.const 1024))
      (func (export "signal") (param $p i32) (param $len i32) (result i32)
        (global.set $n (i32.add (global.get $n) (local.get $len))) (i32.const 0))
      (func (export "query") (param i32 i32) (result i64) (i64.extend_i32_u (global.get $n))))"""
    inst = make(runtime, author, wat, exports=("memory", "alloc", "signal", "query"))
    inst.enqueue(b"abc")
    inst.enqueue(b"de")
    assert inst.drain_signals() == 2
    assert inst.call_with_bytes("query", b"").value == 5


def test_calls_from_many_threads_are_serialised(runtime: SpiritRuntime, author: Identity) -> None:
    insts = [make(runtime, author, HELLO, exports=("memory", "alloc", "tick", "query"), imports=("vudo.log", "vudo.now_ms"))
             for _ in range(4)]
    errors: list[BaseException] = []

    def work(inst: SpiritInstance) -> None:
        try:
            for i in range(50):
                inst.hook("tick", i)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in insts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert [int.from_bytes(i.query(b"")[0], "little") for i in insts] == [50] * 4


def test_errors_name_the_spirit(runtime: SpiritRuntime, author: Identity) -> None:
    inst = make(runtime, author, TRAPPING)
    with pytest.raises(SpiritError, match="'hello'"):
        inst.call("tick", 0)
    with pytest.raises(SpiritError, match="does not export 'dismiss'"):
        inst.call("dismiss")



def test_a_start_function_that_never_ends_is_stopped_at_instantiation(runtime: SpiritRuntime, author: Identity) -> None:
    wat = """(module (memory (export "memory") 1)
      (func $forever (loop $l (br $l)))
      (start $forever)
      (func (export "alloc") (param i32) (result i32) (i32.const 8)))"""
    with pytest.raises(SpiritTrap) as info:
        make(runtime, author, wat, exports=("memory", "alloc"), budget=Budget(5_000_000, 600_000, 1 << 20))
    assert info.value.reason == "out_of_fuel"


def test_unbounded_recursion_is_a_stack_overflow(runtime: SpiritRuntime, author: Identity) -> None:
    wat = """(module (memory (export "memory") 1)
      (func (export "alloc") (param i32) (result i32) (i32.const 8))
      (func $down (param i64) (result i32) (call $down (i64.add (local.get 0) (i64.const 1))))
      (func (export "tick") (param i64) (result i32) (call $down (local.get 0))))"""
    inst = make(runtime, author, wat)
    with pytest.raises(SpiritTrap) as info:
        inst.call("tick", 0)
    assert info.value.reason == "stack_overflow"


def test_initial_memory_above_the_cap_does_not_instantiate(runtime: SpiritRuntime, author: Identity) -> None:
    wat = """(module (memory (export "memory") 100) (func (export "alloc") (param i32) (result i32) (i32.const 8)))"""
    with pytest.raises(SpiritTrap) as info:
        make(runtime, author, wat, exports=("memory", "alloc"), budget=Budget(1_000_000, 1000, 10 * 65536))
    assert info.value.reason == "instantiate_failed"


def test_recv_copies_out_the_oldest_signal_only_when_it_fits(runtime: SpiritRuntime, author: Identity) -> None:
    # query(ptr, len): the 4 input bytes are the buffer capacity; calls vudo.recv(2048, cap) and
    # returns (2048 << 32 | n) when it fit, else the raw status as a negative number.
    wat = """(module (import "vudo" "recv" (func $recv (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "alloc") (param i32) (result i32) (i32.const 1024))
      (func (export "query") (param $p i32) (param $len i32) (result i64)
        (local $cap i32) (local $n i32)
        (local.set $cap (i32.load (local.get $p)))
        (local.set $n (call $recv (i32.const 2048) (local.get $cap)))
        (if (result i64) (i32.and (i32.ge_s (local.get $n) (i32.const 0)) (i32.le_s (local.get $n) (local.get $cap)))
          (then (i64.or (i64.shl (i64.const 2048) (i64.const 32)) (i64.extend_i32_u (local.get $n))))
          (else (i64.sub (i64.const -1000) (i64.extend_i32_s (local.get $n)))))))"""
    inst = make(runtime, author, wat, exports=("memory", "alloc", "query"), imports=("vudo.recv",), permissions=Permissions(network="read"))
    with pytest.raises(SpiritTrap, match="error -999"):  # -1000 - (-1): the inbox is empty
        inst.query((64).to_bytes(4, "little"))
    inst.enqueue(b"first signal")
    inst.enqueue(b"second")
    with pytest.raises(SpiritTrap, match="error -1012"):  # too small: the length (12) comes back, nothing dequeued
        inst.query((4).to_bytes(4, "little"))
    assert inst.query((64).to_bytes(4, "little"))[0] == b"first signal"
    assert inst.query((64).to_bytes(4, "little"))[0] == b"second"
    assert inst.inbox == []
