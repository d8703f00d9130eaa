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


class Health(BaseModel):
    status: str


class LeaveOut(BaseModel):
    status: Literal["leaving"]


class ErrorOut(BaseModel):
    detail: str
