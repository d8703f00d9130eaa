"""What the interfaces may ask of a node: a query protocol built from service views.

The HTTP API and the dashboard depend on this protocol only, never on the
node object or a service's internals; the supervisor implements it by
composing the views its services expose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vudo.credits.transaction import ActionKind
from vudo.credits.wire import ReadWhat, Response
from vudo.hyphal.capability import Capability
from vudo.hyphal.topology import TopologyView
from vudo.services.links import LinkView
from vudo.services.market import FetchView, OfferView
from vudo.services.membership import GradientsView, MemberView
from vudo.services.spirits import SpiritAsset, SpiritLogLine, SpiritView


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: str
    gossip_addr: str
    api_url: str
    capabilities: tuple[Capability, ...]
    cluster_id: str
    started_at: float
    status: str  # "bootstrapping" | "alive" | "leaving" | "stopped"


@dataclass(frozen=True, slots=True)
class KeyringView:
    sealed: bool  # False: gossip is open (no keyring)
    keys: tuple[tuple[str, bool], ...]  # (key id, primary), primary first


class NodeQuery(Protocol):
    def info(self) -> NodeInfo: ...

    def ready(self) -> bool: ...

    def members(self) -> list[MemberView]: ...

    def gradients(self) -> GradientsView: ...

    def links(self) -> list[LinkView]: ...

    def link_topology(self) -> TopologyView: ...

    def metrics_text(self) -> bytes: ...

    def token_matches(self, token: str) -> bool: ...

    def request_stop(self, reason: str) -> None: ...

    # Spirits. Mutations raise vudo.spirits.errors.SpiritError with a stable ``reason``.

    def spirits(self) -> list[SpiritView]: ...

    def spirit(self, name: str) -> SpiritView | None: ...

    def spirit_logs(self, name: str) -> list[SpiritLogLine] | None: ...

    def spirit_asset(self, name: str, path: str) -> SpiritAsset | None: ...

    async def install_spirit(self, package: bytes) -> SpiritView: ...

    async def summon_spirit(self, name: str) -> SpiritView: ...

    async def dismiss_spirit(self, name: str) -> SpiritView: ...

    async def uninstall_spirit(self, name: str) -> SpiritView: ...

    # The marketplace. start_fetch raises SpiritError (reason not_offered | too_many).

    def marketplace(self, query: str = "") -> list[OfferView]: ...

    def start_fetch(self, name: str, version: str | None) -> FetchView: ...

    def fetch_status(self, fetch_id: int) -> FetchView | None: ...

    def gossip_keys(self) -> KeyringView: ...

    def change_gossip_key(self, op: str, key: bytes) -> None:
        """install | use | remove; ValueError says what is wrong (caller's fault)."""

    # Credits. Answers are the ledger's own (vudo.credits.wire): Committed, ReadReply or Refused(code).

    async def credits_read(self, what: ReadWhat, key: str = "", *, linearizable: bool = True, limit: int = 100) -> Response: ...

    async def credits_transfer(self, *, to: str, amount: int, fee: int, memo: str, op_id: str | None) -> tuple[str, Response]: ...

    async def credits_propose(self, *, action: ActionKind, target: str, amount: int, op_id: str | None) -> tuple[str, Response]: ...

    async def credits_vote(self, *, proposal_id: str, approve: bool) -> Response: ...

    async def credits_init(self, witnesses: list[str]) -> list[str]:
        """Found the witness cluster here; returns the voters. LedgerRefused(code) when this node cannot."""

    async def credits_genesis(self, allocations: dict[str, int], *, threshold_permille: int) -> Response: ...
