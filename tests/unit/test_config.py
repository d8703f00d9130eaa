from pathlib import Path

import pytest

from vudo.config import load_config
from vudo.errors import ConfigError


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    (tmp_path / "vudo.toml").write_text('gossip_port = 1111\napi_port = 2222\ncluster_id = "file"\n')
    env = {"VUDO_API_PORT": "3333", "VUDO_CLUSTER_ID": "env"}
    cfg = load_config({"data_dir": str(tmp_path), "cluster_id": "flag"}, env=env)
    assert (cfg.gossip_port, cfg.api_port, cfg.cluster_id) == (1111, 3333, "flag")


def test_data_dir_from_env(tmp_path: Path) -> None:
    cfg = load_config({}, env={"VUDO_DATA_DIR": str(tmp_path)})
    assert cfg.data_dir == tmp_path


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "vudo.toml").write_text("gosip_port = 1\n")
    with pytest.raises(ConfigError, match="gosip_port"):
        load_config({"data_dir": str(tmp_path)}, env={})


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="VUDO_GOSSIP_PORT"):
        load_config({"data_dir": str(tmp_path)}, env={"VUDO_GOSSIP_PORT": "many"})


def test_public_api_needs_explicit_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="allow-public-api"):
        load_config({"data_dir": str(tmp_path), "api_host": "0.0.0.0"}, env={})
    cfg = load_config({"data_dir": str(tmp_path), "api_host": "0.0.0.0", "allow_public_api": True}, env={})
    assert cfg.allow_public_api


def test_seeds_are_resolved_and_validated(tmp_path: Path) -> None:
    cfg = load_config({"data_dir": str(tmp_path), "seeds": ("localhost:7400",)}, env={})
    assert cfg.seeds in (("127.0.0.1:7400",), ("[::1]:7400",))
    assert cfg.effective_min_connections == 1
    with pytest.raises(ConfigError, match="HOST:PORT"):
        load_config({"data_dir": str(tmp_path), "seeds": ("nope",)}, env={})


def test_port_range_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gossip_port"):
        load_config({"data_dir": str(tmp_path), "gossip_port": 70000}, env={})


def test_link_port_defaults_beside_gossip_and_is_a_multiaddr(tmp_path: Path) -> None:
    cfg = load_config({"data_dir": str(tmp_path), "gossip_port": 7410}, env={})
    assert cfg.effective_link_port == 7610
    assert cfg.link_listen == "/ip4/127.0.0.1/tcp/7610"
    cfg = load_config({"data_dir": str(tmp_path), "link_port": 9000, "host": "::1", "advertise_host": "10.0.0.5"}, env={})
    assert cfg.link_listen == "/ip6/::1/tcp/9000"
    assert cfg.link_advertise == "/ip4/10.0.0.5/tcp/9000"
    cfg = load_config({"data_dir": str(tmp_path), "advertise_host": "node.example"}, env={"VUDO_LINK_PORT": "9001"})
    assert cfg.link_advertise == "/dns/node.example/tcp/9001"


def test_link_port_and_connection_limit_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gossip_port \\+ 200"):
        load_config({"data_dir": str(tmp_path), "gossip_port": 65400}, env={})
    with pytest.raises(ConfigError, match="own TCP port"):
        load_config({"data_dir": str(tmp_path), "link_port": 7500}, env={})
    with pytest.raises(ConfigError, match="max_connections"):
        load_config({"data_dir": str(tmp_path), "max_connections": 0}, env={})
    with pytest.raises(ConfigError, match="link_port must be"):
        load_config({"data_dir": str(tmp_path), "link_port": 70000}, env={})


def test_link_settings_and_degree_rule(tmp_path: Path) -> None:
    cfg = load_config({"data_dir": str(tmp_path)}, env={"VUDO_LINK_TARGET_DEGREE": "5"})
    assert (cfg.link_min_connections, cfg.link_target_degree, cfg.link_max_connections) == (2, 5, 8)
    with pytest.raises(ConfigError, match="link_min_connections <= link_target_degree"):
        load_config({"data_dir": str(tmp_path)}, env={"VUDO_LINK_MIN_CONNECTIONS": "6", "VUDO_LINK_TARGET_DEGREE": "5"})


def test_signal_flood_and_fault_loss_default_and_layers(tmp_path: Path) -> None:
    cfg = load_config({"data_dir": str(tmp_path)}, env={})
    assert (cfg.signal_flood, cfg.signal_fault_loss) == ("plumtree", 0.0)
    (tmp_path / "vudo.toml").write_text('signal_flood = "plain"\nsignal_fault_loss = 0.1\n')
    cfg = load_config({"data_dir": str(tmp_path)}, env={})
    assert (cfg.signal_flood, cfg.signal_fault_loss) == ("plain", 0.1)
    cfg = load_config({"data_dir": str(tmp_path), "signal_flood": "plumtree"}, env={"VUDO_SIGNAL_FAULT_LOSS": "0.25"})
    assert (cfg.signal_flood, cfg.signal_fault_loss) == ("plumtree", 0.25)


def test_signal_flood_and_fault_loss_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="signal_flood must be one of plumtree, plain"):
        load_config({"data_dir": str(tmp_path), "signal_flood": "gossipsub"}, env={})
    for bad in ("1.5", "-0.1"):
        with pytest.raises(ConfigError, match="signal_fault_loss"):
            load_config({"data_dir": str(tmp_path)}, env={"VUDO_SIGNAL_FAULT_LOSS": bad})


def test_ledger_witnesses_are_node_ids(tmp_path: Path) -> None:
    from vudo.identity import Identity

    a, b = Identity.generate().node_id, Identity.generate().node_id
    (tmp_path / "vudo.toml").write_text(f'ledger_witnesses = ["{a}"]\n')
    assert load_config({"data_dir": str(tmp_path)}, env={}).ledger_witnesses == (a,)
    cfg = load_config({"data_dir": str(tmp_path), "ledger_witnesses": (a, b)}, env={})
    assert cfg.ledger_witnesses == (a, b)
    with pytest.raises(ConfigError, match="'not-a-peer' is not a node id"):
        load_config({"data_dir": str(tmp_path), "ledger_witnesses": (a, "not-a-peer")}, env={})
