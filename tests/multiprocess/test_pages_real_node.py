"""The dashboard and the Physarum page served by real `vudo` nodes, in Chromium."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page, expect

from browser_support import UI_TIMEOUT_MS
from cluster import LocalCluster


def test_dashboard_shows_real_members_and_a_killed_node_turns_dead(make_cluster: Any, built_web: Any, page: Page) -> None:
    cluster: LocalCluster = make_cluster(3)
    cluster.start()
    cluster.wait_converged()
    observer, victim = cluster.nodes[0], cluster.nodes[2]
    page.goto(observer.api + "/")
    page.wait_for_function("window.__vudoDashboard && window.__vudoDashboard.members === 3", timeout=UI_TIMEOUT_MS)
    for node in cluster.nodes:
        row = page.locator(f'tr[data-node-id="{node.node_id}"]')
        expect(row.locator(".status")).to_have_text("alive", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_text(observer.node_id).first).to_be_visible()
    victim.kill()
    cluster.wait_status(victim, "dead", observers=[observer])
    expect(page.locator(f'tr[data-node-id="{victim.node_id}"] .status')).to_have_text("dead", timeout=UI_TIMEOUT_MS)
    assert not page.vudo_errors  # type: ignore[attr-defined]


def test_node_serves_the_physarum_page_and_module(make_cluster: Any, built_web: Any, browser: Browser) -> None:
    cluster: LocalCluster = make_cluster(1)
    cluster.start()
    node = cluster.nodes[0]
    wasm = node.get("/physarum.wasm")
    assert wasm.status_code == 200
    assert wasm.headers["content-type"] == "application/wasm"
    assert wasm.content[:4] == b"\0asm"
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(node.api + "/physarum?renderer=svg")
        page.wait_for_function("window.__physarum && window.__physarum.step >= 10", timeout=60_000)
        state = page.evaluate("({...window.__physarum})")
        assert state["renderer"] == "svg"
        assert state["edgesDrawn"] > 0
        assert not errors, errors
    finally:
        context.close()


def test_signal_emitted_through_the_api_appears_on_the_nodes_dashboard(make_cluster: Any, built_web: Any, page: Page) -> None:
    cluster: LocalCluster = make_cluster(1)
    cluster.start()
    node = cluster.nodes[0]
    page.goto(node.api + "/")
    expect(page.locator("#signals-stream")).to_have_text("live", timeout=UI_TIMEOUT_MS)
    r = node.post("/v1/signals", json={"type": "flood", "payload": "hello dashboard"}, headers={"Authorization": f"Bearer {node.token}"})
    assert r.status_code == 200, r.text
    signal_id = r.json()["id"]
    row = page.locator(f'#signals-body tr[data-signal-id="{signal_id}"]')
    expect(row.locator(".signal-type")).to_have_text("flood", timeout=UI_TIMEOUT_MS)
    expect(row.locator(".signal-source")).to_have_attribute("title", node.node_id)
    expect(row.locator(".signal-hops")).to_have_text("0")
    assert not page.vudo_errors  # type: ignore[attr-defined]
