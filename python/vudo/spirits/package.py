"""The ``.spirit`` package: one deterministic, signed tar archive.

Layout (in this order, nothing else)::

    spirit.toml   the canonical manifest (vudo.spirits.manifest.render)
    spirit.sig    the author's sealed PackageClaim over sha256(spirit.toml)
    <files>       every module and asset the manifest pins, sorted by path

Every member is a regular file with mode 0644, uid/gid 0, empty owner
names and mtime 0, in POSIX (pax) format without compression, so packing
the same directory with the same key gives the same bytes. The signature
uses the detached form of the sealed-value envelope (``vudo.hyphal.signed.seal_detached``: a package is a document, not a gossip value bound to a carrier): the claim
names the author NodeId, the spirit's name, version and rev, and the
manifest's sha256; the manifest pins each file's sha256.

Reading (:func:`read_package`) never touches the file system and refuses,
with a :class:`PackageError` naming the reason: oversize archives, members
or totals; anything but regular files (symlinks, hard links, devices,
directories, sparse files); absolute, traversing or odd paths; duplicate
names; missing or extra files; a manifest that is invalid or not canonical;
a signature that is malformed, by someone other than the manifest's author,
or over another manifest; a file whose hash differs; and finally any byte
that differs from the canonical archive rebuilt from the verified parts.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from vudo.errors import RemoteValueError
from vudo.hyphal.signed import seal_detached, verify_detached
from vudo.identity import Identity
from vudo.spirits import manifest as mf
from vudo.spirits.errors import PackageError
from vudo.spirits.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest

MAX_ARCHIVE_BYTES = 64 * 1024 * 1024
MAX_MEMBER_BYTES = 32 * 1024 * 1024
MAX_MEMBERS = 2 + mf.MAX_MODULES + mf.MAX_ASSETS
MAX_SIGNATURE_BYTES = 4096
SUFFIX = ".spirit"


class PackageClaim(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the author signs: "I, node_id, publish name@version rev N whose manifest hashes to H"."""

    node_id: str
    timestamp: float
    name: str
    version: str
    rev: int
    manifest_sha256: str


@dataclass(frozen=True, slots=True)
class Package:
    """A verified package: everything in it has been checked against the author's signature."""

    manifest: Manifest
    manifest_bytes: bytes
    signature: str
    claim: PackageClaim
    files: dict[str, bytes]
    sha256: str  # of the whole archive

    @property
    def name(self) -> str:
        return self.manifest.name


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the signature (a thin wrapper over the sealed-value envelope) -------------------------


def sign_manifest(identity: Identity, manifest_bytes: bytes, manifest: Manifest, *, timestamp: float = 0.0) -> str:
    claim = PackageClaim(
        node_id=identity.node_id, timestamp=timestamp, name=manifest.name, version=manifest.version,
        rev=manifest.rev, manifest_sha256=sha256_hex(manifest_bytes),
    )
    return seal_detached(identity, claim)


def verify_signature(signature: str, manifest_bytes: bytes, manifest: Manifest) -> PackageClaim:
    try:
        claim = verify_detached(signature, PackageClaim, owner=manifest.author)
    except RemoteValueError as err:
        if err.reason == "wrong_owner":
            raise PackageError("wrong_author", f"{SIGNATURE_NAME}: signed by someone else than the author {manifest.author}: {err.detail}") from None
        raise PackageError("bad_signature", f"{SIGNATURE_NAME}: {err}") from None
    if claim.manifest_sha256 != sha256_hex(manifest_bytes):
        raise PackageError("bad_signature", f"{SIGNATURE_NAME}: the signature covers another {MANIFEST_NAME} (hash differs)")
    if (claim.name, claim.version, claim.rev) != (manifest.name, manifest.version, manifest.rev):
        raise PackageError("bad_signature", f"{SIGNATURE_NAME}: signed for {claim.name}@{claim.version} rev {claim.rev}, "
                                            f"the manifest says {manifest.name}@{manifest.version} rev {manifest.rev}")
    return claim


# -- writing ---------------------------------------------------------------------------------


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info, io.BytesIO(data)


def build_archive(manifest_bytes: bytes, signature: str, files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(*_member(MANIFEST_NAME, manifest_bytes))
        tar.addfile(*_member(SIGNATURE_NAME, signature.encode("ascii")))
        for path in sorted(files):
            tar.addfile(*_member(path, files[path]))
    return out.getvalue()


def pack(manifest: Manifest, files: dict[str, bytes], identity: Identity, *, timestamp: float = 0.0) -> bytes:
    """Sign and archive a manifest with its files (their hashes must already be pinned)."""
    if manifest.author != identity.node_id:
        raise PackageError("wrong_author", f"the manifest names author {manifest.author}, but the signing key is {identity.node_id}")
    pinned = manifest.files()
    if set(files) != set(pinned):
        raise PackageError("files_mismatch", f"files {sorted(files)} differ from the manifest's {sorted(pinned)}")
    for path, digest in pinned.items():
        if sha256_hex(files[path]) != digest:
            raise PackageError("hash_mismatch", f"{path}: sha256 differs from the manifest")
    manifest_bytes = mf.render(mf.validate(manifest))
    return build_archive(manifest_bytes, sign_manifest(identity, manifest_bytes, manifest, timestamp=timestamp), files)


def _read_source_file(root: Path, rel: str) -> bytes:
    mf.check_path(rel, what="file")
    path = root / rel
    if any(p.is_symlink() for p in [path, *path.parents] if p != root and root in p.parents):
        raise PackageError("unsafe_member", f"{path} is (under) a symlink; packages hold regular files only")
    if not path.is_file():
        raise PackageError("missing_file", f"{path} does not exist or is not a regular file")
    size = path.stat().st_size
    if size > MAX_MEMBER_BYTES:
        raise PackageError("oversize", f"{path}: {size} bytes, above the {MAX_MEMBER_BYTES}-byte limit")
    return path.read_bytes()


def pack_dir(src: Path, identity: Identity, *, timestamp: float | None = None) -> bytes:
    """``vudo spirit pack DIR``: read ``DIR/spirit.toml``, pin its files' hashes, sign, archive.

    The source manifest may leave out ``author`` (the signing node) and each
    file's ``sha256`` (computed here); values it does give must match.
    ``timestamp`` defaults to ``SOURCE_DATE_EPOCH`` (else 0) so packing is reproducible.
    """
    src = src.resolve()
    table: dict[str, Any] = mf.parse_table(_read_source_file(src, MANIFEST_NAME))
    author = table.setdefault("author", identity.node_id)
    if author != identity.node_id:
        raise PackageError("wrong_author", f"{src / MANIFEST_NAME} names author {author}, but this node is {identity.node_id}; "
                                           "pack with the author's data dir (--data-dir)")
    files: dict[str, bytes] = {}
    for kind in ("modules", "assets"):
        entries = table.get(kind, [])
        if not isinstance(entries, list):
            raise PackageError("bad_manifest", f"{MANIFEST_NAME}: {kind} must be an array of tables")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise PackageError("bad_manifest", f"{MANIFEST_NAME}: each of {kind} needs a path")
            data = _read_source_file(src, entry["path"])
            digest = sha256_hex(data)
            if entry.setdefault("sha256", digest) != digest:
                raise PackageError("hash_mismatch", f"{entry['path']}: sha256 in {MANIFEST_NAME} is stale (the file hashes to {digest})")
            files[entry["path"]] = data
    if "entry" not in table and isinstance(table.get("modules"), list) and table["modules"]:
        table["entry"] = table["modules"][0].get("path")
    manifest = mf.from_table(table)
    if timestamp is None:
        timestamp = float(os.environ.get("SOURCE_DATE_EPOCH", "0") or 0)
    return pack(manifest, files, identity, timestamp=timestamp)


# -- reading ---------------------------------------------------------------------------------


def _unsafe(info: tarfile.TarInfo) -> str | None:
    if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        return None
    kinds = {tarfile.SYMTYPE: "a symlink", tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a character device",
             tarfile.BLKTYPE: "a block device", tarfile.DIRTYPE: "a directory", tarfile.FIFOTYPE: "a fifo",
             tarfile.GNUTYPE_SPARSE: "a sparse file", tarfile.CONTTYPE: "a contiguous file"}
    return kinds.get(info.type, f"of type {info.type!r}")


def read_members(data: bytes) -> list[tuple[str, bytes]]:
    """The archive's members, in order, after every safety check on the archive itself."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise PackageError("oversize", f"package is {len(data)} bytes, above the {MAX_ARCHIVE_BYTES}-byte limit")
    members: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            while (info := tar.next()) is not None:
                if len(members) >= MAX_MEMBERS:
                    raise PackageError("oversize", f"more than {MAX_MEMBERS} members")
                name = info.name
                kind = _unsafe(info)
                if kind is not None:
                    raise PackageError("unsafe_member", f"member {name[:200]!r} is {kind}; packages hold regular files only")
                mf.check_path(name, what="member")
                if name.lower() in seen:
                    raise PackageError("duplicate_member", f"member {name!r} appears twice")
                seen.add(name.lower())
                if info.size > MAX_MEMBER_BYTES:
                    raise PackageError("oversize", f"member {name!r} is {info.size} bytes, above the {MAX_MEMBER_BYTES}-byte limit")
                total += info.size
                if total > MAX_ARCHIVE_BYTES:
                    raise PackageError("oversize", f"members add up to more than {MAX_ARCHIVE_BYTES} bytes")
                stream = tar.extractfile(info)
                content = stream.read(info.size) if stream is not None else b""
                if len(content) != info.size:
                    raise PackageError("bad_archive", f"member {name!r} is truncated")
                members.append((name, content))
    except PackageError:
        raise
    except (tarfile.TarError, EOFError, ValueError, UnicodeError, OSError) as err:
        raise PackageError("bad_archive", f"not a valid .spirit archive: {err}") from None
    return members


def read_package(data: bytes) -> Package:
    """Parse and fully verify a ``.spirit`` archive (see the module docstring for what is refused)."""
    members = read_members(data)
    names = [name for name, _ in members]
    if names[:2] != [MANIFEST_NAME, SIGNATURE_NAME]:
        raise PackageError("bad_archive", f"a package starts with {MANIFEST_NAME} then {SIGNATURE_NAME}, found {names[:2]}")
    manifest_bytes, sig_bytes = members[0][1], members[1][1]
    manifest = mf.parse_canonical(manifest_bytes)
    if len(sig_bytes) > MAX_SIGNATURE_BYTES:
        raise PackageError("oversize", f"{SIGNATURE_NAME} is {len(sig_bytes)} bytes")
    try:
        signature = sig_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise PackageError("bad_signature", f"{SIGNATURE_NAME} is not ASCII") from None
    claim = verify_signature(signature, manifest_bytes, manifest)
    files = dict(members[2:])
    pinned = manifest.files()
    if missing := sorted(set(pinned) - set(files)):
        raise PackageError("missing_file", f"the manifest pins {missing}, absent from the archive")
    if extra := sorted(set(files) - set(pinned)):
        raise PackageError("extra_file", f"the archive holds {extra}, which the manifest does not pin")
    for path, digest in pinned.items():
        if sha256_hex(files[path]) != digest:
            raise PackageError("hash_mismatch", f"{path}: sha256 differs from the one the author signed")
    if build_archive(manifest_bytes, signature, files) != data:
        raise PackageError("not_canonical", "the archive's bytes differ from its canonical form (headers, order or padding were altered)")
    return Package(manifest, manifest_bytes, signature, claim, files, sha256_hex(data))


def check_upgrade(installed: Manifest | None, new: Manifest) -> None:
    """Installing ``new`` over ``installed`` (same name): same author, and ``rev`` must grow."""
    if installed is None:
        return
    if new.author != installed.author:
        raise PackageError("wrong_author", f"spirit {new.name!r} is installed from author {installed.author}; "
                                           f"this package is by {new.author}; a name belongs to its first author")
    if new.rev <= installed.rev:
        raise PackageError("stale_rev", f"spirit {new.name!r} rev {new.rev} is not newer than the installed rev {installed.rev}")
