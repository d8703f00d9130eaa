"""The node dashboard in a real browser (Debian Chromium via Playwright),
against a fake node API served from a thread."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from playwright.sync_api import Locator, Page, expect

if TYPE_CHECKING:  # fixtures come from conftest.py; this is for annotations only
    from conftest import FakeApi

from browser_support import UI_TIMEOUT_MS


def _open(page: Page, api: FakeApi) -> None:
    page.goto(api.url + "/")
    page.wait_for_function(
        "n => window.__vudoDashboard && window.__vudoDashboard.members === n",
        arg=len(api.members),
        timeout=UI_TIMEOUT_MS,
    )


def _row(page: Page, node_id: str) -> Locator:
    return page.locator(f'#members-body tr[data-node-id="{node_id}"]')


def test_table_shows_every_member_with_status_and_verified(page: Page, fake_api: FakeApi) -> None:
    _open(page, fake_api)

    expect(page.locator("#members-body tr[data-node-id]")).to_have_count(len(fake_api.members))
    for m in fake_api.members:
        row = _row(page, m["node_id"])
        expect(row).to_have_count(1)
        expect(row.locator(".status")).to_have_text(m["status"])
        expect(row.locator(".verified")).to_have_text("✓" if m["verified"] else "✗")
        # Shortened id on screen, full id on hover.
        node_id_el = row.locator(".node-id")
        expect(node_id_el).to_have_attribute("title", re.compile(re.escape(m["node_id"])))
        assert len(node_id_el.inner_text()) < len(m["node_id"])

    # Rejection reasons are available on the ✗ mark.
    rejected = _row(page, fake_api.peer_id(3)).locator(".verified")
    expect(rejected).to_have_attribute("title", re.compile("signature mismatch"))

    # This node's panel, and the link to the Physarum page.
    expect(page.locator("#self-id")).to_have_text(fake_api.node["node_id"])
    expect(page.locator("#self-version")).to_have_text("0.2.0-test")
    expect(page.locator("#self-addrs")).to_contain_text("127.0.0.1:7000")
    expect(page.locator("#self-caps")).to_contain_text("compute")
    expect(page.locator("a[href='/physarum']")).to_be_visible()
    expect(page.locator("#banner")).to_be_hidden()

    # Accessible table markup.
    expect(page.locator("#members thead th[scope=col]")).to_have_count(10)
    expect(page.locator("#members-body th[scope=row]")).to_have_count(len(fake_api.members))
    assert page.vudo_errors == []  # type: ignore[attr-defined]


def test_member_going_dead_shows_after_next_poll(page: Page, fake_api: FakeApi) -> None:
    _open(page, fake_api)
    victim = fake_api.peer_id(2)
    row = _row(page, victim)
    expect(row.locator(".status")).to_have_text("alive")

    fake_api.set_status(victim, "dead")

    expect(row.locator(".status")).to_have_text("dead", timeout=UI_TIMEOUT_MS)
    expect(row).to_have_attribute("data-status", "dead")
    expect(row.locator(".status")).to_have_class(re.compile(r"\bstatus-dead\b"))
    expect(page.locator("#members-summary")).to_contain_text("1 dead")
    assert page.vudo_errors == []  # type: ignore[attr-defined]


def test_member_without_gradient_or_fields_renders(page: Page, fake_api: FakeApi) -> None:
    bare = fake_api.peer_id(9)
    # Only an id: no status, verified, capabilities or gradient at all.
    fake_api.add_member({"node_id": bare})
    # Odd but survivable shapes: unknown capability kind, junk gradient.
    odd = fake_api.peer_id(10)
    fake_api.add_member(
        {
            "node_id": odd,
            "status": "alive",
            "verified": True,
            "capabilities": [{"kind": "quantum", "qubits": 3}, "not-an-object"],
            "gradient": {"compute_available": "lots", "hops": None},
        }
    )
    _open(page, fake_api)

    # The canned member with gradient null.
    no_gradient = _row(page, fake_api.peer_id(3))
    expect(no_gradient.locator(".col-hops")).to_have_text("—")
    expect(no_gradient.locator(".col-age")).to_have_text("—")
    expect(no_gradient.locator(".bar-compute .bar-value")).to_have_text("—")

    bare_row = _row(page, bare)
    expect(bare_row).to_have_count(1)
    expect(bare_row.locator(".col-hops")).to_have_text("—")
    expect(bare_row.locator(".status")).to_have_text("unknown")

    odd_row = _row(page, odd)
    expect(odd_row.locator(".caps")).to_contain_text("quantum")
    expect(odd_row.locator(".bar-compute .bar-value")).to_have_text("—")

    # A member with a gradient shows its numbers.
    with_gradient = _row(page, fake_api.peer_id(2))
    expect(with_gradient.locator(".col-hops")).to_have_text("1")
    expect(with_gradient.locator(".bar-storage .bar-value")).to_have_text("70%")

    # Still polling happily after rendering the odd members.
    errors_before = page.evaluate("window.__vudoDashboard.errors")
    last = page.evaluate("window.__vudoDashboard.lastUpdate")
    page.wait_for_function("t => window.__vudoDashboard.lastUpdate > t", arg=last, timeout=UI_TIMEOUT_MS)
    assert page.evaluate("window.__vudoDashboard.errors") == errors_before
    assert page.vudo_errors == []  # type: ignore[attr-defined]


def test_connection_lost_banner_appears_and_recovers(page: Page, fake_api: FakeApi) -> None:
    _open(page, fake_api)
    banner = page.locator("#banner")
    expect(banner).to_be_hidden()

    fake_api.stop()
    expect(banner).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(banner).to_contain_text("connection lost")
    assert page.evaluate("window.__vudoDashboard.errors") > 0
    # The last known table stays on screen while disconnected.
    expect(page.locator("#members-body tr[data-node-id]")).to_have_count(len(fake_api.members))

    last = page.evaluate("window.__vudoDashboard.lastUpdate")
    fake_api.set_status(fake_api.peer_id(2), "dead")
    fake_api.start()  # same port

    expect(banner).to_be_hidden(timeout=UI_TIMEOUT_MS)
    page.wait_for_function("t => window.__vudoDashboard.lastUpdate > t", arg=last, timeout=UI_TIMEOUT_MS)
    expect(_row(page, fake_api.peer_id(2)).locator(".status")).to_have_text("dead", timeout=UI_TIMEOUT_MS)
    assert page.vudo_errors == []  # type: ignore[attr-defined]


def _graph_drawn(page: Page, nodes: int, edges: int) -> None:
    page.wait_for_function(
        "([n, e]) => window.__vudoDashboard.topology.nodes === n && window.__vudoDashboard.topology.edges === e",
        arg=[nodes, edges],
        timeout=UI_TIMEOUT_MS,
    )


def test_topology_graph_shows_nodes_links_strength_and_you(page: Page, fake_api: FakeApi) -> None:
    _open(page, fake_api)
    _graph_drawn(page, 5, 3)
    graph = page.locator("#topology-graph")
    me = fake_api.node["node_id"]
    expect(graph.locator("g.node")).to_have_count(5)
    expect(graph.locator("g.node-self")).to_have_count(1)
    expect(graph.locator("g.node-self")).to_have_attribute("data-node-id", me)
    expect(graph.locator("g.node-self text")).to_have_text("you")
    expect(graph.locator("line.edge")).to_have_count(3)
    expect(graph.locator("line.edge-own")).to_have_count(2)
    strong = graph.locator(f'line[data-edge*="{fake_api.peer_id(2)}"][data-edge*="{me}"]')
    weak = graph.locator(f'line[data-edge*="{fake_api.peer_id(4)}"][data-edge*="{me}"]')
    expect(strong).to_have_attribute("data-strength", "0.900")
    expect(weak).to_have_attribute("data-strength", "0.050")
    assert float(strong.get_attribute("stroke-width") or 0) > float(weak.get_attribute("stroke-width") or 0)
    expect(page.locator("#topology-summary")).to_contain_text("5 nodes · 3 links · 2 here · 2 components")
    assert page.vudo_errors == []  # type: ignore[attr-defined]


def test_topology_graph_follows_changes_and_survives_bad_payloads(page: Page, fake_api: FakeApi) -> None:
    _open(page, fake_api)
    _graph_drawn(page, 5, 3)
    me, p5 = fake_api.node["node_id"], fake_api.peer_id(5)
    with fake_api.lock:
        fake_api.topology["edges"].append(sorted([me, p5]))
    _graph_drawn(page, 5, 4)
    expect(page.locator("#topology-summary")).to_contain_text("1 component")
    with fake_api.lock:  # garbage edges and nodes are skipped, never thrown
        fake_api.topology["edges"] += [[me], [me, me], [me, 42], ["x", "y"], "zz", None]
        fake_api.topology["nodes"] += [None, 7, {"a": 1}]
    page.wait_for_function("p => window.__vudoDashboard.polls > p + 1", arg=page.evaluate("window.__vudoDashboard.polls"), timeout=UI_TIMEOUT_MS)
    expect(page.locator("#topology-graph line.edge")).to_have_count(4)
    with fake_api.lock:
        fake_api.topology = {"nodes": "not a list"}
    page.wait_for_function("p => window.__vudoDashboard.polls > p + 1", arg=page.evaluate("window.__vudoDashboard.polls"), timeout=UI_TIMEOUT_MS)
    expect(page.locator("#banner")).to_be_hidden()  # the rest of the dashboard is unaffected
    expect(page.locator("#members-body tr[data-node-id]")).to_have_count(len(fake_api.members))
    assert page.vudo_errors == []  # type: ignore[attr-defined]


def test_credits_panel_shows_the_ledger_and_its_absence(page: Page, fake_api: FakeApi) -> None:
    _open(page, fake_api)
    page.wait_for_function("() => window.__vudoDashboard.credits.status === 'ok'", timeout=UI_TIMEOUT_MS)
    rows = page.locator("#credits-body tr[data-account]")
    expect(rows).to_have_count(2)
    mine = page.locator(f'#credits-body tr[data-account="{fake_api.node["node_id"]}"]')
    expect(mine).to_have_class(re.compile("is-self"))
    expect(mine.locator(".credits-balance")).to_have_text("1,250.5")  # units shown as credits, exactly
    expect(rows.first).to_have_attribute("data-account", fake_api.node["node_id"])  # largest balance first
    expect(page.locator("#credits-summary")).to_contain_text("minted 2,000")
    expect(page.locator("#credits-summary")).to_contain_text("term 3")
    with fake_api.lock:
        fake_api.credit_accounts = None
        fake_api.credit_summary = None
    page.wait_for_function("() => window.__vudoDashboard.credits.status === 'unavailable'", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#credits-body")).to_contain_text("No credit ledger reachable")
    expect(page.locator("#banner")).to_be_hidden()  # the node itself is still up
    assert page.vudo_errors == []  # type: ignore[attr-defined]
