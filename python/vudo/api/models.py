"""Response bodies of the HTTP API (they also make the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field


class ComputeCap(BaseModel):
    kind: Literal["compute"]
    cores: int
    memory_mb: int


class StorageCap(BaseModel):
    kind: Literal["storage"]
    capacity_mb: int
    iops: int


class GatewayCap(BaseModel):
    kind: Literal["gateway"]
    protocols: list[str]


class WitnessCap(BaseModel):
    kind: Literal["witness"]
    stake: int


CapabilityOut = Annotated[ComputeCap | StorageCap | GatewayCap | WitnessCap, Field(discriminator="kind")]


class GradientOut(BaseModel):
    node_id: str
    compute_available: float
    storage_available: float
    bandwidth_available: float
    credit_balance: float
    timestamp: float
    hops: int


class Addrs(BaseModel):
    gossip: str
    api: str


class NodeOut(BaseModel):
    node_id: str
    addrs: Addrs
    capabilities: list[CapabilityOut]
    version: str
    cluster_id: str
    status: Literal["bootstrapping", "alive", "leaving", "stopped"]
    started_at: float
    witness: bool


class MemberOut(BaseModel):
    node_id: str
    status: Literal["alive", "dead", "left"]
    verified: bool
    is_self: bool
    gossip_addr: str
    generation: int
    api: str | None
    link: str | None
    capabilities: list[CapabilityOut]
    gradient: GradientOut | None
    rejected: list[str]


class MembersOut(BaseModel):
    members: list[MemberOut]


class GradientsOut(BaseModel):
    local: GradientOut | None
    neighbors: dict[str, GradientOut]
    flow: dict[str, str | None]


class LinkOut(BaseModel):
    peer: str
    established: float
    last_seen: float
    latency_ms: int
    bandwidth_score: float
    reputation: float
    addr: str
    direction: Literal["inbound", "outbound"]


class LinksOut(BaseModel):
    links: list[LinkOut]


class TopologyOut(BaseModel):
    """This node's view of the link graph: an edge is listed when both ends' signed link lists name each other."""

    self_id: str = Field(alias="self")
    nodes: list[str]
    edges: list[Annotated[list[str], Field(min_length=2, max_length=2)]]

    model_config = {"populate_by_name": True}


class Health(BaseModel):
    status: str


class LeaveOut(BaseModel):
    status: Literal["leaving"]


class ErrorOut(BaseModel):
    detail: str


class SpiritPermissionsOut(BaseModel):
    network: Literal["none", "read", "write"]
    compute: Literal["minimal", "standard", "heavy"]
    display: Literal["none", "required"]
    wasi: bool


class SpiritFileOut(BaseModel):
    path: str
    sha256: str


class SpiritOut(BaseModel):
    """One installed spirit: its manifest, the grants, its state and what it has used."""

    name: str
    version: str
    rev: int
    author: str
    license: str
    description: str
    tags: list[str]
    tier: Literal["free", "premium"]
    price: int
    permissions: SpiritPermissionsOut
    granted: SpiritPermissionsOut | None
    missing: list[str] = Field(description="permissions the manifest asks for beyond the grant (summon is refused while non-empty)")
    state: Literal["installed", "summoning", "running", "dismissing", "dismissed", "failed"]
    error: str | None
    error_reason: str | None
    summoned_at: float | None
    calls: int
    fuel_used_total: int
    fuel_last_call: int
    fuel_per_call: int
    wall_ms_budget: int
    memory_bytes: int
    memory_cap: int
    package_sha256: str
    entry: str
    exports: list[str]
    imports: list[str]
    files: list[SpiritFileOut]
    web: bool = Field(description="whether its web assets are served at /spirits/{name}/ now")


class SpiritsOut(BaseModel):
    spirits: list[SpiritOut]


class SpiritLogLineOut(BaseModel):
    time: float
    level: str
    text: str


class SpiritLogsOut(BaseModel):
    name: str
    lines: list[SpiritLogLineOut]


class SpiritErrorOut(BaseModel):
    detail: str
    reason: str = Field(description="stable reason, e.g. not_granted, wrong_state, bad_signature, hash_mismatch, out_of_fuel")
    code: str | None = Field(default=None, description="for a premium summon the credit ledger refused: the ledger's code "
                                                       "(insufficient_funds → 402, no_leader → 503)")


class GossipKeyOut(BaseModel):
    id: str
    primary: bool


class GossipKeysOut(BaseModel):
    sealed: bool
    keys: list[GossipKeyOut]


class GossipKeyChange(BaseModel):
    op: Literal["install", "use", "remove"]
    key: str = Field(max_length=128, description="base64 of the 32-byte key (`vudo keygen`)")


# -- credits (amounts are integer units: 1 credit = 1 000 000 units) ----------------------


class CreditsErrorOut(BaseModel):
    code: str = Field(description="machine-readable reason: insufficient_funds, invalid_signature, id_conflict, overflow, memo_too_long, no_leader, ...")
    detail: str
    leader: str | None = None


class CreditAccountOut(BaseModel):
    node_id: str
    balance: int
    locked: int
    available: int
    earned_total: int
    spent_total: int


class CreditAccountsOut(BaseModel):
    accounts: list[CreditAccountOut]
    total_minted: int
    pool: int
    index: int = Field(description="the ledger index these balances reflect")
    truncated: bool = False


class CreditSummaryOut(BaseModel):
    total_minted: int
    pool: int
    sum_balances: int
    leader: str | None
    term: int
    last_applied: int | None
    witnesses: list[str]
    state_hash: str
    voters: list[str]
    accounts: int
    open_locks: int
    threshold_permille: int
    index: int
    state: str = Field(description="this node's Raft state when it holds the ledger (leader, follower, ...), else the answering leader's")


class TransferIn(BaseModel):
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")] | None = Field(
        None, description="operation id; reuse it to retry safely (default: a fresh random id)")
    to: Annotated[str, Field(min_length=1, max_length=128)]
    amount: Annotated[int, Field(ge=0, le=2**64 - 1)]
    fee: Annotated[int, Field(ge=0, le=2**64 - 1)] = 0
    memo: Annotated[str, Field(max_length=1024)] = ""


class OperationOut(BaseModel):
    id: str
    status: Literal["committed", "exists"]
    index: int


class TransferRecordOut(BaseModel):
    id: str
    status: Literal["applied", "rejected"]
    code: str
    message: str
    index: int


class ProposalIn(BaseModel):
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")] | None = None
    action: Literal["mint", "add_witness", "remove_witness"]
    target: Annotated[str, Field(min_length=1, max_length=128)]
    amount: Annotated[int, Field(ge=0, le=2**64 - 1)] = 0


class VoteIn(BaseModel):
    approve: bool


class CreditProposalOut(BaseModel):
    id: str
    proposer: str
    action: str
    target: str
    amount: int
    state: str
    approvals: int
    rejections: int
    failure: str | None


class WitnessInitIn(BaseModel):
    witnesses: Annotated[list[Annotated[str, Field(min_length=1, max_length=128)]], Field(min_length=1, max_length=64)]


class WitnessInitOut(BaseModel):
    witnesses: list[str]
    voters: list[str]


class GenesisIn(BaseModel):
    allocations: Annotated[dict[str, Annotated[int, Field(ge=0, le=2**64 - 1)]], Field(max_length=4096)]
    threshold_permille: Annotated[int, Field(ge=1, le=1000)] = 670


class CreditHistoryEntryOut(BaseModel):
    op_id: str
    kind: str = Field(description="genesis, transfer, lock, post or void")
    index: int
    status: Literal["applied", "rejected"]
    code: str
    counterparty: str
    amount: int
    fee: int
    incoming: bool = Field(description="true when the credits came to this account")
    memo: str
    timestamp: int


class CreditHistoryOut(BaseModel):
    node_id: str
    entries: list[CreditHistoryEntryOut]
    index: int
