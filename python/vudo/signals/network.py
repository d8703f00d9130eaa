"""System ``SignalNetwork``: one node's signal policy, sans I/O.

Theory of operation
-------------------
The signals service feeds this class with what the link engine reports for
protocol ``/vudo/signal/1`` (:class:`~vudo.hyphal.linkproto.LinkUp`,
``LinkDown``, ``RequestReceived``, ``ResponseReceived``, ``RequestFailed``),
with verified membership (:class:`MembershipChanged`) and the known topology
(:class:`TopologyChanged`), with local emissions (:meth:`SignalNetwork.emit`)
and with time (:meth:`SignalNetwork.handle_timer`). Every call carries
``now``; randomness (signal nonces) comes from the injected RNG.

Calls return *outputs*: ``Respond`` for the engine, and events for the
service — :class:`Delivered` (hand the signal to local handlers),
:class:`QuorumFired`, :class:`SignalRejected`, :class:`PeerPenalized`,
:class:`ActionPotentialIgnored`. Frames to send are queued, urgent first,
and taken with :meth:`SignalNetwork.poll_sends` as ``SendRequest``
instructions — so an action potential overtakes whatever is queued.

Every incoming request passes, in order: the sender's quarantine, its rate
limit (token bucket), the bounded frame decoder, the payload and TTL caps,
dedup (a copy of a handled id must carry the same signature), age (expired,
future, below the dedup floor), and the id and signature check. A frame
that fails is answered with its reason, counted under it, never forwarded
and never handled; failures that are the sender's fault raise its penalty
score, and a peer whose score crosses the limit is reported
(:class:`PeerPenalized`) and quarantined until the score decays.

Valid new signals go to their mode: flood and quorum over the Plumtree
broadcast tree (or plain flooding), gradient with decay, directed by
route, action potential to every link at once. See each mode's module.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from vudo.errors import RemoteValueError
from vudo.hyphal.linkproto import LinkDown, LinkUp, RequestFailed, RequestReceived, Respond, ResponseReceived, SendRequest
from vudo.identity import Identity
from vudo.signals import envelope as env
from vudo.signals.action_potential import Refractory
from vudo.signals.dedup import DedupCache
from vudo.signals.directed import TopologyView
from vudo.signals.envelope import (
    SIGNAL_PROTOCOL,
    ActionPotential,
    Directed,
    Flood,
    Frame,
    Gradient,
    Graft,
    IHave,
    Prune,
    Push,
    Quorum,
    Signal,
    SignalType,
)
from vudo.signals.flood import Out, PlainFlood, Plumtree
from vudo.signals.gradient import GradientField
from vudo.signals.quorum import Fired, QuorumState

FloodAlgorithm = Literal["plumtree", "plain"]


@dataclass(frozen=True, slots=True)
class SignalConfig:
    max_payload: int = 4096
    max_ttl: int = 32
    default_ttl: int = 16
    #: A signal older than this (by its signed timestamp) is expired.
    max_age: float = 60.0
    max_clock_skew: float = 30.0
    dedup_capacity: int = 50_000
    #: Per-peer token bucket: frames per second, and burst.
    peer_rate: float = 200.0
    peer_burst: float = 400.0
    flood: FloodAlgorithm = "plumtree"
    ihave_timeout: float = 0.5
    graft_timeout: float = 0.25
    max_graft_attempts: int = 8
    min_strength: float = 0.05
    #: Resends of a push or an announcement whose request failed (link still up).
    push_retries: int = 2
    #: First wait before resending a frame the peer refused as rate limited (doubles each time).
    retry_delay: float = 0.2
    #: Penalty score at which a peer is reported and quarantined; it halves every ``penalty_half_life`` s.
    penalty_limit: float = 20.0
    penalty_half_life: float = 60.0
    #: Unanswered pushes remembered for resending, and signals held to answer grafts: each may hold a
    #: payload, so these bound the memory a flood of large signals can take (10 000 x 4 KiB = 40 MiB).
    max_pending: int = 10_000
    held_capacity: int = 10_000

    def __post_init__(self) -> None:
        if not 1 <= self.default_ttl <= self.max_ttl <= env.MAX_TTL:
            raise ValueError(f"need 1 <= default_ttl <= max_ttl <= {env.MAX_TTL}")
        if not 0 < self.max_payload <= env.MAX_PAYLOAD:
            raise ValueError(f"max_payload must be in (0, {env.MAX_PAYLOAD}]")
        if self.max_age <= 0 or self.max_clock_skew < 0:
            raise ValueError("max_age must be positive and max_clock_skew non-negative")


# -- events in (besides the link engine's) ---------------------------------------


@dataclass(frozen=True, slots=True)
class MembershipChanged:
    """Verified live members (node ids, this node included): the network size for quorums."""

    members: frozenset[str]
    now: float


@dataclass(frozen=True, slots=True)
class TopologyChanged:
    """Known links between nodes (undirected), for routing directed signals."""

    edges: tuple[tuple[str, str], ...]
    now: float


SignalEvent = LinkUp | LinkDown | RequestReceived | ResponseReceived | RequestFailed | MembershipChanged | TopologyChanged


# -- outputs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivered:
    """Hand ``signal`` to the local handlers of its kind (exactly once per signal)."""

    id: int
    signal: Signal
    hops: int
    strength: float | None
    urgent: bool
    now: float


@dataclass(frozen=True, slots=True)
class QuorumFired:
    id: int
    key: str
    threshold: float
    contributors: int
    network_size: int
    now: float


@dataclass(frozen=True, slots=True)
class ActionPotentialIgnored:
    id: int
    signal_id: str
    key: str
    now: float


@dataclass(frozen=True, slots=True)
class SignalRejected:
    id: int
    peer: str
    reason: str
    detail: str
    now: float


@dataclass(frozen=True, slots=True)
class PeerPenalized:
    """``peer`` kept sending invalid signals: lower its reputation (it is quarantined here)."""

    id: int
    peer: str
    score: float
    last_reason: str
    now: float


SignalOutput = Respond | Delivered | QuorumFired | ActionPotentialIgnored | SignalRejected | PeerPenalized


# -- per-peer limits ---------------------------------------------------------------


@dataclass(slots=True)
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    at: float

    def take(self, now: float) -> bool:
        if now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class Penalty:
    score: float = 0.0
    at: float = 0.0
    quarantined: bool = False

    def decay(self, now: float, half_life: float) -> float:
        if now > self.at:
            self.score *= 0.5 ** ((now - self.at) / half_life)
            self.at = now
        return self.score


@dataclass(slots=True)
class _Pending:
    peer: str
    frame: Frame
    attempts: int
    urgent: bool


@dataclass(slots=True)
class _Route:
    hops: int
    sender: str | None
    tried: set[str] = field(default_factory=set)
    spread: bool = False


Handler = Callable[[Delivered], None]


class SignalNetwork:
    """One node's signal policy (see the module's theory of operation)."""

    def __init__(self, identity: Identity, *, config: SignalConfig | None = None, rng: random.Random) -> None:
        self.identity = identity
        self.node_id = identity.node_id
        self.config = cfg = config or SignalConfig()
        self.rng = rng
        retention = cfg.max_age + cfg.max_clock_skew
        self.dedup = DedupCache(capacity=cfg.dedup_capacity, retention=retention)
        self.broadcast: Plumtree | PlainFlood = (
            Plumtree(
                ihave_timeout=cfg.ihave_timeout,
                graft_timeout=cfg.graft_timeout,
                max_graft_attempts=cfg.max_graft_attempts,
                capacity=cfg.held_capacity,
                retention=retention,
            )
            if cfg.flood == "plumtree"
            else PlainFlood()
        )
        self.gradients = GradientField(min_strength=cfg.min_strength, retention=retention, capacity=cfg.dedup_capacity)
        self.quorum = QuorumState(retention=retention, capacity=1024)
        self.refractory = Refractory()
        self.topology = TopologyView(self.node_id)
        self.links: set[str] = set()
        self.rejected: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self._buckets: dict[str, TokenBucket] = {}
        self._penalties: dict[str, Penalty] = {}
        self._routes: OrderedDict[str, _Route] = OrderedDict()
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._delayed: list[tuple[float, int, _Pending]] = []
        self._urgent: deque[SendRequest] = deque()
        self._normal: deque[SendRequest] = deque()
        self._request_ids = itertools.count(1)
        self._event_ids = itertools.count(1)

    # -- public API ----------------------------------------------------------------

    def emit(self, signal_type: SignalType, payload: bytes, *, now: float, ttl: int | None = None) -> tuple[Signal, list[SignalOutput]]:
        """Create, sign and send a signal from this node. ``ValueError`` on bad arguments (caller's fault)."""
        cfg = self.config
        ttl = cfg.default_ttl if ttl is None else ttl
        if not 1 <= ttl <= cfg.max_ttl:
            raise ValueError(f"ttl must be in [1, {cfg.max_ttl}], got {ttl}")
        if len(payload) > cfg.max_payload:
            raise ValueError(f"payload is {len(payload)} bytes, above this node's {cfg.max_payload}-byte limit")
        signal = env.create(self.identity, signal_type, payload, ttl=ttl, now=now, nonce=self.rng.randbytes(8))
        self.dedup.add(signal.id, signal.timestamp, now, signal.signature)
        self.stats["emitted"] += 1
        return signal, self._handle_new(signal, 0, sender=None, spread=False, now=now)

    def receive(self, event: SignalEvent) -> list[SignalOutput]:
        match event:
            case LinkUp(peer=peer, now=now):
                self.links.add(peer)
                self.broadcast.link_up(peer)
                self.topology.link_up(peer)
                self._update_horizon()
                self._buckets[peer] = TokenBucket(self.config.peer_rate, self.config.peer_burst, self.config.peer_burst, now)
                return []
            case LinkDown(peer=peer):
                self.links.discard(peer)
                self.broadcast.link_down(peer)
                self.topology.link_down(peer)
                self._update_horizon()
                self._buckets.pop(peer, None)
                return []
            case RequestReceived(protocol=protocol) if protocol != SIGNAL_PROTOCOL:
                return []
            case RequestReceived():
                return self._on_request(event)
            case ResponseReceived(protocol=protocol, request_id=rid, payload=payload, now=now) if protocol == SIGNAL_PROTOCOL:
                pending = self._pending.pop(rid, None)
                if payload and pending is not None:
                    self.stats[f"refused_by_peer:{payload[:32].decode(errors='replace')}"] += 1
                    if payload == env.RATE_LIMITED.encode():
                        # Honest traffic over a busy link: try again later rather than lose it.
                        self._retry(pending, now, delay=self.config.retry_delay * 2**pending.attempts)
                return []
            case RequestFailed(protocol=protocol) if protocol == SIGNAL_PROTOCOL:
                return self._on_failed(event)
            case MembershipChanged(members=members, now=now):
                fired = self.quorum.set_members(members, now)
                self._update_horizon()
                return [self._fired(f) for f in fired]
            case TopologyChanged(edges=edges):
                self.topology.update(edges)
                self._update_horizon()
                return []
        return []

    def _update_horizon(self) -> None:
        if isinstance(self.broadcast, Plumtree):
            self.broadcast.horizon = self.topology.eccentricity(self.quorum.network_size)

    def handle_timer(self, now: float) -> list[SignalOutput]:
        self.dedup.expire(now)
        self._enqueue(self.broadcast.handle_timer(now), urgent=False)
        while self._delayed and self._delayed[0][0] <= now:
            _, _, pending = heapq.heappop(self._delayed)
            self._retry(pending, now, delay=0.0)
        return []

    def next_timer(self) -> float | None:
        """When :meth:`handle_timer` next has work (None: nothing scheduled)."""
        deadlines = [self._delayed[0][0]] if self._delayed else []
        if isinstance(self.broadcast, Plumtree) and (d := self.broadcast.next_deadline()) is not None:
            deadlines.append(d)
        return min(deadlines, default=None)

    def poll_sends(self, limit: int | None = None) -> list[SendRequest]:
        """Frames to send, urgent first (``limit``: at most this many)."""
        out: list[SendRequest] = []
        for queue in (self._urgent, self._normal):
            while queue and (limit is None or len(out) < limit):
                out.append(queue.popleft())
        return out

    @property
    def queued(self) -> int:
        return len(self._urgent) + len(self._normal)

    def read_gradient(self, key: str = "", *, now: float) -> list[tuple[str, float]]:
        return self.gradients.read_gradient(key, now=now)

    def penalty(self, peer: str, now: float) -> float:
        p = self._penalties.get(peer)
        return 0.0 if p is None else p.decay(now, self.config.penalty_half_life)

    # -- incoming ------------------------------------------------------------------

    def _on_request(self, event: RequestReceived) -> list[SignalOutput]:
        peer, now = event.peer, event.now
        penalty = self._penalties.get(peer)
        if penalty is not None and penalty.quarantined:
            if penalty.decay(now, self.config.penalty_half_life) < self.config.penalty_limit / 2:
                penalty.quarantined = False
            else:
                return self._reject(event, env.QUARANTINED, "peer sent too many invalid signals")
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = self._buckets[peer] = TokenBucket(self.config.peer_rate, self.config.peer_burst, self.config.peer_burst, now)
        if not bucket.take(now):
            return self._reject(event, env.RATE_LIMITED, f"more than {self.config.peer_rate:g} frames/s")
        try:
            frame = env.decode_frame(event.payload, max_bytes=self.config.max_payload + 2048)
            out = self._on_frame(peer, frame, now)
        except RemoteValueError as err:
            return self._reject(event, err.reason, err.detail)
        return [Respond(event.channel, b""), *out]

    def _on_frame(self, peer: str, frame: Frame, now: float) -> list[SignalOutput]:
        match frame:
            case Push():
                return self._on_push(peer, frame, now)
            case IHave(entries=entries):
                self._enqueue(self.broadcast.on_ihave(peer, entries, now, self.dedup.__contains__), urgent=False)
            case Graft(id=signal_id):
                self._enqueue(self.broadcast.on_graft(peer, signal_id, now), urgent=False)
            case Prune():
                self.broadcast.on_prune(peer)
        return []

    def _on_push(self, peer: str, frame: Push, now: float) -> list[SignalOutput]:
        cfg, signal, hops = self.config, frame.signal, frame.hops
        if len(signal.payload) > cfg.max_payload:
            raise RemoteValueError(env.OVERSIZE, f"payload of {len(signal.payload)} bytes, limit {cfg.max_payload}")
        if signal.ttl > cfg.max_ttl:
            raise RemoteValueError(env.TTL_TOO_LARGE, f"ttl {signal.ttl}, limit {cfg.max_ttl}")
        if hops < 2 and peer != signal.source:
            raise RemoteValueError(env.BAD_HOPS, f"{hops} hop from {peer}, which is not the source {signal.source}")
        known = self.dedup.tag(signal.id)
        if known is not None:
            if known != signal.signature:
                # Either a forgery, or the source itself signed twice (Ed25519 allows other valid
                # signatures): only a bad one is the forwarder's fault. Either way it is not used.
                env.verify(signal)
            self.rejected[env.DUPLICATE] += 1
            self._handle_duplicate(peer, frame, now)
            return []
        age = now - signal.timestamp
        if age > cfg.max_age:
            raise RemoteValueError(env.EXPIRED, f"{age:.1f}s old, limit {cfg.max_age:g}s")
        if age < -cfg.max_clock_skew:
            raise RemoteValueError(env.FUTURE, f"timestamp {-age:.1f}s ahead of this node's clock")
        if self.dedup.below_floor(signal.timestamp):
            raise RemoteValueError(env.REPLAY_WINDOW, "older than ids this node had to forget early")
        env.verify(signal)
        self.dedup.add(signal.id, signal.timestamp, now, signal.signature)
        return self._handle_new(signal, hops, sender=peer, spread=frame.spread, now=now)

    def _handle_new(self, signal: Signal, hops: int, *, sender: str | None, spread: bool, now: float) -> list[SignalOutput]:
        st = signal.signal_type
        out: list[SignalOutput] = []
        match st:
            case Flood():
                out.append(self._deliver(signal, hops, None, now))
                self._enqueue(self._broadcast(signal, hops, sender, now), urgent=False)
            case Quorum(threshold=threshold, key=key):
                out.append(self._deliver(signal, hops, None, now))
                fired = self.quorum.contribute(key, threshold, signal.source, now)
                if fired is not None:
                    out.append(self._fired(fired))
                self._enqueue(self._broadcast(signal, hops, sender, now), urgent=False)
            case Gradient():
                value = self.gradients.observe(signal, hops, now)
                out.append(self._deliver(signal, hops, value, now))
                if self.gradients.should_forward(signal, hops):
                    self._enqueue(self._to_all(signal, hops, sender), urgent=False)
            case Directed(target=target):
                if target == self.node_id:
                    out.append(self._deliver(signal, hops, None, now))
                else:
                    self._route(signal, hops, sender, spread)
            case ActionPotential(refractory_period_ms=period_ms, key=key):
                if self.refractory.fire(key, period_ms / 1000.0, now):
                    out.append(self._deliver(signal, hops, None, now, urgent=True))
                    self._enqueue(self._to_all(signal, hops, sender), urgent=True)
                else:
                    self.stats["refractory_ignored"] += 1
                    out.append(ActionPotentialIgnored(next(self._event_ids), signal.id, key, now))
        return out

    def _handle_duplicate(self, peer: str, frame: Push, now: float) -> None:
        signal, hops = frame.signal, frame.hops
        match signal.signal_type:
            case Flood() | Quorum():
                self._enqueue(self.broadcast.on_push(peer, signal, hops, new=False, now=now), urgent=False)
            case Gradient(key=key):
                reading = self.gradients.reading(key, signal.source)
                if reading is not None and reading.signal_id == signal.id and hops < reading.hops:
                    # A shorter path: read the stronger value, and let the neighbours know.
                    self.gradients.observe(signal, hops, now)
                    if self.gradients.should_forward(signal, hops):
                        self._enqueue(self._to_all(signal, hops, peer), urgent=False)
            case Directed(target=target) if target != self.node_id:
                route = self._routes.get(signal.id)
                # A spread copy, or our own routed copy coming back (a loop): spread it, once.
                if route is not None and not route.spread:
                    self._spread(signal, route, exclude=peer)
            case _:
                pass

    def _broadcast(self, signal: Signal, hops: int, sender: str | None, now: float) -> list[Out]:
        if sender is None:
            return self.broadcast.broadcast(signal, now)
        return self.broadcast.on_push(sender, signal, hops, new=True, now=now)

    def _to_all(self, signal: Signal, hops: int, sender: str | None) -> list[Out]:
        if hops >= signal.ttl:
            return []
        push = Push(signal, hops + 1)
        return [Out(p, push) for p in sorted(self.links) if p != sender]

    # -- directed ----------------------------------------------------------------

    def _route(self, signal: Signal, hops: int, sender: str | None, spread: bool) -> None:
        route = _Route(hops=hops, sender=sender)
        self._routes[signal.id] = route
        while len(self._routes) > self.config.dedup_capacity:
            self._routes.popitem(last=False)
        if spread:
            self._spread(signal, route, exclude=sender)
        else:
            self._next_hop(signal, route)

    def _next_hop(self, signal: Signal, route: _Route) -> None:
        assert isinstance(signal.signal_type, Directed)
        if route.hops >= signal.ttl:
            return
        exclude = route.tried | ({route.sender} if route.sender else set())
        candidates = self.topology.next_hops(signal.signal_type.target, exclude=exclude)
        if not candidates:
            self.stats["directed_spread"] += 1
            self._spread(signal, route, exclude=route.sender)
            return
        route.tried.add(candidates[0])
        self.stats["directed_routed"] += 1
        self._enqueue([Out(candidates[0], Push(signal, route.hops + 1))], urgent=False)

    def _spread(self, signal: Signal, route: _Route, exclude: str | None) -> None:
        if route.spread:
            return
        route.spread = True
        if route.hops >= signal.ttl:
            return
        push = Push(signal, route.hops + 1, spread=True)
        self._enqueue([Out(p, push) for p in sorted(self.links) if p != exclude], urgent=False)

    # -- requests and failures -------------------------------------------------------

    def _enqueue(self, outs: list[Out], *, urgent: bool) -> None:
        queue = self._urgent if urgent else self._normal
        for o in outs:
            rid = next(self._request_ids)
            queue.append(SendRequest(o.peer, SIGNAL_PROTOCOL, rid, env.encode_frame(o.frame)))
            self.stats[f"sent_{type(o.frame).__name__.lower()}"] += 1
            if isinstance(o.frame, Push | IHave):
                self._pending[rid] = _Pending(o.peer, o.frame, 0, urgent)
                while len(self._pending) > self.config.max_pending:
                    self._pending.popitem(last=False)

    def _on_failed(self, event: RequestFailed) -> list[SignalOutput]:
        pending = self._pending.pop(event.request_id, None)
        if pending is None:
            return []
        frame = pending.frame
        self.stats[f"{type(frame).__name__.lower()}_failed"] += 1
        if isinstance(frame, Push) and isinstance(frame.signal.signal_type, Directed) and not frame.spread:
            route = self._routes.get(frame.signal.id)
            if route is not None:
                self._next_hop(frame.signal, route)  # fail over to the next-best link, or spread
                return []
        self._retry(pending, event.now, delay=0.0)
        return []

    def _retry(self, pending: _Pending, now: float, *, delay: float) -> None:
        """Send ``pending`` again (after ``delay`` seconds) while its link is up and tries remain."""
        if pending.peer not in self.links or pending.attempts >= self.config.push_retries:
            return
        if delay > 0:
            if len(self._delayed) < self.config.max_pending:
                heapq.heappush(self._delayed, (now + delay, next(self._request_ids), pending))
            return
        frame = pending.frame
        rid = next(self._request_ids)
        queue = self._urgent if pending.urgent else self._normal
        queue.append(SendRequest(pending.peer, SIGNAL_PROTOCOL, rid, env.encode_frame(frame)))
        self._pending[rid] = _Pending(pending.peer, frame, pending.attempts + 1, pending.urgent)
        self.stats[f"{type(frame).__name__.lower()}_retried"] += 1

    # -- outputs -----------------------------------------------------------------------

    def _deliver(self, signal: Signal, hops: int, strength: float | None, now: float, *, urgent: bool = False) -> Delivered:
        self.stats[f"delivered_{signal.kind}"] += 1
        return Delivered(next(self._event_ids), signal, hops, strength, urgent, now)

    def _fired(self, fired: Fired) -> QuorumFired:
        self.stats["quorum_fired"] += 1
        return QuorumFired(next(self._event_ids), fired.key, fired.threshold, fired.contributors, fired.network_size, fired.at)

    def _reject(self, event: RequestReceived, reason: str, detail: str) -> list[SignalOutput]:
        self.rejected[reason] += 1
        out: list[SignalOutput] = [
            Respond(event.channel, reason.encode()),
            SignalRejected(next(self._event_ids), event.peer, reason, detail, event.now),
        ]
        if reason in env.PEER_FAULTS:
            penalized = self._penalize(event.peer, reason, event.now)
            if penalized is not None:
                out.append(penalized)
        return out

    def _penalize(self, peer: str, reason: str, now: float) -> PeerPenalized | None:
        p = self._penalties.get(peer)
        if p is None:
            if len(self._penalties) >= 10_000:
                self._penalties.pop(next(iter(self._penalties)))
            p = self._penalties[peer] = Penalty(at=now)
        p.decay(now, self.config.penalty_half_life)
        p.score += 1.0
        if not p.quarantined and p.score >= self.config.penalty_limit:
            p.quarantined = True
            return PeerPenalized(next(self._event_ids), peer, p.score, reason, now)
        return None


class SignalHandlers:
    """Handlers per signal kind (the Python API other services use); called by the signals service."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self.errors = 0

    def register(self, kind: str, handler: Handler) -> None:
        if kind not in env.KINDS:
            raise ValueError(f"unknown signal kind {kind!r}; expected one of {', '.join(env.KINDS)}")
        self._handlers.setdefault(kind, []).append(handler)

    def dispatch(self, outputs: list[SignalOutput]) -> int:
        """Call the handlers of every :class:`Delivered` output; returns how many calls were made.

        A handler that raises is counted in ``errors``; the others still run.
        """
        calls = 0
        for o in outputs:
            if not isinstance(o, Delivered):
                continue
            for handler in self._handlers.get(o.signal.kind, []):
                calls += 1
                try:
                    handler(o)
                except Exception:  # noqa: BLE001 - a handler's bug must not stop signal processing
                    self.errors += 1
        return calls
