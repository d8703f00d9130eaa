"""Messages of :data:`~vudo.hyphal.linkproto.HYPHAL_PROTOCOL` (request/response over a link).

Every payload is one JSON object with a ``type`` tag, decoded by the one
bounded decoder (:func:`vudo.codec.decode_json`) into a frozen msgspec
struct; anything else is a :class:`~vudo.errors.RemoteValueError` with
reason ``malformed`` (or ``oversize``/``version``), never another exception.

Requests and their answers:

=====================  =========================================
request                response
=====================  =========================================
``Hello``              ``HelloAck`` or ``Refusal``
``IntroductionAsk``    ``Introductions`` (or ``Refusal``)
``Goodbye``            ``GoodbyeAck``
=====================  =========================================
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from vudo.codec import DecodeFailure, decode_json
from vudo.errors import RemoteValueError
from vudo.hyphal.signed import MAX_SIGNED_VALUE

WIRE_VERSION = 1
#: Most announcements one Introductions answer may carry.
MAX_INTRODUCTIONS = 8
#: No message is larger than this (the biggest is Introductions).
MAX_MESSAGE = (MAX_INTRODUCTIONS + 1) * (MAX_SIGNED_VALUE + 256)

CapabilityKind = Literal["compute", "storage", "gateway", "witness"]
_Sealed = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SIGNED_VALUE)]
_NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_Reason = Annotated[str, msgspec.Meta(max_length=64)]
_Version = Annotated[int, msgspec.Meta(ge=0, le=2**16)]


class _Msg(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    pass


class Hello(_Msg, frozen=True, forbid_unknown_fields=True, tag="hello"):
    """Our sealed announcement and what we seek; sent by both ends when a connection opens."""

    version: _Version
    announcement: _Sealed
    seeks: Annotated[tuple[CapabilityKind, ...], msgspec.Meta(max_length=4)] = ()


class HelloAck(_Msg, frozen=True, forbid_unknown_fields=True, tag="hello_ack"):
    """Your Hello verified and you are compatible: we consider the link fused once we verify yours."""

    version: _Version


class Refusal(_Msg, frozen=True, forbid_unknown_fields=True, tag="refusal"):
    reason: _Reason


class Introduction(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    node_id: _NodeId
    announcement: _Sealed


class IntroductionAsk(_Msg, frozen=True, forbid_unknown_fields=True, tag="introduction_ask"):
    limit: Annotated[int, msgspec.Meta(ge=0, le=MAX_INTRODUCTIONS)]


class Introductions(_Msg, frozen=True, forbid_unknown_fields=True, tag="introductions"):
    peers: Annotated[tuple[Introduction, ...], msgspec.Meta(max_length=MAX_INTRODUCTIONS)]


class Goodbye(_Msg, frozen=True, forbid_unknown_fields=True, tag="goodbye"):
    reason: _Reason


class GoodbyeAck(_Msg, frozen=True, forbid_unknown_fields=True, tag="goodbye_ack"):
    pass


Request = Hello | IntroductionAsk | Goodbye
Response = HelloAck | Refusal | Introductions | GoodbyeAck
Message = Request | Response

_encoder = msgspec.json.Encoder()


def encode(message: Message) -> bytes:
    data = _encoder.encode(message)
    if len(data) > MAX_MESSAGE:  # only a local bug can get here: every field is bounded
        raise ValueError(f"hyphal message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    return data


def _decode(payload: bytes, kind: type[Message], what: str) -> Message:
    if len(payload) > MAX_MESSAGE:
        raise RemoteValueError("oversize", f"{what}: {len(payload)} bytes > {MAX_MESSAGE}")
    try:
        return decode_json(payload, kind, what=what, max_bytes=MAX_MESSAGE)
    except DecodeFailure as err:
        raise RemoteValueError("malformed", str(err)) from None


def decode_request(payload: bytes) -> Request:
    message = _decode(payload, Request, "hyphal request")  # type: ignore[arg-type]
    if isinstance(message, Hello) and message.version != WIRE_VERSION:
        raise RemoteValueError("version", f"hello version {message.version}, we speak {WIRE_VERSION}")
    return message  # type: ignore[return-value]


def decode_response(payload: bytes) -> Response:
    message = _decode(payload, Response, "hyphal response")  # type: ignore[arg-type]
    if isinstance(message, HelloAck) and message.version != WIRE_VERSION:
        raise RemoteValueError("version", f"hello_ack version {message.version}, we speak {WIRE_VERSION}")
    return message  # type: ignore[return-value]
