"""Print the HTTP API's OpenAPI document without running a node.

``python -m vudo.api.openapi > web/openapi.json`` — the web build turns it
into the dashboard's TypeScript types, so the browser code and the API
share one source of truth (``vudo/api/models.py``).
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

from vudo.api.app import create_app
from vudo.api.query import KeyringView, NodeInfo
from vudo.credits.transaction import ActionKind
from vudo.credits.wire import ReadWhat, Response
from vudo.hyphal.topology import TopologyView
from vudo.services.links import LinkView
from vudo.services.market import FetchView, OfferView
from vudo.services.membership import GradientsView, MemberView
from vudo.services.signals import Kind, SignalRecord, Subscription
from vudo.services.spirits import SpiritAsset, SpiritLogLine, SpiritView


class _SchemaOnly:
    """A query object for building the document: routes are described, never called."""

    def _never(self) -> NoReturn:
        raise RuntimeError("this app only describes the API; it serves no node")

    def info(self) -> NodeInfo:
        self._never()

    def ready(self) -> bool:
        self._never()

    def members(self) -> list[MemberView]:
        self._never()

    def gradients(self) -> GradientsView:
        self._never()

    def links(self) -> list[LinkView]:
        self._never()

    def link_topology(self) -> TopologyView:
        self._never()

    def metrics_text(self) -> bytes:
        self._never()

    def token_matches(self, token: str) -> bool:
        self._never()

    def request_stop(self, reason: str) -> None:
        self._never()

    def spirits(self) -> list[SpiritView]:
        self._never()

    def spirit(self, name: str) -> SpiritView | None:
        self._never()

    def spirit_logs(self, name: str) -> list[SpiritLogLine] | None:
        self._never()

    def spirit_asset(self, name: str, path: str) -> SpiritAsset | None:
        self._never()

    async def install_spirit(self, package: bytes) -> SpiritView:
        self._never()

    async def summon_spirit(self, name: str) -> SpiritView:
        self._never()

    async def dismiss_spirit(self, name: str) -> SpiritView:
        self._never()

    async def uninstall_spirit(self, name: str) -> SpiritView:
        self._never()

    def marketplace(self, query: str = "") -> list[OfferView]:
        self._never()

    def start_fetch(self, name: str, version: str | None) -> FetchView:
        self._never()

    def fetch_status(self, fetch_id: int) -> FetchView | None:
        self._never()

    def gossip_keys(self) -> KeyringView:
        self._never()

    def change_gossip_key(self, op: str, key: bytes) -> None:
        self._never()

    async def credits_read(self, what: ReadWhat, key: str = "", *, linearizable: bool = True, limit: int = 100) -> Response:
        self._never()

    async def credits_transfer(self, *, to: str, amount: int, fee: int, memo: str, op_id: str | None) -> tuple[str, Response]:
        self._never()

    async def credits_propose(self, *, action: ActionKind, target: str, amount: int, op_id: str | None) -> tuple[str, Response]:
        self._never()

    async def credits_vote(self, *, proposal_id: str, approve: bool) -> Response:
        self._never()

    async def credits_init(self, witnesses: list[str]) -> list[str]:
        self._never()

    async def credits_genesis(self, allocations: dict[str, int], *, threshold_permille: int) -> Response:
        self._never()


class _SchemaOnlySignals:
    """The signal routes' query, for the schema only."""

    def _never(self) -> NoReturn:
        raise AssertionError("schema-only signals query: no node behind it")

    def emit(self, kind: Kind, payload: bytes, *, ttl: int | None = None, **params: object) -> str:
        self._never()

    def recent(self) -> list[SignalRecord]:
        self._never()

    def subscribe(self, size: int = 0) -> Subscription:
        self._never()


def document() -> dict[str, Any]:
    return create_app(_SchemaOnly(), signals=_SchemaOnlySignals()).openapi()


def main() -> None:
    json.dump(document(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
