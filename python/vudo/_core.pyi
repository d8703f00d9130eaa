"""Typed interface of the private Rust extension ``vudo._core``.

Everything here is engine plumbing; policies live in the Python packages.
"""

import os
from typing import final

__all__ = [
    "__version__",
    "CoreError",
    "EngineStoppedError",
    "AddressInUseError",
    "InvalidArgumentError",
    "peer_id_from_public_key",
    "public_key_from_peer_id",
    "Member",
    "Gossip",
    "MemoryNetwork",
    "LinkEvent",
    "LinkStats",
    "Links",
    "TransportStats",
    "generate_gossip_key",
    "gossip_key_id",
    "NativePhysarum",
    "LedgerFailure",
    "Ledger",
    "LedgerNetwork",
    "LedgerEvent",
    "LedgerAccount",
    "LedgerSummary",
    "LedgerRecord",
    "LedgerHistoryEntry",
    "LedgerName",
    "LedgerProposal",
]

__version__: str

class CoreError(Exception):
    """Base class of every error raised by the Rust engines."""

class AddressInUseError(CoreError, OSError):
    """A socket address the node wants to bind is taken by another process."""

class InvalidArgumentError(CoreError, ValueError):
    """The caller passed a value the engine cannot accept (local error)."""

class EngineStoppedError(CoreError):
    """The engine was shut down; create a new one."""

class LedgerFailure(CoreError):
    """The credit ledger refused or could not complete an operation; `code` says why (insufficient_funds, \
    invalid_signature, id_conflict, overflow, memo_too_long, no_leader, not_leader, ...)."""

    code: str

# --- identity -------------------------------------------------------------

def peer_id_from_public_key(public_key: bytes) -> str:
    """libp2p PeerId string ("12D3KooW...") of a 32-byte Ed25519 public key."""

def public_key_from_peer_id(peer_id: str) -> bytes:
    """Inverse of :func:`peer_id_from_public_key`; rejects non-Ed25519 ids."""

# --- gossip (chitchat) ----------------------------------------------------

@final
class Member:
    node_id: str
    generation: int
    gossip_addr: str
    heartbeat: int
    live: bool
    is_self: bool
    key_values: dict[str, str]

@final
class MemoryNetwork:
    """In-process gossip network: many nodes in one process, cuttable links."""

    def __new__(cls) -> MemoryNetwork: ...
    def cut(self, a: str, b: str) -> None:
        """Drop every datagram between two gossip addresses, both ways."""
    def heal(self, a: str, b: str) -> None: ...
    @property
    def statistics(self) -> tuple[int, int]:
        """(messages, bytes) sent so far."""

@final
class Gossip:
    def __new__(
        cls,
        *,
        node_id: str,
        generation: int,
        listen_addr: str,
        advertise_addr: str,
        seeds: list[str],
        cluster_id: str,
        gossip_interval_ms: int,
        phi_threshold: float,
        dead_node_grace_period_ms: int,
        max_interval_ms: int,
        initial_key_values: dict[str, str],
        network: MemoryNetwork | None = None,
        keys: list[bytes] = ...,
        replay_window_ms: int = 30000,
        max_unverified: int = 256,
    ) -> Gossip: ...
    @property
    def node_id(self) -> str: ...
    @property
    def gossip_addr(self) -> str: ...
    @property
    def running(self) -> bool: ...
    def set(self, key: str, value: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def snapshot(self) -> list[Member]: ...
    def snapshot_view(
        self, trusted: list[tuple[str, int, str]], max_untrusted: int, probe_keys: list[str]
    ) -> tuple[list[Member], int]:
        """Self, trusted (node_id, generation, gossip_addr) members with every key,
        at most ``max_untrusted`` others with only ``probe_keys`` (rotating); plus
        the size of the engine's whole table. In open gossip the trusted
        identities also always pass the engine's admission."""
    @property
    def sealed(self) -> bool:
        """True when every datagram is sealed with the cluster keyring."""
    def keys(self) -> list[tuple[str, bool]]:
        """Installed keys as (key id, primary), primary first."""
    def install_key(self, key: bytes) -> None: ...
    def use_key(self, key: bytes) -> None: ...
    def remove_key(self, key: bytes) -> None: ...
    def transport_stats(self) -> TransportStats: ...
    def shutdown(self) -> None: ...

# --- links (rust-libp2p: TCP, Noise XX, yamux, ping, identify, request/response) --

@final
class LinkEvent:
    """One thing that happened on the links; ``kind`` says which fields matter.

    "connected" (peer, addr, direction), "disconnected" (peer, reason),
    "dial_failed" (addr, peer = expected peer or "", reason), "rtt" (peer, rtt_ms),
    "request" (peer, protocol, channel, payload), "response" (peer, protocol,
    request_id, payload), "request_failed" (peer, protocol, request_id, reason).
    """

    kind: str
    peer: str
    addr: str
    direction: str
    reason: str
    rtt_ms: float
    protocol: str
    channel: int
    request_id: int
    payload: bytes

@final
class LinkStats:
    """Counters of one link engine since it started."""

    connections_established: int
    connections_closed: int
    dials_failed: int
    impostors_refused: int
    inbound_handshakes_failed: int
    connections_denied: int
    oversize_refused: int
    requests_sent: int
    requests_received: int
    responses_sent: int
    responses_received: int
    requests_failed: int
    inbound_failed: int
    responses_dropped: int
    inbound_shed: int
    events_dropped: int

@final
class Links:
    """A running link engine. The constructor binds the listener (blocks briefly:
    call it off the event loop); every method returns at once."""

    def __new__(
        cls,
        *,
        secret_key: bytes,
        listen_addr: str,
        protocols: list[str],
        max_message_size: int = 1048576,
        max_connections: int = 256,
        max_connections_per_peer: int = 2,
        max_pending_incoming: int = 64,
        handshake_timeout_ms: int = 10000,
        request_timeout_ms: int = 10000,
        ping_interval_ms: int = 15000,
        ping_timeout_ms: int = 20000,
        max_inbound_bytes: int = 67108864,
        max_queued_events: int = 65536,
        agent_version: str | None = None,
    ) -> Links: ...
    @property
    def peer_id(self) -> str: ...
    @property
    def listen_addrs(self) -> list[str]: ...
    @property
    def protocols(self) -> list[str]: ...
    @property
    def max_message_size(self) -> int: ...
    @property
    def wake_fd(self) -> int:
        """Readable while events wait (register with ``loop.add_reader``)."""
    @property
    def running(self) -> bool: ...
    def dial(self, addr: str, expected_peer: str) -> None:
        """Connect to ``addr``, refusing any key but ``expected_peer``'s."""
    def disconnect(self, peer: str, reason: str = "") -> None: ...
    def request(self, peer: str, protocol: str, payload: bytes) -> int:
        """Send ``payload``; returns the request id of the outcome event."""
    def respond(self, channel: int, payload: bytes) -> None: ...
    def poll_events(self, max: int = 256) -> list[LinkEvent]:
        """Up to ``max`` pending events (never blocks)."""
    def stats(self) -> LinkStats: ...
    def shutdown(self) -> None: ...

@final
class TransportStats:
    sealed_transport: bool
    sent: int
    received: int
    sealed: int
    opened: int
    rejected: dict[str, int]
    foreign_loopback: int
    fragmented: int
    rewritten: int
    #: Open gossip: datagrams whose delta expanded beyond the read bound (1 MiB), passed on cut at it.
    truncated: int
    admission_cap: int
    admitted_unverified: int
    ids_refused: dict[str, int]
    admission_released: int
    #: Key-value operations cut out of open-gossip deltas (long_key, long_value, keys, bytes).
    values_refused: dict[str, int]
    #: Key-values (tombstones included) and their key + value bytes in the engine's table, as of the last view.
    engine_key_values: int
    engine_value_bytes: int

def generate_gossip_key() -> bytes:
    """A new random 32-byte gossip key."""

def gossip_key_id(key: bytes) -> str:
    """The public id (8 hex digits) of a gossip key."""

# --- physarum (native build of the same kernel as physarum.wasm) ----------

@final
class NativePhysarum:
    """Native build of the Physarum kernel; same operations as physarum.wasm's C-ABI.

    Bad input raises InvalidArgumentError (a ValueError)."""

    def __new__(cls, params: list[float], seed: int) -> NativePhysarum: ...
    def set_params(self, params: list[float]) -> None: ...
    def add_node(self, x: float, y: float, z: float = 0.0) -> int: ...
    def add_nodes(self, xyz: list[float]) -> int: ...
    def add_edge(self, a: int, b: int, length: float = ...) -> int: ...
    def add_edges(self, ends: list[int], lengths: list[float] | None = None) -> int: ...
    def set_food(self, ids: list[int]) -> None: ...
    def step(self, n: int = 1) -> None: ...
    @property
    def node_count(self) -> int: ...
    @property
    def edge_count(self) -> int: ...
    @property
    def alive_count(self) -> int: ...
    @property
    def steps(self) -> int: ...
    @property
    def residual(self) -> float: ...
    @property
    def max_residual(self) -> float: ...
    @property
    def last_cg_iterations(self) -> int: ...
    @property
    def total_cg_iterations(self) -> int: ...
    @property
    def converged(self) -> bool: ...
    @property
    def factor_nnz(self) -> int: ...
    @property
    def factor_n(self) -> int: ...
    @property
    def analyses(self) -> int: ...
    @property
    def total_factor_flops(self) -> float: ...
    @property
    def memory_bytes(self) -> int: ...
    @property
    def peak_memory_bytes(self) -> int: ...
    @property
    def graph_bytes(self) -> int: ...
    @property
    def total_length(self) -> float: ...
    @property
    def order_parameter(self) -> float: ...
    @property
    def last_source(self) -> int: ...
    def edge_ends(self) -> list[int]: ...
    def edge_length(self) -> list[float]: ...
    def conductivity(self) -> list[float]: ...
    def radius(self) -> list[float]: ...
    def flow(self) -> list[float]: ...
    def age(self) -> list[float]: ...
    def alive(self) -> list[bool]: ...
    def pressure(self) -> list[float]: ...
    def positions(self) -> list[float]: ...
    def phase(self) -> list[float]: ...
    def nutrient(self) -> list[float]: ...
    def food(self) -> list[int]: ...

# --- credit ledger (openraft + redb) --------------------------------------

@final
class LedgerNetwork:
    """In-process network for ledger nodes: many members in one process, cuttable links."""

    def __new__(cls) -> LedgerNetwork: ...
    def cut(self, a: str, b: str) -> None:
        """Drop every RPC between two members (PeerIds), both ways."""
    def heal(self, a: str, b: str) -> None: ...

@final
class LedgerEvent:
    """A completion: kind is "committed", "failed", "read_ready", "done" or "rpc_reply"."""

    ticket: int
    kind: str
    outcome: str
    index: int
    code: str
    message: str
    leader: str | None
    reply: bytes | None

@final
class LedgerAccount:
    balance: int
    locked: int
    earned_total: int
    spent_total: int
    available: int

@final
class LedgerSummary:
    total_minted: int
    pool: int
    sum_balances: int
    accounts: int
    open_locks: int
    witnesses: list[str]
    threshold_permille: int
    state_hash: str
    leader: str | None
    state: str
    term: int
    last_applied: int | None
    last_log_index: int | None
    snapshot_index: int | None
    voters: list[str]
    learners: list[str]
    refused_rpcs: int
    bad_messages: int

@final
class LedgerRecord:
    op_id: str
    status: str
    code: str
    message: str
    index: int

@final
class LedgerHistoryEntry:
    """One operation in an account's history: kind is genesis, transfer, lock, post or void."""

    op_id: str
    kind: str
    index: int
    status: str
    code: str
    counterparty: str
    amount: int
    fee: int
    incoming: bool
    memo: str
    timestamp: int

@final
class LedgerName:
    name: str
    author: str
    rev: int
    package: str
    index: int

@final
class LedgerProposal:
    proposal_id: str
    proposer: str
    action: str
    target: str
    amount: int
    state: str
    approvals: int
    rejections: int
    failure: str | None

@final
class Ledger:
    """A Raft ledger member. Calls that wait on consensus return a ticket at once; the completion
    arrives as a LedgerEvent from poll_events(), and wake_fd becomes readable."""

    def __new__(
        cls,
        *,
        peer_id: str,
        data_dir: str | os.PathLike[str],
        bootstrap_peers: list[str] = ...,
        network: LedgerNetwork | None = None,
        heartbeat_ms: int = 100,
        election_min_ms: int = 500,
        election_max_ms: int = 1000,
        snapshot_every: int = 5000,
        keep_logs: int = 1000,
        snapshot_chunk_bytes: int = 262_144,
    ) -> Ledger: ...
    @property
    def peer_id(self) -> str: ...
    @property
    def wake_fd(self) -> int: ...
    def poll_events(self, max_events: int = 1024) -> list[LedgerEvent]: ...
    def initialize(self, witnesses: list[str]) -> int: ...
    def submit_genesis(
        self, *, allocations: list[tuple[str, int]], witnesses: list[str], threshold_permille: int, timestamp: int
    ) -> int: ...
    def submit_transfer(
        self,
        *,
        id: str,
        from_node: str,
        to: str,
        amount: int,
        fee: int,
        memo: str,
        timestamp: int,
        signature: bytes,
    ) -> int: ...
    def submit_lock(
        self, *, id: str, owner: str, amount: int, memo: str, timestamp: int, signature: bytes
    ) -> int: ...
    def submit_post(
        self, *, id: str, lock_id: str, owner: str, payee: str, amount: int, timestamp: int, signature: bytes
    ) -> int: ...
    def submit_void(self, *, id: str, lock_id: str, owner: str, timestamp: int, signature: bytes) -> int: ...
    def submit_claim_name(
        self, *, id: str, name: str, author: str, rev: int, package: str, timestamp: int, signature: bytes
    ) -> int: ...
    def submit_propose(
        self, *, id: str, proposer: str, action: str, target: str, amount: int, timestamp: int, signature: bytes
    ) -> int: ...
    def submit_vote(
        self, *, proposal_id: str, voter: str, approve: bool, timestamp: int, signature: bytes
    ) -> int: ...
    def read_barrier(self) -> int: ...
    def add_witness(self, peer: str) -> int: ...
    def remove_member(self, peer: str) -> int: ...
    def reconcile_witnesses(self) -> int: ...
    def set_bootstrap_peers(self, peers: list[str]) -> None:
        """Peers whose Raft RPCs are accepted while this node knows no membership yet."""
    def take_outbound(self, max_rpcs: int = 256) -> list[tuple[int, str, bytes]]:
        """Outbound Raft RPCs for the host to carry: (request_id, target PeerId, bytes)."""
    def deliver_reply(self, request_id: int, reply: bytes | None, error: str | None = None) -> bool: ...
    def handle_rpc(self, from_peer: str, data: bytes) -> int:
        """Serve an RPC from an authenticated peer; the reply arrives as an "rpc_reply" event."""
    def account(self, node_id: str) -> LedgerAccount: ...
    def balances(self) -> list[tuple[str, int, int]]: ...
    def record(self, op_id: str) -> LedgerRecord | None: ...
    def history(self, node_id: str, limit: int = 100) -> list[LedgerHistoryEntry]:
        """The latest ``limit`` (at most 1000) operations that involved ``node_id``, newest first."""
    def name(self, name: str) -> LedgerName | None:
        """Who owns the spirit name ``name`` (this member's applied state), if anyone claimed it."""
    def proposal(self, proposal_id: str) -> LedgerProposal | None: ...
    def summary(self) -> LedgerSummary: ...
    def shutdown(self) -> None: ...
