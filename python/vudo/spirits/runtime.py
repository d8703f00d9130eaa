"""The spirit runtime: wasmtime with fuel, epochs, memory caps and granted imports only.

One :class:`SpiritRuntime` per node owns one wasmtime ``Engine`` configured
with ``consume_fuel`` (deterministic metering: every call gets the fuel of
its ``compute`` level and reports what it used) and ``epoch_interruption``
(the wall-clock backstop: a ticker thread increments the epoch every
``epoch_tick_ms``; every call gets a deadline of its wall-clock budget).
Compiled modules are cached by the sha256 of their bytes.

Each summoned spirit gets one :class:`SpiritInstance`: its own ``Store``
with ``set_limits`` capping linear memory (``memory.grow`` beyond the cap
returns -1), its own ``Linker`` holding only the host functions its
permissions grant (ABI v1, ``docs/spirit-abi.md``) and WASI preview 1 only
when ``wasi`` is granted (then without any preopened directory, so there is
no file or socket to reach). Anything a module does wrong — a trap, running
out of fuel, running out of time, breaking the ABI — is a
:class:`SpiritTrap` for that spirit, never an exception that escapes to the
node.

wasmtime-py passes exceptions raised inside host functions through a
module-global slot, so calls into wasm are serialised by one lock per
runtime: callers run them off the event loop (``asyncio.to_thread``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import wasmtime

from vudo.spirits.errors import SpiritError, SpiritTrap
from vudo.spirits.manifest import (
    HOST_IMPORTS,
    HOST_MODULE,
    REQUIRED_EXPORTS,
    WASI_MODULE,
    Budget,
    Manifest,
    ModuleEntry,
    Permissions,
    required_level,
)

WASM_MAGIC = b"\0asm"
#: Largest byte string a host function copies in or out of a module in one call.
MAX_HOST_BYTES = 1024 * 1024
#: Largest result a ``query`` export may return.
MAX_RESULT_BYTES = 1024 * 1024
DEFAULT_EPOCH_TICK_MS = 10
LOG_LEVELS = ("debug", "info", "warn", "error")


class HostContext(Protocol):
    """What host functions reach on the node side (must be thread-safe and never block)."""

    def topology(self) -> bytes: ...

    def emit(self, spirit: str, payload: bytes) -> bool: ...

    def log(self, spirit: str, level: str, text: str) -> None: ...

    def now_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class CallResult:
    export: str
    value: Any
    fuel_used: int
    wall_ms: float


@dataclass
class InstanceStats:
    calls: int = 0
    fuel_used_total: int = 0
    fuel_last_call: int = 0
    wall_ms_total: float = 0.0
    traps: int = 0


class _Ticker:
    """Increments the engine's epoch every ``tick_ms`` on a daemon thread."""

    def __init__(self, engine: wasmtime.Engine, tick_ms: int) -> None:
        self._engine = engine
        self._tick = tick_ms / 1000
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vudo-spirit-epoch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            self._engine.increment_epoch()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def check_wasm(data: bytes, what: str) -> None:
    """Only binary modules: wasmtime would otherwise parse anything else as WAT text."""
    if not data.startswith(WASM_MAGIC):
        raise SpiritTrap("bad_module", f"{what} is not a WebAssembly binary (no \\0asm header)")


class SpiritRuntime:
    def __init__(self, *, fuel: bool = True, epochs: bool = True, epoch_tick_ms: int = DEFAULT_EPOCH_TICK_MS) -> None:
        config = wasmtime.Config()
        config.consume_fuel = fuel
        config.epoch_interruption = epochs
        self.fuel = fuel
        self.epochs = epochs
        self.epoch_tick_ms = epoch_tick_ms
        self.engine = wasmtime.Engine(config)
        self._modules: dict[str, wasmtime.Module] = {}
        self._compile_lock = threading.Lock()
        #: Serialises every call into wasm (see the module docstring).
        self.call_lock = threading.RLock()
        self._ticker = _Ticker(self.engine, epoch_tick_ms) if epochs else None

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    # -- modules ---------------------------------------------------------------------

    def is_cached(self, sha256: str) -> bool:
        return sha256 in self._modules

    def compile(self, sha256: str, wasm: bytes, *, what: str = "module") -> wasmtime.Module:
        """The compiled module for these bytes (``sha256`` must be their verified hash)."""
        with self._compile_lock:
            module = self._modules.get(sha256)
            if module is None:
                check_wasm(wasm, what)
                try:
                    module = wasmtime.Module(self.engine, wasm)
                except wasmtime.WasmtimeError as err:
                    raise SpiritTrap("bad_module", f"{what} does not compile: {_first_line(err)}") from None
                self._modules[sha256] = module
            return module

    def forget_modules(self) -> None:
        with self._compile_lock:
            self._modules.clear()

    # -- instances ---------------------------------------------------------------------

    def instantiate(
        self,
        manifest: Manifest,
        wasm: bytes,
        host: HostContext,
        *,
        granted: Permissions | None = None,
        budget: Budget | None = None,
    ) -> SpiritInstance:
        """Compile (cached) and instantiate the manifest's entry module under ``granted``.

        ``granted`` defaults to what the manifest asks for (the lifecycle checks
        grants before it gets here); ``budget`` to the manifest's compute level.
        """
        entry = manifest.entry_module()
        module = self.compile(entry.sha256, wasm, what=f"{manifest.name}/{entry.path}")
        check_module_against_manifest(module, entry, manifest.name)
        return SpiritInstance(self, manifest.name, module, entry, host, granted or manifest.permissions,
                              budget or manifest.budget)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _cause(err: BaseException) -> str:
    """The innermost cause of a wasmtime error (its last non-empty line), not the backtrace header."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def _import_names(module: wasmtime.Module) -> list[str]:
    return [f"{imp.module}.{imp.name}" for imp in module.imports]


def check_module_against_manifest(module: wasmtime.Module, entry: ModuleEntry, spirit: str) -> None:
    """The module imports only what the manifest declares and exports what it promises."""
    declared = set(entry.imports)
    for name in _import_names(module):
        if name not in declared:
            raise SpiritTrap("undeclared_import", f"spirit {spirit!r}: {entry.path} imports {name!r}, which its manifest does not declare")
    exports = {exp.name: exp.type for exp in module.exports}
    for name in entry.exports:
        if name not in exports:
            raise SpiritTrap("missing_export", f"spirit {spirit!r}: {entry.path} does not export {name!r} as its manifest promises")
    for name in REQUIRED_EXPORTS:
        if name not in exports:
            raise SpiritTrap("missing_export", f"spirit {spirit!r}: {entry.path} must export {name!r} (ABI v1)")
    if not isinstance(exports["memory"], wasmtime.MemoryType):
        raise SpiritTrap("bad_export", f"spirit {spirit!r}: export 'memory' is not a memory")


#: ABI v1 host function signatures (params, results); see docs/spirit-abi.md.
HOST_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "log": (("i32", "i32", "i32"), ()),
    "now_ms": ((), ("i64",)),
    "topology": (("i32", "i32"), ("i32",)),
    "recv": (("i32", "i32"), ("i32",)),
    "emit": (("i32", "i32"), ("i32",)),
}
assert set(HOST_SIGNATURES) == set(HOST_IMPORTS)


def _functype(signature: tuple[tuple[str, ...], tuple[str, ...]]) -> wasmtime.FuncType:
    """A fresh FuncType (wasmtime ties a type to the first engine that uses it)."""
    kinds = {"i32": wasmtime.ValType.i32, "i64": wasmtime.ValType.i64}
    return wasmtime.FuncType([kinds[k]() for k in signature[0]], [kinds[k]() for k in signature[1]])


#: The hooks of ABI v1 and their signatures (parameters, results).
HOOK_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "alloc": (("i32",), ("i32",)),
    "summon": (("i32", "i32"), ("i32",)),
    "tick": (("i64",), ("i32",)),
    "dismiss": ((), ("i32",)),
    "signal": (("i32", "i32"), ("i32",)),
    "query": (("i32", "i32"), ("i64",)),
}


def _sig(ty: wasmtime.FuncType) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(str(p) for p in ty.params), tuple(str(r) for r in ty.results)


@dataclass
class SpiritInstance:
    """One summoned spirit: its own Store, Linker and instance."""

    runtime: SpiritRuntime
    name: str
    module: wasmtime.Module
    entry: ModuleEntry
    host: HostContext
    granted: Permissions
    budget: Budget
    stats: InstanceStats = field(default_factory=InstanceStats)
    inbox: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        runtime = self.runtime
        self.store = wasmtime.Store(runtime.engine)
        self.store.set_limits(memory_size=self.budget.memory_bytes, table_elements=100_000, instances=1, tables=4, memories=1)
        self.linker = wasmtime.Linker(runtime.engine)
        self.wasi = False
        for name in _import_names(self.module):
            missing = required_level(name, self.granted)
            if missing is not None:
                raise SpiritTrap("import_not_granted", f"spirit {self.name!r}: import {name!r} needs {missing}, not granted")
        if self.granted.wasi:
            wasi = wasmtime.WasiConfig()  # no argv, no env, no preopened dirs: nothing to open
            wasi.stdout_custom = self._wasi_output("info")
            wasi.stderr_custom = self._wasi_output("warn")
            self.store.set_wasi(wasi)
            self.linker.define_wasi()
            self.wasi = True
        self._define_host_functions()
        self._deadline_ticks = max(1, -(-self.budget.wall_ms // runtime.epoch_tick_ms))
        with runtime.call_lock:
            self._arm()
            try:
                self.instance = self.linker.instantiate(self.store, self.module)
            except wasmtime.Trap as trap:
                raise self._trap_error("instantiate", trap) from None
            except wasmtime.WasmtimeError as err:
                raise SpiritTrap("instantiate_failed", f"spirit {self.name!r} cannot be instantiated: {_first_line(err)}") from None
        exports = self.instance.exports(self.store)
        memory = exports.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise SpiritTrap("bad_export", f"spirit {self.name!r}: export 'memory' is not a memory")
        self.memory = memory
        self.funcs: dict[str, wasmtime.Func] = {}
        for hook, signature in HOOK_SIGNATURES.items():
            func = exports.get(hook)
            if func is None:
                continue
            if not isinstance(func, wasmtime.Func) or _sig(func.type(self.store)) != signature:
                raise SpiritTrap("bad_export", f"spirit {self.name!r}: export {hook!r} must be a function {signature[0]} -> {signature[1]}")
            self.funcs[hook] = func
        if "alloc" not in self.funcs:
            raise SpiritTrap("missing_export", f"spirit {self.name!r} must export alloc(i32) -> i32")

    # -- host functions ------------------------------------------------------------------

    def _wasi_output(self, level: str) -> Callable[[bytes], None]:
        def write(data: bytes) -> None:
            self.host.log(self.name, level, bytes(data[:MAX_HOST_BYTES]).decode("utf-8", "replace").rstrip("\n"))
        return write

    def _read(self, caller: wasmtime.Caller, ptr: int, length: int) -> bytes:
        if length < 0 or length > MAX_HOST_BYTES or ptr < 0:
            raise wasmtime.Trap(f"vudo ABI: bad byte range ({ptr}, {length})")
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory) or ptr + length > memory.data_len(caller):
            raise wasmtime.Trap(f"vudo ABI: byte range ({ptr}, {length}) is outside memory")
        return bytes(memory.read(caller, ptr, ptr + length)) if length else b""

    def _write(self, caller: wasmtime.Caller, ptr: int, capacity: int, data: bytes) -> int:
        """The ABI's "copy out" convention: write when it fits, always return the full length."""
        if capacity < 0 or ptr < 0:
            raise wasmtime.Trap(f"vudo ABI: bad buffer ({ptr}, {capacity})")
        if len(data) <= capacity and data:
            memory = caller.get("memory")
            if not isinstance(memory, wasmtime.Memory) or ptr + len(data) > memory.data_len(caller):
                raise wasmtime.Trap(f"vudo ABI: buffer ({ptr}, {capacity}) is outside memory")
            memory.write(caller, data, ptr)
        return len(data)

    def _define_host_functions(self) -> None:
        host = self.host
        name = self.name

        def log(caller: wasmtime.Caller, level: int, ptr: int, length: int) -> None:
            text = self._read(caller, ptr, length).decode("utf-8", "replace")
            host.log(name, LOG_LEVELS[level] if 0 <= level < len(LOG_LEVELS) else "info", text)

        def now_ms() -> int:
            return host.now_ms()

        def topology(caller: wasmtime.Caller, ptr: int, capacity: int) -> int:
            return self._write(caller, ptr, capacity, host.topology()[:MAX_HOST_BYTES])

        def recv(caller: wasmtime.Caller, ptr: int, capacity: int) -> int:
            if not self.inbox:
                return -1
            n = self._write(caller, ptr, capacity, self.inbox[0])
            if n <= capacity:
                self.inbox.pop(0)
            return n

        def emit(caller: wasmtime.Caller, ptr: int, length: int) -> int:
            return 0 if host.emit(name, self._read(caller, ptr, length)) else -1

        impls: dict[str, tuple[Callable[..., Any], bool]] = {
            "log": (log, True), "now_ms": (now_ms, False), "topology": (topology, True),
            "recv": (recv, True), "emit": (emit, True),
        }
        for fn_name, (impl, access_caller) in impls.items():
            if required_level(f"{HOST_MODULE}.{fn_name}", self.granted) is None:
                self.linker.define_func(HOST_MODULE, fn_name, _functype(HOST_SIGNATURES[fn_name]), impl, access_caller=access_caller)

    # -- calls ---------------------------------------------------------------------------

    def _arm(self) -> None:
        if self.runtime.fuel:
            self.store.set_fuel(self.budget.fuel_per_call)
        if self.runtime.epochs:
            self.store.set_epoch_deadline(self._deadline_ticks)

    def _trap_error(self, export: str, trap: wasmtime.Trap) -> SpiritTrap:
        self.stats.traps += 1
        code = trap.trap_code
        where = f"spirit {self.name!r} {export}()"
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return SpiritTrap("out_of_fuel", f"{where} ran out of fuel ({self.budget.fuel_per_call} per call at its compute level)")
        if code == wasmtime.TrapCode.INTERRUPT:
            return SpiritTrap("timeout", f"{where} exceeded its wall-clock budget of {self.budget.wall_ms} ms")
        if code == wasmtime.TrapCode.STACK_OVERFLOW:
            return SpiritTrap("stack_overflow", f"{where} overflowed its stack")
        what = code.name.lower().replace("_", " ") if code is not None else _cause(trap)
        return SpiritTrap("trap", f"{where} trapped: {what}")

    def has(self, export: str) -> bool:
        return export in self.funcs

    def call(self, export: str, *args: int) -> CallResult:
        """Call one exported hook with fresh fuel and a fresh deadline; never raises anything but SpiritError."""
        func = self.funcs.get(export)
        if func is None:
            raise SpiritTrap("missing_export", f"spirit {self.name!r} does not export {export!r}")
        with self.runtime.call_lock:
            self._arm()
            start = time.perf_counter()
            trap: wasmtime.Trap | None = None
            value: Any = None
            try:
                value = func(self.store, *args)
            except wasmtime.Trap as err:
                trap = err
            except wasmtime.WasmtimeError as err:
                raise SpiritTrap("trap", f"spirit {self.name!r} {export}() failed: {_cause(err)}") from None
            wall = (time.perf_counter() - start) * 1000
            used = self.budget.fuel_per_call - self.store.get_fuel() if self.runtime.fuel else 0
        stats = self.stats
        stats.calls += 1
        stats.fuel_last_call = used
        stats.fuel_used_total += used
        stats.wall_ms_total += wall
        if trap is not None:
            raise self._trap_error(export, trap)
        return CallResult(export, value, used, wall)

    def put_bytes(self, data: bytes) -> tuple[int, int]:
        """Copy ``data`` into the module through its ``alloc`` export; returns (ptr, len)."""
        if len(data) > MAX_HOST_BYTES:
            raise SpiritError("too_large", f"{len(data)} bytes for spirit {self.name!r}, above {MAX_HOST_BYTES}")
        ptr = int(self.call("alloc", len(data)).value)
        if data:
            with self.runtime.call_lock:
                if ptr <= 0 or ptr + len(data) > self.memory.data_len(self.store):
                    raise SpiritTrap("bad_alloc", f"spirit {self.name!r} alloc({len(data)}) returned {ptr}, outside its memory")
                self.memory.write(self.store, data, ptr)
        return ptr, len(data)

    def call_with_bytes(self, export: str, data: bytes) -> CallResult:
        ptr, length = self.put_bytes(data)
        return self.call(export, ptr, length)

    def query(self, data: bytes) -> tuple[bytes, CallResult]:
        """The ``query`` hook: bytes in, bytes out (packed as ``ptr << 32 | len``)."""
        result = self.call_with_bytes("query", data)
        packed = int(result.value)
        if packed < 0:
            raise SpiritTrap("query_failed", f"spirit {self.name!r} query() returned error {packed}")
        ptr, length = packed >> 32, packed & 0xFFFFFFFF
        with self.runtime.call_lock:
            if length > MAX_RESULT_BYTES or ptr + length > self.memory.data_len(self.store):
                raise SpiritTrap("bad_result", f"spirit {self.name!r} query() returned bytes ({ptr}, {length}) outside its memory")
            out = bytes(self.memory.read(self.store, ptr, ptr + length)) if length else b""
        return out, result

    def hook(self, export: str, *args: int) -> CallResult | None:
        """Call an optional hook; a non-zero status is the spirit's error."""
        if export not in self.funcs:
            return None
        result = self.call(export, *args)
        if result.value != 0:
            raise SpiritTrap("hook_failed", f"spirit {self.name!r} {export}() returned status {result.value}")
        return result

    def enqueue(self, payload: bytes) -> None:
        """A signal for the spirit (the oldest is dropped beyond 256): read by ``vudo.recv``
        or handed to the ``signal`` hook by :meth:`drain_signals`."""
        with self.runtime.call_lock:
            if len(self.inbox) >= 256:
                self.inbox.pop(0)
            self.inbox.append(payload)

    def drain_signals(self) -> int:
        """Hand every queued signal to the ``signal`` hook (if exported); returns how many."""
        if "signal" not in self.funcs:
            return 0
        delivered = 0
        while True:
            with self.runtime.call_lock:
                if not self.inbox:
                    return delivered
                payload = self.inbox.pop(0)
            result = self.call_with_bytes("signal", payload)
            if result.value != 0:
                raise SpiritTrap("hook_failed", f"spirit {self.name!r} signal() returned status {result.value}")
            delivered += 1

    @property
    def memory_bytes(self) -> int:
        with self.runtime.call_lock:
            return int(self.memory.data_len(self.store))


def summon_context(manifest: Manifest, node_id: str) -> bytes:
    """The bytes the ``summon`` hook receives: JSON naming the spirit and its node."""
    return json.dumps({"abi": manifest.abi, "name": manifest.name, "version": manifest.version,
                       "rev": manifest.rev, "node_id": node_id}, separators=(",", ":"), sort_keys=True).encode()


__all__ = ["HOST_SIGNATURES", "HOOK_SIGNATURES", "SpiritRuntime", "SpiritInstance", "CallResult", "HostContext",
           "WASI_MODULE", "summon_context"]
