"""Seeded in-memory network of :class:`~vudo.signals.network.SignalNetwork` nodes.

Theory of operation
-------------------
``n`` nodes with real Ed25519 identities (derived from their index, so a
seed reproduces the same node ids) sit on a random connected topology: a
random spanning tree plus random extra edges up to the wanted mean degree.
Time advances in ticks of ``tick`` seconds. A request takes a per-link
latency of 1..``max_latency`` ticks; it is lost with probability ``loss``
(so is its response), and a request whose link dies before it arrives is
lost too. As with the real request/response links, a sender whose request
got no answer learns it by ``RequestFailed`` after ``request_timeout``
ticks. Each node may send at most ``send_budget`` frames per tick (None: no
limit), which is what makes queued traffic and priorities visible.

The harness records every output (deliveries, quorum firings, rejections),
and counts payload frames (pushes) apart from control frames, for the
delivery, hop, latency and redundancy measures of the tests and benchmark.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vudo.hyphal.linkproto import LinkDown, LinkUp, RequestFailed, RequestReceived, Respond, ResponseReceived, SendRequest
from vudo.identity import Identity
from vudo.signals.envelope import SIGNAL_PROTOCOL, Signal, SignalType, frame_kind
from vudo.signals.network import (
    ActionPotentialIgnored,
    Delivered,
    MembershipChanged,
    QuorumFired,
    SignalConfig,
    SignalNetwork,
    SignalOutput,
    TopologyChanged,
)

T0 = 1_800_000_000.0

_identities: list[Identity] = []


def identities(n: int) -> list[Identity]:
    """``n`` deterministic identities (node i always has the same key), cached per process."""
    while len(_identities) < n:
        seed = hashlib.sha256(f"vudo-signalsim-{len(_identities)}".encode()).digest()
        _identities.append(Identity.from_private_key(Ed25519PrivateKey.from_private_bytes(seed)))
    return _identities[:n]


def random_connected_edges(n: int, mean_degree: float, rng: random.Random) -> set[tuple[int, int]]:
    """A random spanning tree plus random edges until the mean degree is reached."""
    edges: set[tuple[int, int]] = set()
    order = list(range(n))
    rng.shuffle(order)
    for i in range(1, n):
        a, b = order[i], order[rng.randrange(i)]
        edges.add((min(a, b), max(a, b)))
    target = int(mean_degree * n / 2)
    while len(edges) < min(target, n * (n - 1) // 2):
        a, b = rng.randrange(n), rng.randrange(n)
        if a != b:
            edges.add((min(a, b), max(a, b)))
    return edges


@dataclass(order=True)
class _Flight:
    tick: int
    seq: int
    kind: str = field(compare=False)  # "request" | "response" | "failed"
    src: int = field(compare=False)
    dst: int = field(compare=False)
    request_id: int = field(compare=False)
    payload: bytes = field(compare=False)


@dataclass
class Record:
    node: int
    tick: int
    event: Delivered


class SignalSim:
    def __init__(
        self,
        n: int,
        *,
        seed: int,
        mean_degree: float = 4.0,
        loss: float = 0.0,
        max_latency: int = 3,
        tick: float = 0.01,
        request_timeout: int = 50,
        send_budget: int | None = None,
        config: SignalConfig | None = None,
        edges: Iterable[tuple[int, int]] | None = None,
        share_topology: bool = True,
    ) -> None:
        self.rng = random.Random(seed)
        self.n = n
        self.loss = loss
        self.tick_s = tick
        self.request_timeout = request_timeout
        self.send_budget = send_budget
        self.ticks = 0
        self.ids = [i.node_id for i in identities(n)]
        self.index = {nid: i for i, nid in enumerate(self.ids)}
        self.nodes = [SignalNetwork(ident, config=config, rng=random.Random(seed * 1_000_003 + i)) for i, ident in enumerate(identities(n))]
        self.edges: set[tuple[int, int]] = set(edges) if edges is not None else random_connected_edges(n, mean_degree, self.rng)
        self.latency = {e: self.rng.randint(1, max_latency) for e in self.edges}
        self._flights: list[_Flight] = []
        self._seq = itertools.count()
        self._channels = itertools.count(1)
        self._open: dict[int, tuple[int, int, int]] = {}  # channel -> (src, dst, request_id)
        self.deliveries: dict[str, list[Record]] = defaultdict(list)
        self.fired: list[tuple[int, QuorumFired]] = []
        self.ignored: list[tuple[int, ActionPotentialIgnored]] = []
        self.outputs: list[tuple[int, SignalOutput]] = []
        self.frames: Counter[str] = Counter()
        self.sent_log: list[tuple[int, int, int, bytes]] = []  # (tick, src, dst, frame)
        self.emitted_at: dict[str, int] = {}
        #: Fault hook: a request for which ``drop(src, dst, payload)`` is true is lost.
        self.drop: Callable[[int, int, bytes], bool] | None = None
        for a, b in sorted(self.edges):
            self._link_up(a, b)
        members = frozenset(self.ids)
        for node in self.nodes:
            node.receive(MembershipChanged(members, self.now))
        if share_topology:
            self.share_topology()

    # -- topology ------------------------------------------------------------------

    @property
    def now(self) -> float:
        return T0 + self.ticks * self.tick_s

    def share_topology(self, nodes: Iterable[int] | None = None) -> None:
        view = tuple((self.ids[a], self.ids[b]) for a, b in sorted(self.edges))
        for i in range(self.n) if nodes is None else nodes:
            self.nodes[i].receive(TopologyChanged(view, self.now))

    def _link_up(self, a: int, b: int) -> None:
        self.nodes[a].receive(LinkUp(self.ids[b], f"/memory/{b}", "outbound", self.now))
        self.nodes[b].receive(LinkUp(self.ids[a], f"/memory/{a}", "inbound", self.now))

    def add_link(self, a: int, b: int) -> None:
        e = (min(a, b), max(a, b))
        self.edges.add(e)
        self.latency.setdefault(e, 1)
        self._link_up(a, b)

    def kill_link(self, a: int, b: int) -> None:
        self.edges.discard((min(a, b), max(a, b)))
        self.nodes[a].receive(LinkDown(self.ids[b], "killed", self.now))
        self.nodes[b].receive(LinkDown(self.ids[a], "killed", self.now))

    def neighbours(self, i: int) -> list[int]:
        return sorted({b for a, b in self.edges if a == i} | {a for a, b in self.edges if b == i})

    def distances(self, src: int) -> dict[int, int]:
        adj: dict[int, list[int]] = defaultdict(list)
        for a, b in self.edges:
            adj[a].append(b)
            adj[b].append(a)
        dist = {src: 0}
        queue = deque([src])
        while queue:
            x = queue.popleft()
            for y in adj[x]:
                if y not in dist:
                    dist[y] = dist[x] + 1
                    queue.append(y)
        return dist

    # -- driving ---------------------------------------------------------------------

    def emit(self, node: int, signal_type: SignalType, payload: bytes = b"", *, ttl: int | None = None) -> Signal:
        signal, outputs = self.nodes[node].emit(signal_type, payload, now=self.now, ttl=ttl)
        self.emitted_at[signal.id] = self.ticks
        self._record(node, outputs)
        self._flush(node)
        return signal

    def inject(self, src: int, dst: int, payload: bytes) -> None:
        """Deliver raw bytes to ``dst`` now, as if ``src`` sent them (an attacker's frame)."""
        channel = next(self._channels)
        self._open[channel] = (src, dst, 0)
        self._record(dst, self.nodes[dst].receive(RequestReceived(self.ids[src], SIGNAL_PROTOCOL, channel, payload, self.now)))
        self._flush(dst)

    def step(self) -> None:
        """Advance one tick: deliver what is due, run due timers, send queued frames."""
        self.ticks += 1
        now = self.now
        touched: set[int] = set()
        while self._flights and self._flights[0].tick <= self.ticks:
            f = heapq.heappop(self._flights)
            touched.add(self._arrive(f, now))
        for i, node in enumerate(self.nodes):
            deadline = node.next_timer()
            if deadline is not None and deadline <= now:
                self._record(i, node.handle_timer(now))
                touched.add(i)
            if node.queued:
                touched.add(i)
        for i in sorted(touched):
            self._flush(i)

    def busy(self) -> bool:
        return bool(self._flights) or any(node.queued or node.next_timer() is not None for node in self.nodes)

    def run(self, max_ticks: int = 100_000) -> int:
        """Step until nothing is in flight, queued or scheduled; returns the ticks run."""
        start = self.ticks
        while self.busy() and self.ticks - start < max_ticks:
            self.step()
        return self.ticks - start

    def run_for(self, ticks: int) -> None:
        for _ in range(ticks):
            self.step()

    def _arrive(self, f: _Flight, now: float) -> int:
        if f.kind == "request":
            if (min(f.src, f.dst), max(f.src, f.dst)) not in self.edges:
                self._fail_later(f.src, f.dst, f.request_id)
                return f.dst
            channel = next(self._channels)
            self._open[channel] = (f.src, f.dst, f.request_id)
            self._record(f.dst, self.nodes[f.dst].receive(RequestReceived(self.ids[f.src], SIGNAL_PROTOCOL, channel, f.payload, now)))
            return f.dst
        if f.kind == "response":
            self.nodes[f.dst].receive(ResponseReceived(self.ids[f.src], SIGNAL_PROTOCOL, f.request_id, f.payload, now))
            return f.dst
        self.nodes[f.dst].receive(RequestFailed(self.ids[f.src], SIGNAL_PROTOCOL, f.request_id, "timeout", now))
        return f.dst

    def _fail_later(self, src: int, dst: int, request_id: int) -> None:
        # The sender learns of a lost request when its timeout runs out.
        heapq.heappush(self._flights, _Flight(self.ticks + self.request_timeout, next(self._seq), "failed", dst, src, request_id, b""))

    def _flush(self, i: int) -> None:
        for req in self.nodes[i].poll_sends(self.send_budget):
            self._send(i, req)

    def _send(self, src: int, req: SendRequest) -> None:
        dst = self.index[req.peer]
        tag = frame_kind(req.payload)
        self.frames[tag] += 1
        self.sent_log.append((self.ticks, src, dst, req.payload))
        edge = (min(src, dst), max(src, dst))
        dropped = self.drop is not None and self.drop(src, dst, req.payload)
        if edge not in self.edges or self.rng.random() < self.loss or dropped:
            self._fail_later(src, dst, req.request_id)
            return
        heapq.heappush(self._flights, _Flight(self.ticks + self.latency[edge], next(self._seq), "request", src, dst, req.request_id, req.payload))

    def _record(self, i: int, outputs: list[SignalOutput]) -> None:
        for o in outputs:
            self.outputs.append((i, o))
            if isinstance(o, Respond):
                src, dst, request_id = self._open.pop(o.channel)
                edge = (min(src, dst), max(src, dst))
                if edge in self.edges and self.rng.random() >= self.loss:
                    heapq.heappush(self._flights, _Flight(self.ticks + self.latency[edge], next(self._seq), "response", dst, src, request_id, o.payload))
                else:
                    self._fail_later(src, dst, request_id)
            elif isinstance(o, Delivered):
                self.deliveries[o.signal.id].append(Record(i, self.ticks, o))
            elif isinstance(o, QuorumFired):
                self.fired.append((i, o))
            elif isinstance(o, ActionPotentialIgnored):
                self.ignored.append((i, o))

    # -- measures ----------------------------------------------------------------------

    def handled_by(self, signal_id: str) -> Counter[int]:
        """How many times each node handled ``signal_id``."""
        return Counter(r.node for r in self.deliveries[signal_id])


