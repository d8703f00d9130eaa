"""Spirits on a real `vudo node`: the CLI packs and installs, the API summons and dismisses."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from browser_support import UI_TIMEOUT_MS
from cluster import LocalCluster, run_vudo, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spirits.support import write_source_dir  # noqa: E402


def test_pack_install_summon_serve_dismiss_on_a_real_node(make_cluster: Any, tmp_path: Path, built_web: Any, page: Page) -> None:
    cluster: LocalCluster = make_cluster(1)
    cluster.init()
    node = cluster.nodes[0]
    (node.data_dir / "vudo.toml").write_text('[spirits.allow.hello]\nnetwork = "none"\ncompute = "minimal"\ndisplay = "required"\n')
    cluster.start()
    src = write_source_dir(tmp_path / "src")
    out = tmp_path / "hello.spirit"
    packed = run_vudo("spirit", "pack", str(src), "-o", str(out), "--data-dir", str(node.data_dir), "--json")
    assert packed.returncode == 0, packed.stderr
    assert json.loads(packed.stdout)["manifest"]["author"] == node.node_id
    assert run_vudo("spirit", "verify", str(out)).returncode == 0

    installed = run_vudo("spirit", "install", str(out), "--data-dir", str(node.data_dir), "--json")
    assert installed.returncode == 0, installed.stderr
    assert json.loads(installed.stdout)["state"] == "installed"

    token = {"Authorization": f"Bearer {node.token}"}
    summoned = node.post("/v1/spirits/hello/summon", headers=token)
    assert summoned.status_code == 200, summoned.text
    assert summoned.json()["state"] == "running"
    wait_for(lambda: node.get("/v1/spirits/hello").json()["calls"] >= 4, what="a few ticks on the real node",
             diagnostics=node.describe_log)
    served = node.get("/spirits/hello/web/index.html")
    assert served.status_code == 200 and "hello spirit" in served.text
    assert "default-src 'none'" in served.headers["content-security-policy"]

    page.goto(node.api + "/")
    page.wait_for_function("window.__vudoDashboard && window.__vudoDashboard.spirits.hello === 'running'", timeout=UI_TIMEOUT_MS)
    row = page.locator('tr[data-spirit="hello"]')
    expect(row.locator(".spirit-state")).to_have_text("running", timeout=UI_TIMEOUT_MS)
    expect(row.get_by_role("link", name="open")).to_have_attribute("href", "/spirits/hello/")

    listed = run_vudo("spirit", "list", "--data-dir", str(node.data_dir))
    assert listed.returncode == 0 and "running" in listed.stdout and "hello" in listed.stdout
    dismissed = run_vudo("spirit", "dismiss", "hello", "--data-dir", str(node.data_dir), "--json")
    assert dismissed.returncode == 0, dismissed.stderr
    assert json.loads(dismissed.stdout)["state"] == "dismissed"
    logs = run_vudo("spirit", "logs", "hello", "--data-dir", str(node.data_dir))
    assert "summoned" in logs.stdout and "dismissed" in logs.stdout
    assert node.get("/spirits/hello/web/index.html").status_code == 404
    expect(row.locator(".spirit-state")).to_have_text("dismissed", timeout=UI_TIMEOUT_MS)
    assert not page.vudo_errors  # type: ignore[attr-defined]

    tampered = bytearray(out.read_bytes())
    tampered[700] ^= 0x01
    bad = node.post("/v1/spirits", content=bytes(tampered), headers={**token, "Content-Type": "application/octet-stream"})
    assert bad.status_code in (400, 409), bad.text
    assert run_vudo("spirit", "summon", "nobody", "--data-dir", str(node.data_dir)).returncode == 1
    assert node.ready() and isinstance(node.get("/v1/spirits").json()["spirits"], list)

    uninstalled = run_vudo("spirit", "uninstall", "hello", "--data-dir", str(node.data_dir))
    assert uninstalled.returncode == 0 and "uninstalled hello" in uninstalled.stdout, uninstalled.stderr
    assert not (node.data_dir / "spirits" / "hello").exists()
    assert node.get("/v1/spirits/hello").status_code == 404
    again = run_vudo("spirit", "uninstall", "hello", "--data-dir", str(node.data_dir))
    assert again.returncode == 1 and "unknown_spirit" in again.stderr
