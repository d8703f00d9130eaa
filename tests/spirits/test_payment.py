"""The premium payment book (sans-I/O): lock, then post or void, each decided once, every resend the same ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from vudo.spirits.payment import (
    ABANDON_AFTER_S,
    RETRY_FIRST_S,
    RETRY_MAX_S,
    Closed,
    PaymentBook,
    PaymentClosed,
    Persist,
    Phase,
    RefuseSummon,
    SubmitLock,
    SubmitPost,
    payment_ids,
)

PAYER, AUTHOR, SHA = "node-payer", "node-author", "ab" * 32
PRICE = 5_000_000


def begin(book: PaymentBook, now: float = 100.0, sha: str = SHA) -> list[object]:
    return list(book.begin(spirit="fancy", package_sha256=sha, payee=AUTHOR, amount=PRICE, now=now))


def kinds(instructions: Sequence[object]) -> list[str]:
    return [type(i).__name__ for i in instructions]


def test_ids_are_derived_from_payer_package_and_attempt_only() -> None:
    a = payment_ids(PAYER, SHA, 1)
    assert a == payment_ids(PAYER, SHA, 1)
    assert len({a.lock, a.post, a.void}) == 3 and all(len(i) <= 64 and i.isascii() for i in (a.lock, a.post, a.void))
    assert a != payment_ids(PAYER, SHA, 2) and a != payment_ids("other", SHA, 1) and a != payment_ids(PAYER, "cd" * 32, 1)


def test_a_successful_summon_locks_then_posts_once() -> None:
    book = PaymentBook(PAYER)
    out = begin(book)
    assert kinds(out) == ["Persist", "SubmitLock"]
    lock = out[1]
    assert isinstance(lock, SubmitLock) and lock.payment.attempt == 1 and lock.payment.timestamp == 100_000
    run = book.lock_committed("fancy", 101.0)
    assert kinds(run) == ["Persist", "RunSummon"] and book.open["fancy"].phase is Phase.LOCKED
    post = book.summon_finished("fancy", True, 102.0)
    assert kinds(post) == ["Persist", "SubmitPost"] and book.open["fancy"].phase.value == "posting"
    done = book.settled("fancy", 103.0)
    assert kinds(done) == ["Persist", "PaymentClosed"]
    closed = done[1]
    assert isinstance(closed, PaymentClosed) and closed.outcome is Closed.PAID and "fancy" not in book.open
    # a late duplicate answer changes nothing
    assert book.settled("fancy", 104.0) == [] and book.summon_finished("fancy", False, 104.0) == []
    assert [t.new for t in book.history] == ["locking", "locked", "posting", "paid"]


def test_a_failed_summon_voids_the_lock_and_is_never_posted() -> None:
    book = PaymentBook(PAYER)
    begin(book)
    book.lock_committed("fancy", 101.0)
    out = book.summon_finished("fancy", False, 102.0)
    assert kinds(out) == ["Persist", "SubmitVoid"]
    assert book.summon_finished("fancy", True, 102.5) == []  # decided once: a later "success" cannot post it
    closed = book.settled("fancy", 103.0)[1]
    assert isinstance(closed, PaymentClosed) and closed.outcome is Closed.VOIDED


def test_each_summon_is_a_new_attempt_and_pays_again() -> None:
    book = PaymentBook(PAYER)
    for attempt in (1, 2, 3):
        lock = begin(book, now=100.0 + attempt)[1]
        assert isinstance(lock, SubmitLock) and lock.payment.attempt == attempt
        book.lock_committed("fancy", 200.0)
        book.summon_finished("fancy", True, 200.0)
        book.settled("fancy", 200.0)
    assert book.attempts == {SHA: 3} and not book.open


def test_insufficient_funds_refuses_the_summon_and_burns_the_attempt() -> None:
    book = PaymentBook(PAYER)
    begin(book)
    out = book.lock_refused("fancy", "insufficient_funds", "has 1, cannot lock 5", 101.0)
    assert kinds(out) == ["Persist", "PaymentClosed", "RefuseSummon"]
    refuse = out[2]
    assert isinstance(refuse, RefuseSummon) and refuse.code == "insufficient_funds" and not refuse.transient
    assert not book.open
    # the ledger recorded that id as rejected: the next summon must use a fresh one
    again = begin(book, now=110.0)[1]
    assert isinstance(again, SubmitLock) and again.payment.attempt == 2


def test_a_transient_lock_refusal_keeps_the_attempt_and_a_retry_resends_the_same_lock() -> None:
    book = PaymentBook(PAYER)
    first = begin(book)[1]
    out = book.lock_refused("fancy", "no_leader", "no ledger leader answered", 101.0)
    assert kinds(out) == ["Persist", "RefuseSummon"]
    refuse = out[1]
    assert isinstance(refuse, RefuseSummon) and refuse.code == "no_leader" and refuse.transient
    retry = begin(book, now=130.0)[1:]
    assert kinds(retry) == ["SubmitLock"]
    assert isinstance(retry[0], SubmitLock) and isinstance(first, SubmitLock)
    assert retry[0].payment.ids == first.payment.ids and retry[0].payment.timestamp == first.payment.timestamp
    assert kinds(book.lock_committed("fancy", 131.0)) == ["Persist", "RunSummon"]
    assert isinstance(first, SubmitLock) and isinstance(retry[0], SubmitLock) and book.attempts == {SHA: 1}


def test_a_summon_while_an_earlier_payment_settles_is_refused() -> None:
    book = PaymentBook(PAYER)
    begin(book)
    assert kinds(begin(book)) == ["Persist", "SubmitLock"]  # still locking (no answer yet): the same lock is sent again
    book.lock_committed("fancy", 101.0)
    refused = begin(book)[0]
    assert isinstance(refused, RefuseSummon) and refused.code == "wrong_state"
    book.summon_finished("fancy", True, 102.0)
    refused = begin(book)[0]
    assert isinstance(refused, RefuseSummon) and refused.code == "settling"


def test_a_changed_package_does_not_reuse_the_pending_lock() -> None:
    book = PaymentBook(PAYER)
    begin(book)
    book.lock_refused("fancy", "no_leader", "", 101.0)
    refused = begin(book, sha="cd" * 32)[0]
    assert isinstance(refused, RefuseSummon) and refused.code == "settling"


def test_settlement_failures_are_retried_with_backoff_and_the_same_ids() -> None:
    book = PaymentBook(PAYER)
    begin(book)
    book.lock_committed("fancy", 100.0)
    post = book.summon_finished("fancy", True, 100.0)[1]
    assert book.settle_refused("fancy", "no_leader", 100.0) == []
    assert book.handle_timer(100.0 + RETRY_FIRST_S / 2) == []
    due = book.handle_timer(100.0 + RETRY_FIRST_S)
    assert kinds(due) == ["SubmitPost"] and isinstance(post, SubmitPost)
    assert isinstance(due[0], SubmitPost) and due[0].payment.ids == post.payment.ids
    delays = []
    now = 100.0 + RETRY_FIRST_S
    for _ in range(10):
        book.settle_refused("fancy", "raft", now)
        p = book.open["fancy"]
        delays.append(p.retry_delay)
        now = p.retry_at
        assert kinds(book.handle_timer(now)) == ["SubmitPost"]
    assert delays == sorted(delays) and max(delays) == RETRY_MAX_S
    closed = book.settled("fancy", now)[1]
    assert isinstance(closed, PaymentClosed) and closed.outcome is Closed.PAID


def test_a_definitive_settlement_refusal_closes_without_switching_to_the_other_settlement() -> None:
    book = PaymentBook(PAYER)
    begin(book)
    book.lock_committed("fancy", 100.0)
    book.summon_finished("fancy", False, 100.0)
    out = book.settle_refused("fancy", "unknown_lock", 100.0)
    closed = out[1]
    assert isinstance(closed, PaymentClosed) and closed.outcome is Closed.VOIDED and closed.code == "unknown_lock"
    assert not any(isinstance(i, SubmitPost) for i in out)


def test_restart_voids_unconfirmed_locks_after_resending_them_and_posts_confirmed_ones() -> None:
    book = PaymentBook(PAYER)
    book.begin(spirit="a", package_sha256="aa" * 32, payee=AUTHOR, amount=PRICE, now=100.0)  # crashed while locking
    book.begin(spirit="b", package_sha256="bb" * 32, payee=AUTHOR, amount=PRICE, now=100.0)
    book.lock_committed("b", 100.0)  # crashed while summoning
    book.begin(spirit="c", package_sha256="cc" * 32, payee=AUTHOR, amount=PRICE, now=100.0)
    book.lock_committed("c", 100.0)
    book.summon_finished("c", True, 100.0)  # crashed before the post committed
    # a new process: the same journal
    again = PaymentBook(PAYER, open=dict(book.open), attempts=dict(book.attempts))
    assert all(isinstance(i, Persist) for i in again.recover(200.0))
    assert {n: p.phase for n, p in again.open.items()} == {"a": Phase.RECOVERING, "b": Phase.RECOVERING, "c": Phase.POSTING}
    due = sorted((type(i).__name__, i.payment.spirit) for i in again.handle_timer(200.0) if isinstance(i, SubmitLock | SubmitPost))
    assert due == [("SubmitLock", "a"), ("SubmitLock", "b"), ("SubmitPost", "c")]
    assert again.handle_timer(200.0) == []  # not due again before its backoff
    # every recovery resends the lock first, then voids it
    assert kinds(again.lock_committed("a", 201.0)) == ["Persist", "SubmitVoid"]
    assert kinds(again.lock_committed("b", 201.0)) == ["Persist", "SubmitVoid"]
    assert isinstance(again.settled("a", 202.0)[1], PaymentClosed)
    # a recovered lock the ledger refused (never committed: insufficient funds) closes without a void
    again.open["b"] = replace(again.open["b"], phase=Phase.RECOVERING)
    out = again.lock_refused("b", "insufficient_funds", "", 203.0)
    assert kinds(out) == ["Persist", "PaymentClosed"]
    # a transient refusal while recovering backs off and tries again
    c = again.settle_refused("c", "no_leader", 203.0)
    assert c == [] and again.open["c"].retry_at > 203.0


def test_recovery_with_every_answer_lost_is_retried_until_settled() -> None:
    book = PaymentBook(PAYER)
    begin(book)
    book.recover(100.0)
    sent = book.handle_timer(100.0)
    assert kinds(sent) == ["SubmitLock"]
    assert book.lock_refused("fancy", "no_leader", "", 100.0) == []
    assert book.handle_timer(100.5) == []
    resent = book.handle_timer(book.open["fancy"].retry_at)
    assert kinds(resent) == ["SubmitLock"]
    book.lock_committed("fancy", 105.0)
    assert book.open["fancy"].phase is Phase.VOIDING
    assert isinstance(book.settled("fancy", 106.0)[1], PaymentClosed) and not book.open


def test_an_abandoned_transient_lock_is_voided_by_the_timer() -> None:
    book = PaymentBook(PAYER)
    begin(book)
    book.lock_refused("fancy", "no_leader", "", 100.0)
    assert book.handle_timer(100.0 + ABANDON_AFTER_S / 2) == []
    out = book.handle_timer(100.0 + ABANDON_AFTER_S)
    assert kinds(out) == ["Persist", "SubmitLock"] and book.open["fancy"].phase is Phase.RECOVERING
    book.lock_committed("fancy", 200.0)
    assert book.open["fancy"].phase.value == "voiding"
    # an unknown spirit's answers are ignored
    assert book.lock_committed("ghost", 1.0) == [] and book.lock_refused("ghost", "x", "", 1.0) == []
    assert book.settle_refused("ghost", "x", 1.0) == [] and book.settled("ghost", 1.0) == []
