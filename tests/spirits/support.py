"""Hand-written WebAssembly modules (WAT) and package builders for the spirit tests."""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import wasmtime

from vudo.identity import Identity
from vudo.spirits import manifest as mf
from vudo.spirits.manifest import AssetEntry, Manifest, ModuleEntry, Permissions, Tier
from vudo.spirits.package import pack, sha256_hex

T = TypeVar("T")
NO_PERMISSIONS = Permissions()
FREE = Tier()

# A bump allocator over one page and the ABI's required exports; hooks are appended.
ABI_BASE = """
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $n)))
    (local.get $p))
"""

# A well-behaved spirit: counts ticks, logs on summon/dismiss, answers queries with its tick count.
HELLO = """(module
  (import "vudo" "log" (func $log (param i32 i32 i32)))
  (import "vudo" "now_ms" (func $now (result i64)))
""" + ABI_BASE + """
  (data (i32.const 16) "summoned")
  (data (i32.const 32) "dismissed")
  (global $ticks (mut i32) (i32.const 0))
  (global $last (mut i64) (i64.const 0))
  (func (export "summon") (param i32 i32) (result i32)
    (call $log (i32.const 1) (i32.const 16) (i32.const 8))
    (global.set $last (call $now))
    (i32.const 0))
  (func (export "tick") (param i64) (result i32)
    (global.set $ticks (i32.add (global.get $ticks) (i32.const 1)))
    (i32.const 0))
  (func (export "dismiss") (result i32)
    (call $log (i32.const 1) (i32.const 32) (i32.const 9))
    (i32.const 0))
  (func (export "query") (param $p i32) (param $n i32) (result i64)
    (i32.store (i32.const 64) (global.get $ticks))
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 4)))
)"""
HELLO_EXPORTS = ("memory", "alloc", "summon", "tick", "dismiss", "query")
HELLO_IMPORTS = ("vudo.log", "vudo.now_ms")

# Reads the topology and emits it back as a signal: needs network=write.
NETWORKED = """(module
  (import "vudo" "topology" (func $topology (param i32 i32) (result i32)))
  (import "vudo" "emit" (func $emit (param i32 i32) (result i32)))
""" + ABI_BASE + """
  (func (export "tick") (param i64) (result i32)
    (local $n i32)
    (local.set $n (call $topology (i32.const 4096) (i32.const 8192)))
    (call $emit (i32.const 4096) (local.get $n)))
)"""

INFINITE_LOOP = "(module" + ABI_BASE + """
  (func (export "tick") (param i64) (result i32)
    (loop $forever (br $forever))
    (i32.const 0))
)"""

# Grows memory one page at a time until refused, then reports the pages it reached.
MEMORY_BOMB = "(module" + ABI_BASE + """
  (func (export "tick") (param i64) (result i32)
    (block $done
      (loop $grow
        (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $grow)))
    (i32.const 0))
  (func (export "query") (param i32 i32) (result i64)
    (i64.extend_i32_u (memory.size)))
)"""

TRAPPING = "(module" + ABI_BASE + """
  (func (export "tick") (param i64) (result i32)
    unreachable)
)"""

FAILING_SUMMON = "(module" + ABI_BASE + """
  (func (export "summon") (param i32 i32) (result i32) (i32.const 7))
)"""

# Tries WASI: open "/etc/passwd" relative to fd 3 (the first preopen, if any) and
# accept a connection on fd 3; tick returns path_open's errno * 1000 + sock_accept's errno.
WASI_PROBE = """(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))
""" + ABI_BASE + """
  (data (i32.const 100) "etc/passwd")
  (func (export "tick") (param i64) (result i32)
    (i32.add
      (i32.mul (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 10) (i32.const 0)
                               (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 200))
               (i32.const 1000))
      (call $sock_accept (i32.const 3) (i32.const 0) (i32.const 204))))
)"""
WASI_IMPORTS = ("wasi_snapshot_preview1.path_open", "wasi_snapshot_preview1.sock_accept")


def wasm(wat: str) -> bytes:
    return bytes(wasmtime.wat2wasm(wat))


def manifest_for(
    identity: Identity,
    wasm_bytes: bytes,
    *,
    name: str = "hello",
    rev: int = 1,
    version: str = "1.0.0",
    exports: tuple[str, ...] = HELLO_EXPORTS,
    imports: tuple[str, ...] = HELLO_IMPORTS,
    permissions: Permissions = NO_PERMISSIONS,
    assets: dict[str, bytes] | None = None,
    tier: Tier = FREE,
) -> tuple[Manifest, dict[str, bytes]]:
    files = {"main.wasm": wasm_bytes, **(assets or {})}
    manifest = Manifest(
        name=name, version=version, rev=rev, author=identity.node_id, license="MIT", entry="main.wasm",
        modules=(ModuleEntry("main.wasm", sha256_hex(wasm_bytes), exports, imports),),
        description="a test spirit", tags=("test",), tier=tier, permissions=permissions,
        assets=tuple(AssetEntry(p, sha256_hex(d)) for p, d in sorted((assets or {}).items())),
    )
    return mf.validate(manifest), files


def package(identity: Identity, wat: str = HELLO, **kwargs: object) -> bytes:
    manifest, files = manifest_for(identity, wasm(wat), **kwargs)  # type: ignore[arg-type]
    return pack(manifest, files, identity)


def raw_tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def write_source_dir(root: Path, wat: str = HELLO, *, name: str = "hello") -> Path:
    """A spirit source directory as an author writes it (no hashes, no author)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.wasm").write_bytes(wasm(wat))
    (root / "web").mkdir(exist_ok=True)
    (root / "web" / "index.html").write_text("<!doctype html><title>hello</title><p>hello spirit</p>\n")
    (root / "spirit.toml").write_text(f"""
name = "{name}"
version = "1.0.0"
rev = 1
license = "MIT"
tags = ["demo"]

[permissions]
network = "none"
compute = "minimal"
display = "required"

[[modules]]
path = "main.wasm"
exports = {list(HELLO_EXPORTS)!r}
imports = {list(HELLO_IMPORTS)!r}

[[assets]]
path = "web/index.html"
""".replace("'", '"'))
    return root


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on its own thread: a session-wide Playwright driver may already run a loop in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=300)
