"""Node identity: the Ed25519 keypair in the data dir, and the API token.

Gene ``nodeId``: the public key (32 bytes) is the node's identity, shown as
a libp2p PeerId string. ``init`` creates the data dir (0700), the key
(0600) and the API bearer token (0600); ``load`` refuses a key that other
users can read.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vudo import _core
from vudo.errors import IdentityError, InsecureKeyError

KEY_FILE = "node.key"
TOKEN_FILE = "api-token"
_MAX_KEY_FILE = 4096


def verify_key_format(public_key: bytes) -> bool:
    """Constraint ``valid_ed25519``: 32 bytes that decode to a curve point."""
    if len(public_key) != 32:
        return False
    try:
        _core.peer_id_from_public_key(public_key)
    except ValueError:
        return False
    return True


def node_id_from_public_key(public_key: bytes) -> str:
    return _core.peer_id_from_public_key(public_key)


def public_key_from_node_id(node_id: str) -> bytes:
    """Raises ``ValueError`` when ``node_id`` is not an Ed25519 PeerId."""
    return _core.public_key_from_peer_id(node_id)


def verify_signature(node_id: str, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` over ``message`` was made by ``node_id``'s key."""
    if len(signature) != 64:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key_from_node_id(node_id))
        key.verify(signature, message)
    except (ValueError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class Identity:
    private_key: Ed25519PrivateKey
    public_key: bytes
    node_id: str

    @classmethod
    def from_private_key(cls, key: Ed25519PrivateKey) -> Identity:
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cls(private_key=key, public_key=public, node_id=node_id_from_public_key(public))

    @classmethod
    def generate(cls) -> Identity:
        return cls.from_private_key(Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def init_data_dir(data_dir: Path, *, force: bool = False) -> Identity:
    """Create the data dir, a new key and an API token. Refuses to overwrite."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    key_path, token_path = data_dir / KEY_FILE, data_dir / TOKEN_FILE
    if key_path.exists() and not force:
        raise IdentityError(
            f"{key_path} already exists; this data dir already has an identity "
            "(use it with `vudo node --data-dir ...`, or pass --force to replace it and lose the old one)"
        )
    for path in (key_path, token_path):
        if path.exists():
            path.unlink()
    identity = Identity.generate()
    pem = identity.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(key_path, pem)
    _write_private(token_path, (secrets.token_urlsafe(32) + "\n").encode())
    return identity


def check_private_file(path: Path, what: str) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise IdentityError(f"{what} {path} does not exist; run `vudo init --data-dir {path.parent}` first") from None
    if not stat.S_ISREG(st.st_mode):
        raise IdentityError(f"{what} {path} is not a regular file")
    if st.st_mode & 0o077:
        raise InsecureKeyError(
            f"{what} {path} is readable by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"fix it with `chmod 600 {path}`"
        )
    if st.st_size > _MAX_KEY_FILE:
        raise IdentityError(f"{what} {path} is {st.st_size} bytes, larger than any valid {what}")


def load_identity(data_dir: Path) -> Identity:
    path = data_dir / KEY_FILE
    check_private_file(path, "key file")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as err:
        raise IdentityError(f"key file {path} is not a PEM Ed25519 private key: {err}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise IdentityError(f"key file {path} holds a {type(key).__name__}, not an Ed25519 key")
    return Identity.from_private_key(key)


def load_api_token(data_dir: Path) -> str:
    path = data_dir / TOKEN_FILE
    check_private_file(path, "API token")
    token = path.read_text().strip()
    if len(token) < 16:
        raise IdentityError(f"API token in {path} is too short; recreate it with `vudo init --force`")
    return token
