"""The marketplace across 3 real `vudo node` processes.

physarum.spirit (the build's signed package) is published on node 0 (installed
there: its signed catalogue now offers it), found in the marketplace of node 2
(`vudo spirit search`), fetched by node 2 over the links on /vudo/spirit/1
(`vudo spirit fetch`, chunked and verified) and summoned there inside its
sandbox: its ticks read node 2's topology and its page is served.
"""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Page, expect

from browser_support import UI_TIMEOUT_MS
from cluster import LocalCluster, metric_value, run_vudo, wait_for
from vudo.spirits.builtin import PHYSARUM_PACKAGE
from vudo.spirits.package import read_package

DEADLINE = 120.0


def test_publish_on_one_node_find_and_fetch_on_another_and_summon_there(make_cluster: Any, page: Page) -> None:
    cluster: LocalCluster = make_cluster(3)
    cluster.init()
    publisher, bystander, fetcher = cluster.nodes
    (fetcher.data_dir / "vudo.toml").write_text('[spirits.allow.physarum]\nnetwork = "read"\ncompute = "minimal"\ndisplay = "required"\n')
    cluster.start()
    package = read_package(PHYSARUM_PACKAGE.read_bytes())

    installed = run_vudo("spirit", "install", str(PHYSARUM_PACKAGE), "--data-dir", str(publisher.data_dir), "--json")
    assert installed.returncode == 0, installed.stderr

    def offered() -> list[dict[str, Any]] | None:
        found = run_vudo("spirit", "search", "phys", "--data-dir", str(fetcher.data_dir), "--json")
        assert found.returncode == 0, found.stderr
        offers = json.loads(found.stdout)["offers"]
        return offers if offers and publisher.node_id in offers[0]["offered_by"] else None

    offers = wait_for(offered, timeout=DEADLINE, what="node 2 to see node 0's signed catalogue offer physarum",
                      diagnostics=fetcher.describe_log)
    assert offers is not None and len(offers) == 1
    offer = offers[0]
    assert (offer["name"], offer["sha256"], offer["tier"], offer["installed_here"]) == ("physarum", package.sha256, "free", False)
    assert offer["offered_by"] == [publisher.node_id] and offer["size"] == PHYSARUM_PACKAGE.stat().st_size
    table = run_vudo("spirit", "search", "--data-dir", str(bystander.data_dir))
    assert table.returncode == 0 and "physarum" in table.stdout and "SHA256" in table.stdout
    assert fetcher.get("/v1/marketplace", params={"q": "nothing-like-it"}).json() == {"offers": []}

    wait_for(lambda: publisher.node_id in {link["peer"] for link in fetcher.get("/v1/links").json()["links"]},
             timeout=DEADLINE, what="node 2 to link with node 0", diagnostics=fetcher.describe_log)
    missing = run_vudo("spirit", "fetch", "nobody", "--data-dir", str(fetcher.data_dir))
    assert missing.returncode == 1 and "not_offered" in missing.stderr
    fetched = run_vudo("spirit", "fetch", f"physarum@{package.manifest.version}", "--data-dir", str(fetcher.data_dir), timeout=180)
    assert fetched.returncode == 0, fetched.stderr
    assert "100%" in fetched.stderr and "installed physarum@0.1.0" in fetched.stdout
    assert (fetcher.data_dir / "spirits" / "physarum" / "package.spirit").read_bytes() == PHYSARUM_PACKAGE.read_bytes()
    served = publisher.metrics()
    assert "vudo_market_chunk_bytes_served_total" in served

    view = fetcher.get("/v1/spirits/physarum").json()
    assert view["state"] == "installed" and view["package_sha256"] == package.sha256
    summoned = fetcher.post("/v1/spirits/physarum/summon", headers={"Authorization": f"Bearer {fetcher.token}"})
    assert summoned.status_code == 200 and summoned.json()["state"] == "running", summoned.text

    def grown() -> bool:
        lines = [line["text"] for line in fetcher.get("/v1/spirits/physarum/logs").json()["lines"]]
        return any("network of 3 member(s)" in text for text in lines)

    wait_for(grown, timeout=DEADLINE, what="physarum on node 2 to grow a network between the 3 members", diagnostics=fetcher.describe_log)
    running = fetcher.get("/v1/spirits/physarum").json()
    assert running["state"] == "running" and running["calls"] >= 2 and running["memory_bytes"] <= running["memory_cap"]
    html = fetcher.get("/spirits/physarum/")
    assert html.status_code == 200 and "physarum.js" in html.text and "default-src 'none'" in html.headers["content-security-policy"]
    # The page runs the same module in the browser under the strict CSP: no inline script, its own wasm only.
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    page.goto(fetcher.api + "/spirits/physarum/")
    # (polled from here: a page-side predicate would need eval, which the CSP rightly refuses)
    wait_for(lambda: int(page.locator("body").get_attribute("data-steps") or 0) > 8, timeout=UI_TIMEOUT_MS / 1000,
             what="the page to run the model in the browser")
    expect(page.locator("#members")).to_contain_text("3 alive", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#node-state")).to_contain_text("running", timeout=UI_TIMEOUT_MS)
    assert not page.vudo_errors and not console_errors, (page.vudo_errors, console_errors)  # type: ignore[attr-defined]
    again = run_vudo("spirit", "search", "physarum", "--data-dir", str(fetcher.data_dir), "--json")
    now_offered = json.loads(again.stdout)["offers"][0]
    assert now_offered["installed_here"]
    wait_for(lambda: len(json.loads(run_vudo("spirit", "search", "physarum", "--data-dir", str(bystander.data_dir), "--json").stdout)
                         ["offers"][0]["offered_by"]) == 2,
             timeout=DEADLINE, what="node 1 to see both nodes offer physarum")


def test_an_outsiders_fetch_requests_are_validated_answered_and_counted(make_cluster: Any) -> None:
    """Whoever reaches the link port speaks /vudo/spirit/1: garbage, unknown hashes and bad ranges are refused
    (and counted); an installed package is served chunk by chunk; the node carries on."""
    import asyncio
    import time
    from concurrent.futures import ThreadPoolExecutor

    from vudo.hyphal.linkproto import HYPHAL_PROTOCOL, Dial, LinkUp, ResponseReceived, SendRequest
    from vudo.identity import Identity
    from vudo.services.link_engine import LinkEngine
    from vudo.spirits.fetch import SPIRIT_PROTOCOL, Chunk, GetChunk, Refused, decode_response, encode

    cluster: LocalCluster = make_cluster(1)
    cluster.start()
    node = cluster.nodes[0]
    r = node.post("/v1/spirits", content=PHYSARUM_PACKAGE.read_bytes(),
                  headers={"Authorization": f"Bearer {node.token}", "Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    sha = read_package(PHYSARUM_PACKAGE.read_bytes()).sha256
    size = PHYSARUM_PACKAGE.stat().st_size
    requests = {1: b"\xc1 not msgpack", 2: encode(GetChunk("ab" * 32, 0, 1024)), 3: encode(GetChunk(sha, size + 5, 10)),
                4: encode(GetChunk(sha, 0, 4096)), 5: b"x" * 2048}

    async def main() -> dict[int, bytes]:
        engine = LinkEngine(Identity.generate(), "/ip4/127.0.0.1/tcp/0", protocols=(HYPHAL_PROTOCOL, SPIRIT_PROTOCOL), clock=time.time)
        await engine.start()
        answers: dict[int, bytes] = {}
        try:
            engine.execute(Dial(f"/ip4/127.0.0.1/tcp/{node.link_port}", node.node_id))
            deadline = time.monotonic() + DEADLINE
            while len(answers) < len(requests) and time.monotonic() < deadline:
                event = await asyncio.wait_for(engine.next_event(), timeout=max(0.1, deadline - time.monotonic()))
                if isinstance(event, LinkUp):
                    for request_id, payload in requests.items():
                        engine.execute(SendRequest(node.node_id, SPIRIT_PROTOCOL, request_id, payload))
                if isinstance(event, ResponseReceived) and event.protocol == SPIRIT_PROTOCOL:
                    answers[event.request_id] = event.payload
            return answers
        finally:
            await engine.stop()

    with ThreadPoolExecutor(1) as pool:
        answers = pool.submit(asyncio.run, main()).result()
    frames = {k: decode_response(v) for k, v in answers.items()}
    assert set(frames) == set(requests), answers
    reasons = {k: f.reason for k, f in frames.items() if isinstance(f, Refused)}
    assert reasons == {1: "bad_request", 2: "unknown_hash", 3: "bad_range", 5: "bad_request"}
    chunk = frames[4]
    assert isinstance(chunk, Chunk) and chunk.total == size and chunk.data == PHYSARUM_PACKAGE.read_bytes()[:4096]
    metrics = node.metrics()
    for reason, count in (("bad_request", 2.0), ("unknown_hash", 1.0), ("bad_range", 1.0)):
        assert metric_value(metrics, "vudo_market_requests_refused_total", {"reason": reason}) == count
    assert node.ready()
