"""Generations, gossip keys, the keyring transport and the API's host checks, without processes."""

from __future__ import annotations

import base64
import dataclasses
import socket
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from vudo import _core
from vudo.api.app import create_app
from vudo.api.hosts import HostPolicy, host_name
from vudo.config import NodeConfig, load_config
from vudo.errors import ConfigError, IdentityError
from vudo.generation import GENERATION_FILE, next_generation, read_generation
from vudo.gossip_keys import KEYRING_FILE, apply_key_op, decode_key, generate_key, key_id, read_key_file, startup_keys, write_key_file
from vudo.identity import init_data_dir, load_api_token
from vudo.metrics import NodeMetrics
from vudo.node import Node

# ------------------------------------------------------------------ generations ----


def test_generations_only_grow_whatever_the_clock_says(tmp_path: Path) -> None:
    assert read_generation(tmp_path) is None
    first = next_generation(tmp_path, clock_us=5_000)
    assert first == 5_000 and read_generation(tmp_path) == 5_000
    # The clock stepped back: the next start is still above the last one.
    assert next_generation(tmp_path, clock_us=10) == 5_001
    assert next_generation(tmp_path, clock_us=9_000) == 9_000
    assert (tmp_path / GENERATION_FILE).read_text() == "9000\n"
    assert (tmp_path / GENERATION_FILE).stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / (GENERATION_FILE + ".tmp")).exists()


def test_a_corrupt_generation_file_is_refused_with_advice(tmp_path: Path) -> None:
    (tmp_path / GENERATION_FILE).write_text("soon")
    with pytest.raises(IdentityError, match="not a generation number"):
        next_generation(tmp_path, clock_us=1)


# ----------------------------------------------------------------- gossip keys ----


def test_keys_decode_and_name_their_problem() -> None:
    key = generate_key()
    raw = decode_key(key, source="flag")
    assert len(raw) == 32 and len(key_id(raw)) == 8
    with pytest.raises(ConfigError, match="base64"):
        decode_key("***", source="flag")
    with pytest.raises(ConfigError, match="32 bytes"):
        decode_key(base64.b64encode(b"x" * 16).decode(), source="flag")


def test_key_files_are_private_and_ordered(tmp_path: Path) -> None:
    a, b = _core.generate_gossip_key(), _core.generate_gossip_key()
    path = tmp_path / "keys"
    write_key_file(path, [a, b])
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_key_file(path) == [a, b]
    path.write_text("# primary first\n" + base64.b64encode(b).decode() + "\n\n")
    path.chmod(0o600)
    assert read_key_file(path) == [b]
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_key_file(path)
    path.chmod(0o600)
    path.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="holds no key"):
        read_key_file(path)
    with pytest.raises(ConfigError, match="does not exist"):
        read_key_file(tmp_path / "missing")


def test_key_operations_and_the_persisted_keyring_win_at_start(tmp_path: Path) -> None:
    a, b = _core.generate_gossip_key(), _core.generate_gossip_key()
    assert apply_key_op([a], "install", b) == [a, b]
    assert apply_key_op([a, b], "install", b) == [a, b]
    assert apply_key_op([a, b], "use", b) == [b, a]
    assert apply_key_op([b, a], "remove", a) == [b]
    with pytest.raises(ValueError):
        apply_key_op([a], "rotate", a)
    assert startup_keys(tmp_path, [a]) == ([a], "the configured gossip keys")
    write_key_file(tmp_path / KEYRING_FILE, [b])
    keys, source = startup_keys(tmp_path, [a])
    assert keys == [b] and KEYRING_FILE in source


def test_config_takes_keys_from_flags_env_toml_or_a_file(tmp_path: Path) -> None:
    k1, k2 = generate_key(), generate_key()
    cfg = load_config({"data_dir": str(tmp_path)}, env={"VUDO_GOSSIP_KEYS": f"{k1},{k2}"})
    assert cfg.gossip_key_bytes() == [decode_key(k1, source=""), decode_key(k2, source="")]
    (tmp_path / "vudo.toml").write_text(f'gossip_keys = ["{k2}"]\napi_vhosts = ["node.example"]\n')
    cfg = load_config({"data_dir": str(tmp_path)}, env={})
    assert cfg.gossip_key_bytes() == [decode_key(k2, source="")] and cfg.api_vhosts == ("node.example",)
    key_file = tmp_path / "k"
    write_key_file(key_file, [decode_key(k1, source="")])
    (tmp_path / "vudo.toml").unlink()
    cfg = load_config({"data_dir": str(tmp_path), "gossip_key_file": str(key_file)}, env={})
    assert cfg.gossip_key_bytes() == [decode_key(k1, source="")]
    assert load_config({"data_dir": str(tmp_path)}, env={}).gossip_key_bytes() == []
    for flags, match in (
        ({"gossip_keys": ("no!",)}, "base64"),
        ({"gossip_keys": (k1,), "open_gossip": True}, "open_gossip"),
        ({"gossip_keys": (k1,), "gossip_key_file": str(key_file)}, "not both"),
        ({"replay_window_s": 0.1}, "replay_window_s"),
        ({"max_unverified": 0}, "max_unverified"),
        ({"max_unverified": 257}, "fit one datagram"),
    ):
        with pytest.raises(ConfigError, match=match):
            load_config({"data_dir": str(tmp_path), **flags}, env={})


# ------------------------------------------------------------ keyring, in-process ----


def _port() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _gossip(name: str, addr: str, seeds: list[str], keys: list[bytes]) -> _core.Gossip:
    return _core.Gossip(
        node_id=name, generation=1, listen_addr=addr, advertise_addr=addr, seeds=seeds, cluster_id="unit",
        gossip_interval_ms=50, phi_threshold=8.0, dead_node_grace_period_ms=60_000, max_interval_ms=10_000,
        initial_key_values={"hello": name}, keys=keys,
    )


def _wait(cond: object, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_engine_keyring_rotates_and_counts() -> None:
    old, new = _core.generate_gossip_key(), _core.generate_gossip_key()
    a_addr, b_addr = _port(), _port()
    a = _gossip("a", a_addr, [], [old])
    b = _gossip("b", b_addr, [a_addr], [old])
    try:
        assert a.sealed and a.keys() == [(_core.gossip_key_id(old), True)]
        _wait(lambda: {m.node_id for m in a.snapshot() if m.live} == {"a", "b"}, "a to see b")
        a.install_key(new)
        assert a.keys() == [(_core.gossip_key_id(old), True), (_core.gossip_key_id(new), False)]
        with pytest.raises(ValueError, match="primary"):
            a.remove_key(old)
        a.use_key(new)  # b cannot open a's datagrams until it installs new; a still opens b's
        b.install_key(new)
        a.remove_key(old)
        b.use_key(new)
        b.remove_key(old)
        b.set("after", "rotation")
        _wait(lambda: any(m.node_id == "b" and m.key_values.get("after") == "rotation" for m in a.snapshot()), "a new value")
        stats = a.transport_stats()
        assert stats.sealed_transport and stats.sealed > 0 and stats.opened > 0
        assert set(stats.rejected) >= {"unknown_key", "truncated", "auth_failed", "replayed", "not_sealed"}
        with pytest.raises(ValueError, match="not installed"):
            a.use_key(old)
        with pytest.raises(ValueError, match="32 bytes"):
            a.install_key(b"short")
        view, total = a.snapshot_view([("b", 1, b_addr)], 0, [])
        assert total == 2 and {m.node_id for m in view} == {"a", "b"}
    finally:
        a.shutdown()
        b.shutdown()
    open_node = _gossip("o", _port(), [], [])
    try:
        assert not open_node.sealed
        with pytest.raises(ValueError, match="open"):
            open_node.keys()
        with pytest.raises(ValueError, match="not an IP:port"):
            open_node.snapshot_view([("b", 1, "nowhere")], 0, [])
    finally:
        open_node.shutdown()


def test_open_gossip_admits_a_capped_number_of_strangers_and_exports_it() -> None:
    """A raw UDP socket names strangers in a chitchat Syn; the open engine keeps at most its cap."""
    addr = _port()
    node = _core.Gossip(
        node_id="o", generation=1, listen_addr=addr, advertise_addr=addr, seeds=[], cluster_id="unit",
        gossip_interval_ms=50, phi_threshold=8.0, dead_node_grace_period_ms=60_000, max_interval_ms=10_000,
        initial_key_values={}, max_unverified=4,
    )
    host, port = addr.split(":")
    try:
        entries = b"".join(
            len(name).to_bytes(2, "little") + name + (1).to_bytes(8, "little") + bytes([4, 127, 9, 0, 1])
            + (20_000 + i).to_bytes(2, "little") + (5).to_bytes(8, "little") + bytes(16)
            for i, name in enumerate(f"stranger-{i}".encode() for i in range(50))
        )
        syn = (45_139).to_bytes(2, "little") + bytes([0, 0]) + (50).to_bytes(2, "little") + entries + b"\x04\x00unit"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(syn, (host, int(port)))
            s.sendto(b"garbage", (host, int(port)))
        _wait(lambda: node.transport_stats().ids_refused.get("cap", 0) >= 50 - 3, "strangers beyond the cap to be refused")
        # 3 strangers got a hearsay slot (1 of the 4 is kept for direct speakers). chitchat may forget a
        # digest-only stranger again, which frees its slot, so the engine's table is only bounded here.
        stats = node.transport_stats()
        assert (stats.admission_cap, stats.admitted_unverified + stats.admission_released, stats.rewritten) == (4, 3, 1)
        assert len(node.snapshot()) <= 1 + 3
        _wait(lambda: node.transport_stats().rejected.get("undecodable") == 1, "the garbage datagram to be counted")
        metrics = NodeMetrics()
        metrics.observe_transport(node.transport_stats())
        text = metrics.render().decode()
        assert 'vudo_gossip_ids_refused_total{reason="cap"} 47.0' in text
        assert "vudo_gossip_engine_unverified_cap 4.0" in text
        assert 'vudo_gossip_datagrams_rejected_total{reason="undecodable"} 1.0' in text
    finally:
        node.shutdown()


def _ident(name: bytes, port: int) -> bytes:
    return len(name).to_bytes(2, "little") + name + (1).to_bytes(8, "little") + bytes([4, 127, 0, 0, 1]) + port.to_bytes(2, "little")


def test_open_gossip_bounds_the_key_values_of_an_unverified_identity_across_datagrams() -> None:
    """A raw UDP socket pushes hundreds of distinct keys about itself, over many SynAcks: the engine keeps a few."""
    addr = _port()
    node = _core.Gossip(
        node_id="o", generation=1, listen_addr=addr, advertise_addr=addr, seeds=[], cluster_id="unit",
        gossip_interval_ms=50, phi_threshold=8.0, dead_node_grace_period_ms=60_000, max_interval_ms=10_000,
        initial_key_values={}, max_unverified=4,
    )
    host, port = addr.split(":")
    probe = ["announcement", "leave"]
    try:
        node.snapshot_view([], 8, probe)  # the host's view also tells the engine which keys it probes

        def stranger_keys() -> list[str]:
            node.snapshot_view([], 8, probe)  # refreshes the engine's key-value counts
            return sorted(k for m in node.snapshot() if m.node_id == "stranger" for k in m.key_values)

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            me = _ident(b"stranger", s.getsockname()[1])

            def syn_ack(datagram: int) -> bytes:
                """20 new keys, versions 20 * datagram + 1.. (a delta following the previous datagram's)."""
                ops = b""
                for k in range(20):
                    key, value = f"junk-{datagram:02}-{k:02}".encode(), b"x" * 64
                    ops += (b"\x01" + len(key).to_bytes(2, "little") + key + len(value).to_bytes(2, "little") + value
                            + (20 * datagram + k + 1).to_bytes(8, "little") + b"\x00")
                delta = b"\x00" + me + bytes(8) + (20 * datagram).to_bytes(8, "little") + ops
                digest = me + (datagram + 1).to_bytes(8, "little") + bytes(8) + (20 * datagram + 20).to_bytes(8, "little")
                return ((45_139).to_bytes(2, "little") + bytes([0, 1]) + (1).to_bytes(2, "little") + digest
                        + b"\x02" + len(delta).to_bytes(2, "little") + delta + b"\x00")

            # The first datagram fills the stranger's budget (6 keys: 2 of 8 are kept for the probe keys);
            # it is sent again until it got through (a new peer's first datagram may be lost, like UDP).
            first = [f"junk-00-{k:02}" for k in range(8 - len(probe))]
            deadline, sends = time.monotonic() + 30, 0
            while stranger_keys() != first:
                assert time.monotonic() < deadline, f"the first datagram never got through: {stranger_keys()}"
                s.sendto(syn_ack(0), (host, int(port)))
                sends += 1
                time.sleep(0.2)
            # Every copy has its 14 other keys refused; its 6 admitted keys pass again (already counted).
            _wait(lambda: node.transport_stats().values_refused["keys"] == sends * (20 - len(first)), "the copies")
            for datagram in range(1, 20):
                s.sendto(syn_ack(datagram), (host, int(port)))
                time.sleep(0.02)

        _wait(lambda: node.transport_stats().values_refused["keys"] == sends * (20 - len(first)) + 19 * 20,
              "every later key to be refused")
        assert stranger_keys() == first
        stats = node.transport_stats()
        assert stats.engine_key_values == len(first)
        assert stats.engine_value_bytes == len(first) * (len("junk-00-00") + 64)
        metrics = NodeMetrics()
        metrics.observe_transport(stats)
        text = metrics.render().decode()
        assert f'vudo_gossip_values_refused_total{{reason="keys"}} {stats.values_refused["keys"]}.0' in text
        assert f"vudo_gossip_engine_key_values {len(first)}.0" in text
    finally:
        node.shutdown()


# ------------------------------------------------------------------ API hosts ----


def test_host_names_parse_like_browsers_send_them() -> None:
    assert host_name("LocalHost:7500") == "localhost"
    assert host_name("[::1]:7500") == "::1"
    assert host_name("[::1]") == "::1"
    assert host_name("127.0.0.1") == "127.0.0.1"
    for bad in ("", "[::1", "[::1]x", "::1"):
        assert host_name(bad) is None


def test_host_policy_allows_bound_address_loopback_and_vhosts_only() -> None:
    policy = HostPolicy.for_bind("10.0.0.5", ("node.example",))
    for ok in ("10.0.0.5:7500", "localhost", "127.0.0.1:1", "[::1]:2", "NODE.example"):
        assert policy.host_allowed(ok), ok
    for bad in ("evil.example", None, "10.0.0.6", ""):
        assert not policy.host_allowed(bad), bad
    assert policy.origin_allowed("GET", "http://evil.example")
    assert policy.origin_allowed("POST", None)
    assert policy.origin_allowed("POST", "http://node.example:8080")
    for bad in ("http://evil.example", "null", "file://", "chrome-extension://abc"):
        assert not policy.origin_allowed("POST", bad), bad
    anywhere = HostPolicy.for_bind("0.0.0.0", ("*",))
    assert anywhere.host_allowed("evil.example") and anywhere.origin_allowed("POST", "http://evil.example")
    assert "0.0.0.0" not in HostPolicy.for_bind("0.0.0.0").allowed


def test_the_api_refuses_foreign_hosts_and_serves_the_keyring(tmp_path: Path) -> None:
    init_data_dir(tmp_path / "n")
    node = Node(dataclasses.replace(NodeConfig(), data_dir=tmp_path / "n"))
    client = TestClient(create_app(node.queries), base_url="http://127.0.0.1:7500")
    token = load_api_token(tmp_path / "n")
    assert client.get("/v1/node", headers={"Host": "evil.example"}).status_code == 403
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/gossip/keys").status_code == 401
    assert client.get("/v1/gossip/keys", headers=auth).json() == {"sealed": False, "keys": []}
    r = client.post("/v1/gossip/keys", headers=auth, json={"op": "install", "key": generate_key()})
    assert r.status_code == 400 and "not started" in r.json()["detail"]
    r = client.post("/v1/gossip/keys", headers=auth, json={"op": "install", "key": "bad"})
    assert r.status_code == 400 and "base64" in r.json()["detail"]
    r = client.post("/v1/gossip/keys", headers={**auth, "Origin": "https://evil.example"}, json={"op": "use", "key": "x"})
    assert r.status_code == 403
