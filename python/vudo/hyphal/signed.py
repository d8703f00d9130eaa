"""Signed, time-stamped gossip values bound to their carrier.

Chitchat has no authentication: anyone who reaches a gossip port can claim
any node id and generation and re-publish anything it has seen. So every
value that matters is sealed by its owner *and bound to the chitchat
identity that carries it*::

    <b64url(carrier)>.<b64url(body)>.<b64url(ed25519 signature)>

``carrier`` is the JSON of :class:`Carrier` (node id, generation, gossip
address of the publishing chitchat identity); ``body`` is the JSON of a
msgspec struct carrying ``node_id`` and ``timestamp`` (unix seconds); the
signature covers a domain tag, both parts and their lengths. A receiver
opens a value only with the carrier it actually came from, so a value
copied to another identity (a forged newer generation, another address,
another node) is refused whatever the value is. Every signed gossip value,
present and future, gets this binding by going through :func:`seal` and
:func:`verify_sealed`; no struct needs its own fields for it.

Opening checks, in order: size, shape, JSON schema, owner, generation,
address, signature, then (separately, see :func:`check_age`) age. Each
failure has a stable reason string used as a metric label.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Protocol, TypeVar

import msgspec

from vudo.codec import DecodeFailure, decode_json
from vudo.errors import RemoteValueError
from vudo.identity import Identity, verify_signature

MAX_SIGNED_VALUE = 8192
#: Signatures are over this tag + the parts, never over bare JSON.
SIGNING_DOMAIN = b"vudo/sealed-value/v2\n"
#: How far in the future a timestamp may be (clock skew we tolerate).
MAX_CLOCK_SKEW = 30.0

# Reasons, used as metric labels.
OVERSIZE = "oversize"
MALFORMED = "malformed"
WRONG_OWNER = "wrong_owner"
WRONG_GENERATION = "wrong_generation"
WRONG_ADDR = "wrong_addr"
BAD_SIGNATURE = "bad_signature"
STALE = "stale"
FUTURE = "future"
REASONS = (OVERSIZE, MALFORMED, WRONG_OWNER, WRONG_GENERATION, WRONG_ADDR, BAD_SIGNATURE, STALE, FUTURE)


class Carrier(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The chitchat identity a value travels under: exactly one publisher incarnation."""

    node_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    generation: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    addr: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


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


def _signed_message(carrier: bytes, payload: bytes) -> bytes:
    return SIGNING_DOMAIN + len(carrier).to_bytes(4, "big") + carrier + payload


#: The carrier named by values sealed without one (see :func:`seal`).
UNBOUND_ADDR = "unbound"


def seal(identity: Identity, body: msgspec.Struct, *, carrier: Carrier | None = None) -> str:
    """Sign ``body`` for publication under the chitchat identity ``carrier``.

    Every gossip value should name its carrier. ``carrier=None`` seals a value
    bound to the owner only (generation 0, address ``unbound``): receivers can
    open it only with ``owner=``, never with a carrier.
    """
    head = _encoder.encode(carrier or Carrier(identity.node_id, 0, UNBOUND_ADDR))
    payload = _encoder.encode(body)
    signature = identity.sign(_signed_message(head, payload))
    value = f"{_b64(head)}.{_b64(payload)}.{_b64(signature)}"
    if len(value) > MAX_SIGNED_VALUE:
        raise ValueError(f"sealed value is {len(value)} bytes, above the {MAX_SIGNED_VALUE}-byte limit")
    return value


def open_sealed(value: str, kind: type[T], *, carrier: Carrier | None = None, owner: str | None = None,
                now: float, ttl: float) -> T:
    """Verify and decode a sealed value that arrived under ``carrier``.

    Raises :class:`RemoteValueError` with one of :data:`REASONS`.
    """
    return check_age(verify_sealed(value, kind, carrier=carrier, owner=owner), now=now, ttl=ttl)


def verify_sealed(value: str, kind: type[T], *, carrier: Carrier | None = None, owner: str | None = None) -> T:
    """The time-independent part of :func:`open_sealed`: size, shape, schema,
    owner, generation, address, signature.

    Its result for a given ``(value, kind, carrier)`` never changes, so
    callers that see the same value again and again may cache it and only
    repeat :func:`check_age`.
    """
    if (carrier is None) == (owner is None):
        raise TypeError("verify_sealed needs exactly one of carrier= or owner=")
    expected = carrier.node_id if carrier is not None else str(owner)
    if len(value) > MAX_SIGNED_VALUE:
        raise RemoteValueError(OVERSIZE, f"{len(value)} bytes > {MAX_SIGNED_VALUE}")
    parts = value.split(".")
    if len(parts) != 3:
        raise RemoteValueError(MALFORMED, "expected <carrier>.<body>.<signature>")
    try:
        head, payload, signature = (_unb64(p) for p in parts)
    except (binascii.Error, ValueError) as err:
        raise RemoteValueError(MALFORMED, f"bad base64: {err}") from None
    try:
        named = decode_json(head, Carrier, what="carrier", max_bytes=MAX_SIGNED_VALUE)
        body = decode_json(payload, kind, what="body", max_bytes=MAX_SIGNED_VALUE)
    except DecodeFailure as err:
        raise RemoteValueError(MALFORMED, str(err)) from None
    stamped: Stamped = body  # type: ignore[assignment]
    if named.node_id != expected or stamped.node_id != expected:
        raise RemoteValueError(
            WRONG_OWNER, f"value names {stamped.node_id} (carrier {named.node_id}), published by {expected}"
        )
    if carrier is not None and named.generation != carrier.generation:
        raise RemoteValueError(
            WRONG_GENERATION, f"value is bound to generation {named.generation}, carried by generation {carrier.generation}"
        )
    if carrier is not None and named.addr != carrier.addr:
        raise RemoteValueError(WRONG_ADDR, f"value is bound to {named.addr}, carried from {carrier.addr}")
    if not verify_signature(expected, _signed_message(head, payload), signature):
        raise RemoteValueError(BAD_SIGNATURE, f"signature does not match {expected}'s key")
    return body


def seal_detached(identity: Identity, body: msgspec.Struct) -> str:
    """Sign a *document* that does not travel as a gossip value (e.g. a spirit package's claim).

    ``<b64url(body)>.<b64url(signature over body)>``: nothing binds it to a
    chitchat identity, so never use it for gossip values -- use :func:`seal`.
    """
    payload = _encoder.encode(body)
    value = f"{_b64(payload)}.{_b64(identity.sign(payload))}"
    if len(value) > MAX_SIGNED_VALUE:
        raise ValueError(f"sealed value is {len(value)} bytes, above the {MAX_SIGNED_VALUE}-byte limit")
    return value


def verify_detached(value: str, kind: type[T], *, owner: str) -> T:
    """Open a :func:`seal_detached` document signed by ``owner``: size, shape, schema, owner, signature."""
    if len(value) > MAX_SIGNED_VALUE:
        raise RemoteValueError(OVERSIZE, f"{len(value)} bytes > {MAX_SIGNED_VALUE}")
    head, sep, tail = value.partition(".")
    if not sep or "." in tail:
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
        raise RemoteValueError(WRONG_OWNER, f"value names {stamped.node_id}, signed for {owner}")
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
