"""The lifecycle of one installed spirit, as a sans-I/O state machine.

Theory of operation
-------------------
A spirit is ``installed`` once its package is verified and stored. Asking
to summon it first checks the operator's grants (``spirits.allow``): if the
manifest asks for more than is granted the request is refused and the
missing permissions are named; otherwise the machine enters ``summoning``
and tells its service to :class:`StartSummon` (verify the signature and
hashes again, compile — cached by hash —, instantiate, call the ``summon``
hook). The service reports back ``SummonSucceeded`` (→ ``running``) or
``SummonFailed`` (→ ``failed``, the instance is dropped). While running,
:meth:`SpiritLifecycle.handle_timer` asks for one tick at a time
(:class:`CallTick`) every ``tick_interval`` seconds; a call that fails
(trap, fuel, timeout) moves the spirit to ``failed`` and drops its
instance. Dismissing a running spirit enters ``dismissing`` and asks for
:class:`StartDismiss` (call the ``dismiss`` hook); when it is done — hook
succeeded or not — the instance is dropped and the spirit is ``dismissed``.
A dismissed or failed spirit can be summoned again. A premium spirit is
refused when the node cannot take payment (no credit ledger): it is never
run for free. With a ledger, its service locks the price between
``StartSummon`` and running it (:mod:`vudo.spirits.payment`); a refused lock
is reported as ``SummonFailed`` with the ledger's code.

The machine never reads a clock and never does I/O: events carry ``now``,
and every handled event gets an id and a :class:`Transition` record.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, TypeVar

from vudo.spirits.manifest import COMPUTE_LEVELS, DISPLAY_LEVELS, NETWORK_LEVELS, Permissions


class State(StrEnum):
    INSTALLED = "installed"
    SUMMONING = "summoning"
    RUNNING = "running"
    DISMISSING = "dismissing"
    DISMISSED = "dismissed"
    FAILED = "failed"


# -- events (in) --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SummonRequested:
    granted: Permissions | None  # None: nothing granted for this spirit
    now: float
    #: Whether this node can take payment for a premium spirit (it has a way to the credit ledger).
    payment_available: bool = False


@dataclass(frozen=True, slots=True)
class SummonSucceeded:
    now: float


@dataclass(frozen=True, slots=True)
class SummonFailed:
    reason: str
    message: str
    now: float


@dataclass(frozen=True, slots=True)
class CallSucceeded:
    export: str
    fuel_used: int
    now: float


@dataclass(frozen=True, slots=True)
class CallFailed:
    export: str
    reason: str
    message: str
    now: float


@dataclass(frozen=True, slots=True)
class DismissRequested:
    now: float


@dataclass(frozen=True, slots=True)
class DismissFinished:
    error: str | None
    now: float


Event = SummonRequested | SummonSucceeded | SummonFailed | CallSucceeded | CallFailed | DismissRequested | DismissFinished


# -- instructions (out) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartSummon:
    """Verify, compile, instantiate, call the summon hook; report SummonSucceeded/SummonFailed."""


@dataclass(frozen=True, slots=True)
class CallTick:
    now_ms: int


@dataclass(frozen=True, slots=True)
class StartDismiss:
    """Call the dismiss hook; report DismissFinished."""


@dataclass(frozen=True, slots=True)
class DropInstance:
    """Forget the instance (its Store and memory go with it)."""


@dataclass(frozen=True, slots=True)
class Refuse:
    """The request cannot be carried out in this state or with these grants."""

    reason: str  # "not_granted" | "wrong_state" | "payment_unavailable"
    message: str
    missing: tuple[str, ...] = ()


Instruction = StartSummon | CallTick | StartDismiss | DropInstance | Refuse


@dataclass(frozen=True, slots=True)
class Transition:
    id: int
    event: Event
    old: State
    new: State


def missing_permissions(asked: Permissions, granted: Permissions | None) -> tuple[str, ...]:
    """Each permission ``asked`` exceeds ``granted`` by, as ``name=level (granted X)``."""
    have = granted or Permissions()
    missing = []
    for perm, levels in (("network", NETWORK_LEVELS), ("compute", COMPUTE_LEVELS), ("display", DISPLAY_LEVELS)):
        want, got = getattr(asked, perm), getattr(have, perm)
        if levels.index(want) > levels.index(got):
            missing.append(f"{perm}={want} (granted {got})")
    if asked.wasi and not have.wasi:
        missing.append("wasi=true (granted false)")
    return tuple(missing)


L = TypeVar("L", bound=str)


def effective_permissions(asked: Permissions, granted: Permissions) -> Permissions:
    """What a summoned instance is linked with: what it asked for, capped by the grant, per permission."""
    def lower(levels: tuple[L, ...], a: L, b: L) -> L:
        return levels[min(levels.index(a), levels.index(b))]

    return Permissions(
        network=lower(NETWORK_LEVELS, asked.network, granted.network),
        compute=lower(COMPUTE_LEVELS, asked.compute, granted.compute),
        display=lower(DISPLAY_LEVELS, asked.display, granted.display),
        wasi=asked.wasi and granted.wasi,
    )


_ids = itertools.count(1)


@dataclass
class SpiritLifecycle:
    name: str
    asks: Permissions
    tick_interval: float = 1.0
    price: int = 0  # credits per summon; 0 for free spirits
    state: State = State.INSTALLED
    error: str | None = None
    error_reason: str | None = None
    summoned_at: float | None = None
    next_tick: float = 0.0
    ticking: bool = False
    history: list[Transition] = field(default_factory=list)

    # -- the transition table ------------------------------------------------------------

    def _summon(self, event: Event) -> tuple[State, list[Instruction]]:
        assert isinstance(event, SummonRequested)
        if self.price > 0 and not event.payment_available:
            return self.state, [Refuse("payment_unavailable", f"spirit {self.name!r} is premium ({self.price} credits per summon) "
                                                              "and this node cannot take payment (it has no credit ledger)")]
        missing = missing_permissions(self.asks, event.granted)
        if missing:
            return self.state, [Refuse("not_granted", f"spirit {self.name!r} asks for {', '.join(missing)}", missing)]
        self.error = self.error_reason = None
        return State.SUMMONING, [StartSummon()]

    def _summoned(self, event: Event) -> tuple[State, list[Instruction]]:
        self.summoned_at = event.now
        self.next_tick = event.now + self.tick_interval
        self.ticking = False
        return State.RUNNING, []

    def _summon_failed(self, event: Event) -> tuple[State, list[Instruction]]:
        assert isinstance(event, SummonFailed)
        self.error, self.error_reason = event.message, event.reason
        return State.FAILED, [DropInstance()]

    def _call_ok(self, event: Event) -> tuple[State, list[Instruction]]:
        self.ticking = False
        self.next_tick = event.now + self.tick_interval
        return self.state, []

    def _call_failed(self, event: Event) -> tuple[State, list[Instruction]]:
        assert isinstance(event, CallFailed)
        self.ticking = False
        self.error, self.error_reason = event.message, event.reason
        return State.FAILED, [DropInstance()]

    def _late_call(self, event: Event) -> tuple[State, list[Instruction]]:
        """A tick finished after a dismiss began: the dismiss decides what happens."""
        self.ticking = False
        return self.state, []

    def _dismiss(self, event: Event) -> tuple[State, list[Instruction]]:
        return State.DISMISSING, [StartDismiss()]

    def _dismissed(self, event: Event) -> tuple[State, list[Instruction]]:
        assert isinstance(event, DismissFinished)
        self.error = event.error
        self.error_reason = "dismiss_hook" if event.error else None
        self.summoned_at = None
        return State.DISMISSED, [DropInstance()]

    _Handler = Callable[["SpiritLifecycle", Event], tuple[State, list[Instruction]]]
    TABLE: ClassVar[dict[tuple[State, type], _Handler]] = {
        (State.INSTALLED, SummonRequested): _summon,
        (State.DISMISSED, SummonRequested): _summon,
        (State.FAILED, SummonRequested): _summon,
        (State.SUMMONING, SummonSucceeded): _summoned,
        (State.SUMMONING, SummonFailed): _summon_failed,
        (State.RUNNING, CallSucceeded): _call_ok,
        (State.RUNNING, CallFailed): _call_failed,
        (State.DISMISSING, CallSucceeded): _late_call,
        (State.DISMISSING, CallFailed): _late_call,
        (State.RUNNING, DismissRequested): _dismiss,
        (State.DISMISSING, DismissFinished): _dismissed,
    }

    def receive(self, event: Event) -> list[Instruction]:
        handler = self.TABLE.get((self.state, type(event)))
        if handler is None:
            what = type(event).__name__
            return [Refuse("wrong_state", f"spirit {self.name!r} is {self.state.value}; cannot handle {what} now")]
        old = self.state
        new, instructions = handler(self, event)
        self.state = new
        self.history.append(Transition(next(_ids), event, old, new))
        del self.history[:-64]
        return instructions

    def handle_timer(self, now: float) -> list[Instruction]:
        """One tick at a time while running, every ``tick_interval`` seconds."""
        if self.state is State.RUNNING and not self.ticking and now >= self.next_tick:
            self.ticking = True
            return [CallTick(int(now * 1000))]
        return []
