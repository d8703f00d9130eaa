"""Trait ``FloodPropagation``: epidemic broadcast trees (Plumtree) and plain flooding.

Theory of operation (Plumtree, Leitão, Pereira and Rodrigues, SRDS 2007)
------------------------------------------------------------------------
Every link is either *eager* or *lazy*. A node that handles a signal for
the first time pushes the whole signal (:class:`~vudo.signals.envelope.Push`)
on its eager links and only announces its id (:class:`IHave`) on its lazy
links. All links start eager, so the first broadcast floods; each duplicate
push then turns the link it came on lazy at both ends (:class:`Prune`), and
what is left of the eager links is a spanning tree: afterwards each node
receives about one copy of each signal.

A node that hears an announcement for a signal it does not have starts a
timer. When the timer fires it sends :class:`Graft` to the first announcer
(that link becomes eager: the tree repairs itself), and if that does not
bring the signal in time, to the next announcer, and so on. Losing a tree
link, or a push, therefore costs a delay, not the signal. New links start
eager; a link that goes down is forgotten, with its pending announcements.

TTL. ``hops`` counts the links a copy has crossed; a node forwards only
while ``hops < ttl``. Tree paths can be longer than shortest paths, so a node
may first receive a signal with more hops than its distance to the source.
When an announcement or a copy shows a shorter path, the node adopts the
smaller hop count (the signal is the same signed object, it is not handled
twice) and announces it to its other links; a node that had been too far
to forward at all now forwards normally. Hop counts only ever decrease, so
this settles, and every node within ``ttl`` hops of the source gets the
signal when links deliver. A node whose topology view covers the whole
network and says everything is within the TTL it had left (its
``horizon``) skips these announcements: they could not reach anyone new.

:class:`PlainFlood` is the seed's algorithm, kept as the fallback and as the
benchmark's baseline: on first receipt, push to every link but the sender.

Both are pure: they are told about links, pushes, announcements and time,
and return :class:`Out` values (a frame for a peer). Validation, dedup of
handled ids and local delivery happen in :mod:`vudo.signals.network`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from vudo.signals.envelope import Announce, Frame, Graft, IHave, Prune, Push, Signal

#: How many announcers of one missing signal are remembered.
MAX_ANNOUNCERS = 16
#: How many holders of one signal are remembered.
MAX_HOLDERS = 64
#: How many missing signals are tracked at once (announcements beyond it are ignored until some resolve).
MAX_MISSING = 10_000


@dataclass(frozen=True, slots=True)
class Out:
    """Send ``frame`` to ``peer``."""

    peer: str
    frame: Frame


@dataclass(slots=True)
class _Held:
    signal: Signal
    hops: int
    expires: float
    parent: str | None
    #: Peers known to hold it already (they pushed or announced it to us), with their hop count:
    #: they are sent nothing, unless we can offer them a shorter path (then only an announcement).
    holders: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Missing:
    deadline: float
    announcers: list[tuple[str, int]] = field(default_factory=list)
    attempts: int = 0


class PlainFlood:
    """Push every new signal to every link except the one it came from."""

    def __init__(self) -> None:
        self.peers: set[str] = set()

    def link_up(self, peer: str) -> None:
        self.peers.add(peer)

    def link_down(self, peer: str) -> None:
        self.peers.discard(peer)

    def broadcast(self, signal: Signal, now: float) -> list[Out]:
        return self._forward(signal, 0, exclude=None)

    def on_push(self, peer: str, signal: Signal, hops: int, *, new: bool, now: float) -> list[Out]:
        return self._forward(signal, hops, exclude=peer) if new else []

    def on_ihave(self, peer: str, entries: Iterable[Announce], now: float, seen: Callable[[str], bool]) -> list[Out]:
        return []

    def on_graft(self, peer: str, signal_id: str | None, now: float) -> list[Out]:
        return []

    def on_prune(self, peer: str) -> None:
        return None

    def handle_timer(self, now: float) -> list[Out]:
        return []

    def _forward(self, signal: Signal, hops: int, exclude: str | None) -> list[Out]:
        if hops >= signal.ttl:
            return []
        push = Push(signal, hops + 1)
        return [Out(p, push) for p in sorted(self.peers) if p != exclude]


class Plumtree:
    """Epidemic broadcast tree over this node's links (one tree shared by all sources)."""

    def __init__(self, *, ihave_timeout: float, graft_timeout: float, max_graft_attempts: int, capacity: int, retention: float) -> None:
        self.ihave_timeout = ihave_timeout
        self.graft_timeout = graft_timeout
        self.max_graft_attempts = max_graft_attempts
        self.capacity = capacity
        self.retention = retention
        self.eager: set[str] = set()
        self.lazy: set[str] = set()
        self._held: OrderedDict[str, _Held] = OrderedDict()
        self._missing: dict[str, _Missing] = {}
        self.grafts_sent = 0
        self.announcements_dropped = 0
        #: How many hops away this node's farthest node is (from the topology view), or None when unknown.
        #: A copy with at least that much TTL left reaches everything already: shorter paths need no announcing.
        self.horizon: int | None = None

    # -- links -----------------------------------------------------------------

    @property
    def peers(self) -> set[str]:
        return self.eager | self.lazy

    def link_up(self, peer: str) -> None:
        self.lazy.discard(peer)
        self.eager.add(peer)

    def link_down(self, peer: str) -> None:
        self.eager.discard(peer)
        self.lazy.discard(peer)
        for missing in self._missing.values():
            missing.announcers = [(p, h) for p, h in missing.announcers if p != peer]

    def _make_eager(self, peer: str) -> None:
        if peer in self.lazy:
            self.lazy.discard(peer)
            self.eager.add(peer)

    def _make_lazy(self, peer: str) -> None:
        if peer in self.eager:
            self.eager.discard(peer)
            self.lazy.add(peer)

    # -- signals ---------------------------------------------------------------

    def broadcast(self, signal: Signal, now: float) -> list[Out]:
        self._hold(signal, 0, now, parent=None)
        return self._forward(signal, 0, holders={})

    def on_push(self, peer: str, signal: Signal, hops: int, *, new: bool, now: float) -> list[Out]:
        if new:
            frame_hops = hops
            missing = self._missing.pop(signal.id, None)
            if missing is not None and missing.announcers:
                # Someone announced it over a shorter path before this copy came: that path counts.
                hops = min(hops, *(h for _, h in missing.announcers))
            fresh = self._hold(signal, hops, now, parent=peer)
            fresh.holders[peer] = frame_hops - 1
            if missing is not None:
                for p, h in missing.announcers:
                    fresh.holders[p] = min(fresh.holders.get(p, h - 1), h - 1)
            self._make_eager(peer)
            return self._forward(signal, hops, holders=fresh.holders)
        held = self._held.get(signal.id)
        if held is not None:
            self._note_holder(held, peer, hops - 1)
        out = self._improve(held, hops, informer=peer) if held is not None and hops < held.hops else []
        if held is not None and held.parent == peer:
            return out  # our tree parent resent it (our answer was lost): the link is still the right one
        # A redundant copy: this link is not needed in the tree.
        self._make_lazy(peer)
        return out + [Out(peer, Prune())] if peer in self.lazy else out

    def on_ihave(self, peer: str, entries: Iterable[Announce], now: float, seen: Callable[[str], bool]) -> list[Out]:
        out: list[Out] = []
        for entry in entries:
            held = self._held.get(entry.id)
            if held is not None:
                self._note_holder(held, peer, entry.hops - 1)
                if entry.hops < held.hops:
                    out += self._improve(held, entry.hops, informer=peer)
                continue
            if seen(entry.id):
                continue  # handled already and no longer held: nothing to ask for
            missing = self._missing.get(entry.id)
            if missing is None:
                if len(self._missing) >= MAX_MISSING:
                    self.announcements_dropped += 1
                    continue
                missing = self._missing[entry.id] = _Missing(deadline=now + self.ihave_timeout)
            known = next((k for k, (p, _) in enumerate(missing.announcers) if p == peer), None)
            if known is not None:
                missing.announcers[known] = (peer, min(missing.announcers[known][1], entry.hops))
            elif len(missing.announcers) < MAX_ANNOUNCERS:
                missing.announcers.append((peer, entry.hops))
        return out

    def on_graft(self, peer: str, signal_id: str | None, now: float) -> list[Out]:
        if peer in self.lazy:
            self._make_eager(peer)
        if signal_id is None:
            return []
        held = self._held.get(signal_id)
        if held is None or held.hops >= held.signal.ttl:
            return []
        return [Out(peer, Push(held.signal, held.hops + 1))]

    def on_prune(self, peer: str) -> None:
        self._make_lazy(peer)

    def handle_timer(self, now: float) -> list[Out]:
        out: list[Out] = []
        for signal_id in list(self._missing):
            missing = self._missing[signal_id]
            if missing.deadline > now:
                continue
            live = [(p, h) for p, h in missing.announcers if p in self.peers]
            if not live or missing.attempts >= self.max_graft_attempts:
                del self._missing[signal_id]
                continue
            # Ask the announcers in turn (the paper's "next announcement" rule), cycling.
            peer, _ = live[missing.attempts % len(live)]
            missing.attempts += 1
            missing.deadline = now + self.graft_timeout
            self._make_eager(peer)
            self.grafts_sent += 1
            out.append(Out(peer, Graft(signal_id)))
        self._expire(now)
        return out

    def next_deadline(self) -> float | None:
        return min((m.deadline for m in self._missing.values()), default=None)

    @property
    def missing(self) -> int:
        return len(self._missing)

    # -- internals -------------------------------------------------------------

    def _hold(self, signal: Signal, hops: int, now: float, parent: str | None) -> _Held:
        self._expire(now)
        while len(self._held) >= self.capacity:
            self._held.popitem(last=False)
        held = self._held[signal.id] = _Held(signal, hops, now + self.retention, parent)
        return held

    def _expire(self, now: float) -> None:
        while self._held:
            key, held = next(iter(self._held.items()))
            if held.expires > now:
                break
            del self._held[key]

    def _forward(self, signal: Signal, hops: int, holders: dict[str, int]) -> list[Out]:
        """Push on eager links, announce on lazy ones; holders get only an announcement of a shorter path."""
        if hops >= signal.ttl:
            return []
        push = Push(signal, hops + 1)
        ihave = IHave([Announce(signal.id, hops + 1)])
        out: list[Out] = []
        for p in sorted(self.peers):
            have = holders.get(p)
            if have is None:
                out.append(Out(p, push if p in self.eager else ihave))
            elif have > hops + 1:
                out.append(Out(p, ihave))
        return out

    @staticmethod
    def _note_holder(held: _Held, peer: str, hops: int) -> None:
        if peer in held.holders or len(held.holders) < MAX_HOLDERS:
            held.holders[peer] = min(held.holders.get(peer, hops), hops)

    def _improve(self, held: _Held, hops: int, informer: str) -> list[Out]:
        """A shorter path to the source was found: adopt it and tell the other links."""
        old = held.hops
        held.hops = hops
        if self.horizon is not None and held.signal.ttl - old >= self.horizon:
            return []  # the copy we had already reached as far as the network goes
        if old >= held.signal.ttl:
            # Too far before to forward anything: forward now as on first receipt.
            return self._forward(held.signal, hops, holders=held.holders)
        if hops >= held.signal.ttl:
            return []
        ihave = IHave([Announce(held.signal.id, hops + 1)])
        return [Out(p, ihave) for p in sorted(self.peers) if p != informer and held.holders.get(p, hops + 2) > hops + 1]
