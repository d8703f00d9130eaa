"""The .spirit package: deterministic, signed, and refused when anything in it is off."""

from __future__ import annotations

import io
import tarfile

import msgspec
import pytest

from spirits.support import HELLO, manifest_for, package, raw_tar, wasm, write_source_dir
from vudo.identity import Identity
from vudo.spirits import manifest as mf
from vudo.spirits.errors import PackageError
from vudo.spirits.manifest import Permissions, Tier
from vudo.spirits.package import (
    MAX_ARCHIVE_BYTES,
    MAX_MEMBER_BYTES,
    build_archive,
    check_upgrade,
    pack,
    pack_dir,
    read_members,
    read_package,
    sha256_hex,
)


def refused(data: bytes) -> str:
    with pytest.raises(PackageError) as info:
        read_package(data)
    return info.value.reason


def members(data: bytes) -> list[tuple[str, bytes]]:
    return read_members(data)


def test_pack_is_deterministic_and_verifies(author: Identity) -> None:
    a, b = package(author), package(author)
    assert a == b
    p = read_package(a)
    assert p.manifest.name == "hello" and p.manifest.author == author.node_id
    assert p.claim.node_id == author.node_id and p.claim.manifest_sha256 == sha256_hex(p.manifest_bytes)
    assert p.claim.rev == 1 and p.sha256 == sha256_hex(a)
    assert [n for n, _ in members(a)][:2] == ["spirit.toml", "spirit.sig"]
    with tarfile.open(fileobj=io.BytesIO(a)) as tar:
        for info in tar.getmembers():
            assert (info.mtime, info.uid, info.gid, info.mode, info.uname) == (0, 0, 0, 0o644, "")


def test_pack_dir_pins_hashes_and_refuses_a_foreign_author(tmp_path, author: Identity) -> None:
    src = write_source_dir(tmp_path / "src")
    data = pack_dir(src, author)
    p = read_package(data)
    assert set(p.files) == {"main.wasm", "web/index.html"}
    assert p.manifest.permissions.display == "required"
    assert pack_dir(src, author) == data
    with pytest.raises(PackageError) as info:
        pack_dir(_with_author(src, Identity.generate().node_id), author)
    assert info.value.reason == "wrong_author"


def _with_author(src, node_id: str):
    text = (src / "spirit.toml").read_text()
    (src / "spirit.toml").write_text(f'author = "{node_id}"\n' + text)
    return src


def test_pack_dir_refuses_a_stale_hash_and_a_symlink(tmp_path, author: Identity) -> None:
    src = write_source_dir(tmp_path / "src")
    text = (src / "spirit.toml").read_text().replace('path = "main.wasm"', 'path = "main.wasm"\nsha256 = "' + "0" * 64 + '"')
    (src / "spirit.toml").write_text(text)
    with pytest.raises(PackageError, match="stale"):
        pack_dir(src, author)
    src2 = write_source_dir(tmp_path / "src2")
    (src2 / "web" / "index.html").unlink()
    (src2 / "web" / "index.html").symlink_to("/etc/passwd")
    with pytest.raises(PackageError) as info:
        pack_dir(src2, author)
    assert info.value.reason == "unsafe_member"


@pytest.mark.parametrize("target", ["main.wasm", "spirit.toml", "spirit.sig"])
def test_one_changed_byte_anywhere_is_refused(author: Identity, target: str) -> None:
    data = package(author)
    parts = dict(members(data))
    content = bytearray(parts[target])
    index = len(content) // 2
    if target == "spirit.sig":
        index = 10  # inside the base64 body of the claim
    content[index] ^= 0x01
    parts[target] = bytes(content)
    tampered = build_archive(parts["spirit.toml"], parts["spirit.sig"].decode("latin-1"),
                             {k: v for k, v in parts.items() if k not in ("spirit.toml", "spirit.sig")})
    assert refused(tampered) in {"hash_mismatch", "bad_signature", "bad_manifest", "not_canonical"}


def test_every_single_byte_flip_in_the_archive_is_refused(author: Identity) -> None:
    data = package(author)
    step = max(1, len(data) // 300)
    for index in range(0, len(data), step):
        flipped = bytearray(data)
        flipped[index] ^= 0x20
        with pytest.raises(PackageError):
            read_package(bytes(flipped))


def test_a_package_signed_by_someone_else_is_refused(author: Identity) -> None:
    manifest, files = manifest_for(author, wasm(HELLO))
    mallory = Identity.generate()
    with pytest.raises(PackageError) as info:
        pack(manifest, files, mallory)
    assert info.value.reason == "wrong_author"
    # Mallory signs a claim over the author's manifest by hand: the envelope names the wrong owner.
    genuine = dict(members(pack(manifest, files, author)))
    from vudo.spirits.package import sign_manifest

    forged_sig = sign_manifest(mallory, genuine["spirit.toml"], manifest)
    forged = build_archive(genuine["spirit.toml"], forged_sig, {"main.wasm": files["main.wasm"]})
    assert refused(forged) == "wrong_author"


def test_upgrades_need_the_same_author_and_a_higher_rev(author: Identity) -> None:
    v1 = read_package(package(author, rev=5)).manifest
    assert check_upgrade(None, v1) is None
    check_upgrade(v1, read_package(package(author, rev=6)).manifest)
    for rev in (4, 5):
        with pytest.raises(PackageError) as info:
            check_upgrade(v1, read_package(package(author, rev=rev)).manifest)
        assert info.value.reason == "stale_rev"
    other = Identity.generate()
    with pytest.raises(PackageError) as info:
        check_upgrade(v1, read_package(package(other, rev=9)).manifest)
    assert info.value.reason == "wrong_author"


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.linkname = link
    return info


@pytest.mark.parametrize(("name", "reason"), [
    ("../evil.wasm", "unsafe_path"), ("/etc/passwd", "unsafe_path"), ("web/../../x", "unsafe_path"),
    ("a\\b", "unsafe_path"), ("./x", "unsafe_path"), ("web//x", "unsafe_path"),
])
def test_traversing_and_absolute_paths_are_refused(name: str, reason: str) -> None:
    data = raw_tar([(_info("spirit.toml", size=1), b"x"), (_info(name, size=1), b"x")])
    assert refused(data) == reason


@pytest.mark.parametrize(("kind", "link"), [
    (tarfile.SYMTYPE, "/etc/passwd"), (tarfile.LNKTYPE, "spirit.toml"), (tarfile.CHRTYPE, ""),
    (tarfile.BLKTYPE, ""), (tarfile.DIRTYPE, ""), (tarfile.FIFOTYPE, ""),
])
def test_links_devices_and_directories_are_refused(kind: bytes, link: str) -> None:
    data = raw_tar([(_info("spirit.toml", size=1), b"x"), (_info("web", kind, link=link), None)])
    assert refused(data) == "unsafe_member"


def test_duplicate_names_are_refused() -> None:
    data = raw_tar([(_info("spirit.toml", size=1), b"x"), (_info("a.wasm", size=1), b"x"), (_info("A.wasm", size=1), b"y")])
    assert refused(data) == "duplicate_member"


def test_oversize_archives_and_members_are_refused() -> None:
    assert refused(b"\0" * (MAX_ARCHIVE_BYTES + 1)) == "oversize"
    big = MAX_MEMBER_BYTES + 1
    header = raw_tar([(_info("spirit.toml", size=big), b"\0" * big)])
    assert refused(header) == "oversize"


def test_garbage_missing_and_extra_files_are_refused(author: Identity) -> None:
    assert refused(b"not a tar at all" * 100) in {"bad_archive"}
    assert refused(b"") == "bad_archive"
    genuine = dict(members(package(author)))
    sig = genuine["spirit.sig"].decode()
    assert refused(build_archive(genuine["spirit.toml"], sig, {})) == "missing_file"
    assert refused(build_archive(genuine["spirit.toml"], sig, {"main.wasm": genuine["main.wasm"], "x.txt": b"x"})) == "extra_file"


def test_a_non_canonical_manifest_is_refused(author: Identity) -> None:
    manifest, files = manifest_for(author, wasm(HELLO))
    from vudo.spirits.package import sign_manifest

    text = mf.render(manifest).replace(b"rev = 1\n", b"rev =  1\n")  # same meaning, other bytes
    assert mf.parse(text) == manifest
    archive = build_archive(text, sign_manifest(author, text, manifest), files)
    assert refused(archive) == "not_canonical"


@pytest.mark.parametrize(("change", "field"), [
    ({"name": "Bad Name"}, "name"), ({"version": "1.0"}, "version"), ({"version": "01.0.0"}, "version"),
    ({"rev": 0}, "rev"), ({"author": "not-a-node"}, "author"), ({"license": ""}, "license"),
    ({"tags": ["UPPER"]}, "tags"), ({"tier": {"kind": "free", "price": 3}}, "tier.price"),
    ({"tier": {"kind": "premium", "price": 0}}, "tier.price"), ({"abi": 2}, "abi"), ({"entry": "nope.wasm"}, "entry"),
    ({"description": "bell\x07"}, "description"),
])
def test_manifest_rules(author: Identity, change: dict[str, object], field: str) -> None:
    manifest, _ = manifest_for(author, wasm(HELLO))
    table = msgspec.to_builtins(manifest) | change
    with pytest.raises(PackageError, match=field):
        mf.from_table(table)


def test_manifest_module_rules(author: Identity) -> None:
    manifest, _ = manifest_for(author, wasm(HELLO))
    base = msgspec.to_builtins(manifest)

    def module(**kw: object) -> dict[str, object]:
        return base | {"modules": [base["modules"][0] | kw]}

    for bad, match in [
        (module(exports=["memory", "alloc", "main"]), "not part of ABI"),
        (module(exports=["memory"]), "exports 'alloc'"),
        (module(imports=["vudo.emit"]), "needs network=write"),
        (module(imports=["vudo.exec"]), "no 'vudo.exec'"),
        (module(imports=["env.abort"]), "no 'env.abort'"),
        (module(imports=["wasi_snapshot_preview1.fd_write"]), "wasi=true"),
        (module(path="main.js"), "ends with .wasm"),
        (module(sha256="ABC"), "sha256"),
        (base | {"unknown": 1}, "unknown"),
    ]:
        with pytest.raises(PackageError, match=match):
            mf.from_table(bad)
    ok = module(imports=["vudo.emit", "vudo.topology"]) | {"permissions": {"network": "write"}}
    assert mf.from_table(ok).entry_module().imports == ("vudo.emit", "vudo.topology")


def test_render_parses_back(author: Identity) -> None:
    manifest, _ = manifest_for(author, wasm(HELLO), tier=Tier("premium", 25), permissions=Permissions("read", "heavy", "required", True),
                               assets={"web/a b.txt".replace(" ", "_"): b"x"})
    text = mf.render(manifest)
    assert mf.parse_canonical(text) == manifest
    with pytest.raises(PackageError):
        mf.parse(b"\xff\xfe")
    with pytest.raises(PackageError):
        mf.parse(b"x" * (mf.MAX_MANIFEST_BYTES + 1))
