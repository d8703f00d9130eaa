"""An asyncio face of ``vudo._core.Ledger`` that never blocks the event loop.

Theory of operation: each engine call returns a ticket immediately and the
work runs on the engine's own runtime. When it completes, the engine queues a
``LedgerEvent`` and makes ``ledger.wake_fd`` readable. The client registers
that descriptor with the loop (``add_reader``); on wake-up it drains the
descriptor, pulls every event with ``poll_events()`` and resolves the future
waiting on that ticket. Refusals become :class:`LedgerRefused` with the
engine's machine-readable ``code``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass

from vudo import _core
from vudo.credits.transaction import (
    CreditTransaction,
    LockRequest,
    NameClaim,
    PostRequest,
    Proposal,
    SignedVote,
    VoidRequest,
)
from vudo.errors import VudoError

#: Codes that mean "this node cannot serve the write now": retry elsewhere or later with the same id.
RETRYABLE = frozenset({"not_leader", "no_leader", "raft"})


class LedgerRefused(VudoError):
    """The ledger refused an operation or could not complete it; ``code`` says why."""

    def __init__(self, code: str, message: str, leader: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        #: For ``not_leader``: the PeerId of the leader to forward to.
        self.leader = leader


@dataclass(frozen=True, slots=True)
class Committed:
    """A committed operation: ``outcome`` is "applied", or "exists" for an idempotent retry."""

    outcome: str
    index: int


class LedgerClient:
    """Awaitable ledger operations over one engine handle (one per event loop)."""

    def __init__(self, ledger: _core.Ledger) -> None:
        self.ledger = ledger
        self._pending: dict[int, asyncio.Future[_core.LedgerEvent]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Called with each event no call awaits (the answers to inbound Raft RPCs a host serves).
        self.unclaimed: Callable[[_core.LedgerEvent], None] | None = None
        #: Called after every wake-up (a host pumps the ledger's outbound RPCs there).
        self.after_drain: Callable[[], None] | None = None

    def start(self) -> None:
        """Watch the engine's wake-up descriptor on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.ledger.wake_fd, self.drain)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.ledger.wake_fd)
            self._loop = None
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    def drain(self) -> None:
        """Resolve every completed ticket (called by the loop when ``wake_fd`` is readable)."""
        try:
            while os.read(self.ledger.wake_fd, 4096):
                pass
        except BlockingIOError:
            pass
        for event in self.ledger.poll_events():
            future = self._pending.pop(event.ticket, None)
            if future is not None and not future.done():
                future.set_result(event)
            elif future is None and self.unclaimed is not None:
                self.unclaimed(event)
        if self.after_drain is not None:
            self.after_drain()

    async def wait(self, ticket: int) -> _core.LedgerEvent:
        """The event that completes ``ticket``; raises :class:`LedgerRefused` for a failure."""
        if self._loop is None:
            self.start()
        assert self._loop is not None
        future: asyncio.Future[_core.LedgerEvent] = self._loop.create_future()
        self._pending[ticket] = future
        self.drain()  # it may have completed already
        event = await future
        if event.kind == "failed":
            raise LedgerRefused(event.code, event.message, event.leader)
        return event

    async def _committed(self, ticket: int) -> Committed:
        event = await self.wait(ticket)
        return Committed(outcome=event.outcome, index=event.index)

    async def initialize(self, witnesses: list[str]) -> None:
        await self.wait(self.ledger.initialize(witnesses))

    async def genesis(
        self, allocations: dict[str, int], witnesses: list[str], *, timestamp: int, threshold_permille: int = 670
    ) -> Committed:
        ticket = self.ledger.submit_genesis(
            allocations=sorted(allocations.items()),
            witnesses=witnesses,
            threshold_permille=threshold_permille,
            timestamp=timestamp,
        )
        return await self._committed(ticket)

    async def transfer(self, tx: CreditTransaction) -> Committed:
        ticket = self.ledger.submit_transfer(
            id=tx.id,
            from_node=tx.from_,
            to=tx.to,
            amount=tx.amount,
            fee=tx.fee,
            memo=tx.memo,
            timestamp=tx.timestamp,
            signature=tx.signature,
        )
        return await self._committed(ticket)

    async def lock(self, op: LockRequest) -> Committed:
        ticket = self.ledger.submit_lock(
            id=op.id, owner=op.owner, amount=op.amount, memo=op.memo, timestamp=op.timestamp, signature=op.signature
        )
        return await self._committed(ticket)

    async def claim_name(self, op: NameClaim) -> Committed:
        ticket = self.ledger.submit_claim_name(
            id=op.id, name=op.name, author=op.author, rev=op.rev, package=op.package, timestamp=op.timestamp,
            signature=op.signature,
        )
        return await self._committed(ticket)

    async def post(self, op: PostRequest) -> Committed:
        ticket = self.ledger.submit_post(
            id=op.id,
            lock_id=op.lock_id,
            owner=op.owner,
            payee=op.payee,
            amount=op.amount,
            timestamp=op.timestamp,
            signature=op.signature,
        )
        return await self._committed(ticket)

    async def void(self, op: VoidRequest) -> Committed:
        ticket = self.ledger.submit_void(
            id=op.id, lock_id=op.lock_id, owner=op.owner, timestamp=op.timestamp, signature=op.signature
        )
        return await self._committed(ticket)

    async def propose(self, op: Proposal) -> Committed:
        ticket = self.ledger.submit_propose(
            id=op.id,
            proposer=op.proposer,
            action=op.action,
            target=op.target,
            amount=op.amount,
            timestamp=op.timestamp,
            signature=op.signature,
        )
        return await self._committed(ticket)

    async def vote(self, op: SignedVote) -> Committed:
        ticket = self.ledger.submit_vote(
            proposal_id=op.proposal_id,
            voter=op.voter,
            approve=op.approve,
            timestamp=op.timestamp,
            signature=op.signature,
        )
        return await self._committed(ticket)

    async def read_barrier(self) -> int:
        """Wait until local reads are linearizable; returns the applied index they reflect."""
        event = await self.wait(self.ledger.read_barrier())
        return event.index
