"""Signed, time-stamped gossip values.

Chitchat has no authentication, so every value that matters is sealed by
its owner: ``<base64url(body)>.<base64url(ed25519 signature)>`` where the
body is the JSON encoding of a msgspec struct carrying ``node_id`` and
``timestamp`` (unix seconds). Opening a value checks, in order: size,
shape, JSON schema, owner, signature, age. Each failure has a stable reason
string used as a metric label.
"""

from __future__ import annotations

import base64
import binascii
from typing import Protocol, TypeVar

import msgspec

from vudo.codec import DecodeFailure, decode_json
from vudo.errors import RemoteValueError
from vudo.identity import Identity, verify_signature

MAX_SIGNED_VALUE = 8192
#: How far in the future a timestamp may be (clock skew we tolerate).
MAX_CLOCK_SKEW = 30.0

# Reasons, used as metric labels.
OVERSIZE = "oversize"
MALFORMED = "malformed"
WRONG_OWNER = "wrong_owner"
BAD_SIGNATURE = "bad_signature"
STALE = "stale"
FUTURE = "future"
REASONS = (OVERSIZE, MALFORMED, WRONG_OWNER, BAD_SIGNATURE, STALE, FUTURE)


class Stamped(Protocol):
    @property
    def node_id(self) -> str: ...
    @property
    def timestamp(self) -> float: ...


T = TypeVar("T", bound=msgspec.Struct)

_encoder = msgspec.json.Encoder()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(identity: Identity, body: msgspec.Struct) -> str:
    payload = _encoder.encode(body)
    value = f"{_b64(payload)}.{_b64(identity.sign(payload))}"
    if len(value) > MAX_SIGNED_VALUE:
        raise ValueError(f"sealed value is {len(value)} bytes, above the {MAX_SIGNED_VALUE}-byte limit")
    return value


def open_sealed(value: str, kind: type[T], *, owner: str, now: float, ttl: float) -> T:
    """Verify and decode a sealed value published by ``owner``.

    Raises :class:`RemoteValueError` with one of :data:`REASONS`.
    """
    return check_age(verify_sealed(value, kind, owner=owner), now=now, ttl=ttl)


def verify_sealed(value: str, kind: type[T], *, owner: str) -> T:
    """The time-independent part of :func:`open_sealed`: size, shape, schema, owner, signature.

    Its result for a given ``(value, kind, owner)`` never changes, so callers
    that see the same value again and again may cache it and only repeat
    :func:`check_age`.
    """
    if len(value) > MAX_SIGNED_VALUE:
        raise RemoteValueError(OVERSIZE, f"{len(value)} bytes > {MAX_SIGNED_VALUE}")
    head, sep, tail = value.partition(".")
    if not sep:
        raise RemoteValueError(MALFORMED, "expected <body>.<signature>")
    try:
        payload, signature = _unb64(head), _unb64(tail)
    except (binascii.Error, ValueError) as err:
        raise RemoteValueError(MALFORMED, f"bad base64: {err}") from None
    try:
        body = decode_json(payload, kind, what="body", max_bytes=MAX_SIGNED_VALUE)
    except DecodeFailure as err:
        raise RemoteValueError(MALFORMED, str(err)) from None
    stamped: Stamped = body  # type: ignore[assignment]
    if stamped.node_id != owner:
        raise RemoteValueError(WRONG_OWNER, f"value names {stamped.node_id}, published by {owner}")
    if not verify_signature(owner, payload, signature):
        raise RemoteValueError(BAD_SIGNATURE, f"signature does not match {owner}'s key")
    return body


def check_age(body: T, *, now: float, ttl: float) -> T:
    """The time-dependent part of :func:`open_sealed`: not older than ``ttl``, not from the future."""
    stamped: Stamped = body  # type: ignore[assignment]
    age = now - stamped.timestamp
    if age > ttl:
        raise RemoteValueError(STALE, f"{age:.1f}s old, limit {ttl:.1f}s")
    if age < -MAX_CLOCK_SKEW:
        raise RemoteValueError(FUTURE, f"timestamp {-age:.1f}s in the future")
    return body
