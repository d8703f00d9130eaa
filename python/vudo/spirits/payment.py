"""Paying for premium summons, as a sans-I/O state machine (the :class:`PaymentBook`).

Theory of operation
-------------------
A premium spirit costs its price **per summon**: every summon that succeeds
pays the author once; dismissing it and summoning it again is a new summon
and pays again. A summon that fails pays nothing.

Each summon of a premium spirit is one :class:`Payment`, keyed by the
package hash and an *attempt* number that grows by one per summon on this
node. Its ledger ids are derived from ``(payer node, package hash,
attempt)`` (:func:`payment_ids`), and its timestamp is fixed when it begins,
so the lock, post and void it sends are the same signed bytes on every
resend (Ed25519 signatures are deterministic): the ledger answers a resend
with ``exists``, never a second charge.

Phases::

    begin ──► LOCKING ──lock committed──► LOCKED ──summon ok──► POSTING ──► (closed, paid)
                │                            └─────summon failed──► VOIDING ──► (closed, voided)
                ├─ definitive refusal (insufficient_funds, ...) ──► (closed, refused)
                └─ transient refusal (no_leader, ...) ──► stays LOCKING; the next summon resends it
    LOCKING/LOCKED found at restart ──► RECOVERING (resend the lock, then void it)

The machine decides **once** whether a lock is posted or voided and records
it before the first submission (the service persists every change before it
acts), so whatever crashes, a lock is settled one way and at most once:
``LOCKED`` at restart means the summon was never confirmed, so it is voided;
``POSTING`` means it succeeded, so it is posted. ``RECOVERING`` first resends
the lock so a lock still in flight when the node died cannot commit after its
void. Settlements the ledger cannot take now are retried by
:meth:`PaymentBook.handle_timer` with a doubling backoff.

The book never reads a clock and never does I/O: ``now`` is passed in, and
every event it handles gets an id and a logged :class:`PaymentTransition`.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field, replace
from enum import StrEnum

#: Ledger codes that mean "not now": the same operation may be sent again later.
TRANSIENT = frozenset({"no_leader", "not_leader", "raft", "unavailable", "busy", "stopped", "timeout", "storage"})
#: First and largest delay before a settlement is sent again (seconds).
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0
#: A lock whose summon was refused for a transient reason and not retried for this long is voided.
ABANDON_AFTER_S = 60.0


class Phase(StrEnum):
    LOCKING = "locking"
    LOCKED = "locked"
    POSTING = "posting"
    VOIDING = "voiding"
    RECOVERING = "recovering"  # resend the lock (it may still commit), then void


class Closed(StrEnum):
    PAID = "paid"
    VOIDED = "voided"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class PaymentIds:
    lock: str
    post: str
    void: str


def payment_ids(payer: str, package_sha256: str, attempt: int) -> PaymentIds:
    """The ledger ids of one summon's payment: the same inputs always give the same ids."""
    digest = hashlib.sha256(f"vudo.summon.v1\n{payer}\n{package_sha256}\n{attempt}".encode()).hexdigest()[:40]
    return PaymentIds(f"summon-lock-{digest}", f"summon-post-{digest}", f"summon-void-{digest}")


@dataclass(frozen=True, slots=True)
class Payment:
    """One summon's payment (what the service persists)."""

    spirit: str
    package_sha256: str
    attempt: int
    payer: str
    payee: str
    amount: int  # ledger units
    timestamp: int  # unix ms, fixed at begin: every resend signs the same bytes
    phase: Phase
    began_at: float
    retry_at: float = 0.0
    retry_delay: float = 0.0

    @property
    def ids(self) -> PaymentIds:
        return payment_ids(self.payer, self.package_sha256, self.attempt)


# -- instructions (out) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitLock:
    payment: Payment


@dataclass(frozen=True, slots=True)
class SubmitPost:
    payment: Payment


@dataclass(frozen=True, slots=True)
class SubmitVoid:
    payment: Payment


@dataclass(frozen=True, slots=True)
class RunSummon:
    """The price is locked: run the summon and report :meth:`PaymentBook.summon_finished`."""

    payment: Payment


@dataclass(frozen=True, slots=True)
class RefuseSummon:
    """Do not run the summon: ``code`` is the ledger's (or ``settling`` while an older payment is open)."""

    code: str
    message: str
    transient: bool


@dataclass(frozen=True, slots=True)
class Persist:
    """Write the book's open payments and attempt counters before acting on anything after this."""


@dataclass(frozen=True, slots=True)
class PaymentClosed:
    payment: Payment
    outcome: Closed
    code: str = ""


Instruction = SubmitLock | SubmitPost | SubmitVoid | RunSummon | RefuseSummon | Persist | PaymentClosed


@dataclass(frozen=True, slots=True)
class PaymentTransition:
    id: int
    event: str
    spirit: str
    attempt: int
    old: str
    new: str


_ids = itertools.count(1)


@dataclass
class PaymentBook:
    """Every open premium payment of this node, by spirit name, and the attempts used per package."""

    payer: str
    open: dict[str, Payment] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)  # package sha256 -> last attempt begun
    history: list[PaymentTransition] = field(default_factory=list)

    def _record(self, event: str, payment: Payment, old: str, new: str) -> None:
        self.history.append(PaymentTransition(next(_ids), event, payment.spirit, payment.attempt, old, new))
        del self.history[:-256]

    def _set(self, event: str, payment: Payment, phase: Phase, **changes: float) -> Payment:
        new = replace(payment, phase=phase, **changes)  # type: ignore[arg-type]
        self.open[payment.spirit] = new
        self._record(event, payment, payment.phase.value, phase.value)
        return new

    def _close(self, event: str, payment: Payment, outcome: Closed, code: str = "") -> list[Instruction]:
        self.open.pop(payment.spirit, None)
        self._record(event, payment, payment.phase.value, outcome.value)
        return [Persist(), PaymentClosed(payment, outcome, code)]

    # -- a summon ----------------------------------------------------------------------------

    def begin(self, *, spirit: str, package_sha256: str, payee: str, amount: int, now: float) -> list[Instruction]:
        """A premium summon is asked for: lock its price (or resend the lock of a retried summon)."""
        current = self.open.get(spirit)
        if current is not None:
            if current.phase is Phase.LOCKING and current.package_sha256 == package_sha256 and current.amount == amount:
                # a retry of a summon whose lock had no answer: same id, same bytes (journaled again: the
                # last write may have failed)
                return [Persist(), SubmitLock(current)]
            if current.phase is Phase.LOCKED:
                return [RefuseSummon("wrong_state", f"spirit {spirit!r} is being summoned already", transient=True)]
            return [RefuseSummon("settling", f"the payment of an earlier summon of {spirit!r} is still being settled "
                                             f"({current.phase.value}); retry shortly", transient=True)]
        attempt = self.attempts.get(package_sha256, 0) + 1
        self.attempts[package_sha256] = attempt
        payment = Payment(spirit=spirit, package_sha256=package_sha256, attempt=attempt, payer=self.payer, payee=payee,
                          amount=amount, timestamp=int(now * 1000), phase=Phase.LOCKING, began_at=now)
        self.open[spirit] = payment
        self._record("begin", payment, "none", Phase.LOCKING.value)
        return [Persist(), SubmitLock(payment)]

    def lock_committed(self, spirit: str, now: float) -> list[Instruction]:
        payment = self.open.get(spirit)
        if payment is None:
            return []
        if payment.phase is Phase.RECOVERING:
            return [Persist(), SubmitVoid(self._set("lock_committed", payment, Phase.VOIDING))]
        if payment.phase is not Phase.LOCKING:
            return []
        return [Persist(), RunSummon(self._set("lock_committed", payment, Phase.LOCKED))]

    def lock_refused(self, spirit: str, code: str, message: str, now: float) -> list[Instruction]:
        payment = self.open.get(spirit)
        if payment is None or payment.phase not in (Phase.LOCKING, Phase.RECOVERING):
            return []
        if code in TRANSIENT:
            if payment.phase is Phase.RECOVERING:
                return self._backoff("lock_refused", payment, now)
            self._set("lock_refused", payment, Phase.LOCKING, began_at=now)
            return [Persist(), RefuseSummon(code, message, transient=True)]
        out = self._close("lock_refused", payment, Closed.REFUSED, code)
        return out if payment.phase is Phase.RECOVERING else [*out, RefuseSummon(code, message, transient=False)]

    def summon_finished(self, spirit: str, ok: bool, now: float) -> list[Instruction]:
        """The summon ran: post the lock to the author if it succeeded, else void it (decided once)."""
        payment = self.open.get(spirit)
        if payment is None or payment.phase is not Phase.LOCKED:
            return []
        if ok:
            return [Persist(), SubmitPost(self._set("summon_succeeded", payment, Phase.POSTING))]
        return [Persist(), SubmitVoid(self._set("summon_failed", payment, Phase.VOIDING))]

    def settled(self, spirit: str, now: float) -> list[Instruction]:
        """The post or void committed (``applied`` or ``exists``)."""
        payment = self.open.get(spirit)
        if payment is None or payment.phase not in (Phase.POSTING, Phase.VOIDING):
            return []
        return self._close("settled", payment, Closed.PAID if payment.phase is Phase.POSTING else Closed.VOIDED)

    def settle_refused(self, spirit: str, code: str, now: float) -> list[Instruction]:
        payment = self.open.get(spirit)
        if payment is None or payment.phase not in (Phase.POSTING, Phase.VOIDING):
            return []
        if code in TRANSIENT:
            return self._backoff("settle_refused", payment, now)
        # Definitive (e.g. unknown_lock): the lock is not open; nothing more can be done by resending.
        outcome = Closed.PAID if payment.phase is Phase.POSTING else Closed.VOIDED
        return self._close("settle_refused", payment, outcome, code)

    def _backoff(self, event: str, payment: Payment, now: float) -> list[Instruction]:
        delay = min(RETRY_MAX_S, payment.retry_delay * 2 if payment.retry_delay else RETRY_FIRST_S)
        self._set(event, payment, payment.phase, retry_at=now + delay, retry_delay=delay)
        return []

    # -- restart and timers ------------------------------------------------------------------

    def recover(self, now: float) -> list[Instruction]:
        """After a restart: no summon is running, so unconfirmed locks are voided, confirmed ones posted.

        Recovered payments are sent by :meth:`handle_timer` (they are due at once)."""
        out: list[Instruction] = []
        for payment in list(self.open.values()):
            if payment.phase in (Phase.LOCKING, Phase.LOCKED):
                self._set("recover", payment, Phase.RECOVERING, retry_at=now, retry_delay=0.0)
                out.append(Persist())
        return out

    def handle_timer(self, now: float) -> list[Instruction]:
        """Resend what is due: settlements, recoveries, and abandoned locks (turned into recoveries)."""
        out: list[Instruction] = []
        for payment in list(self.open.values()):
            if payment.phase is Phase.LOCKING and now - payment.began_at >= ABANDON_AFTER_S:
                payment = self._set("abandoned", payment, Phase.RECOVERING, retry_at=now, retry_delay=0.0)
                out.append(Persist())
            if now < payment.retry_at or payment.phase in (Phase.LOCKING, Phase.LOCKED):
                continue
            delay = min(RETRY_MAX_S, payment.retry_delay * 2 if payment.retry_delay else RETRY_FIRST_S)
            payment = replace(payment, retry_at=now + delay, retry_delay=delay)
            self.open[payment.spirit] = payment
            if payment.phase is Phase.RECOVERING:
                out.append(SubmitLock(payment))
            elif payment.phase is Phase.POSTING:
                out.append(SubmitPost(payment))
            else:
                out.append(SubmitVoid(payment))
        return out
