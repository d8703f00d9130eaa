"""Fetching a ``.spirit`` package by sha256 over the links: protocol ``/vudo/spirit/1``.

Wire
----
One msgpack frame per request and per response. A request asks for one
chunk of one package: ``GetChunk(sha256, offset, length)`` with
``length <= MAX_CHUNK``. The answer is ``Chunk(sha256, offset, total, data)``
(``total`` = the package's size) or ``Refused(reason, detail)``. Decoders
are bounded (frame size, field types and ranges) before anything is used.

Serving (:class:`ChunkServer`)
------------------------------
A node serves only packages it has installed (``lookup(sha256)`` gives
a :class:`PackageSource` — size and ranged reads, so a request costs one
read of at most a chunk, never a read or hash of the whole package — or
None: ``unknown_hash``). Each peer has a token bucket
(:data:`SERVE_RATE` requests per second, burst :data:`SERVE_BURST`); a
request beyond it is refused ``rate_limited`` and costs nothing more.
Malformed requests are refused ``bad_request``, ranges outside the package
``bad_range``. Every refusal is counted by reason.

Theory of operation (:class:`PackageFetch`)
-------------------------------------------
One download of one package, known by its sha256 and size from a verified
catalogue, from an ordered list of candidate peers that offer it. The
machine asks one peer at a time, keeping at most ``window`` chunk requests
in flight (the client's bound on its own request rate), in offset order.
Each response is checked against the request it answers: right hash,
offset and total, exactly the requested length (the last chunk shorter,
ending at ``total``). A ``rate_limited`` refusal is the source asking us
to slow down: the chunk is asked again after a backoff (doubling, reset by
the next chunk that arrives), and only :data:`MAX_RATE_LIMITED` of them in a
row fail the source. Any other deviation, refusal, a failed request or a
peer that stays silent past ``stall_timeout`` fails that peer: its bytes
are dropped and the download restarts from offset 0 with the next
candidate. When every byte is in, the whole is hashed: a mismatch fails
the peer too. The first complete, matching download is :class:`Completed`;
when no candidate is left, :class:`Failed` names what went wrong with each.
The caller then verifies the package's signature (``read_package``) before
installing it.

The machine never does I/O and never reads a clock: it returns
``SendRequest`` instructions and events; ``now`` comes with every input.
Request ids come from an injected allocator (unique per node and protocol).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Protocol

import msgspec

from vudo.hyphal.linkproto import RequestFailed, ResponseReceived, SendRequest
from vudo.spirits.package import MAX_ARCHIVE_BYTES

SPIRIT_PROTOCOL = "/vudo/spirit/1"
MAX_CHUNK = 256 * 1024
#: Largest frame either side accepts (a chunk plus its header).
MAX_FRAME = MAX_CHUNK + 1024
DEFAULT_WINDOW = 4
#: Per peer: requests per second served, and the burst allowed.
SERVE_RATE = 200.0
SERVE_BURST = 64
#: A source that answers ``rate_limited``: retry the chunk after a backoff (doubling from
#: RETRY_FIRST_S to RETRY_MAX_S); this many rate-limited answers in a row fail the source.
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 2.0
MAX_RATE_LIMITED = 40
#: Peers remembered by the rate limiter (least recently seen dropped first).
MAX_TRACKED_PEERS = 1024

_Sha = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
_Offset = Annotated[int, msgspec.Meta(ge=0, le=MAX_ARCHIVE_BYTES)]


class GetChunk(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="get"):
    sha256: _Sha
    offset: _Offset
    length: Annotated[int, msgspec.Meta(ge=1, le=MAX_CHUNK)]


class Chunk(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="chunk"):
    sha256: _Sha
    offset: _Offset
    total: Annotated[int, msgspec.Meta(ge=1, le=MAX_ARCHIVE_BYTES)]
    data: Annotated[bytes, msgspec.Meta(max_length=MAX_CHUNK)]


class Refused(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="refused"):
    reason: Annotated[str, msgspec.Meta(max_length=64)]
    detail: Annotated[str, msgspec.Meta(max_length=300)] = ""


Response = Chunk | Refused

_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(GetChunk)
_response_decoder = msgspec.msgpack.Decoder(Response)


def encode(frame: GetChunk | Chunk | Refused) -> bytes:
    return _encoder.encode(frame)


def decode_request(payload: bytes) -> GetChunk:
    """Raises ``ValueError`` (the peer's fault) for anything but a valid request."""
    if len(payload) > 1024:
        raise ValueError(f"request of {len(payload)} bytes")
    try:
        return _request_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise ValueError(str(err)) from None


def decode_response(payload: bytes) -> Response:
    if len(payload) > MAX_FRAME:
        raise ValueError(f"response of {len(payload)} bytes, above {MAX_FRAME}")
    try:
        frame: Response = _response_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise ValueError(str(err)) from None
    return frame


# -- serving ---------------------------------------------------------------------------------


class PackageSource(Protocol):
    """An installed package's bytes, read by range (the fetcher checks the hash of the whole)."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class BytesSource:
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset:offset + length]


@dataclass
class _Bucket:
    tokens: float
    at: float


class ChunkServer:
    """Answers ``GetChunk`` requests from installed packages, rate-limited per peer."""

    def __init__(self, lookup: Callable[[str], PackageSource | None], *, rate: float = SERVE_RATE, burst: int = SERVE_BURST) -> None:
        self.lookup = lookup
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}
        self.refused: dict[str, int] = {}
        self.served_bytes = 0

    def _allow(self, peer: str, now: float) -> bool:
        bucket = self._buckets.pop(peer, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + max(0.0, now - bucket.at) * self.rate)
        bucket.at = now
        self._buckets[peer] = bucket  # re-inserted: dict order = least recently seen first
        while len(self._buckets) > MAX_TRACKED_PEERS:
            self._buckets.pop(next(iter(self._buckets)))
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _refuse(self, reason: str, detail: str) -> bytes:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        return encode(Refused(reason, detail[:300]))

    def handle(self, peer: str, payload: bytes, now: float) -> bytes:
        """The response to one request (always an answer: a refusal names its reason)."""
        if not self._allow(peer, now):
            return self._refuse("rate_limited", f"more than {self.rate:g} requests/s; slow down")
        try:
            request = decode_request(payload)
        except ValueError as err:
            return self._refuse("bad_request", str(err))
        source = self.lookup(request.sha256)
        if source is None:
            return self._refuse("unknown_hash", f"this node does not offer package {request.sha256[:16]}")
        if request.offset >= source.size:
            return self._refuse("bad_range", f"offset {request.offset} is beyond the package's {source.size} bytes")
        try:
            piece = source.read(request.offset, min(request.length, source.size - request.offset))
        except OSError as err:
            return self._refuse("unavailable", f"cannot read the package here: {err.strerror}")
        self.served_bytes += len(piece)
        return encode(Chunk(request.sha256, request.offset, source.size, piece))


# -- fetching --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Progress:
    id: int
    peer: str
    received: int
    total: int


@dataclass(frozen=True, slots=True)
class PeerFailed:
    id: int
    peer: str
    reason: str  # refused:<reason> | request_failed | bad_frame | wrong_hash | wrong_offset | wrong_total | short_chunk | oversize_chunk | stalled | hash_mismatch
    detail: str


@dataclass(frozen=True, slots=True)
class Completed:
    id: int
    peer: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Failed:
    id: int
    reason: str  # no_source
    message: str


FetchEvent = Progress | PeerFailed | Completed | Failed
FetchOutput = SendRequest | FetchEvent

_event_ids = itertools.count(1)


@dataclass
class PackageFetch:
    sha256: str
    size: int
    candidates: list[str]
    next_request_id: Callable[[], int]
    window: int = DEFAULT_WINDOW
    chunk: int = MAX_CHUNK
    stall_timeout: float = 15.0
    peer: str | None = None
    tried: list[tuple[str, str]] = field(default_factory=list)  # (peer, reason) of each failed source
    done: bool = False
    _parts: dict[int, bytes] = field(default_factory=dict)
    _pending: dict[int, int] = field(default_factory=dict)  # request id -> offset
    _next_offset: int = 0
    _received: int = 0
    _last_heard: float = 0.0
    _retry: list[int] = field(default_factory=list)  # offsets to ask again (the source was rate-limiting)
    _retry_at: float = 0.0
    _backoff: float = RETRY_FIRST_S
    _limited: int = 0  # rate-limited answers in a row

    def __post_init__(self) -> None:
        if not 1 <= self.size <= MAX_ARCHIVE_BYTES:
            raise ValueError(f"package size {self.size} is outside 1..{MAX_ARCHIVE_BYTES}")
        if not 1 <= self.chunk <= MAX_CHUNK or not 1 <= self.window <= 64:
            raise ValueError("chunk must be 1..MAX_CHUNK bytes and window 1..64 requests")
        self.candidates = list(dict.fromkeys(self.candidates))

    @property
    def received(self) -> int:
        return self._received

    # -- inputs ------------------------------------------------------------------------------

    def start(self, now: float) -> list[FetchOutput]:
        return self._next_peer(now)

    def receive(self, event: ResponseReceived | RequestFailed) -> list[FetchOutput]:
        if self.done or event.request_id not in self._pending or event.peer != self.peer:
            return []  # a late answer from a peer we already gave up on, or not ours
        offset = self._pending.pop(event.request_id)
        self._last_heard = event.now
        if isinstance(event, RequestFailed):
            return self._fail_peer("request_failed", event.reason, event.now)
        try:
            frame = decode_response(event.payload)
        except ValueError as err:
            return self._fail_peer("bad_frame", str(err), event.now)
        if isinstance(frame, Refused) and frame.reason == "rate_limited":
            self._limited += 1
            if self._limited > MAX_RATE_LIMITED:
                return self._fail_peer("refused:rate_limited", f"{self._limited} rate-limited answers in a row", event.now)
            self._retry.append(offset)
            self._retry_at = max(self._retry_at, event.now + self._backoff)
            self._backoff = min(RETRY_MAX_S, self._backoff * 2)
            return []
        if isinstance(frame, Refused):
            return self._fail_peer(f"refused:{frame.reason}"[:64], frame.detail, event.now)
        expected = min(self.chunk, self.size - offset)
        problem = (
            ("wrong_hash", f"answered for {frame.sha256[:16]}") if frame.sha256 != self.sha256 else
            ("wrong_offset", f"answered offset {frame.offset}, asked {offset}") if frame.offset != offset else
            ("wrong_total", f"says the package has {frame.total} bytes, the catalogue {self.size}") if frame.total != self.size else
            ("oversize_chunk", f"{len(frame.data)} bytes, asked {expected}") if len(frame.data) > expected else
            ("short_chunk", f"{len(frame.data)} bytes, asked {expected}") if len(frame.data) < expected else
            None
        )
        if problem is not None:
            return self._fail_peer(problem[0], problem[1], event.now)
        self._parts[offset] = frame.data
        self._received += len(frame.data)
        self._limited, self._backoff = 0, RETRY_FIRST_S
        out: list[FetchOutput] = [Progress(next(_event_ids), self.peer, self._received, self.size)]
        if self._received == self.size:
            data = b"".join(self._parts[o] for o in sorted(self._parts))
            if hashlib.sha256(data).hexdigest() != self.sha256:
                return out + self._fail_peer("hash_mismatch", "the bytes do not hash to the advertised sha256", event.now)
            self.done = True
            self._parts.clear()
            return out + [Completed(next(_event_ids), self.peer, data)]
        return out + self._fill(event.now)

    def handle_timer(self, now: float) -> list[FetchOutput]:
        if self.done or self.peer is None:
            return []
        if self._retry and now >= self._retry_at:
            return self._fill(now)
        if not self._pending:
            return []
        if now - self._last_heard > self.stall_timeout:
            return self._fail_peer("stalled", f"no answer for {self.stall_timeout:g}s", now)
        return []

    def reject(self, reason: str, detail: str, now: float) -> list[FetchOutput]:
        """The caller found the completed bytes unusable (e.g. the signature): try the next peer."""
        self.done = False
        return self._fail_peer(reason, detail, now)

    # -- internals ---------------------------------------------------------------------------

    def _fill(self, now: float) -> list[FetchOutput]:
        """Requests up to the window: chunks to ask again first (once their backoff is over), then new ones."""
        assert self.peer is not None
        out: list[FetchOutput] = []
        idle = not self._pending
        while len(self._pending) < self.window:
            if self._retry:
                if now < self._retry_at:
                    break  # the source asked us to slow down: nothing new either
                offset = self._retry.pop(0)
            elif self._next_offset < self.size:
                offset = self._next_offset
                self._next_offset += min(self.chunk, self.size - offset)
            else:
                break
            length = min(self.chunk, self.size - offset)
            request_id = self.next_request_id()
            self._pending[request_id] = offset
            out.append(SendRequest(self.peer, SPIRIT_PROTOCOL, request_id, encode(GetChunk(self.sha256, offset, length))))
        if out and idle:
            self._last_heard = now  # the stall clock runs only while something is asked
        return out

    def _fail_peer(self, reason: str, detail: str, now: float) -> list[FetchOutput]:
        assert self.peer is not None
        failed = PeerFailed(next(_event_ids), self.peer, reason, detail[:300])
        self.tried.append((self.peer, reason))
        return [failed, *self._next_peer(now)]

    def _next_peer(self, now: float) -> list[FetchOutput]:
        self._parts.clear()
        self._pending.clear()
        self._retry.clear()
        self._next_offset = self._received = self._limited = 0
        self._backoff, self._retry_at = RETRY_FIRST_S, 0.0
        if not self.candidates:
            self.done = True
            self.peer = None
            tried = "; ".join(f"{p[:16]}…: {r}" for p, r in self.tried) or "nobody offers it"
            return [Failed(next(_event_ids), "no_source", f"no node delivered package {self.sha256[:16]} ({tried})")]
        self.peer = self.candidates.pop(0)
        self._last_heard = now
        return self._fill(now)
