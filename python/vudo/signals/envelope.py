"""Gene ``Signal``: the signed envelope, its wire frames and their bounded decoder.

Theory of operation
-------------------
A signal is created once by its source and never changes on the way. The
source signs the canonical bytes of everything that defines it — protocol
version, source, signal type (with its parameters), payload, origin TTL,
timestamp and a random nonce — and the signal's id is the BLAKE2b-128 digest
of those same bytes. Because the id is derived, nobody can squat another
node's id to make receivers drop a real signal as a duplicate, and a
receiver that recomputes the id has already checked that the fields are the
ones that were signed.

What changes from hop to hop travels *outside* the signature, in the frame
that carries the signal: only ``hops``. The remaining TTL is ``ttl - hops``
and a gradient's strength is ``decay_factor ** hops``, so neither can be
inflated by a forwarder beyond what the source signed: ``hops`` is bounded
by the signed origin TTL (a frame with more hops is refused), it is 1 only
on a copy sent by its source itself and at least 2 on any other (checked
against the authenticated sender), so a forwarder that *lowers* ``hops`` can
at most pretend to be next to the source: its neighbours then read the
strength and reach of a node two hops from it, never more than the source
allowed.

Frames (:data:`Frame`) are msgpack, one per request on ``/vudo/signal/1``:

* :class:`Push` — a signal and its hop count (every mode);
* :class:`IHave` — lazy announcement of signal ids the sender holds (Plumtree);
* :class:`Graft` — "make this link eager, and send me this id if you have it";
* :class:`Prune` — "make this link lazy".

:func:`decode_frame` is the only decoder of remote bytes: it checks size
first, then shape and bounds (msgspec constraints), and raises
:class:`~vudo.errors.RemoteValueError` with a stable reason. :func:`verify`
then checks the id and the Ed25519 signature. Time-dependent checks (age,
TTL cap) belong to the receiving policy (:mod:`vudo.signals.network`).
"""

from __future__ import annotations

import hashlib
import math
from typing import Annotated, Final

import msgspec

from vudo.errors import RemoteValueError
from vudo.identity import Identity, verify_signature

#: Request/response protocol of signals on the hyphal links.
SIGNAL_PROTOCOL: Final = "/vudo/signal/1"
#: Version of the envelope; receivers refuse any other.
SIGNAL_VERSION: Final = 1
_DOMAIN: Final = "vudo/signal/1"

#: Hard limits of the format (the policy may set lower ones).
MAX_PAYLOAD: Final = 16 * 1024
MAX_TTL: Final = 255
MAX_FRAME: Final = MAX_PAYLOAD + 2048
MAX_IHAVE_IDS: Final = 64
ID_HEX_LEN: Final = 32

# Rejection reasons (metric labels). Every dropped frame is counted under one.
MALFORMED: Final = "malformed"
OVERSIZE: Final = "oversize"
UNSUPPORTED_VERSION: Final = "unsupported_version"
BAD_ID: Final = "bad_id"
BAD_SIGNATURE: Final = "bad_signature"
EXPIRED: Final = "expired"
FUTURE: Final = "future"
TTL_TOO_LARGE: Final = "ttl_too_large"
HOPS_EXCEEDED: Final = "hops_exceeded"
BAD_HOPS: Final = "bad_hops"
DUPLICATE: Final = "duplicate"
REPLAY_WINDOW: Final = "replay_window"
RATE_LIMITED: Final = "rate_limited"
QUARANTINED: Final = "quarantined"
REASONS: Final = (
    MALFORMED,
    OVERSIZE,
    UNSUPPORTED_VERSION,
    BAD_ID,
    BAD_SIGNATURE,
    EXPIRED,
    FUTURE,
    TTL_TOO_LARGE,
    HOPS_EXCEEDED,
    BAD_HOPS,
    DUPLICATE,
    REPLAY_WINDOW,
    RATE_LIMITED,
    QUARANTINED,
)
#: Reasons that are the sending peer's fault (they cost it reputation).
#: ``duplicate``, ``expired`` and ``rate_limited`` happen to honest peers too.
PEER_FAULTS: Final = frozenset({MALFORMED, OVERSIZE, UNSUPPORTED_VERSION, BAD_ID, BAD_SIGNATURE, TTL_TOO_LARGE, HOPS_EXCEEDED, BAD_HOPS, FUTURE})

NodeIdStr = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
SignalId = Annotated[str, msgspec.Meta(pattern=f"^[0-9a-f]{{{ID_HEX_LEN}}}$")]
Key = Annotated[str, msgspec.Meta(max_length=128)]
Unit = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
Ttl = Annotated[int, msgspec.Meta(ge=1, le=MAX_TTL)]
#: Links crossed by a copy on the wire: at least 1 (the source's own copy, 0, is never sent).
Hops = Annotated[int, msgspec.Meta(ge=1, le=MAX_TTL)]
Timestamp = Annotated[float, msgspec.Meta(ge=0.0, le=1e11)]
Payload = Annotated[bytes, msgspec.Meta(max_length=MAX_PAYLOAD)]
Nonce = Annotated[bytes, msgspec.Meta(min_length=8, max_length=8)]
Sig = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]


# -- gene SignalType -------------------------------------------------------------


class Flood(msgspec.Struct, frozen=True, tag="flood", array_like=True):
    """Broadcast to every node reachable within the TTL."""


class Gradient(msgspec.Struct, frozen=True, tag="gradient", array_like=True):
    """Strength 1.0 at the source, times ``decay_factor`` per hop; ``key`` names the field."""

    decay_factor: Unit
    key: Key = ""


class Directed(msgspec.Struct, frozen=True, tag="directed", array_like=True):
    """Routed toward ``target``; only the target handles it."""

    target: NodeIdStr


class Quorum(msgspec.Struct, frozen=True, tag="quorum", array_like=True):
    """One contribution to accumulator ``key``; fires at ``threshold`` of the network."""

    threshold: Unit
    key: Key = ""


class ActionPotential(msgspec.Struct, frozen=True, tag="action_potential", array_like=True):
    """All-or-nothing, urgent; further ones of the same ``key`` are ignored for the refractory period."""

    refractory_period_ms: Annotated[int, msgspec.Meta(ge=0, le=3_600_000)]
    key: Key = ""


SignalType = Flood | Gradient | Directed | Quorum | ActionPotential
KINDS: Final = ("flood", "gradient", "directed", "quorum", "action_potential")


def kind_of(signal_type: SignalType) -> str:
    """The tag of a signal type (``"flood"``, ``"gradient"``, ...)."""
    tag = type(signal_type).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


# -- gene Signal -----------------------------------------------------------------


class Signal(msgspec.Struct, frozen=True, array_like=True):
    """A signed signal, as its source created it (constraints ``authentic`` and ``alive``)."""

    v: int
    id: SignalId
    source: NodeIdStr
    signal_type: SignalType
    payload: Payload
    ttl: Ttl
    timestamp: Timestamp
    nonce: Nonce
    signature: Sig

    @property
    def kind(self) -> str:
        return kind_of(self.signal_type)


class _Signed(msgspec.Struct, frozen=True, array_like=True):
    domain: str
    v: int
    source: str
    signal_type: SignalType
    payload: bytes
    ttl: int
    timestamp: float
    nonce: bytes


_encoder = msgspec.msgpack.Encoder()


def signed_bytes(v: int, source: str, signal_type: SignalType, payload: bytes, ttl: int, timestamp: float, nonce: bytes) -> bytes:
    """The canonical bytes the source signs (and whose digest is the id)."""
    return _encoder.encode(_Signed(_DOMAIN, v, source, signal_type, payload, ttl, timestamp, nonce))


def signal_id(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=ID_HEX_LEN // 2).hexdigest()


def create(identity: Identity, signal_type: SignalType, payload: bytes, *, ttl: int, now: float, nonce: bytes) -> Signal:
    """Sign a new signal. Raises ``ValueError`` (the caller's mistake) on out-of-range input."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload is {len(payload)} bytes, above the {MAX_PAYLOAD}-byte limit")
    if not 1 <= ttl <= MAX_TTL:
        raise ValueError(f"ttl must be in [1, {MAX_TTL}], got {ttl}")
    if len(nonce) != 8:
        raise ValueError("nonce must be 8 bytes")
    if not math.isfinite(now) or now < 0:
        raise ValueError(f"timestamp must be a finite non-negative number, got {now!r}")
    _check_type(signal_type)
    body = signed_bytes(SIGNAL_VERSION, identity.node_id, signal_type, payload, ttl, now, nonce)
    return Signal(SIGNAL_VERSION, signal_id(body), identity.node_id, signal_type, payload, ttl, now, nonce, identity.sign(body))


def _check_type(signal_type: SignalType) -> None:
    # Constructing a struct in Python does not run msgspec's constraints; decoding does.
    try:
        msgspec.msgpack.decode(_encoder.encode(signal_type), type=SignalType)
    except msgspec.ValidationError as err:
        raise ValueError(f"invalid signal type: {err}") from None


def verify(signal: Signal) -> None:
    """Constraint ``authentic``: the id is the digest of the signed fields and the source signed them.

    Raises :class:`RemoteValueError` (``unsupported_version``, ``bad_id``, ``bad_signature``).
    """
    if signal.v != SIGNAL_VERSION:
        raise RemoteValueError(UNSUPPORTED_VERSION, f"signal version {signal.v}, this node speaks {SIGNAL_VERSION}")
    body = signed_bytes(signal.v, signal.source, signal.signal_type, signal.payload, signal.ttl, signal.timestamp, signal.nonce)
    if signal_id(body) != signal.id:
        raise RemoteValueError(BAD_ID, f"id {signal.id} is not the digest of the signal's fields")
    if not verify_signature(signal.source, body, signal.signature):
        raise RemoteValueError(BAD_SIGNATURE, f"signature does not match the key of source {signal.source}")


# -- frames ----------------------------------------------------------------------


class Push(msgspec.Struct, frozen=True, tag="push", array_like=True):
    """A signal and the links it crossed; ``spread`` marks a directed signal that is being flooded."""

    signal: Signal
    hops: Hops
    spread: bool = False


class Announce(msgspec.Struct, frozen=True, array_like=True):
    id: SignalId
    hops: Hops


class IHave(msgspec.Struct, frozen=True, tag="ihave", array_like=True):
    entries: Annotated[list[Announce], msgspec.Meta(min_length=1, max_length=MAX_IHAVE_IDS)]


class Graft(msgspec.Struct, frozen=True, tag="graft", array_like=True):
    id: SignalId | None


class Prune(msgspec.Struct, frozen=True, tag="prune", array_like=True):
    pass


Frame = Push | IHave | Graft | Prune


def frame_kind(data: bytes) -> str:
    """The tag of an encoded frame of ours (``push``, ``ihave``, ``graft``, ``prune``), without decoding it."""
    # A frame is a msgpack array whose first element is its tag, a short string (fixstr).
    return data[2 : 2 + (data[1] & 0x1F)].decode() if len(data) > 2 else "?"


def encode_frame(frame: Frame) -> bytes:
    return _encoder.encode(frame)


_frame_decoder: msgspec.msgpack.Decoder[Frame] = msgspec.msgpack.Decoder(Frame)


def decode_frame(data: bytes, *, max_bytes: int = MAX_FRAME) -> Frame:
    """Bounded decoder of remote bytes. Raises :class:`RemoteValueError` (``oversize``, ``malformed``, ``hops_exceeded``)."""
    if len(data) > max_bytes:
        raise RemoteValueError(OVERSIZE, f"frame of {len(data)} bytes, limit {max_bytes}")
    try:
        frame = _frame_decoder.decode(data)
    except msgspec.ValidationError as err:
        if "Expected `bytes` of length <=" in str(err):
            raise RemoteValueError(OVERSIZE, str(err)) from None
        raise RemoteValueError(MALFORMED, str(err)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as err:
        raise RemoteValueError(MALFORMED, f"not a msgpack frame ({err})") from None
    if isinstance(frame, Push) and frame.hops > frame.signal.ttl:
        raise RemoteValueError(HOPS_EXCEEDED, f"{frame.hops} hops on a signal whose TTL is {frame.signal.ttl}")
    if isinstance(frame, Push) and not math.isfinite(frame.signal.timestamp):
        raise RemoteValueError(MALFORMED, "timestamp is not a finite number")
    return frame
