"""Gossip an outsider cannot subvert: attacks between real `vudo node` processes.

The attacker is ``vudo-outsider`` (see ``tests/outsider.py``): a plain
chitchat 0.13 participant with no VUDO code, which can join under any node
id, generation and address, publish any key-value and make up node states.
Raw datagrams (wrong key, truncated, replayed) come from a plain UDP socket.
Waits poll with generous deadlines; nothing asserts timing.
"""

from __future__ import annotations

import base64
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from cluster import PYTHON, LocalCluster, NodeProc, forget, free_ports, init_data_dir, metric_value, run_vudo, spawn, wait_for
from outsider import Outsider
from vudo import _core
from vudo.gossip_keys import KEYRING_FILE
from vudo.identity import Identity


def _key() -> str:
    return base64.b64encode(_core.generate_gossip_key()).decode()


def _port() -> int:
    return free_ports(1, socket.SOCK_DGRAM)[0]


def _count(node: NodeProc, name: str, labels: dict[str, str]) -> float:
    return metric_value(node.metrics(), name, labels)


def _members_of(out: Outsider, name: str, node_id: str) -> list[dict[str, Any]]:
    return [m for m in out.dump(name) if m["node_id"] == node_id]


def _wait_rejected(cluster: LocalCluster, observers: list[NodeProc], key: str, reason: str, before: dict[int, float]) -> None:
    wait_for(
        lambda: all(o.rejected_count(key, reason) > before[o.index] for o in observers),
        what=f"every observer to reject {key} as {reason}",
        diagnostics=lambda: cluster.format_views(cluster.views(observers)) + "\n" + cluster.diagnostics(),
    )


def _assert_shown_as(cluster: LocalCluster, observers: list[NodeProc], victim: NodeProc, *, status: str,
                     generation: int) -> None:
    for observer in observers:
        m = observer.members()[victim.node_id]
        assert (m["status"], m["verified"], m["generation"], m["gossip_addr"]) == (
            status, True, generation, victim.gossip), f"{observer} sees {m}\n{cluster.format_views(cluster.views(observers))}"


# ------------------------------------------------------------------ open gossip ----


def test_hijack_and_leave_replay_fail_without_a_keyring(make_cluster: Any, tmp_path: Path) -> None:
    cluster: LocalCluster = make_cluster(3, extra_args=["--open-gossip"])
    cluster.start()
    cluster.wait_converged()
    victim, observers = cluster.nodes[2], cluster.nodes[:2]
    generation = observers[0].members()[victim.node_id]["generation"]
    stored = int((victim.data_dir / "gossip-generation").read_text())
    assert stored == generation
    seeds = [n.gossip for n in cluster.nodes]

    with Outsider.start(tmp_path / "outsider") as out:
        out.join("spy", node_id="spy-" + Identity.generate().node_id[-8:], generation=1, port=_port(), seeds=seeds,
                 cluster_id=cluster.cluster_id)

        def victim_values() -> dict[str, str] | None:
            for m in _members_of(out, "spy", victim.node_id):
                if m["generation"] == generation and {"announcement", "gradient"} <= set(m["kv"]):
                    return dict(m["kv"])
            return None

        copied = wait_for(victim_values, what="the spy to copy the victim's signed values")

        # Forged and replayed values under the spy's own identity: another node's announcement, a made-up leave.
        spy_id = next(m["node_id"] for m in out.dump("spy") if m["node_id"].startswith("spy-"))
        before_owner = {o.index: o.rejected_count("announcement", "wrong_owner") for o in observers}
        before_bad = {o.index: o.rejected_count("leave", "malformed") for o in observers}
        out.set("spy", "announcement", copied["announcement"])
        out.set("spy", "leave", "forged.leave.notice")
        _wait_rejected(cluster, observers, "announcement", "wrong_owner", before_owner)
        _wait_rejected(cluster, observers, "leave", "malformed", before_bad)
        for observer in observers:
            spy = observer.members().get(spy_id)
            assert spy is not None and not spy["verified"] and spy["status"] != "left", spy

        # Identity hijack: the victim's id with a higher generation, and the same generation from another address,
        # both re-publishing the victim's own signed announcement and gradient.
        before_gen = {o.index: o.rejected_count("announcement", "wrong_generation") for o in observers}
        before_addr = {o.index: o.rejected_count("announcement", "wrong_addr") for o in observers}
        forged_generation = generation + 10**12
        out.join("hijack", node_id=victim.node_id, generation=forged_generation, port=_port(), seeds=seeds,
                 cluster_id=cluster.cluster_id, kv=copied)
        out.join("squat", node_id=victim.node_id, generation=generation, port=_port(), seeds=seeds,
                 cluster_id=cluster.cluster_id, kv=copied)
        _wait_rejected(cluster, observers, "announcement", "wrong_generation", before_gen)
        _wait_rejected(cluster, observers, "announcement", "wrong_addr", before_addr)
        _assert_shown_as(cluster, observers, victim, status="alive", generation=generation)

        # The hijacker goes quiet: its identity dies, the real node does not.
        out.stop("hijack")
        out.stop("squat")
        wait_for(lambda: all(not m["live"] for m in _members_of(out, "spy", victim.node_id)
                             if m["generation"] == forged_generation),
                 what="the spy to see the forged generation dead")
        cluster.wait_status(victim, "alive", observers=observers, verified=True)
        _assert_shown_as(cluster, observers, victim, status="alive", generation=generation)

        # Leave replay: the victim leaves (its signed notice stays in gossip), restarts, and the outsider
        # re-publishes the old notice under a newer generation.
        victim.terminate()
        assert victim.wait_exit() == 0
        cluster.wait_status(victim, "left", observers=observers)

        def old_leave() -> str | None:
            for m in _members_of(out, "spy", victim.node_id):
                if m["generation"] == generation and "leave" in m["kv"]:
                    return str(m["kv"]["leave"])
            return None

        leave_notice = wait_for(old_leave, what="the spy to copy the victim's leave notice")
        victim.restart()
        cluster.wait_status(victim, "alive", observers=observers, generation_above=generation, verified=True)
        new_generation = observers[0].members()[victim.node_id]["generation"]
        assert new_generation == int((victim.data_dir / "gossip-generation").read_text()) > generation

        before_leave = {o.index: o.rejected_count("leave", "wrong_generation") for o in observers}
        out.join("replay", node_id=victim.node_id, generation=new_generation + 10**12, port=_port(), seeds=seeds,
                 cluster_id=cluster.cluster_id, kv={"leave": leave_notice, "announcement": copied["announcement"]})
        _wait_rejected(cluster, observers, "leave", "wrong_generation", before_leave)
        _assert_shown_as(cluster, observers, victim, status="alive", generation=new_generation)


def test_squatting_on_a_members_exact_identity_changes_nothing(make_cluster: Any, tmp_path: Path) -> None:
    """An outsider joins under a member's exact chitchat identity (node id, generation *and* address, sent
    from another port) with higher versions and garbage values: nobody lets them overwrite the member's."""
    cluster: LocalCluster = make_cluster(3, extra_args=["--open-gossip"])
    cluster.start()
    cluster.wait_converged()
    victim, observers = cluster.nodes[2], cluster.nodes[:2]
    generation = observers[0].members()[victim.node_id]["generation"]
    with Outsider.start(tmp_path / "outsider") as out:
        out.join("squat", node_id=victim.node_id, generation=generation, port=_port(), advertise_port=victim.gossip_port,
                 seeds=[n.gossip for n in cluster.nodes], cluster_id=cluster.cluster_id)
        assert out.fill("squat", count=5_000, prefix="junk", value="x") == 5_000  # versions far above the victim's
        out.set("squat", "announcement", "garbage")
        out.set("squat", "gradient", "garbage")

        def refused_everywhere() -> bool:
            return all(_count(o, "vudo_gossip_ids_refused_total", {"reason": "ahead_of_owner"}) > 0 for o in observers)

        def counts() -> str:
            return "\n".join(f"{n}: " + ", ".join(line for line in n.metrics().splitlines()
                                                  if "ids_refused_total" in line or "rewritten" in line or "engine_states " in line)
                             for n in cluster.nodes)

        wait_for(refused_everywhere, what="the squatter's sections to be refused by every observer", diagnostics=counts)
        for _ in range(10):
            _assert_shown_as(cluster, observers, victim, status="alive", generation=generation)
            time.sleep(0.5)
    cluster.wait_converged()


FLOOD_IDS = 20_000
FLOOD_PARTICIPANTS = 40


def test_a_flood_of_strangers_and_values_stays_bounded(make_cluster: Any, tmp_path: Path) -> None:
    """Plain chitchat participants push 20 000 junk keys and 20 000 made-up node ids at one node of an open cluster.

    First one participant publishes 20 000 distinct keys about itself, which chitchat sends over many
    datagrams; a second publishes 20 000 keys of values that compress to almost nothing, so each of
    its datagrams expands past what the engine reads from one (it is cut there). Then 40 more each hold 500 made-up states (a plain chitchat digest must fit one
    datagram) and gossip them on. The engine admits at most the cap of untrusted identities and at
    most ``UNVERIFIED_MAX_KEYS`` keys (and 64 KiB) per untrusted identity, so its table, its values
    and its own digest stay small, and it keeps gossiping with its real peers with all their values.

    The junk goes first and alone: chitchat puts the states its receiver does not know first in a
    delta, and once the flooders have gossiped with each other the junk carrier's deltas to the
    target would be full of the strangers the target keeps refusing.
    """
    cap = 32
    per_unverified_keys = 8  # vudo-gossip admission::UNVERIFIED_MAX_KEYS
    per_unverified_bytes = 64 * 1024  # admission::UNVERIFIED_MAX_BYTES
    junk = 20_000
    cluster: LocalCluster = make_cluster(3, extra_args=["--open-gossip", "--max-unverified", str(cap)])
    cluster.start()
    cluster.wait_converged()
    target = cluster.nodes[0]
    real = len(cluster.nodes)
    real_ids = {n.node_id for n in cluster.nodes}
    per = FLOOD_IDS // FLOOD_PARTICIPANTS

    def refused_lines() -> str:
        return "\n".join(line for line in target.metrics().splitlines() if "refused" in line or "rejected" in line or "datagrams_total" in line)

    with Outsider.start(tmp_path / "outsider") as out:
        out.join("junk", node_id="junk-carrier", generation=1, port=_port(), seeds=[target.gossip],
                 cluster_id=cluster.cluster_id, gossip_interval_ms=100)
        # Values that do not compress: chitchat sends ~700 of these keys per delta.
        assert out.fill("junk", count=junk, prefix="junk", value="", noise=64) == junk
        # Wait for a good part of it, far beyond the budget.
        wait_for(lambda: _count(target, "vudo_gossip_values_refused_total", {"reason": "keys"}) >= junk // 4,
                 timeout=240, what="the target to refuse the junk keys beyond their budget",
                 diagnostics=lambda: refused_lines() + "\n" + cluster.diagnostics())
        # Values that compress to nothing: chitchat fills a datagram up to its size limit *compressed*,
        # so each delta expands far beyond what the engine reads from one datagram (1 MiB). It is cut
        # at that bound (not dropped), and the budget applies to what is left.
        refused = _count(target, "vudo_gossip_values_refused_total", {"reason": "keys"})
        out.join("zjunk", node_id="zjunk-carrier", generation=1, port=_port(), seeds=[target.gossip],
                 cluster_id=cluster.cluster_id, gossip_interval_ms=100)
        assert out.fill("zjunk", count=junk, prefix="zjunk", value="x" * 64) == junk
        # One cut delta holds ~13 000 of these keys: all the junk arrives in a few datagrams.
        wait_for(lambda: (_count(target, "vudo_gossip_datagrams_total", {"direction": "truncated"}) >= 1
                          and _count(target, "vudo_gossip_values_refused_total", {"reason": "keys"}) >= refused + junk // 2),
                 timeout=240, what="the target to cut the compressible junk at its read bound and refuse it beyond the budget",
                 diagnostics=lambda: refused_lines() + "\n" + cluster.diagnostics())
        assert _count(target, "vudo_gossip_datagrams_rejected_total", {"reason": "undecodable"}) == 0

        for i in range(FLOOD_PARTICIPANTS):
            out.join(f"flood{i}", node_id=f"flooder-{i}", generation=1, port=_port(), seeds=[target.gossip],
                     cluster_id=cluster.cluster_id, gossip_interval_ms=500)
            held = out.inject(f"flood{i}", count=per, prefix=f"stranger{i}", first_port=20_000 + i,
                              kv={"announcement": "forged", "leave": "forged"})
            assert held >= per + 1  # itself and its made-up states: FLOOD_IDS distinct ids in all
        wait_for(lambda: _count(target, "vudo_gossip_ids_refused_total", {"reason": "cap"}) >= FLOOD_IDS,
                 timeout=240, what="the target to refuse the strangers beyond its cap",
                 diagnostics=lambda: refused_lines() + "\n" + cluster.diagnostics())
        for _ in range(5):
            for node in cluster.nodes:
                text = node.metrics()
                assert metric_value(text, "vudo_gossip_engine_states", {}) <= cap + real, f"{node}: {text}"
                assert metric_value(text, "vudo_gossip_engine_unverified", {}) <= cap
                assert metric_value(text, "vudo_gossip_engine_unverified_cap", {}) == cap
                assert metric_value(text, "vudo_gossip_members_unverified", {}) <= cap
                # Values: a real node publishes at most 5 keys of at most 8 KiB; strangers get their budget.
                key_values = metric_value(text, "vudo_gossip_engine_key_values", {})
                assert key_values <= 5 * real + per_unverified_keys * cap, f"{node}: {key_values} key-values"
                assert metric_value(text, "vudo_gossip_engine_value_bytes", {}) <= 5 * 8192 * real + per_unverified_bytes * cap
                members = node.members()
                assert len(members) <= real + cap
                assert not any(m["verified"] for nid, m in members.items() if nid not in real_ids)
            assert target.get("/").status_code in (200, 404)  # the dashboard page still answers
        assert metric_value(target.metrics(), "vudo_gossip_datagrams_total", {"direction": "rewritten"}) > 0
        # The real nodes keep gossiping with each other under the flood: everyone alive and verified
        # everywhere, with every value they publish (announcement, gradient, link list).
        cluster.wait_converged()

        def all_values_everywhere() -> bool:
            for node in cluster.nodes:
                members = node.members()
                if any((members.get(nid) or {}).get("gradient") is None for nid in real_ids):
                    return False
                if not real_ids <= set(node.get("/v1/topology").json()["nodes"]):
                    return False
            return True

        wait_for(all_values_everywhere, what="every real node's gradient and link list everywhere",
                 diagnostics=cluster.diagnostics)
        assert all(metric_value(n.metrics(), "vudo_gossip_engine_states", {}) <= cap + real for n in cluster.nodes)


# ---------------------------------------------------------------- with a keyring ----


def _capture_sealed_datagram(key: bytes, cluster_id: str) -> tuple[bytes, _core.Gossip]:
    """A genuine sealed Syn: a keyed gossip node whose only seed is a socket we read."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(30)
    port = _port()
    node = _core.Gossip(
        node_id="capture", generation=1, listen_addr=f"127.0.0.1:{port}", advertise_addr=f"127.0.0.1:{port}",
        seeds=[f"127.0.0.1:{sink.getsockname()[1]}"], cluster_id=cluster_id, gossip_interval_ms=100, phi_threshold=8.0,
        dead_node_grace_period_ms=60_000, max_interval_ms=10_000, initial_key_values={}, keys=[key],
    )
    try:
        datagram, _ = sink.recvfrom(70_000)
    finally:
        sink.close()
    return datagram, node


def test_with_a_keyring_an_outsider_learns_nothing_and_bad_datagrams_are_counted(make_cluster: Any, tmp_path: Path) -> None:
    key = _key()
    cluster: LocalCluster = make_cluster(3, extra_args=["--gossip-key", key])
    cluster.start()
    cluster.wait_converged()
    target = cluster.nodes[0]
    ids = {n.node_id for n in cluster.nodes}
    assert "vudo_gossip_sealed 1.0" in target.metrics()

    with Outsider.start(tmp_path / "outsider") as out:
        before = _count(target, "vudo_gossip_datagrams_rejected_total", {"reason": "not_sealed"})
        out.join("stranger", node_id=Identity.generate().node_id, generation=1, port=_port(),
                 seeds=[n.gossip for n in cluster.nodes], cluster_id=cluster.cluster_id, kv={"announcement": "x"})
        injected = out.inject("stranger", count=50, prefix="made-up", kv={"announcement": "x"})
        assert injected >= 50
        wait_for(lambda: _count(target, "vudo_gossip_datagrams_rejected_total", {"reason": "not_sealed"}) > before + 5,
                 what="the target to drop the outsider's plain datagrams")
        seen = out.dump("stranger")
        assert not any(m["node_id"] in ids for m in seen), f"the outsider learnt a member: {seen[:3]}"
        for node in cluster.nodes:
            assert set(node.members()) == ids, "an outsider identity got in"

    # Wrong key, truncated, tampered and replayed datagrams, from a plain UDP socket.
    wrong, wrong_node = _capture_sealed_datagram(_core.generate_gossip_key(), cluster.cluster_id)
    good, good_node = _capture_sealed_datagram(base64.b64decode(key), cluster.cluster_id)
    wrong_node.shutdown()
    good_node.shutdown()
    reasons = ("unknown_key", "truncated", "auth_failed", "replayed")
    before_counts = {r: _count(target, "vudo_gossip_datagrams_rejected_total", {"reason": r}) for r in reasons}
    opened_before = _count(target, "vudo_gossip_datagrams_total", {"direction": "opened"})
    tampered = bytearray(good)
    tampered[len(good) // 2] ^= 0x55
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        for payload in (wrong, good[:20], good[:-1], bytes(tampered), good, good, good):
            raw.sendto(payload, ("127.0.0.1", target.gossip_port))

    def all_counted() -> bool:
        after = {r: _count(target, "vudo_gossip_datagrams_rejected_total", {"reason": r}) for r in reasons}
        return (after["unknown_key"] >= before_counts["unknown_key"] + 1
                and after["truncated"] >= before_counts["truncated"] + 1
                and after["auth_failed"] >= before_counts["auth_failed"] + 2
                and after["replayed"] >= before_counts["replayed"] + 2)

    wait_for(all_counted, what="wrong-key, truncated, tampered and replayed datagrams to be counted",
             diagnostics=lambda: target.metrics())
    assert _count(target, "vudo_gossip_datagrams_total", {"direction": "opened"}) > opened_before
    # ... and the operator is told why, with what to do about a missing key
    wait_for(lambda: "(unknown_key): sealed with a key this node does not hold" in target.log_path.read_text(),
             what="the node to explain its dropped datagrams in its log")
    # The one genuine datagram is a Syn from "capture", a key holder: the target may record it, nothing else.
    assert ids <= set(target.members()) <= ids | {"capture"}
    cluster.wait_converged()


def test_five_nodes_rotate_their_key_live_and_nobody_is_ever_seen_dead(make_cluster: Any) -> None:
    old, new = _key(), _key()
    cluster: LocalCluster = make_cluster(5, extra_args=["--gossip-key", old])
    cluster.start()
    cluster.wait_converged()
    ids = {n.node_id for n in cluster.nodes}
    bad: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        client = httpx.Client(timeout=5.0)
        try:
            while not stop.is_set():
                for node in cluster.nodes:
                    try:
                        members = client.get(node.api + "/v1/members").json()["members"]
                    except (httpx.HTTPError, ValueError, KeyError):
                        continue
                    for m in members:
                        if m["node_id"] in ids and (m["status"] != "alive" or not m["verified"]):
                            bad.append(f"node[{node.index}] saw {m['node_id'][-6:]} {m['status']} verified={m['verified']}")
                stop.wait(0.2)
        finally:
            client.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    def everywhere(op: str, key: str) -> None:
        for node in cluster.nodes:
            r = node.post("/v1/gossip/keys", json={"op": op, "key": key}, headers={"Authorization": f"Bearer {node.token}"})
            assert r.status_code == 200, r.text
        # let a few gossip rounds pass under the new state of the keyring
        marks = {n.index: _count(n, "vudo_gossip_datagrams_total", {"direction": "opened"}) for n in cluster.nodes}
        wait_for(lambda: all(_count(n, "vudo_gossip_datagrams_total", {"direction": "opened"}) > marks[n.index] + 30
                             for n in cluster.nodes), what=f"gossip to continue after `keys {op}`")

    try:
        everywhere("install", new)
        everywhere("use", new)
        everywhere("remove", old)
        cluster.wait_converged()
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert not bad, "\n".join(bad[:20])
    new_id = _core.gossip_key_id(base64.b64decode(new))
    for node in cluster.nodes:
        listed = node.get("/v1/gossip/keys", headers={"Authorization": f"Bearer {node.token}"}).json()
        assert listed == {"sealed": True, "keys": [{"id": new_id, "primary": True}]}
        assert (node.data_dir / KEYRING_FILE).read_text().split() == [new]
    # The CLI speaks the same API; the primary cannot be removed.
    shown = run_vudo("keys", "list", "--api", cluster.nodes[0].api, "--data-dir", str(cluster.nodes[0].data_dir))
    assert shown.returncode == 0 and new_id in shown.stdout, shown.stderr
    refused = run_vudo("keys", "remove", new, "--api", cluster.nodes[0].api, "--data-dir", str(cluster.nodes[0].data_dir))
    assert refused.returncode == 2 and "primary" in refused.stderr, refused.stderr
    # A node restarted after the rotation keeps the rotated keyring (persisted in its data dir), not the old flag.
    node = cluster.nodes[3]
    node.terminate()
    assert node.wait_exit() == 0
    node.restart()
    cluster.wait_ready([node])
    cluster.wait_converged()


def test_api_refuses_rebinding_hosts_and_foreign_origins(make_cluster: Any) -> None:
    cluster: LocalCluster = make_cluster(1, extra_args=["--open-gossip", "--api-vhost", "vudo.test"])
    cluster.start()
    node = cluster.nodes[0]
    assert node.get("/v1/members").status_code == 200
    for host in ("evil.example", f"evil.example:{node.api_port}", "127.0.0.2", "[::2]"):
        r = node.get("/v1/members", headers={"Host": host})
        assert r.status_code == 403 and "host not allowed" in r.json()["detail"], (host, r.text)
    for host in (f"localhost:{node.api_port}", "vudo.test", "VUDO.test:80", "127.0.0.1"):
        assert node.get("/v1/node", headers={"Host": host}).status_code == 200, host
    auth = {"Authorization": f"Bearer {node.token}"}
    r = node.post("/v1/node/leave", headers={**auth, "Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-origin" in r.json()["detail"]
    r = node.post("/v1/node/leave", headers={**auth, "Origin": "null"})
    assert r.status_code == 403
    assert node.running and node.ready()
    r = node.post("/v1/node/leave", headers={**auth, "Origin": f"http://127.0.0.1:{node.api_port}"})
    assert r.status_code == 202
    assert node.wait_exit() == 0


def test_open_gossip_is_announced_and_bad_keys_are_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "solo"
    init_data_dir(data_dir)
    gport, aport = _port(), free_ports(1, socket.SOCK_STREAM)[0]
    base = ["node", "--data-dir", str(data_dir), "--gossip-port", str(gport), "--api-port", str(aport), "--cluster-id", "solo"]
    r = run_vudo(*base, "--gossip-key", "not base64!")
    assert r.returncode == 2 and "vudo keygen" in r.stderr, r.stderr
    r = run_vudo(*base, "--gossip-key", base64.b64encode(b"short").decode())
    assert r.returncode == 2 and "32 bytes" in r.stderr, r.stderr
    r = run_vudo(*base, "--gossip-key", _key(), "--open-gossip")
    assert r.returncode == 2 and "open_gossip" in r.stderr, r.stderr
    key_file = tmp_path / "gossip.key"
    key_file.write_text(_key() + "\n")
    key_file.chmod(0o644)
    r = run_vudo(*base, "--gossip-key-file", str(key_file))
    assert r.returncode == 2 and "chmod 600" in r.stderr, r.stderr
    keygen = run_vudo("keygen")
    assert keygen.returncode == 0 and len(base64.b64decode(keygen.stdout.strip())) == 32
    # A node without a key runs, and says at start that its gossip is open.
    log = tmp_path / "solo.log"
    proc = spawn([PYTHON, "-m", "vudo", *base], log)
    try:
        wait_for(lambda: "gossip is OPEN" in log.read_text(errors="replace"), what="the open-gossip warning")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        forget(proc)
