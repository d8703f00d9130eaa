"""The signals service: the :class:`~vudo.signals.network.SignalNetwork` policy over the links.

It decides nothing. It owns the signal policy and a *link port* — the links
service's side of protocol ``/vudo/signal/1``: the link events for that
protocol in, ``SendRequest``/``Respond`` out (any object with the
:class:`SignalLinkPort` shape; the in-memory one in
:mod:`vudo.testing.signalports` serves the tests). It:

* hands every port event to the policy and executes what comes back:
  responses at once, queued sends (urgent first) through the port;
* every tick, feeds the policy the verified members (quorum network size)
  and the known topology (directed routing) when they changed, and its timer;
* emits signals for the API (:meth:`SignalsService.emit`), calls the local
  handlers registered per kind (:attr:`SignalsService.handlers`), keeps the
  recent signals this node handled (:meth:`SignalsService.recent`) and
  publishes what happens to subscribers (:meth:`SignalsService.subscribe`,
  the API's server-sent events), each through a bounded queue.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter

from vudo.hyphal.linkproto import LinkDown, LinkUp, RequestFailed, RequestReceived, Respond, ResponseReceived, SendRequest
from vudo.identity import Identity
from vudo.services.base import NodeEvents
from vudo.signals.envelope import ActionPotential, Directed, Flood, Gradient, Quorum, SignalType, frame_kind
from vudo.signals.network import (
    ActionPotentialIgnored,
    Delivered,
    MembershipChanged,
    PeerPenalized,
    QuorumFired,
    SignalConfig,
    SignalHandlers,
    SignalNetwork,
    SignalOutput,
    SignalRejected,
    TopologyChanged,
)

log = logging.getLogger("vudo.signals")


class SignalMetrics:
    """The signals service's Prometheus counters, in the node's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.handled = Counter("vudo_signals_handled", "Signals handled by this node", ["type"], registry=registry)
        self.rejected = Counter("vudo_signals_rejected", "Signal frames dropped because they failed a check", ["reason"], registry=registry)
        self.quorum_fired = Counter("vudo_signals_quorum_fired", "Quorum accumulators that fired on this node", registry=registry)
        self.penalized = Counter("vudo_signals_peers_penalized", "Peers quarantined for sending invalid signals", registry=registry)
        self.sent = Counter("vudo_signals_frames_sent", "Signal frames sent on the links, by kind (push carries a signal)", ["frame"], registry=registry)
        self.fault_dropped = Counter(
            "vudo_signals_frames_fault_dropped", "Signal frames dropped by the signal_fault_loss fault-injection knob (tests and benchmarks)", ["frame"], registry=registry
        )

TICK_S = 0.1
HISTORY = 256
SUBSCRIBER_QUEUE = 1024

SignalLinkEvent = LinkUp | LinkDown | RequestReceived | ResponseReceived | RequestFailed
Kind = Literal["flood", "gradient", "directed", "quorum", "action_potential"]


class SignalLinkPort(Protocol):
    """The links service's side of ``/vudo/signal/1`` as the signals service sees it."""

    def execute(self, instruction: SendRequest | Respond) -> None: ...

    async def next_event(self) -> SignalLinkEvent | None: ...


@dataclass(frozen=True, slots=True)
class SignalsSources:
    """Read-only views of other services: verified live member ids, and known links between nodes."""

    members: Callable[[], frozenset[str]]
    topology: Callable[[], tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """One signal this node handled, as the interfaces show it."""

    id: str
    type: str
    source: str
    hops: int
    strength: float | None
    received_at: float
    payload: str
    fired: bool | None = None
    fired_at: float | None = None


@dataclass(frozen=True, slots=True)
class SignalNotice:
    """What subscribers (the event stream) are told: ``kind`` is ``signal``, ``quorum_fired``, ``rejected`` or ``penalized``."""

    kind: str
    data: dict[str, object]


def signal_type(
    kind: Kind,
    *,
    decay: float | None = None,
    target: str | None = None,
    threshold: float | None = None,
    refractory_ms: int | None = None,
    key: str = "",
) -> SignalType:
    """Build a signal type from API parameters; ``ValueError`` names what is missing."""
    if kind == "flood":
        return Flood()
    if kind == "gradient":
        return Gradient(0.5 if decay is None else decay, key)
    if kind == "directed":
        if not target:
            raise ValueError("a directed signal needs a target node id")
        return Directed(target)
    if kind == "quorum":
        if threshold is None:
            raise ValueError("a quorum signal needs a threshold in (0, 1]")
        return Quorum(threshold, key)
    if kind == "action_potential":
        return ActionPotential(1000 if refractory_ms is None else refractory_ms, key)
    raise ValueError(f"unknown signal type {kind!r}")


class Subscription:
    """A bounded queue of notices; when the reader falls behind, the oldest are dropped and counted."""

    def __init__(self, owner: SignalsService, size: int) -> None:
        self._owner = owner
        self.queue: asyncio.Queue[SignalNotice] = asyncio.Queue(size)
        self.dropped = 0

    def put(self, notice: SignalNotice) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(notice)

    async def get(self) -> SignalNotice:
        return await self.queue.get()

    def close(self) -> None:
        self._owner._subscribers.discard(self)


class SignalsService:
    name = "signals"

    def __init__(
        self,
        identity: Identity,
        port_factory: Callable[[], SignalLinkPort],
        sources: SignalsSources,
        *,
        config: SignalConfig | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        tick_s: float = TICK_S,
        history: int = HISTORY,
        registry: CollectorRegistry | None = None,
        fault_loss: float = 0.0,
    ) -> None:
        if not 0.0 <= fault_loss <= 1.0:
            raise ValueError(f"fault_loss is a fraction between 0 and 1, got {fault_loss}")
        rng = rng or random.Random()
        self.metrics = SignalMetrics(registry or CollectorRegistry())
        # Fault injection (tests and benchmarks): this fraction of outgoing frames is
        # "lost on the wire": never sent, and reported to the policy as a failed
        # request on the next tick, as the link engine reports a request that timed out.
        self.fault_loss = fault_loss
        self._fault_rng = random.Random(rng.getrandbits(64))
        self._faulted: list[RequestFailed] = []
        self.identity = identity
        self.policy = SignalNetwork(identity, config=config, rng=rng)
        self.handlers = SignalHandlers()
        self.sources = sources
        self._port_factory = port_factory
        self.port: SignalLinkPort | None = None
        self.clock = clock
        self.tick_s = tick_s
        self._recent: deque[SignalRecord] = deque(maxlen=history)
        self._subscribers: set[Subscription] = set()
        self._members: frozenset[str] | None = None
        self._topology: tuple[tuple[str, str], ...] | None = None
        self._quorum_keys: OrderedDict[str, tuple[str, float]] = OrderedDict()  # quorum signal id -> accumulator
        self._running = False

    # -- API side ----------------------------------------------------------------------

    def emit(self, kind: Kind, payload: bytes, *, ttl: int | None = None, **params: object) -> str:
        """Emit a signal from this node; returns its id. ``ValueError`` for bad parameters (the caller's)."""
        st = signal_type(kind, **params)  # type: ignore[arg-type]
        signal, outputs = self.policy.emit(st, payload, now=self.clock(), ttl=ttl)
        self._execute(outputs)
        return signal.id

    def recent(self) -> list[SignalRecord]:
        """Signals this node handled, newest first; quorum entries say whether and when they fired."""
        out = []
        for r in reversed(self._recent):
            if r.type == "quorum":
                fired_at = self._quorum_fired_at(r.id)
                r = SignalRecord(r.id, r.type, r.source, r.hops, r.strength, r.received_at, r.payload, fired_at is not None, fired_at)
            out.append(r)
        return out

    def subscribe(self, size: int = SUBSCRIBER_QUEUE) -> Subscription:
        sub = Subscription(self, size)
        self._subscribers.add(sub)
        return sub

    def _quorum_fired_at(self, signal_id: str) -> float | None:
        key = self._quorum_keys.get(signal_id)
        if key is None:
            return None
        acc = self.policy.quorum.accumulator(*key)
        return None if acc is None else acc.fired_at

    # -- executing the policy --------------------------------------------------------

    def _execute(self, outputs: list[SignalOutput]) -> None:
        for o in outputs:
            if isinstance(o, Respond):
                if self.port is not None:
                    self.port.execute(o)
            elif isinstance(o, Delivered):
                self.metrics.handled.labels(o.signal.kind).inc()
                self._delivered(o)
            elif isinstance(o, QuorumFired):
                self.metrics.quorum_fired.inc()
                log.info("event %d: quorum %r fired (%d of %d nodes)", o.id, o.key, o.contributors, o.network_size)
                self._publish("quorum_fired", {"key": o.key, "threshold": o.threshold, "contributors": o.contributors, "network_size": o.network_size, "at": o.now})
            elif isinstance(o, SignalRejected):
                self.metrics.rejected.labels(o.reason).inc()
                log.debug("event %d: signal from %s rejected: %s (%s)", o.id, o.peer, o.reason, o.detail)
                self._publish("rejected", {"peer": o.peer, "reason": o.reason})
            elif isinstance(o, PeerPenalized):
                self.metrics.penalized.inc()
                log.warning("event %d: peer %s keeps sending invalid signals (%s); quarantined", o.id, o.peer, o.last_reason)
                self._publish("penalized", {"peer": o.peer, "score": o.score, "reason": o.last_reason})
            elif isinstance(o, ActionPotentialIgnored):
                log.debug("event %d: action potential %s ignored (refractory)", o.id, o.signal_id)
        self.handlers.dispatch(outputs)
        self._flush()

    def _delivered(self, d: Delivered) -> None:
        s = d.signal
        if isinstance(s.signal_type, Quorum):
            self._quorum_keys[s.id] = (s.signal_type.key, s.signal_type.threshold)
            while len(self._quorum_keys) > self._recent.maxlen:  # type: ignore[operator]
                self._quorum_keys.popitem(last=False)
        record = SignalRecord(s.id, s.kind, s.source, d.hops, d.strength, d.now, s.payload.decode(errors="replace"))
        self._recent.append(record)
        self._publish("signal", {"id": s.id, "type": s.kind, "source": s.source, "hops": d.hops, "strength": d.strength, "received_at": d.now})

    def _publish(self, kind: str, data: dict[str, object]) -> None:
        notice = SignalNotice(kind, data)
        for sub in list(self._subscribers):
            sub.put(notice)

    def _flush(self) -> None:
        if self.port is None:
            return
        for request in self.policy.poll_sends():
            kind = frame_kind(request.payload)
            self.metrics.sent.labels(kind).inc()
            if self.fault_loss > 0.0 and self._fault_rng.random() < self.fault_loss:
                self.metrics.fault_dropped.labels(kind).inc()
                self._faulted.append(RequestFailed(request.peer, request.protocol, request.request_id, "dropped by signal_fault_loss (fault injection)", self.clock()))
                continue
            self.port.execute(request)

    def receive(self, event: SignalLinkEvent) -> None:
        self._execute(self.policy.receive(event))

    def tick(self, now: float) -> None:
        faulted, self._faulted = self._faulted, []
        for failure in faulted:
            self.receive(failure)
        members = self.sources.members()
        if members != self._members:
            self._members = members
            self._execute(self.policy.receive(MembershipChanged(members, now)))
        topology = self.sources.topology()
        if topology != self._topology:
            self._topology = topology
            self._execute(self.policy.receive(TopologyChanged(topology, now)))
        self._execute(self.policy.handle_timer(now))

    # -- service -----------------------------------------------------------------------

    async def start(self) -> None:
        self.port = self._port_factory()
        self._running = True

    async def _pump(self) -> None:
        assert self.port is not None
        while (event := await self.port.next_event()) is not None:
            if self._running:
                self.receive(event)

    async def _ticker(self) -> None:
        while self._running:
            self.tick(self.clock())
            await asyncio.sleep(self.tick_s)

    async def run(self, events: NodeEvents) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._pump())
            tg.create_task(self._ticker())

    def leave(self, now: float) -> None:
        self._running = False

    async def stop(self) -> None:
        self._running = False
