"""The lifecycle state machine of one spirit (pure: events in, instructions out)."""

from __future__ import annotations

from vudo.spirits.lifecycle import (
    CallFailed,
    CallSucceeded,
    CallTick,
    DismissFinished,
    DismissRequested,
    DropInstance,
    Refuse,
    SpiritLifecycle,
    StartDismiss,
    StartSummon,
    State,
    SummonFailed,
    SummonRequested,
    SummonSucceeded,
    missing_permissions,
)
from vudo.spirits.manifest import Permissions

ASKS = Permissions(network="read", compute="standard", display="required")


def running(now: float = 0.0) -> SpiritLifecycle:
    lc = SpiritLifecycle("hello", ASKS, tick_interval=1.0)
    assert lc.receive(SummonRequested(ASKS, now)) == [StartSummon()]
    assert lc.state is State.SUMMONING
    assert lc.receive(SummonSucceeded(now)) == []
    assert lc.state is State.RUNNING and lc.summoned_at == now
    return lc


def test_missing_permissions_are_named() -> None:
    assert missing_permissions(ASKS, ASKS) == ()
    assert missing_permissions(ASKS, Permissions(network="write", compute="heavy", display="required", wasi=True)) == ()
    assert missing_permissions(ASKS, None) == ("network=read (granted none)", "compute=standard (granted minimal)",
                                               "display=required (granted none)")
    assert missing_permissions(Permissions(wasi=True), Permissions()) == ("wasi=true (granted false)",)
    assert missing_permissions(Permissions(), None) == ()


def test_summon_beyond_the_grant_is_refused_and_names_what_is_missing() -> None:
    lc = SpiritLifecycle("hello", ASKS)
    [refuse] = lc.receive(SummonRequested(Permissions(network="read", compute="minimal", display="required"), 0.0))
    assert isinstance(refuse, Refuse) and refuse.reason == "not_granted"
    assert refuse.missing == ("compute=standard (granted minimal)",)
    assert "compute=standard" in refuse.message
    assert lc.state is State.INSTALLED and (lc.history[-1].old, lc.history[-1].new) == (State.INSTALLED, State.INSTALLED)


def test_ticks_come_one_at_a_time_at_the_interval() -> None:
    lc = running(0.0)
    assert lc.handle_timer(0.5) == []
    assert lc.handle_timer(1.0) == [CallTick(1000)]
    assert lc.handle_timer(5.0) == []  # the previous tick has not finished
    lc.receive(CallSucceeded("tick", 42, 5.0))
    assert lc.handle_timer(5.5) == []
    assert lc.handle_timer(6.0) == [CallTick(6000)]


def test_a_failed_call_fails_the_spirit_and_drops_it_then_it_can_be_summoned_again() -> None:
    lc = running()
    lc.handle_timer(1.0)
    assert lc.receive(CallFailed("tick", "out_of_fuel", "ran out of fuel", 1.1)) == [DropInstance()]
    assert lc.state is State.FAILED and lc.error_reason == "out_of_fuel"
    assert lc.handle_timer(10.0) == []
    assert lc.receive(SummonRequested(ASKS, 11.0)) == [StartSummon()]
    assert lc.error is None


def test_summon_failure() -> None:
    lc = SpiritLifecycle("hello", ASKS)
    lc.receive(SummonRequested(ASKS, 0.0))
    assert lc.receive(SummonFailed("bad_signature", "tampered", 0.1)) == [DropInstance()]
    assert lc.state is State.FAILED and lc.error == "tampered"


def test_dismiss_calls_the_hook_then_drops() -> None:
    lc = running()
    assert lc.receive(DismissRequested(2.0)) == [StartDismiss()]
    assert lc.state is State.DISMISSING
    assert lc.receive(CallSucceeded("tick", 1, 2.1)) == []  # a tick that was in flight
    assert lc.receive(DismissFinished(None, 2.2)) == [DropInstance()]
    assert lc.state is State.DISMISSED and lc.error is None and lc.summoned_at is None
    assert [(t.old, t.new) for t in lc.history] == [
        (State.INSTALLED, State.SUMMONING), (State.SUMMONING, State.RUNNING), (State.RUNNING, State.DISMISSING),
        (State.DISMISSING, State.DISMISSING), (State.DISMISSING, State.DISMISSED)]
    ids = [t.id for t in lc.history]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_failing_dismiss_hook_still_dismisses() -> None:
    lc = running()
    lc.receive(DismissRequested(1.0))
    lc.receive(DismissFinished("trap", 1.0))
    assert lc.state is State.DISMISSED and lc.error_reason == "dismiss_hook"


def test_requests_in_the_wrong_state_are_refused() -> None:
    lc = SpiritLifecycle("hello", ASKS)
    [refuse] = lc.receive(DismissRequested(0.0))
    assert isinstance(refuse, Refuse) and refuse.reason == "wrong_state" and "installed" in refuse.message
    lc = running()
    [refuse] = lc.receive(SummonRequested(ASKS, 1.0))
    assert isinstance(refuse, Refuse) and refuse.reason == "wrong_state"
    assert lc.state is State.RUNNING


def test_effective_permissions_are_the_ask_capped_by_the_grant() -> None:
    from vudo.spirits.lifecycle import effective_permissions

    generous = Permissions(network="write", compute="heavy", display="required", wasi=True)
    assert effective_permissions(ASKS, generous) == ASKS
    assert effective_permissions(generous, ASKS) == Permissions(network="read", compute="standard", display="required", wasi=False)


def test_a_premium_spirit_is_never_run_for_free() -> None:
    lc = SpiritLifecycle("paid", Permissions(), price=10)
    [refuse] = lc.receive(SummonRequested(Permissions(), 0.0))
    assert isinstance(refuse, Refuse) and refuse.reason == "payment_unavailable" and "10 credits" in refuse.message
    assert lc.state is State.INSTALLED
    assert lc.receive(SummonRequested(Permissions(), 1.0, payment_available=True)) == [StartSummon()]
