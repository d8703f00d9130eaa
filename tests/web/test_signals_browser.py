"""The dashboard's Signals panel in a real browser (Debian Chromium via
Playwright): seeded from the fake API's ``/v1/signals``, then fed by its
server-sent event stream ``/v1/events``."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from playwright.sync_api import Locator, Page, expect

if TYPE_CHECKING:  # fixtures come from conftest.py; this is for annotations only
    from conftest import FakeApi

from browser_support import UI_TIMEOUT_MS


def _signal(n: int, source: str, *, type_: str = "flood", hops: int = 1, strength: float | None = None) -> dict[str, Any]:
    return {"id": f"{n:032x}", "type": type_, "source": source, "hops": hops, "strength": strength, "received_at": time.time()}


def _open_live(page: Page, api: FakeApi) -> None:
    page.goto(api.url + "/")
    page.wait_for_function("() => window.__vudoDashboard && window.__vudoDashboard.stream === 'live'", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#signals-stream")).to_have_text("live")
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while api.stream_count() == 0:  # the page's stream reached the fake server
        assert time.monotonic() < deadline, "the dashboard never opened /v1/events"
        time.sleep(0.05)


def _row(page: Page, signal_id: str) -> Locator:
    return page.locator(f'#signals-body tr[data-signal-id="{signal_id}"]')


def test_signal_pushed_on_the_stream_appears_in_the_panel(page: Page, fake_api: FakeApi) -> None:
    seeded = _signal(1, fake_api.peer_id(3), type_="gradient", hops=2, strength=0.25)
    fake_api.signals.append({**seeded, "payload": "hello"})
    _open_live(page, fake_api)
    expect(_row(page, seeded["id"]).locator(".signal-type")).to_have_text("gradient")  # seeded from GET /v1/signals

    pushed = _signal(2, fake_api.peer_id(2), hops=3)
    fake_api.push_event("signal", pushed)

    row = _row(page, pushed["id"])
    expect(row).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(row.locator(".signal-type")).to_have_text("flood")
    expect(row.locator(".signal-hops")).to_have_text("3")
    expect(row.locator(".signal-strength")).to_have_text("—")
    expect(row.locator(".signal-quorum")).to_have_text("—")
    # Short ids on screen, full ids on hover.
    expect(row.locator(".signal-source")).to_have_attribute("title", pushed["source"])
    assert len(row.locator(".signal-source").inner_text()) < len(pushed["source"])
    expect(row.locator(".signal-id")).to_have_attribute("title", pushed["id"])
    # Newest first.
    expect(page.locator("#signals-body tr").first).to_have_attribute("data-signal-id", pushed["id"])
    expect(_row(page, seeded["id"]).locator(".signal-strength")).to_have_text("0.250")
    expect(page.locator("#signals-summary")).to_contain_text("2 recent")
    assert page.vudo_errors == []  # type: ignore[attr-defined]


def test_quorum_signal_shows_fired(page: Page, fake_api: FakeApi) -> None:
    _open_live(page, fake_api)
    q = _signal(7, fake_api.peer_id(4), type_="quorum", hops=0)
    fake_api.push_event("signal", q)
    row = _row(page, q["id"])
    expect(row.locator(".signal-quorum")).to_have_text("not fired", timeout=UI_TIMEOUT_MS)

    fired_at = time.time()
    with fake_api.lock:  # what the node's GET /v1/signals then says about it
        fake_api.signals.append({**q, "payload": "", "fired": True, "fired_at": fired_at})
    fake_api.push_event("quorum_fired", {"key": "deploy", "threshold": 0.5, "contributors": 3, "network_size": 4, "at": fired_at})

    expect(row.locator(".signal-quorum")).to_contain_text("fired", timeout=UI_TIMEOUT_MS)
    expect(row.locator(".fired")).to_have_class(re.compile(r"\bfired-yes\b"))
    expect(page.locator("#signals-summary")).to_contain_text('quorum "deploy" fired (3/4)')
    assert page.vudo_errors == []  # type: ignore[attr-defined]


def test_malformed_events_do_not_break_the_page(page: Page, fake_api: FakeApi) -> None:
    fake_api.signals.extend([{"id": 5}, "junk", {"type": "flood"}])  # a malformed seed is skipped too
    _open_live(page, fake_api)
    fake_api.push_event("signal", "{not json")
    fake_api.push_event("signal", "null")
    fake_api.push_event("signal", [1, 2, 3])
    fake_api.push_event("signal", {"type": "flood"})  # no id
    fake_api.push_event("quorum_fired", "42")
    fake_api.push_event("mystery", {"x": 1})
    partial = {"id": "only-an-id", "hops": "three", "strength": "strong", "source": None}
    fake_api.push_event("signal", partial)

    row = _row(page, "only-an-id")
    expect(row).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(row.locator(".signal-type")).to_have_text("unknown")
    expect(row.locator(".signal-hops")).to_have_text("—")
    expect(row.locator(".signal-strength")).to_have_text("—")
    expect(row.locator(".signal-received")).to_have_text("—")
    page.wait_for_function("() => window.__vudoDashboard.badEvents >= 4", timeout=UI_TIMEOUT_MS)
    # Still live, and a good event after the bad ones still shows.
    good = _signal(9, fake_api.peer_id(2))
    fake_api.push_event("signal", good)
    expect(_row(page, good["id"])).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(page.locator("#signals-stream")).to_have_text("live")
    expect(page.locator("#signals-body tr[data-signal-id]")).to_have_count(2)
    expect(page.locator("#banner")).to_be_hidden()
    assert page.vudo_errors == []  # type: ignore[attr-defined]


def test_stream_state_shows_reconnecting_and_recovers(page: Page, fake_api: FakeApi) -> None:
    _open_live(page, fake_api)
    fake_api.stop()
    expect(page.locator("#signals-stream")).to_have_text("reconnecting", timeout=UI_TIMEOUT_MS)
    fake_api.start()  # same port
    expect(page.locator("#signals-stream")).to_have_text("live", timeout=UI_TIMEOUT_MS)
    later = _signal(11, fake_api.peer_id(2))
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while fake_api.stream_count() == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    fake_api.push_event("signal", later)
    expect(_row(page, later["id"])).to_have_count(1, timeout=UI_TIMEOUT_MS)
    assert page.vudo_errors == []  # type: ignore[attr-defined]
