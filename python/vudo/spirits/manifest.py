"""``spirit.toml``: the manifest of a spirit package.

A manifest says what a spirit is (name, semver version, a ``rev`` that only
grows, author NodeId, license, tags, tier), pins every file by sha256 (wasm
modules and web assets), declares the ABI exports the runtime may call and
the host functions its module imports, and asks for permissions named as in
the seed's ``PhysarumSpirit``: ``network`` none|read|write, ``compute``
minimal|standard|heavy, ``display`` none|required (plus ``wasi``, off by
default). The canonical form (:func:`render`) is the exact text the author
signs: a packed manifest that is not canonical is refused.

Everything here is pure and bounded: decoding refuses unknown keys,
oversize text, unsafe paths and inconsistent declarations with a
:class:`PackageError` naming the field.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from vudo.identity import public_key_from_node_id
from vudo.spirits.errors import PackageError

MANIFEST_NAME = "spirit.toml"
SIGNATURE_NAME = "spirit.sig"
RESERVED_NAMES = frozenset({MANIFEST_NAME, SIGNATURE_NAME})
ABI_VERSION = 1

MAX_MANIFEST_BYTES = 64 * 1024
MAX_MODULES = 8
MAX_ASSETS = 256
MAX_TAGS = 16
MAX_PATH = 200
MAX_REV = 2**53
MAX_PRICE = 10**9

NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,39}")
TAG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
PATH_SEGMENT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
# Semantic Versioning 2.0.0 (numeric parts without leading zeros).
SEMVER_RE = re.compile(
    r"(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)

Network = Literal["none", "read", "write"]
Compute = Literal["minimal", "standard", "heavy"]
Display = Literal["none", "required"]

NETWORK_LEVELS: tuple[Network, ...] = ("none", "read", "write")
COMPUTE_LEVELS: tuple[Compute, ...] = ("minimal", "standard", "heavy")
DISPLAY_LEVELS: tuple[Display, ...] = ("none", "required")

#: Exports of ABI v1 the runtime knows; ``memory`` and ``alloc`` are required.
ABI_EXPORTS = ("memory", "alloc", "summon", "tick", "dismiss", "signal", "query")
REQUIRED_EXPORTS = ("memory", "alloc")
HOST_MODULE = "vudo"
WASI_MODULE = "wasi_snapshot_preview1"
#: Host functions of ABI v1 and the ``network`` level each one needs.
HOST_IMPORTS: dict[str, Network] = {
    "log": "none",
    "now_ms": "none",
    "topology": "read",
    "recv": "read",
    "emit": "write",
}


@dataclass(frozen=True, slots=True)
class Budget:
    """What one ``compute`` level buys: per call fuel and wall-clock time, and a memory cap."""

    fuel_per_call: int
    wall_ms: int
    memory_bytes: int


MIB = 1024 * 1024
COMPUTE_BUDGETS: dict[Compute, Budget] = {
    "minimal": Budget(fuel_per_call=50_000_000, wall_ms=500, memory_bytes=32 * MIB),
    "standard": Budget(fuel_per_call=500_000_000, wall_ms=2_000, memory_bytes=128 * MIB),
    "heavy": Budget(fuel_per_call=5_000_000_000, wall_ms=10_000, memory_bytes=512 * MIB),
}


class Tier(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    kind: Literal["free", "premium"] = "free"
    #: Price in credits per summon; 0 for free spirits.
    price: int = 0


class Permissions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    network: Network = "none"
    compute: Compute = "minimal"
    display: Display = "none"
    #: WASI preview 1 without any preopened directory or socket (stdout/stderr go to the spirit's log).
    wasi: bool = False


class ModuleEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str
    sha256: str
    #: The ABI exports the runtime may call (``memory`` and ``alloc`` always).
    exports: tuple[str, ...]
    #: Every import of the module as ``module.name`` (``vudo.log``, ``wasi_snapshot_preview1.fd_write``).
    imports: tuple[str, ...] = ()


class AssetEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str
    sha256: str


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    version: str
    rev: int
    author: str
    license: str
    entry: str
    modules: tuple[ModuleEntry, ...]
    abi: int = ABI_VERSION
    description: str = ""
    tags: tuple[str, ...] = ()
    tier: Tier = Tier()
    permissions: Permissions = Permissions()
    assets: tuple[AssetEntry, ...] = ()

    @property
    def budget(self) -> Budget:
        return COMPUTE_BUDGETS[self.permissions.compute]

    def files(self) -> dict[str, str]:
        """Every pinned file: path -> sha256."""
        return {m.path: m.sha256 for m in self.modules} | {a.path: a.sha256 for a in self.assets}

    def entry_module(self) -> ModuleEntry:
        return next(m for m in self.modules if m.path == self.entry)


# -- validation ------------------------------------------------------------------


def _bad(field: str, message: str) -> PackageError:
    return PackageError("bad_manifest", f"{MANIFEST_NAME}: {field}: {message}")


def _check_text(field: str, value: str, *, limit: int, empty: bool = False) -> None:
    if not value and not empty:
        raise _bad(field, "must not be empty")
    if len(value) > limit:
        raise _bad(field, f"{len(value)} characters, above the limit of {limit}")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise _bad(field, "control characters are not allowed")


def check_path(path: str, *, what: str = "path") -> str:
    """A safe relative archive path: ``a/b.wasm``; no ``..``, no absolute, no odd characters."""
    if not path or len(path) > MAX_PATH:
        raise PackageError("unsafe_path", f"{what} {path[:MAX_PATH]!r}: must be 1..{MAX_PATH} characters")
    if path.startswith("/") or "\\" in path:
        raise PackageError("unsafe_path", f"{what} {path!r}: absolute paths and backslashes are refused")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise PackageError("unsafe_path", f"{what} {path!r}: empty, '.' or '..' segments are refused")
        if not PATH_SEGMENT_RE.fullmatch(segment):
            raise PackageError("unsafe_path", f"{what} {path!r}: segment {segment!r} is not [A-Za-z0-9_][A-Za-z0-9._-]*")
    return path


def required_level(import_name: str, permissions: Permissions) -> str | None:
    """What is missing for the module import ``module.name``, or None when the permissions cover it."""
    module, _, name = import_name.partition(".")
    if module == WASI_MODULE:
        return None if permissions.wasi else "wasi=true"
    if module != HOST_MODULE or name not in HOST_IMPORTS:
        return f"an ABI v1 host function (there is no {import_name!r})"
    need = HOST_IMPORTS[name]
    if NETWORK_LEVELS.index(permissions.network) < NETWORK_LEVELS.index(need):
        return f"network={need}"
    return None


def validate(m: Manifest) -> Manifest:
    """Check every rule a decoder cannot express; returns ``m`` or raises :class:`PackageError`."""
    if m.abi != ABI_VERSION:
        raise _bad("abi", f"this node runs spirit ABI v{ABI_VERSION}, the package needs v{m.abi}")
    if not NAME_RE.fullmatch(m.name):
        raise _bad("name", f"{m.name[:50]!r} is not 1-40 of [a-z0-9-] starting with a letter")
    if not SEMVER_RE.fullmatch(m.version) or len(m.version) > 64:
        raise _bad("version", f"{m.version[:70]!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    if not 1 <= m.rev <= MAX_REV:
        raise _bad("rev", f"{m.rev} is not in 1..2^53")
    try:
        public_key_from_node_id(m.author)
    except ValueError:
        raise _bad("author", f"{m.author[:80]!r} is not an Ed25519 NodeId") from None
    _check_text("license", m.license, limit=64)
    _check_text("description", m.description, limit=512, empty=True)
    if len(m.tags) > MAX_TAGS:
        raise _bad("tags", f"{len(m.tags)} tags, at most {MAX_TAGS}")
    for tag in m.tags:
        if not TAG_RE.fullmatch(tag):
            raise _bad("tags", f"{tag[:40]!r} is not 1-32 of [a-z0-9-]")
    if len(set(m.tags)) != len(m.tags):
        raise _bad("tags", "duplicate tag")
    if m.tier.kind == "free" and m.tier.price != 0:
        raise _bad("tier.price", "a free spirit has price 0")
    if m.tier.kind == "premium" and not 1 <= m.tier.price <= MAX_PRICE:
        raise _bad("tier.price", f"a premium spirit costs 1..{MAX_PRICE} credits, not {m.tier.price}")
    if not 1 <= len(m.modules) <= MAX_MODULES:
        raise _bad("modules", f"{len(m.modules)} modules, expected 1..{MAX_MODULES}")
    if len(m.assets) > MAX_ASSETS:
        raise _bad("assets", f"{len(m.assets)} assets, at most {MAX_ASSETS}")
    seen: set[str] = set()
    for kind, entries in (("modules", m.modules), ("assets", m.assets)):
        for entry in entries:
            check_path(entry.path, what=f"{kind} path")
            if entry.path in RESERVED_NAMES:
                raise _bad(kind, f"{entry.path!r} is reserved for the package itself")
            if entry.path.lower() in seen:
                raise _bad(kind, f"{entry.path!r} is listed twice")
            seen.add(entry.path.lower())
            if not SHA256_RE.fullmatch(entry.sha256):
                raise _bad(f"{kind} {entry.path}", "sha256 must be 64 lowercase hex digits")
    for module in m.modules:
        where = f"modules {module.path}"
        if not module.path.endswith(".wasm"):
            raise _bad(where, "a module's path ends with .wasm")
        for export in module.exports:
            if export not in ABI_EXPORTS:
                raise _bad(where, f"export {export!r} is not part of ABI v1 ({', '.join(ABI_EXPORTS)})")
        for export in REQUIRED_EXPORTS:
            if export not in module.exports:
                raise _bad(where, f"every module exports {export!r}")
        if len(set(module.exports)) != len(module.exports) or len(set(module.imports)) != len(module.imports):
            raise _bad(where, "duplicate export or import")
        if len(module.imports) > 64:
            raise _bad(where, "at most 64 imports")
        for imp in module.imports:
            missing = required_level(imp, m.permissions)
            if missing is not None:
                raise _bad(where, f"import {imp!r} needs {missing} in [permissions]")
    if m.entry not in {mod.path for mod in m.modules}:
        raise _bad("entry", f"{m.entry!r} is not one of the modules")
    return m


# -- decoding and the canonical text -----------------------------------------------


def from_table(table: dict[str, Any]) -> Manifest:
    try:
        manifest = msgspec.convert(table, Manifest)
    except msgspec.ValidationError as err:
        raise PackageError("bad_manifest", f"{MANIFEST_NAME}: {err}") from None
    return validate(manifest)


def parse_table(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_MANIFEST_BYTES:
        raise PackageError("oversize", f"{MANIFEST_NAME}: {len(data)} bytes, above the {MAX_MANIFEST_BYTES}-byte limit")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise PackageError("bad_manifest", f"{MANIFEST_NAME}: not valid UTF-8 TOML: {err}") from None


def parse(data: bytes) -> Manifest:
    """Decode and validate a manifest (any TOML layout)."""
    return from_table(parse_table(data))


def parse_canonical(data: bytes) -> Manifest:
    """Decode a packed manifest: it must be exactly its canonical rendering."""
    manifest = parse(data)
    if render(manifest) != data:
        raise PackageError("not_canonical", f"{MANIFEST_NAME} is not in canonical form (it was edited after `vudo spirit pack`)")
    return manifest


def _s(value: str) -> str:
    # JSON strings are TOML basic strings once control characters are excluded (validate() does).
    return json.dumps(value, ensure_ascii=False)


def _list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(_s(v) for v in values) + "]"


def render(m: Manifest) -> bytes:
    """The canonical text of a manifest: fixed key order, one layout, UTF-8, LF."""
    lines = [
        f"abi = {m.abi}",
        f"name = {_s(m.name)}",
        f"version = {_s(m.version)}",
        f"rev = {m.rev}",
        f"author = {_s(m.author)}",
        f"license = {_s(m.license)}",
        f"description = {_s(m.description)}",
        f"tags = {_list(m.tags)}",
        f"entry = {_s(m.entry)}",
        "",
        "[tier]",
        f"kind = {_s(m.tier.kind)}",
        f"price = {m.tier.price}",
        "",
        "[permissions]",
        f"network = {_s(m.permissions.network)}",
        f"compute = {_s(m.permissions.compute)}",
        f"display = {_s(m.permissions.display)}",
        f"wasi = {'true' if m.permissions.wasi else 'false'}",
    ]
    for module in m.modules:
        lines += [
            "",
            "[[modules]]",
            f"path = {_s(module.path)}",
            f"sha256 = {_s(module.sha256)}",
            f"exports = {_list(module.exports)}",
            f"imports = {_list(module.imports)}",
        ]
    for asset in m.assets:
        lines += ["", "[[assets]]", f"path = {_s(asset.path)}", f"sha256 = {_s(asset.sha256)}"]
    return ("\n".join(lines) + "\n").encode("utf-8")
