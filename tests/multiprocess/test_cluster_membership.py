"""Membership with real `vudo node` processes on loopback.

Every test starts its own small cluster (gossip interval 100 ms) through the
``make_cluster`` fixture, which SIGKILLs all nodes at teardown. Waits poll
with generous deadlines and assert behaviour, never timing.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from cluster import PYTHON, LocalCluster, NodeProc, forget, free_ports, init_data_dir, run_vudo, spawn, tail, wait_for
from vudo import _core
from vudo.hyphal.announcement import NodeAnnouncement
from vudo.hyphal.signed import Carrier, seal
from vudo.identity import Identity

# ---------------------------------------------------------------- basics ----


def test_five_nodes_converge_to_full_verified_membership(make_cluster: Any) -> None:
    cluster: LocalCluster = make_cluster(5)
    cluster.start()
    views = cluster.wait_converged()
    ids = {n.node_id for n in cluster.nodes}
    for node in cluster.nodes:
        members = views[node.index]
        assert set(members) == ids, f"{node} knows unexpected members: {set(members) ^ ids}"
        selves = [m["node_id"] for m in members.values() if m["is_self"]]
        assert selves == [node.node_id]
        assert all(m["rejected"] == [] for m in members.values())
        # the API advertised in a verified announcement is the node's own
        for other in cluster.nodes:
            assert members[other.node_id]["gossip_addr"] == other.gossip
            assert members[other.node_id]["api"] == other.api


def test_sigkilled_node_is_marked_dead_by_all_others(make_cluster: Any) -> None:
    cluster: LocalCluster = make_cluster(4)
    cluster.start()
    cluster.wait_converged()
    victim = cluster.nodes[2]
    assert victim.kill() == -signal.SIGKILL
    cluster.wait_status(victim, "dead")
    # the survivors still see each other alive
    survivors = cluster.running_nodes()
    views = cluster.views(survivors)
    for members in views.values():
        for s in survivors:
            assert members[s.node_id]["status"] == "alive", cluster.format_views(views)


def test_restarted_node_rejoins_with_same_id_and_new_generation(make_cluster: Any) -> None:
    cluster: LocalCluster = make_cluster(4)
    cluster.start()
    views = cluster.wait_converged()
    victim = cluster.nodes[3]
    old_generation = views[0][victim.node_id]["generation"]
    victim.kill()
    cluster.wait_status(victim, "dead")

    victim.restart()
    cluster.wait_ready([victim])
    assert victim.get("/v1/node").json()["node_id"] == victim.node_id
    cluster.wait_status(victim, "alive", verified=True, generation_above=old_generation)
    views = cluster.wait_converged()  # the restarted node also sees everyone again
    generations = {v[victim.node_id]["generation"] for v in views.values()}
    assert len(generations) == 1 and generations.pop() > old_generation


def test_sigstopped_node_goes_dead_then_alive_again_after_sigcont(make_cluster: Any) -> None:
    cluster: LocalCluster = make_cluster(3)
    cluster.start()
    views = cluster.wait_converged()
    victim = cluster.nodes[1]
    generation = views[0][victim.node_id]["generation"]
    victim.pause()
    try:
        cluster.wait_status(victim, "dead")
    finally:
        victim.resume()
    cluster.wait_status(victim, "alive", verified=True)
    views = cluster.wait_converged()
    assert all(v[victim.node_id]["generation"] == generation for v in views.values())


def test_sigterm_exits_zero_and_peers_see_left(make_cluster: Any) -> None:
    cluster: LocalCluster = make_cluster(3)
    cluster.start()
    cluster.wait_converged()
    leaver = cluster.nodes[1]
    leaver.terminate()
    code = leaver.wait_exit()
    assert code == 0, leaver.describe_log()
    assert "left; gossip stopped" in leaver.log_path.read_text()
    cluster.wait_status(leaver, "left")
    # "left" is sticky: it does not decay to "dead" once the failure detector notices
    survivors = cluster.running_nodes()
    wait_for(
        lambda: all(
            n.get("/metrics").text.count('vudo_members{status="left"} 1.0') == 1 for n in survivors
        ),
        what="the left gauge to show one left member",
        diagnostics=cluster.diagnostics,
    )
    views = cluster.views(survivors)
    for members in views.values():
        assert members[leaver.node_id]["status"] == "left", cluster.format_views(views)
    old_generation = views[0][leaver.node_id]["generation"]
    # a node that left may come back: the new generation carries no leave notice
    leaver.restart()
    cluster.wait_ready([leaver])
    cluster.wait_status(leaver, "alive", verified=True, generation_above=old_generation)
    cluster.wait_converged()


# ------------------------------------------------------------ adversarial ----

MAGIC = (45_139).to_bytes(2, "little")  # chitchat's wire magic number


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "little")


def _garbage_datagrams(cluster_id: str) -> list[bytes]:
    rng = random.Random(20260427)
    out: list[bytes] = [b"", b"\x00", MAGIC[:1], MAGIC, MAGIC + b"\x00"]
    out += [rng.randbytes(n) for n in (1, 2, 3, 4, 7, 64, 512, 1400, 9000, 65_507) for _ in range(5)]
    out += [b"\x00" * 65_507, b"\xff" * 65_507]
    out += [
        MAGIC + b"\x09\x00",  # unknown protocol version
        MAGIC + b"\x00\x07",  # unknown message type
        MAGIC + b"\x00\x00",  # Syn with nothing after the header
        MAGIC + b"\x00\x00" + _u16(65_535),  # Syn claiming 65535 digest entries, none present
        MAGIC + b"\x00\x00" + _u16(1) + _u16(60_000) + b"x" * 10,  # node id longer than the datagram
        MAGIC + b"\x00\x00" + _u16(0) + _u16(3) + b"\xff\xfe\xfd",  # cluster id that is not UTF-8
        MAGIC + b"\x00\x00" + _u16(0) + _u16(len(cluster_id) + 50) + cluster_id.encode(),  # truncated cluster id
        MAGIC + b"\x01\x00" + rng.randbytes(200),  # v1 Syn, compressed digest of noise
        MAGIC + b"\x00\x01" + _u16(65_535) + rng.randbytes(300),  # SynAck with a huge digest count
        MAGIC + b"\x00\x02" + rng.randbytes(300),  # Ack whose delta is noise
        MAGIC + b"\x00\x02" + b"\xff" * 65_000,  # oversized Ack of 0xff
        MAGIC + b"\x00\x03",  # a bare BadCluster from nobody
        MAGIC + b"\x00\x00" + _u16(0) + _u16(5) + b"other",  # well-formed Syn for another cluster
    ]
    out += [MAGIC + bytes([rng.randrange(3), rng.randrange(4)]) + rng.randbytes(rng.randrange(0, 2000)) for _ in range(300)]
    return out


def test_garbage_datagrams_do_not_crash_a_node(make_cluster: Any) -> None:
    cluster: LocalCluster = make_cluster(3)
    cluster.start()
    cluster.wait_converged()
    target = cluster.nodes[0]
    datagrams = _garbage_datagrams(cluster.cluster_id)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        for round_ in range(3):
            for payload in datagrams:
                sock.sendto(payload, ("127.0.0.1", target.gossip_port))
            # let the node drain its socket buffer between bursts; polling /livez is
            # both the pacing and part of the check
            wait_for(lambda: target.get("/livez").status_code == 200, what=f"{target} /livez after burst {round_}",
                     diagnostics=cluster.diagnostics)
    assert target.running, target.describe_log()
    # membership is still exactly the cluster, alive and verified, as seen from everywhere
    views = cluster.wait_converged()
    ids = {n.node_id for n in cluster.nodes}
    assert all(set(v) == ids for v in views.values()), cluster.format_views(views)
    # ... and still live: the failure detector of the others keeps hearing the target
    assert "vudo_node_ready 1.0" in target.metrics()
    assert "panicked" not in target.log_path.read_text()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged_announcements(rogue: Any, other: Any, victim_id: str, addr: str, generation: int) -> list[tuple[str, str]]:
    """(expected reason, value) pairs the rogue will publish under its own node id."""
    def ann(node_id: str, ts: float) -> NodeAnnouncement:
        return NodeAnnouncement(node_id=node_id, addr=addr, api="", capabilities=(), version="0.0.0", timestamp=ts)

    now = time.time()
    mine = Carrier(rogue.node_id, generation, addr)
    carrier_part, body_part, _ = seal(rogue, ann(rogue.node_id, now), carrier=mine).split(".")
    return [
        ("bad_signature", seal(other, ann(rogue.node_id, now), carrier=mine)),  # rogue's id, someone else's signature
        # a value naming a real node, replayed by the rogue
        ("wrong_owner", seal(other, ann(victim_id, now), carrier=Carrier(victim_id, generation, addr))),
        ("wrong_generation", seal(rogue, ann(rogue.node_id, now), carrier=Carrier(rogue.node_id, generation - 1, addr))),
        ("wrong_addr", seal(rogue, ann(rogue.node_id, now), carrier=Carrier(rogue.node_id, generation, "127.0.0.1:1"))),
        ("stale", seal(rogue, ann(rogue.node_id, now - 3600), carrier=mine)),
        ("future", seal(rogue, ann(rogue.node_id, now + 3600), carrier=mine)),
        ("malformed", "this is not a sealed value"),
        ("malformed", _b64(b'{"node_id": 42}') + "." + _b64(b"{}") + "." + _b64(b"\x00" * 64)),
        ("bad_signature", f"{carrier_part}.{body_part}." + _b64(b"\x01" * 64)),
        ("oversize", "A" * 9000 + "." + "B"),
    ]


def test_forged_announcements_are_counted_and_never_verified(make_cluster: Any) -> None:
    cluster: LocalCluster = make_cluster(2)
    cluster.start()
    cluster.wait_converged()
    rogue_id, other = Identity.generate(), Identity.generate()
    port = free_ports(1, socket.SOCK_DGRAM)[0]
    addr = f"127.0.0.1:{port}"
    generation = time.time_ns() // 1000
    forged = _forged_announcements(rogue_id, other, cluster.nodes[0].node_id, addr, generation)
    rogue = _core.Gossip(
        node_id=rogue_id.node_id, generation=generation, listen_addr=addr, advertise_addr=addr,
        seeds=[n.gossip for n in cluster.nodes], cluster_id=cluster.cluster_id, gossip_interval_ms=100,
        phi_threshold=8.0, dead_node_grace_period_ms=3_600_000, max_interval_ms=10_000,
        initial_key_values={},
    )
    observed_verified: list[str] = []
    try:
        for reason, value in forged:
            before = {n.index: n.rejected_count("announcement", reason) for n in cluster.nodes}
            rogue.set("announcement", value)

            def rejected_everywhere(reason: str = reason, before: dict[int, int] = before) -> bool:
                for n in cluster.nodes:
                    m = n.members().get(rogue_id.node_id)
                    if m is not None and m["verified"]:
                        observed_verified.append(f"{n} saw the rogue verified with {reason!r} value")
                    if m is None or m["verified"] or reason not in m["rejected"]:
                        return False
                    if n.rejected_count("announcement", reason) < before[n.index] + 1:
                        return False
                return True

            wait_for(rejected_everywhere, what=f"the {reason} announcement to be rejected by every node",
                     diagnostics=lambda: cluster.format_views(cluster.views()) + "\n" + cluster.diagnostics())
            assert not observed_verified, observed_verified
        # the real nodes' own membership is unaffected
        views = cluster.wait_converged()
        assert all(v[rogue_id.node_id]["status"] == "alive" and not v[rogue_id.node_id]["verified"] for v in views.values())
        # and the harness is sound: a properly signed announcement from the same participant is accepted
        rogue.set("announcement", seal(rogue_id, NodeAnnouncement(
            node_id=rogue_id.node_id, addr=addr, api="", capabilities=(), version="0.0.0", timestamp=time.time()),
            carrier=Carrier(rogue_id.node_id, generation, addr)))
        cluster.wait_views(lambda _, ms: ms.get(rogue_id.node_id, {}).get("verified") is True and not ms[rogue_id.node_id]["rejected"],
                           what="the honestly signed announcement to verify")
    finally:
        rogue.shutdown()


# ----------------------------------------------------------- start-up errors ----


def _start_one(tmp_path: Path, *extra: str) -> tuple[Path, list[str], int, int]:
    data_dir = tmp_path / "solo"
    init_data_dir(data_dir, via_cli=True)
    gport = free_ports(1, socket.SOCK_DGRAM)[0]
    aport = free_ports(1, socket.SOCK_STREAM)[0]
    argv = ["node", "--data-dir", str(data_dir), "--gossip-port", str(gport), "--api-port", str(aport),
            "--gossip-interval-ms", "100", "--cluster-id", "solo", *extra]
    return data_dir, argv, gport, aport


def test_gossip_port_in_use_is_reported(tmp_path: Path) -> None:
    _, argv, gport, _ = _start_one(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", gport))
        result = run_vudo(*argv)
    assert result.returncode != 0
    assert f"127.0.0.1:{gport}" in result.stderr, result.stderr
    assert "already in use" in result.stderr and "--gossip-port" in result.stderr, result.stderr
    if os.geteuid() == 0:  # the holder is visible to root (and to its own user)
        assert f"pid {os.getpid()}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_api_port_in_use_is_reported(tmp_path: Path) -> None:
    _, argv, _, aport = _start_one(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", aport))
        holder.listen()
        result = run_vudo(*argv)
    assert result.returncode != 0
    assert f"127.0.0.1:{aport}" in result.stderr, result.stderr
    assert "already in use" in result.stderr and "--api-port" in result.stderr, result.stderr
    if os.geteuid() == 0:
        assert f"pid {os.getpid()}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    data_dir, argv, _, _ = _start_one(tmp_path)
    for name in ("node.key", "api-token"):
        path = data_dir / name
        path.chmod(0o644)
        result = run_vudo(*argv)
        assert result.returncode != 0, result.stderr
        assert f"chmod 600 {path}" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        path.chmod(0o600)


# -------------------------------------------------------------------- vudo dev ----


def _pid_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _kill_if_ours(pid: int, marker: str) -> None:
    """SIGKILL ``pid`` only if its command line mentions ``marker`` (never a recycled pid)."""
    try:
        proc = psutil.Process(pid)
        if marker in " ".join(proc.cmdline()):
            proc.kill()
    except psutil.Error:
        pass


def test_vudo_dev_cluster_file_restart_and_shutdown(tmp_path: Path) -> None:
    directory = tmp_path / "dev"
    log = tmp_path / "dev.log"
    dev = spawn([PYTHON, "-m", "vudo", "dev", "--nodes", "3", "--dir", str(directory), "--gossip-interval-ms", "100"], log)
    cluster_file = directory / "cluster.json"
    restarted: NodeProc | None = None
    described: list[dict[str, Any]] = []

    def diag() -> str:
        logs = [f"--- vudo dev log:\n{tail(log)}"]
        logs += [f"--- {d['data_dir']}/node.log:\n{tail(Path(d['data_dir']) / 'node.log')}" for d in described]
        return "\n".join(logs)

    try:
        def loaded() -> list[dict[str, Any]] | None:
            assert dev.poll() is None, f"vudo dev exited with {dev.returncode}\n{diag()}"
            return json.loads(cluster_file.read_text())["nodes"] if cluster_file.exists() else None

        described = wait_for(loaded, timeout=180, what="cluster.json", diagnostics=diag)
        assert len(described) == 3
        for d in described:
            assert set(d) >= {"node_id", "api", "gossip", "pid", "data_dir", "witness", "argv"}, d
            assert isinstance(d["argv"], list) and d["argv"][1:4] == ["-m", "vudo", "node"], d["argv"]
            assert d["data_dir"] in d["argv"] and d["gossip"].rsplit(":", 1)[1] in d["argv"], d["argv"]
            assert httpx.get(d["api"] + "/v1/node", timeout=5).json()["node_id"] == d["node_id"]
        assert [d["witness"] for d in described] == [True, True, True]  # default --witnesses 3
        # vudo dev seals its cluster's gossip with a key of its own (0600), passed to every node
        key_file = Path(json.loads(cluster_file.read_text())["gossip_key_file"])
        assert key_file == directory / "gossip.key" and (key_file.stat().st_mode & 0o777) == 0o600
        assert all(str(key_file) in d["argv"] for d in described)
        assert "vudo_gossip_sealed 1.0" in httpx.get(described[0]["api"] + "/metrics", timeout=5).text

        ids = {d["node_id"] for d in described}

        def all_alive_verified(api: str) -> bool:
            members = {m["node_id"]: m for m in httpx.get(api + "/v1/members", timeout=5).json()["members"]}
            return ids <= set(members) and all(members[i]["status"] == "alive" and members[i]["verified"] for i in ids)

        wait_for(lambda: all(all_alive_verified(d["api"]) for d in described), what="dev cluster convergence", diagnostics=diag)
        # every dev node has the build's physarum.spirit installed and granted (summon works without editing vudo.toml)
        for d in described:
            spirits = {sp["name"]: sp for sp in httpx.get(d["api"] + "/v1/spirits", timeout=5).json()["spirits"]}
            assert spirits["physarum"]["state"] == "installed" and spirits["physarum"]["missing"] == [], spirits

        # `vudo keys --cluster DIR` rotates the key on every node of the dev cluster: install, use, remove.
        old_key = next(line.strip() for line in key_file.read_text().splitlines() if line.strip() and not line.startswith("#"))
        new_key = run_vudo("keygen").stdout.strip()
        new_id = _core.gossip_key_id(base64.b64decode(new_key))
        for op, key in (("install", new_key), ("use", new_key), ("remove", old_key)):
            r = run_vudo("keys", op, key, "--cluster", str(directory))
            assert r.returncode == 0, f"keys {op}: {r.stdout}{r.stderr}\n{diag()}"
            assert r.stdout.count(new_id) == 3, r.stdout  # one row per node
        listed = json.loads(run_vudo("keys", "list", "--cluster", str(directory), "--json").stdout)
        assert [(n["node_id"], n["result"]) for n in listed["nodes"]] == [
            (d["node_id"], {"sealed": True, "keys": [{"id": new_id, "primary": True}]}) for d in described]
        wait_for(lambda: all(all_alive_verified(d["api"]) for d in described), what="convergence after the rotation", diagnostics=diag)
        refused = run_vudo("keys", "remove", new_key, "--cluster", str(directory))
        assert refused.returncode == 2 and refused.stdout.count("primary") == 3, refused.stdout + refused.stderr
        assert "3 of 3 nodes failed" in refused.stderr
        missing = run_vudo("keys", "list", "--cluster", str(tmp_path / "nowhere"))
        assert missing.returncode == 2 and "no dev cluster" in missing.stderr

        # kill -9 node 2 and bring it back with its own argv
        victim = described[2]
        old_generation = {m["node_id"]: m for m in httpx.get(described[0]["api"] + "/v1/members").json()["members"]}[victim["node_id"]]["generation"]
        os.kill(victim["pid"], signal.SIGKILL)
        wait_for(lambda: _pid_gone(victim["pid"]), what="the killed dev node to disappear", diagnostics=diag)
        wait_for(lambda: "node 2 exited" in log.read_text(), what="vudo dev to report the exit", diagnostics=diag)
        gport, aport = int(victim["gossip"].rsplit(":", 1)[1]), int(victim["api"].rsplit(":", 1)[1])
        restarted = NodeProc(2, Path(victim["data_dir"]), gport, aport, list(victim["argv"]), node_id=victim["node_id"])
        restarted.start()
        wait_for(restarted.ready, timeout=90, what="the restarted node to be ready", diagnostics=lambda: restarted.describe_log())
        assert restarted.get("/v1/node").json()["node_id"] == victim["node_id"]

        def back_everywhere() -> bool:
            for d in described[:2]:
                m = {m["node_id"]: m for m in httpx.get(d["api"] + "/v1/members", timeout=5).json()["members"]}.get(victim["node_id"])
                if not m or m["status"] != "alive" or not m["verified"] or m["generation"] <= old_generation:
                    return False
            return True

        wait_for(back_everywhere, what="the restarted node alive+verified with a new generation", diagnostics=diag)

        # SIGTERM to vudo dev stops the nodes it owns and exits 0
        dev.send_signal(signal.SIGTERM)
        assert dev.wait(timeout=90) == 0, diag()
        forget(dev)
        for d in described[:2]:
            assert _pid_gone(d["pid"]), f"dev node {d['pid']} survived vudo dev\n{diag()}"
        assert "all nodes stopped" in log.read_text()
        # the node we restarted is ours, not dev's: stop it ourselves, gracefully
        restarted.terminate()
        assert restarted.wait_exit() == 0, restarted.describe_log()
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()
        forget(dev)
        for d in described:
            _kill_if_ours(d["pid"], d["data_dir"])
        if restarted is not None and restarted.proc is not None and restarted.running:
            restarted.proc.kill()
            restarted.wait_exit()
        if restarted is not None:
            restarted.close()


# ------------------------------------------------------------------------- API ----


def test_api_contract_and_leave_authorisation(make_cluster: Any) -> None:
    cluster: LocalCluster = make_cluster(1)
    cluster.start()
    node = cluster.nodes[0]
    spec = node.get("/v1/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v1/node", "/v1/members", "/v1/gradients", "/v1/node/leave", "/livez", "/readyz", "/metrics"):
        assert path in paths, sorted(paths)
    assert "post" in paths["/v1/node/leave"]
    assert node.get("/v1/node").json()["node_id"] == node.node_id

    token = node.token
    missing = node.post("/v1/node/leave")
    assert missing.status_code == 401 and missing.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert node.post("/v1/node/leave", headers={"Authorization": "Bearer nope-" + token}).status_code == 403
    assert node.post("/v1/node/leave", headers={"Authorization": "Bearer"}).status_code == 401
    assert node.post("/v1/node/leave", headers={"Authorization": f"Basic {token}"}).status_code == 401
    assert node.post("/v1/node/leave", headers={"Authorization": token}).status_code == 401
    for param in ("token", "access_token", "api_token", "authorization"):
        refused = node.post("/v1/node/leave", params={param: token})
        assert refused.status_code == 401, (param, refused.status_code, refused.text)
    assert node.get("/v1/node/leave").status_code == 405
    assert node.running and node.ready(), node.describe_log()

    accepted = node.post("/v1/node/leave", headers={"Authorization": f"Bearer {token}"})
    assert accepted.status_code == 202 and accepted.json() == {"status": "leaving"}
    assert node.wait_exit() == 0, node.describe_log()
    assert not (node.data_dir / "node.json").exists()


# ------------------------------------------------------------------------- CLI ----


def test_members_cli_json_and_table(make_cluster: Any) -> None:
    cluster: LocalCluster = make_cluster(2)
    cluster.start()
    cluster.wait_converged()
    first = cluster.nodes[0]

    as_json = run_vudo("members", "--api", first.api, "--json")
    assert as_json.returncode == 0, as_json.stderr
    members = {m["node_id"]: m for m in json.loads(as_json.stdout)["members"]}
    assert set(members) == {n.node_id for n in cluster.nodes}
    assert members[first.node_id]["is_self"] and all(m["status"] == "alive" and m["verified"] for m in members.values())

    as_table = run_vudo("members", "--api", first.api)
    assert as_table.returncode == 0, as_table.stderr
    lines = as_table.stdout.splitlines()
    assert lines[0].split()[:3] == ["NODE", "STATUS", "VERIFIED"], as_table.stdout
    assert "\x1b[" not in as_table.stdout  # NO_COLOR and not a tty
    for n in cluster.nodes:
        row = next(line for line in lines if n.node_id in line)
        assert "alive" in row and "yes" in row and n.gossip in row, row
        assert (f"{n.node_id} *" in row) == (n is first), row

    via_data_dir = run_vudo("members", "--data-dir", str(cluster.nodes[1].data_dir), "--json")
    assert via_data_dir.returncode == 0, via_data_dir.stderr
    assert {m["node_id"] for m in json.loads(via_data_dir.stdout)["members"] if m["is_self"]} == {cluster.nodes[1].node_id}

    first.kill()
    unreachable = run_vudo("members", "--api", first.api)
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr, unreachable.stderr
