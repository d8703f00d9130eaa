"""Cluster gossip keys: encoding, key files and the keyring the node persists.

A gossip key is 32 random bytes, written as standard base64 (``vudo
keygen``), as Serf/Consul do. A node's configured keys come from
``gossip_keys`` (flag, ``VUDO_GOSSIP_KEYS``, TOML) or a key file (one key
per line, primary first, mode 0600 enforced like the node key). Once
running, the live keyring is persisted in ``<data_dir>/gossip-keyring``
after every change (rotation through the API), and that file takes
precedence over configured keys at the next start -- the same rule as
Serf's ``keyring_file`` -- so a restart after a rotation keeps the keys the
cluster actually uses.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable
from pathlib import Path

from vudo import _core
from vudo.errors import ConfigError, IdentityError
from vudo.identity import check_private_file

KEY_BYTES = 32
KEYRING_FILE = "gossip-keyring"
_MAX_KEYS = 8


def generate_key() -> str:
    return base64.b64encode(_core.generate_gossip_key()).decode()


def decode_key(text: str, *, source: str) -> bytes:
    """Base64 text -> 32 key bytes; the error names ``source`` (local fault)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{source}: a gossip key must be base64 (create one with `vudo keygen`)") from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(f"{source}: a gossip key is {KEY_BYTES} bytes, this one is {len(raw)} (create one with `vudo keygen`)")
    return raw


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode()


def key_id(key: bytes) -> str:
    return _core.gossip_key_id(key)


def read_key_file(path: Path) -> list[bytes]:
    """Keys from a 0600 file, one base64 key per line (``#`` comments allowed), primary first."""
    if not path.exists():
        raise ConfigError(f"gossip key file {path} does not exist (write one with `vudo keygen > {path} && chmod 600 {path}`)")
    try:
        check_private_file(path, "gossip key file")
    except IdentityError as err:
        raise ConfigError(str(err)) from None
    keys = [
        decode_key(line, source=f"{path} line {n}")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not keys:
        raise ConfigError(f"gossip key file {path} holds no key (put one `vudo keygen` line in it)")
    if len(keys) > _MAX_KEYS:
        raise ConfigError(f"gossip key file {path} holds {len(keys)} keys; at most {_MAX_KEYS}")
    return keys


def write_key_file(path: Path, keys: Iterable[bytes]) -> None:
    """Atomically (re)write a 0600 key file."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, "".join(encode_key(k) + "\n" for k in keys).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def apply_key_op(keys: list[bytes], op: str, key: bytes) -> list[bytes]:
    """The keyring after ``install`` / ``use`` / ``remove`` of ``key`` (primary first)."""
    if op == "install":
        return keys if key in keys else [*keys, key]
    rest = [k for k in keys if k != key]
    if op == "use":
        return [key, *rest]
    if op == "remove":
        return rest
    raise ValueError(f"unknown key operation {op!r} (install, use or remove)")


def startup_keys(data_dir: Path, configured: list[bytes]) -> tuple[list[bytes], str]:
    """The keys a node starts with and where they came from."""
    persisted = data_dir / KEYRING_FILE
    if persisted.exists():
        return read_key_file(persisted), f"the keyring persisted in {persisted}"
    return configured, "the configured gossip keys"
