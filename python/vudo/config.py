"""Node settings: flags > ``VUDO_*`` environment > TOML file > defaults."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from vudo.errors import ConfigError
from vudo.identity import public_key_from_node_id
from vudo.spirits.manifest import NAME_RE, Permissions

ENV_PREFIX = "VUDO_"
#: Default link port = gossip port + this (7400 -> 7600, beside the API's 7500).
LINK_PORT_OFFSET = 200
# Largest --max-unverified: the gossip engine (vudo_gossip::MAX_CAP) refuses more, because its
# digest of every identity it holds must fit one datagram.
MAX_UNVERIFIED_CAP = 256
CONFIG_FILE = "vudo.toml"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vudo"


#: The flood algorithms a node can use for flood and quorum signals.
SIGNAL_FLOODS = ("plumtree", "plain")


@dataclass(frozen=True)
class NodeConfig:
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"  # gossip bind address
    gossip_port: int = 7400
    advertise_host: str = ""  # defaults to host
    api_host: str = "127.0.0.1"
    api_port: int = 7500
    link_port: int | None = None  # TCP port of the link engine; None: gossip_port + LINK_PORT_OFFSET
    max_connections: int = 128  # established links the engine accepts in total
    allow_public_api: bool = False
    seeds: tuple[str, ...] = ()
    cluster_id: str = "vudo"
    gossip_interval_ms: int = 300
    phi_threshold: float = 8.0
    dead_node_grace_period_s: float = 3600.0
    announcement_ttl_s: float = 60.0
    refresh_interval_s: float = 5.0
    min_connections: int = -1  # -1: 1 when seeds are given, else 0
    bootstrap_timeout_s: float = 60.0
    bandwidth_capacity_mbps: float = 1000.0
    storage_iops: int = 1000
    gateway_protocols: tuple[str, ...] = ("http",)
    witness_stake: int | None = None
    leave_grace_ms: int = 1500
    link_min_connections: int = 2
    link_target_degree: int = 4
    link_max_connections: int = 8
    #: How often a running spirit gets a tick.
    spirit_tick_ms: int = 1000
    #: ``[spirits.allow.NAME]`` tables of the config file: what each spirit is granted.
    spirit_grants: tuple[tuple[str, Permissions], ...] = ()

    def spirit_grant(self, name: str) -> Permissions | None:
        """What the operator granted spirit ``name`` (None: nothing, not even the lowest levels)."""
        return dict(self.spirit_grants).get(name)
    gossip_keys: tuple[str, ...] = ()  # base64 cluster keys, primary first
    gossip_key_file: str = ""  # or a 0600 file of them, one per line
    open_gossip: bool = False  # explicitly run without a keyring
    replay_window_s: float = 30.0  # sealed datagrams further than this from our clock are refused
    max_unverified: int = MAX_UNVERIFIED_CAP  # never-verified nodes kept in the membership view
    api_vhosts: tuple[str, ...] = ()  # extra Host names the API answers to ("*" = any)
    signal_flood: str = "plumtree"  # flood/quorum broadcast: "plumtree" (broadcast tree) or "plain" (every link)
    #: Fault injection for tests and benchmarks only: the fraction (0..1) of outgoing
    #: signal frames this node drops, as if the network lost them. Never set it in production.
    signal_fault_loss: float = 0.0
    #: This node holds a replica of the credit ledger and votes in its Raft cluster
    #: (it also advertises the Witness capability; --witness-stake implies it).
    witness: bool = False
    #: The ledger's witnesses this node trusts (node ids). A node that is not a witness forwards
    #: its credit operations and reads only to these, and follows only these as leader; without
    #: them it trusts every verified member that advertises the Witness capability.
    ledger_witnesses: tuple[str, ...] = ()
    raft_heartbeat_ms: int = 150
    raft_election_min_ms: int = 1000
    raft_election_max_ms: int = 2000
    #: The ledger snapshots (and purges its log) every this many entries, keeping this many behind it.
    raft_snapshot_every: int = 5000
    raft_keep_logs: int = 1000
    #: Fault injection for tests only: a file naming peers (one node id a line) whose Raft
    #: frames this witness drops, both ways; re-read while the node runs. Never set it in production.
    raft_fault_drop_file: str = ""

    def gossip_key_bytes(self) -> list[bytes]:
        """The configured keys (flag/env/TOML first, else the key file), decoded; [] when open."""
        from vudo.gossip_keys import decode_key, read_key_file

        if self.gossip_keys:
            return [decode_key(k, source=f"gossip key #{i + 1}") for i, k in enumerate(self.gossip_keys)]
        if self.gossip_key_file:
            return read_key_file(Path(self.gossip_key_file).expanduser())
        return []

    @property
    def effective_min_connections(self) -> int:
        if self.min_connections >= 0:
            return self.min_connections
        return 1 if self.seeds else 0

    @property
    def gossip_listen(self) -> str:
        return f"{self.host}:{self.gossip_port}"

    @property
    def gossip_advertise(self) -> str:
        return f"{self.advertise_host or self.host}:{self.gossip_port}"

    @property
    def effective_link_port(self) -> int:
        return self.link_port if self.link_port is not None else self.gossip_port + LINK_PORT_OFFSET

    @property
    def link_listen(self) -> str:
        """Multiaddr the link engine listens on."""
        return _tcp_multiaddr(self.host, self.effective_link_port)

    @property
    def link_advertise(self) -> str:
        """Multiaddr of the link listener as peers should dial it (goes into the announcement)."""
        return _tcp_multiaddr(self.advertise_host or self.host, self.effective_link_port)

    @property
    def api_url(self) -> str:
        host = self.api_host if self.api_host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.api_port}"


def _tcp_multiaddr(host: str, port: int) -> str:
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return f"/dns/{host}/tcp/{port}"
    return f"/ip{ip.version}/{ip}/tcp/{port}"


_FIELDS = {f.name: f for f in dataclasses.fields(NodeConfig) if f.name != "spirit_grants"}
SPIRITS_TABLE = "spirits"


def parse_spirit_grants(raw: Any, source: str) -> tuple[tuple[str, Permissions], ...]:
    """``[spirits.allow.NAME]`` tables -> ((name, Permissions), ...), sorted by name.

    Example::

        [spirits.allow.physarum]
        network = "read"
        compute = "minimal"
        display = "required"
    """
    if not isinstance(raw, dict) or set(raw) - {"allow"}:
        raise ConfigError(f"{source}: [spirits] holds only an `allow` table, e.g. [spirits.allow.NAME] network = \"read\"")
    allow = raw.get("allow", {})
    if not isinstance(allow, dict):
        raise ConfigError(f"{source}: spirits.allow must be a table of [spirits.allow.NAME] tables")
    grants = []
    for name, table in sorted(allow.items()):
        if not NAME_RE.fullmatch(name):
            raise ConfigError(f"{source}: spirits.allow.{name}: not a spirit name")
        try:
            grants.append((name, msgspec.convert(table, Permissions)))
        except msgspec.ValidationError as err:
            raise ConfigError(f"{source}: spirits.allow.{name}: {err} "
                              "(network: none|read|write, compute: minimal|standard|heavy, display: none|required, wasi: bool)") from None
    return tuple(grants)


def _coerce(name: str, raw: Any, source: str) -> Any:
    kind = _FIELDS[name].type
    try:
        if kind == "Path":
            return Path(str(raw)).expanduser()
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true/false, got {raw!r}")
        if kind == "int":
            if isinstance(raw, bool):
                raise ValueError("expected an integer")
            return int(raw)
        if kind == "int | None":
            return None if raw in (None, "", "none") else int(raw)
        if kind == "float":
            return float(raw)
        if kind == "tuple[str, ...]":
            if isinstance(raw, str):
                return tuple(s.strip() for s in raw.split(",") if s.strip())
            return tuple(str(s) for s in raw)
        return str(raw)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: invalid value {raw!r} for {name}: {err}") from None


def _validate(cfg: NodeConfig) -> NodeConfig:
    for port_name in ("gossip_port", "api_port"):
        port = getattr(cfg, port_name)
        if not 0 < port < 65536:
            raise ConfigError(f"{port_name} must be in 1..65535, got {port}")
    link_port = cfg.effective_link_port
    if not 0 < link_port < 65536:
        hint = "" if cfg.link_port is not None else f" (gossip_port + {LINK_PORT_OFFSET}); set link_port"
        raise ConfigError(f"link_port must be in 1..65535, got {link_port}{hint}")
    if link_port == cfg.api_port:
        raise ConfigError(f"link_port and api_port are both {link_port}; give the link engine its own TCP port")
    if cfg.max_connections < 1:
        raise ConfigError(f"max_connections must be at least 1, got {cfg.max_connections}")
    if cfg.gossip_interval_ms < 10:
        raise ConfigError("gossip_interval_ms must be at least 10")
    if cfg.announcement_ttl_s <= cfg.refresh_interval_s:
        raise ConfigError("announcement_ttl_s must be larger than refresh_interval_s, or announcements expire between refreshes")
    if cfg.spirit_tick_ms < 10:
        raise ConfigError("spirit_tick_ms must be at least 10")
    if not 0 <= cfg.link_min_connections <= cfg.link_target_degree <= cfg.link_max_connections:
        raise ConfigError(
            "link degrees must satisfy 0 <= link_min_connections <= link_target_degree <= link_max_connections, got "
            f"{cfg.link_min_connections}, {cfg.link_target_degree}, {cfg.link_max_connections}"
        )
    if not cfg.cluster_id:
        raise ConfigError("cluster_id must not be empty")
    if cfg.open_gossip and (cfg.gossip_keys or cfg.gossip_key_file):
        raise ConfigError("open_gossip and gossip keys were both given; drop --open-gossip to seal gossip, or the keys to run open")
    if cfg.gossip_keys and cfg.gossip_key_file:
        raise ConfigError("give gossip keys either inline (gossip_keys) or as a file (gossip_key_file), not both")
    cfg.gossip_key_bytes()  # validate now: a bad key is the operator's to fix before anything starts
    if not 1.0 <= cfg.replay_window_s <= 3600.0:
        raise ConfigError("replay_window_s must be between 1 and 3600 seconds")
    if not 1 <= cfg.max_unverified <= MAX_UNVERIFIED_CAP:
        raise ConfigError(
            f"max_unverified must be 1..{MAX_UNVERIFIED_CAP}: the gossip engine's digest of every identity it holds "
            "must fit one datagram; lower --max-unverified"
        )
    if cfg.signal_flood not in SIGNAL_FLOODS:
        raise ConfigError(f"signal_flood must be one of {', '.join(SIGNAL_FLOODS)}, got {cfg.signal_flood!r}")
    if not 0.0 <= cfg.signal_fault_loss <= 1.0:
        raise ConfigError(f"signal_fault_loss is a fraction between 0 and 1 (fault injection for tests), got {cfg.signal_fault_loss}")
    if not 10 <= cfg.raft_heartbeat_ms < cfg.raft_election_min_ms < cfg.raft_election_max_ms:
        raise ConfigError(
            "raft timings must satisfy 10 <= raft_heartbeat_ms < raft_election_min_ms < raft_election_max_ms, got "
            f"{cfg.raft_heartbeat_ms}, {cfg.raft_election_min_ms}, {cfg.raft_election_max_ms}"
        )
    if cfg.raft_snapshot_every < 1 or cfg.raft_keep_logs < 0:
        raise ConfigError("raft_snapshot_every must be at least 1 and raft_keep_logs at least 0")
    for node_id in cfg.ledger_witnesses:
        try:
            public_key_from_node_id(node_id)
        except ValueError:
            raise ConfigError(f"ledger_witnesses: {node_id!r} is not a node id (the PeerId `vudo init` prints)") from None
    if cfg.witness_stake is not None and not cfg.witness:
        cfg = dataclasses.replace(cfg, witness=True)  # a stake is only meaningful on a witness
    try:
        api_ip = ipaddress.ip_address(cfg.api_host)
    except ValueError:
        raise ConfigError(f"api_host must be an IP address, got {cfg.api_host!r}") from None
    if not api_ip.is_loopback and not cfg.allow_public_api:
        raise ConfigError(
            f"refusing to expose the API on non-loopback address {cfg.api_host}; "
            "pass --allow-public-api (VUDO_ALLOW_PUBLIC_API=1) if you really mean it"
        )
    return dataclasses.replace(cfg, seeds=tuple(resolve_seed(s) for s in cfg.seeds))


def resolve_seed(seed: str) -> str:
    """``host:port`` -> ``ip:port`` (gossip reports peers by IP)."""
    host, sep, port = seed.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"seed {seed!r} is not HOST:PORT")
    try:
        ip = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_DGRAM)[0][4][0]
    except socket.gaierror as err:
        raise ConfigError(f"seed {seed!r}: cannot resolve {host!r}: {err.strerror}") from None
    return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"


def load_config(flags: Mapping[str, Any], *, env: Mapping[str, str] | None = None, config_file: Path | None = None) -> NodeConfig:
    """Merge the layers. ``flags`` holds only options the user actually set."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    data_dir_raw = flags.get("data_dir") or env.get(ENV_PREFIX + "DATA_DIR")
    data_dir = Path(data_dir_raw).expanduser() if data_dir_raw else default_data_dir()
    path = config_file or (data_dir / CONFIG_FILE)
    if path.exists():
        try:
            table = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {path}: {err}") from None
        for key, raw in table.items():
            if key == SPIRITS_TABLE:
                values["spirit_grants"] = parse_spirit_grants(raw, f"config file {path}")
                continue
            if key not in _FIELDS:
                raise ConfigError(f"config file {path}: unknown key {key!r} (known: {', '.join(sorted(_FIELDS))})")
            values[key] = _coerce(key, raw, f"config file {path}")
    elif config_file is not None:
        raise ConfigError(f"config file {path} does not exist")
    for key in _FIELDS:
        raw = env.get(ENV_PREFIX + key.upper())
        if raw is not None:
            values[key] = _coerce(key, raw, f"environment {ENV_PREFIX + key.upper()}")
    for key, raw in flags.items():
        if key in _FIELDS and raw is not None and raw != ():
            values[key] = _coerce(key, raw, f"--{key.replace('_', '-')}")
    values["data_dir"] = data_dir if "data_dir" not in values else values["data_dir"]
    return _validate(NodeConfig(**values))
