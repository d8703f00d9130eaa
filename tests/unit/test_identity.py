import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vudo.errors import IdentityError, InsecureKeyError
from vudo.identity import (
    KEY_FILE,
    TOKEN_FILE,
    Identity,
    init_data_dir,
    load_api_token,
    load_identity,
    node_id_from_public_key,
    public_key_from_node_id,
    verify_key_format,
    verify_signature,
)


def test_init_creates_private_files(tmp_path: Path) -> None:
    data = tmp_path / "node"
    ident = init_data_dir(data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((data / TOKEN_FILE).stat().st_mode) == 0o600
    assert load_identity(data).node_id == ident.node_id
    assert len(load_api_token(data)) >= 32


def test_node_id_is_a_libp2p_ed25519_peer_id(tmp_path: Path) -> None:
    ident = init_data_dir(tmp_path / "n")
    assert ident.node_id.startswith("12D3KooW")
    assert public_key_from_node_id(ident.node_id) == ident.public_key


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    first = init_data_dir(tmp_path / "n")
    with pytest.raises(IdentityError, match="--force"):
        init_data_dir(tmp_path / "n")
    assert load_identity(tmp_path / "n").node_id == first.node_id
    second = init_data_dir(tmp_path / "n", force=True)
    assert second.node_id != first.node_id


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_group_or_world_readable_key_is_refused(tmp_path: Path, mode: int) -> None:
    init_data_dir(tmp_path / "n")
    os.chmod(tmp_path / "n" / KEY_FILE, mode)
    with pytest.raises(InsecureKeyError, match="chmod 600"):
        load_identity(tmp_path / "n")


def test_missing_key_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="vudo init"):
        load_identity(tmp_path)


def test_garbage_key_file_is_a_clear_error(tmp_path: Path) -> None:
    init_data_dir(tmp_path / "n")
    (tmp_path / "n" / KEY_FILE).write_bytes(b"not a key")
    with pytest.raises(IdentityError, match="not a PEM"):
        load_identity(tmp_path / "n")


@given(st.binary(max_size=64))
@settings(max_examples=200)
def test_verify_key_format_only_accepts_32_byte_points(data: bytes) -> None:
    ok = verify_key_format(data)
    if len(data) != 32:
        assert not ok
    if ok:
        assert public_key_from_node_id(node_id_from_public_key(data)) == data


def test_generated_keys_have_valid_format() -> None:
    for _ in range(20):
        assert verify_key_format(Identity.generate().public_key)


@given(st.text(max_size=80))
def test_public_key_from_garbage_node_id_raises_value_error(text: str) -> None:
    try:
        key = public_key_from_node_id(text)
    except ValueError:
        return
    assert verify_key_format(key)


@given(st.binary(max_size=256))
@settings(max_examples=50)
def test_signatures_verify_only_for_the_signer_and_message(message: bytes) -> None:
    a, b = Identity.generate(), Identity.generate()
    sig = a.sign(message)
    assert verify_signature(a.node_id, message, sig)
    assert not verify_signature(b.node_id, message, sig)
    assert not verify_signature(a.node_id, message + b"x", sig)
    assert not verify_signature(a.node_id, message, sig[:-1])
    assert not verify_signature("not-a-node", message, sig)
