"""What the interfaces may ask of a node: a query protocol built from service views.

The HTTP API and the dashboard depend on this protocol only, never on the
node object or a service's internals; the supervisor implements it by
composing the views its services expose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vudo.hyphal.capability import Capability
from vudo.services.membership import GradientsView, MemberView


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: str
    gossip_addr: str
    api_url: str
    capabilities: tuple[Capability, ...]
    cluster_id: str
    started_at: float
    status: str  # "bootstrapping" | "alive" | "leaving" | "stopped"


class NodeQuery(Protocol):
    def info(self) -> NodeInfo: ...

    def ready(self) -> bool: ...

    def members(self) -> list[MemberView]: ...

    def gradients(self) -> GradientsView: ...

    def metrics_text(self) -> bytes: ...

    def token_matches(self, token: str) -> bool: ...

    def request_stop(self, reason: str) -> None: ...
