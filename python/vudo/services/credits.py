"""The credits service: the Raft ledger of a witness, and the way to it from every node.

It decides little itself; the protocol logic with state lives in the sans-I/O
:class:`~vudo.credits.forwarding.RaftCarrier` and
:class:`~vudo.credits.forwarding.Forwarder`. It:

* on a witness (``witness = true``), owns the ``vudo._core.Ledger`` (data in
  ``<data_dir>/ledger``). When the ledger's ``wake_fd`` turns readable it pulls
  the completed tickets (:class:`~vudo.credits.client.LedgerClient`) and the
  outbound Raft RPCs, which the carrier sends on ``/vudo/raft/1`` to the
  target's Noise-authenticated link only; inbound RPCs are served with the
  link's authenticated peer id (the ledger refuses non-members);
* asks the links service to keep links to the other witnesses (their gossiped
  link addresses) beyond the normal degree policy; a node that is not a
  witness pins one witness, so it always has a way to the ledger;
* submits signed operations and linearizable reads: on the leader locally,
  elsewhere forwarded on ``/vudo/credits/1`` (to the leader if linked, else
  through a linked witness, one hop more at most);
* serves the forwarded requests of other nodes (bounded, validated, at most
  ``MAX_INFLIGHT_PER_PEER`` at once per peer; genesis only from a voter).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge

from vudo import _core
from vudo.config import NodeConfig
from vudo.credits.client import LedgerClient, LedgerRefused
from vudo.credits.forwarding import (
    CallDone,
    CarrierOutput,
    DeliverReply,
    Forwarder,
    ForwarderOutput,
    HandleRpc,
    RaftCarrier,
)
from vudo.credits.transaction import (
    ActionKind,
    CreditTransaction,
    LockRequest,
    NameClaim,
    PostRequest,
    Proposal,
    SignedOperation,
    SignedVote,
    VoidRequest,
    new_op_id,
)
from vudo.credits.wire import (
    MAX_ACCOUNTS,
    MAX_HISTORY,
    MAX_HOPS,
    AccountOut,
    Committed,
    Genesis,
    HistoryOut,
    NameOut,
    ProposalOut,
    Read,
    ReadReply,
    ReadWhat,
    RecordOut,
    Refused,
    Request,
    Response,
    Submit,
    SummaryOut,
    decode_request,
    encode,
)
from vudo.errors import RemoteValueError
from vudo.hyphal.linkproto import LinkDown, LinkUp, RequestFailed, RequestReceived, Respond, ResponseReceived, SendRequest
from vudo.identity import Identity, verify_signature
from vudo.services.base import NodeEvents

log = logging.getLogger("vudo.credits")

TICK_S = 0.1
#: Forwarded requests one peer may have in flight here at once.
MAX_INFLIGHT_PER_PEER = 64
#: How often the fault-injection drop file is re-read (seconds).
FAULT_FILE_EVERY_S = 0.5
#: Largest snapshot chunk in one Raft RPC: well under the link engine's 1 MiB message limit.
SNAPSHOT_CHUNK_BYTES = 256 * 1024
#: Tries at a consistent read of every account (see _read_local) before answering `busy`.
ACCOUNTS_READ_ATTEMPTS = 50
#: How often this node's credit ratio (for its gradient) is re-read from the ledger (seconds).
RATIO_EVERY_S = 10.0
#: How long a founder whose own initialization lost the race waits for the winner's membership (seconds).
INIT_JOIN_WAIT_S = 10.0
#: How often the leader brings Raft voters in line with the ledger's witness set (seconds).
RECONCILE_EVERY_S = 5.0

PortEvent = LinkUp | LinkDown | RequestReceived | ResponseReceived | RequestFailed


class CreditsPort(Protocol):
    """The links service's side of one protocol (``vudo.services.protocol_port.ProtocolPort``)."""

    def execute(self, instruction: SendRequest | Respond) -> None: ...

    async def next_event(self) -> PortEvent | None: ...


@dataclass(frozen=True, slots=True)
class CreditsSources:
    """Read-only views of other services: verified live members advertising the Witness capability."""

    witness_members: Callable[[], frozenset[str]]


class CreditsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter("vudo_credits_calls", "Ledger calls made by this node, by kind and outcome", ["kind", "outcome"], registry=registry)
        self.served = Counter("vudo_credits_forwarded_served", "Requests other nodes forwarded to this node, by outcome", ["outcome"], registry=registry)
        self.bad = Counter("vudo_credits_bad_messages", "Malformed or unauthorised credit messages from peers, by reason", ["reason"], registry=registry)
        self.raft = Counter("vudo_credits_raft_frames", "Raft frames carried on the links, by fate", ["fate"], registry=registry)
        self.is_leader = Gauge("vudo_credits_is_leader", "1 when this node is the ledger's Raft leader", registry=registry)


def _author(op: SignedOperation) -> str:
    if isinstance(op, CreditTransaction):
        return op.from_
    if isinstance(op, LockRequest | PostRequest | VoidRequest):
        return op.owner
    if isinstance(op, Proposal):
        return op.proposer
    if isinstance(op, NameClaim):
        return op.author
    return op.voter


def _kind(request: Request) -> str:
    if isinstance(request, Submit):
        return type(request.op()).__name__
    return type(request).__name__.lower()


class Outbox:
    """The operations this node signed under a caller's id, so a retry re-sends the *same* signed bytes.

    The API signs with the current time; a retry with the same id signed anew would differ in its
    timestamp and the ledger would refuse it as ``id_conflict``. The last ``limit`` such operations
    are kept in memory and in an append-only journal (``<data_dir>/credits-outbox.jsonl``, compacted
    when it doubles), so retries stay idempotent across a restart of this node.
    """

    def __init__(self, path: Path | None, limit: int = 4096) -> None:
        self.path = path
        self.limit = limit
        self._ops: OrderedDict[str, Submit] = OrderedDict()
        self._lines = 0
        if path is not None and path.exists():
            for line in path.read_bytes().splitlines():
                try:
                    entry = _outbox_decoder.decode(line)
                    self._remember(entry)
                except (msgspec.DecodeError, msgspec.ValidationError, RemoteValueError):
                    continue  # a torn last line after a crash
                self._lines += 1

    def _remember(self, entry: Submit) -> None:
        op = entry.op()
        op_id = vote_op_id(op.proposal_id, op.voter) if isinstance(op, SignedVote) else op.id
        self._ops[op_id] = entry
        self._ops.move_to_end(op_id)
        while len(self._ops) > self.limit:
            self._ops.popitem(last=False)

    def get(self, op_id: str) -> Submit | None:
        return self._ops.get(op_id)

    def put(self, entry: Submit) -> None:
        self._remember(entry)
        if self.path is None:
            return
        if self._lines >= 2 * self.limit:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in self._ops.values()))
            tmp.replace(self.path)
            self._lines = len(self._ops)
        else:
            with open(self.path, "ab") as f:
                f.write(msgspec.json.encode(entry) + b"\n")
            self._lines += 1


_outbox_decoder = msgspec.json.Decoder(Submit)


def vote_op_id(proposal_id: str, voter: str) -> str:
    """The ledger's operation id of a vote: one vote per witness and proposal."""
    return f"vote/{proposal_id}/{voter}"


class CreditsService:
    name = "credits"

    def __init__(
        self,
        config: NodeConfig,
        identity: Identity,
        raft_port: Callable[[], CreditsPort],
        credits_port: Callable[[], CreditsPort],
        sources: CreditsSources,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        tick_s: float = TICK_S,
        network: _core.LedgerNetwork | None = None,
        snapshot_chunk_bytes: int = SNAPSHOT_CHUNK_BYTES,
    ) -> None:
        self.config = config
        self.snapshot_chunk_bytes = snapshot_chunk_bytes
        self.identity = identity
        self.witness = config.witness
        self.sources = sources
        self.metrics = CreditsMetrics(registry or CollectorRegistry())
        self.clock = clock
        self.tick_s = tick_s
        self._raft_port_factory = raft_port
        self._credits_port_factory = credits_port
        self._network = network
        self.raft_port: CreditsPort | None = None
        self.credits_port: CreditsPort | None = None
        self.ledger: _core.Ledger | None = None
        self.client: LedgerClient | None = None
        self.carrier = RaftCarrier()
        self.forwarder = Forwarder(identity.node_id)
        self._calls = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Response]] = {}
        self._inflight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._fault_file = Path(config.raft_fault_drop_file) if config.raft_fault_drop_file else None
        self._fault_read_at = -1e9
        self._reconciled_at = -1e9
        self._bootstrap: frozenset[str] = frozenset()
        self._dropped_reported = 0
        self._ratio = 1.0
        self._ratio_at = -1e9
        self._ratio_task: asyncio.Task[None] | None = None
        self._summary: _core.LedgerSummary | None = None
        self.outbox = Outbox(config.data_dir / "credits-outbox.jsonl" if config.data_dir.is_dir() else None)
        self._running = False

    # -- views -----------------------------------------------------------------------------

    def local_summary(self) -> _core.LedgerSummary | None:
        """The ledger's own summary on a witness (None elsewhere); not linearizable."""
        return None if self.ledger is None else self.ledger.summary()

    def witnesses(self) -> frozenset[str]:
        """The witnesses this node knows: the Raft voters when it holds the ledger, else the configured
        ones (``--ledger-witness``), else every verified member advertising the Witness capability."""
        summary = self._summary
        if summary is not None and summary.voters:
            return frozenset(summary.voters)
        if self.config.ledger_witnesses:
            return frozenset(self.config.ledger_witnesses)
        return self.sources.witness_members()

    def credit_ratio(self) -> float:
        """This node's balance over the network's average balance (the gradient's ``credit_balance``); 1.0 until known."""
        return self._ratio

    async def _refresh_ratio(self) -> None:
        reply = await self.read("accounts", linearizable=False)  # a witness reads its replica; others ask the leader
        if isinstance(reply, ReadReply) and reply.summary is not None and reply.summary.accounts:
            self._ratio = credit_ratio(self.identity.node_id, reply.accounts, reply.summary)

    def pinned(self) -> frozenset[str]:
        """Peers the links service keeps linked for us."""
        me = self.identity.node_id
        if self.witness:
            return (self.witnesses() | self.sources.witness_members()) - {me}
        known = sorted(self.witnesses() - {me})
        if not known:
            return frozenset()
        # One witness per node, spread over the witnesses: a path to the ledger for every node.
        return frozenset({min(known, key=lambda w: hashlib.sha256((me + w).encode()).digest())})

    # -- calls from the API ------------------------------------------------------------------

    async def call(self, request: Request) -> Response:
        """Serve ``request`` here if this node leads the ledger, else forward it to the leader."""
        if not self._running:
            return Refused("unavailable", "the credits service is not running (the node is starting or stopping)")
        response: Response | None = None
        if self.client is not None:
            response = await self._serve_local(request)
            if not (isinstance(response, Refused) and response.code in ("not_leader", "no_leader")):
                self._count(request, response)
                return response
        response = await self._forward(request)
        self._count(request, response)
        return response

    def _count(self, request: Request, response: Response) -> None:
        outcome = response.code if isinstance(response, Refused) else "ok"
        self.metrics.calls.labels(_kind(request), outcome).inc()

    async def submit(self, op: SignedOperation) -> Response:
        return await self.call(Submit.of(op))

    async def read(self, what: ReadWhat, key: str = "", *, linearizable: bool = True, limit: int = 100) -> Response:
        """A read as of the leader's commit (``linearizable``), or this witness's own state."""
        request = Read(what, key, limit=max(1, min(limit, MAX_HISTORY)))
        if not linearizable and self.ledger is not None and self._running:
            return self._read_local(request, self.ledger.summary().last_applied or 0)
        return await self.call(request)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def transfer(self, *, to: str, amount: int, fee: int = 0, memo: str = "", op_id: str | None = None) -> tuple[str, Response]:
        """Sign a transfer from this node and submit it; returns (its id, the outcome).

        With a caller's id, a retry of the same transfer re-sends the operation signed the first time."""
        previous = self.outbox.get(op_id) if op_id else None
        tx = previous.transfer if previous is not None else None
        if tx is None or (tx.to, tx.amount, tx.fee, tx.memo) != (to, amount, fee, memo):
            tx = CreditTransaction(id=op_id or new_op_id(), from_=self.identity.node_id, to=to, amount=amount, fee=fee,
                                   memo=memo, timestamp=self._now_ms()).signed(self.identity)
            if op_id:
                self.outbox.put(Submit(transfer=tx))
        return tx.id, await self.submit(tx)

    async def propose(self, *, action: ActionKind, target: str, amount: int = 0, op_id: str | None = None) -> tuple[str, Response]:
        """Sign a proposal by this (witness) node and submit it (a retry with the same id re-sends it)."""
        previous = self.outbox.get(op_id) if op_id else None
        op = previous.propose if previous is not None else None
        if op is None or (op.action, op.target, op.amount) != (action, target, amount):
            op = Proposal(id=op_id or new_op_id(), proposer=self.identity.node_id, action=action, target=target,
                          amount=amount, timestamp=self._now_ms()).signed(self.identity)
            if op_id:
                self.outbox.put(Submit(propose=op))
        return op.id, await self.submit(op)

    async def vote(self, *, proposal_id: str, approve: bool) -> Response:
        """Sign this witness's vote and submit it.

        The ledger records one vote per witness and proposal: a retry re-sends the vote signed the
        first time (answered ``exists``, also after a restart), and a different choice after a
        recorded vote is refused as ``id_conflict``."""
        previous = self.outbox.get(vote_op_id(proposal_id, self.identity.node_id))
        op = previous.vote if previous is not None else None
        if op is None or op.approve != approve:
            op = SignedVote(proposal_id=proposal_id, voter=self.identity.node_id, approve=approve,
                            timestamp=self._now_ms()).signed(self.identity)
            self.outbox.put(Submit(vote=op))
        return await self.submit(op)

    async def genesis(self, allocations: dict[str, int], *, threshold_permille: int = 670) -> Response:
        """The founding allocation (once per ledger; only a witness may ask): the witnesses are the Raft voters."""
        # On a witness, the Raft voters as they are now: the cached view may predate the founding and
        # fall back to the advertised witnesses, which include nodes nobody has voted in yet.
        live = self.ledger.summary().voters if self.ledger is not None else []
        witnesses = tuple(sorted(live or self.witnesses()))
        if not witnesses:
            return Refused("no_leader", "no witness is known yet; found the cluster first (vudo witness init)")
        return await self.call(Genesis(tuple(sorted(allocations.items())), witnesses, threshold_permille, self._now_ms()))

    async def initialize(self, witnesses: list[str]) -> None:
        """Found the Raft cluster (call it on every founding witness, with the same list)."""
        if self.client is None or not self._running:
            raise LedgerRefused("not_witness", "this node holds no running ledger; start it with --witness")
        assert self.ledger is not None
        voters = sorted(self.ledger.summary().voters)
        if voters:
            if voters == sorted(set(witnesses)):
                return  # already founded with these witnesses (a retry, or a leader reached us first)
            raise LedgerRefused("already_initialized", f"the ledger was founded with witnesses {', '.join(voters)}")
        try:
            await self.client.initialize(witnesses)
        except LedgerRefused as err:
            # Another founder may have reached us first (its vote request arrived before our own call): then its
            # membership log entry is on its way; wait for it rather than fail.
            deadline = time.monotonic() + INIT_JOIN_WAIT_S
            while not self.ledger.summary().voters and time.monotonic() < deadline and self._running:
                await asyncio.sleep(0.05)
            voters = sorted(self.ledger.summary().voters) if self.ledger is not None else []
            if voters != sorted(set(witnesses)):
                raise LedgerRefused(err.code, err.message) from None

    # -- local service ------------------------------------------------------------------------

    async def _serve_local(self, request: Request) -> Response:
        client = self.client
        assert client is not None and self.ledger is not None
        try:
            if isinstance(request, Read):
                index = await client.read_barrier()
                return self._read_local(request, index)
            if isinstance(request, Genesis):
                done = await client.genesis(
                    dict(request.allocations), list(request.witnesses),
                    timestamp=request.timestamp, threshold_permille=request.threshold_permille,
                )
            else:
                op = request.op()
                if isinstance(op, CreditTransaction):
                    done = await client.transfer(op)
                elif isinstance(op, LockRequest):
                    done = await client.lock(op)
                elif isinstance(op, PostRequest):
                    done = await client.post(op)
                elif isinstance(op, VoidRequest):
                    done = await client.void(op)
                elif isinstance(op, Proposal):
                    done = await client.propose(op)
                elif isinstance(op, NameClaim):
                    done = await client.claim_name(op)
                else:
                    done = await client.vote(op)
        except LedgerRefused as err:
            return Refused(err.code[:64] or "refused", err.message[:1024], err.leader)
        return Committed("exists" if done.outcome == "exists" else "applied", done.index)

    def _read_local(self, request: Read, index: int) -> ReadReply:
        ledger = self.ledger
        assert ledger is not None
        if request.what == "summary":
            return ReadReply(index, summary=summary_out(ledger.summary()))
        if request.what == "accounts":
            # The engine reads one account at a time, and entries apply in between: read the accounts
            # between two summaries with the same state hash (a seqlock), so the list is one consistent cut
            # (its balances and the pool sum to total_minted).
            for _ in range(ACCOUNTS_READ_ATTEMPTS):
                before = ledger.summary()
                rows = sorted(ledger.balances())
                accounts = tuple(account_out(node_id, ledger.account(node_id)) for node_id, _, _ in rows[:MAX_ACCOUNTS])
                after = ledger.summary()
                if after.state_hash == before.state_hash:
                    return ReadReply(index, summary=summary_out(after), accounts=accounts, truncated=len(rows) > MAX_ACCOUNTS)
            raise LedgerRefused("busy", "the ledger kept changing while its accounts were read; retry")
        if request.what == "account":
            if not request.key:
                return ReadReply(index)
            return ReadReply(index, accounts=(account_out(request.key, ledger.account(request.key)),))
        if request.what == "history":
            entries = ledger.history(request.key, request.limit) if request.key else []
            return ReadReply(index, history=tuple(
                HistoryOut(e.op_id, e.kind, e.index, "rejected" if e.status == "rejected" else "applied", e.code,
                           e.counterparty, e.amount, e.fee, e.incoming, e.memo[:1024], e.timestamp)
                for e in entries
            ))
        if request.what == "name":
            found = ledger.name(request.key) if request.key else None
            if found is None:
                return ReadReply(index)
            return ReadReply(index, name=NameOut(found.name, found.author, found.rev, found.package, found.index))
        if request.what == "record":
            record = ledger.record(request.key) if request.key else None
            if record is None:
                return ReadReply(index)
            status: Literal["applied", "rejected"] = "rejected" if record.status == "rejected" else "applied"
            return ReadReply(index, record=RecordOut(record.op_id, status, record.code, record.message[:1024], record.index))
        proposal = ledger.proposal(request.key) if request.key else None
        if proposal is None:
            return ReadReply(index)
        return ReadReply(index, proposal=ProposalOut(
            proposal.proposal_id, proposal.proposer, proposal.action, proposal.target, proposal.amount,
            proposal.state, proposal.approvals, proposal.rejections, proposal.failure,
        ))

    # -- forwarding ---------------------------------------------------------------------------

    async def _forward(self, request: Request) -> Response:
        call_id = next(self._calls)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        try:
            self._forwarded(self.forwarder.call(call_id, request, self.clock()))
            return await future
        finally:
            self._waiting.pop(call_id, None)

    def _forwarded(self, outputs: list[ForwarderOutput]) -> None:
        for output in outputs:
            if isinstance(output, CallDone):
                log.debug("event %d: call %d done after %d attempt(s) via %s: %s", output.id, output.call,
                          output.attempts, output.target, type(output.response).__name__)
                future = self._waiting.pop(output.call, None)
                if future is not None and not future.done():
                    future.set_result(output.response)
            elif self.credits_port is not None:
                self.credits_port.execute(output)

    def _serve_forwarded(self, event: RequestReceived) -> None:
        port = self.credits_port
        assert port is not None
        peer = event.peer
        if self._inflight.get(peer, 0) >= MAX_INFLIGHT_PER_PEER:
            self.metrics.served.labels("busy").inc()
            port.execute(Respond(event.channel, encode(Refused("busy", "too many requests in flight from you; retry"))))
            return
        try:
            request = decode_request(event.payload)
        except RemoteValueError as err:
            self.metrics.bad.labels(err.reason).inc()
            log.debug("malformed credits request from %s: %s", peer, err)
            port.execute(Respond(event.channel, encode(Refused("malformed", str(err)[:1024]))))
            return
        refusal = self._refuse(peer, request)
        if refusal is not None:
            self.metrics.served.labels(refusal.code).inc()
            port.execute(Respond(event.channel, encode(refusal)))
            return
        self._inflight[peer] = self._inflight.get(peer, 0) + 1
        self._spawn(self._answer(peer, event.channel, request))

    def _refuse(self, peer: str, request: Request) -> Refused | None:
        if self.client is None:
            return Refused("unavailable", "this node holds no ledger (not a witness)")
        if isinstance(request, Genesis) and peer not in self.witnesses():
            self.metrics.bad.labels("genesis_not_voter").inc()
            return Refused("forbidden", "genesis is accepted only from a ledger witness")
        if isinstance(request, Submit):
            op = request.op()
            if not verify_signature(_author(op), op.signing_bytes(), op.signature):
                self.metrics.bad.labels("invalid_signature").inc()
                return Refused("invalid_signature", f"the operation is not signed by {_author(op)}")
        return None

    async def _answer(self, peer: str, channel: int, request: Request) -> None:
        try:
            response = await self._serve_local(request)
            if isinstance(response, Refused) and response.code in ("not_leader", "no_leader") and request.hops < MAX_HOPS:
                response = await self._forward(_hop(request))
            self.metrics.served.labels(response.code if isinstance(response, Refused) else "ok").inc()
            if self.credits_port is not None and self._running:
                self.credits_port.execute(Respond(channel, encode(response)))
        finally:
            left = self._inflight.get(peer, 1) - 1
            if left > 0:
                self._inflight[peer] = left
            else:
                self._inflight.pop(peer, None)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- raft carriage ------------------------------------------------------------------------

    def _carry(self, outputs: list[CarrierOutput]) -> None:
        for output in outputs:
            if isinstance(output, DeliverReply):
                if self.ledger is not None:
                    self.ledger.deliver_reply(output.request_id, output.reply, output.error)
                self.metrics.raft.labels("delivered" if output.reply is not None else "failed").inc()
            elif isinstance(output, HandleRpc):
                if self.ledger is None:
                    continue  # not a witness: nobody here speaks raft (the request times out at its sender)
                try:
                    ticket = self.ledger.handle_rpc(output.peer, output.payload)
                except _core.LedgerFailure as err:
                    self.metrics.bad.labels("raft_" + err.code).inc()
                    if self.raft_port is not None:
                        self.raft_port.execute(Respond(output.channel, b""))
                    continue
                self.carrier.ticket_issued(ticket, output.channel)
            elif self.raft_port is not None:
                if isinstance(output, SendRequest):
                    self.metrics.raft.labels("sent").inc()
                self.raft_port.execute(output)

    def _unclaimed(self, event: _core.LedgerEvent) -> None:
        """Ledger events no call awaits: the answers to inbound Raft RPCs."""
        if self.carrier.owns(event.ticket):
            if event.kind != "rpc_reply":
                self.metrics.bad.labels("raft_" + (event.code or "refused")).inc()
            self._carry(self.carrier.rpc_done(event.ticket, event.reply if event.kind == "rpc_reply" else None))

    def _pump_outbound(self) -> None:
        if self.ledger is not None:
            while rpcs := self.ledger.take_outbound(256):
                self._carry(self.carrier.outbound(rpcs))

    # -- timer --------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        if self.ledger is not None:
            self._summary = summary = self.ledger.summary()
            self.metrics.is_leader.set(1 if summary.state == "leader" else 0)
            if not summary.voters:
                self._refresh_bootstrap()
            if summary.state == "leader" and summary.witnesses and sorted(summary.witnesses) != sorted(summary.voters) \
                    and now - self._reconciled_at >= RECONCILE_EVERY_S:
                self._reconciled_at = now
                self.ledger.reconcile_witnesses()
            self._read_fault_file(now)
        leader = self._summary.leader if self._summary is not None else None
        self.forwarder.set_route(leader=leader, witnesses=self.witnesses())
        self._forwarded(self.forwarder.handle_timer(now))
        self._pump_outbound()
        self._export_counters()
        if now - self._ratio_at >= RATIO_EVERY_S and (self._ratio_task is None or self._ratio_task.done()):
            self._ratio_at = now
            self._ratio_task = asyncio.ensure_future(self._refresh_ratio())
            self._tasks.add(self._ratio_task)
            self._ratio_task.add_done_callback(self._tasks.discard)

    def _refresh_bootstrap(self) -> None:
        """Until this ledger holds a membership, accept Raft RPCs from the witnesses advertised now (how a witness
        added by a quorum decision is reached by the leader; gossip names them only after start)."""
        assert self.ledger is not None
        peers = self.sources.witness_members() - {self.identity.node_id}
        if peers != self._bootstrap:
            self.ledger.set_bootstrap_peers(sorted(peers))
            self._bootstrap = peers

    def _export_counters(self) -> None:
        dropped = self.carrier.counters.fault_dropped
        if dropped > self._dropped_reported:
            self.metrics.raft.labels("fault_dropped").inc(dropped - self._dropped_reported)
            self._dropped_reported = dropped

    def _read_fault_file(self, now: float) -> None:
        if self._fault_file is None or now - self._fault_read_at < FAULT_FILE_EVERY_S:
            return
        self._fault_read_at = now
        try:
            text = self._fault_file.read_text()
        except OSError:
            text = ""
        drop = frozenset(line.strip() for line in text.splitlines() if line.strip())
        if drop != self.carrier.drop:
            log.warning("FAULT INJECTION: dropping raft frames to and from %d peer(s)", len(drop))
            self.carrier.drop = drop

    # -- service ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.witness:
            data_dir = self.config.data_dir / "ledger"
            data_dir.mkdir(parents=True, exist_ok=True)
            self.ledger = _core.Ledger(
                peer_id=self.identity.node_id,
                data_dir=data_dir,
                network=self._network,
                heartbeat_ms=self.config.raft_heartbeat_ms,
                election_min_ms=self.config.raft_election_min_ms,
                election_max_ms=self.config.raft_election_max_ms,
                snapshot_every=self.config.raft_snapshot_every,
                keep_logs=self.config.raft_keep_logs,
                snapshot_chunk_bytes=self.snapshot_chunk_bytes,
            )
            self.client = LedgerClient(self.ledger)
            self.client.unclaimed = self._unclaimed
            self.client.after_drain = self._pump_outbound
            self.client.start()
            self._summary = self.ledger.summary()
            if not self._summary.voters:
                self._refresh_bootstrap()
            log.info("witness: ledger opened in %s (applied index %s)", data_dir, self._summary.last_applied)
        self.raft_port = self._raft_port_factory()
        self.credits_port = self._credits_port_factory()
        self._running = True

    async def _pump_raft(self) -> None:
        assert self.raft_port is not None
        while (event := await self.raft_port.next_event()) is not None:
            if self._running:
                self._carry(self.carrier.receive(event))

    async def _pump_credits(self) -> None:
        assert self.credits_port is not None
        while (event := await self.credits_port.next_event()) is not None:
            if not self._running:
                continue
            if isinstance(event, RequestReceived):
                self._serve_forwarded(event)
            else:
                self._forwarded(self.forwarder.receive(event))

    async def _ticker(self) -> None:
        while self._running:
            self.tick(self.clock())
            await asyncio.sleep(self.tick_s)

    async def run(self, events: NodeEvents) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._pump_raft())
            tg.create_task(self._pump_credits())
            tg.create_task(self._ticker())

    def leave(self, now: float) -> None:
        pass  # the ledger keeps serving until the node stops (a leaving witness still counts for quorum)

    async def stop(self) -> None:
        self._running = False
        for task in list(self._tasks):
            task.cancel()
        for future in self._waiting.values():
            if not future.done():
                future.set_result(Refused("unavailable", "the node is stopping"))
        if self.client is not None:
            self.client.close()
        if self.ledger is not None:
            ledger, self.ledger = self.ledger, None
            with contextlib.suppress(Exception):
                await asyncio.to_thread(ledger.shutdown)


def _hop(request: Request) -> Request:
    return msgspec.structs.replace(request, hops=request.hops + 1)


def credit_ratio(node_id: str, accounts: tuple[AccountOut, ...], summary: SummaryOut) -> float:
    """``credit_balance`` of the gradient: our balance over the average balance of the ledger's accounts."""
    if not summary.accounts or not summary.sum_balances:
        return 1.0
    mine = next((a.balance for a in accounts if a.node_id == node_id), 0)
    average = summary.sum_balances / summary.accounts
    return min(1e6, max(0.0, mine / average))


def summary_out(s: _core.LedgerSummary) -> SummaryOut:
    return SummaryOut(
        total_minted=s.total_minted, pool=s.pool, sum_balances=s.sum_balances, leader=s.leader, term=s.term,
        last_applied=s.last_applied, witnesses=tuple(s.witnesses), state_hash=s.state_hash, accounts=s.accounts,
        open_locks=s.open_locks, threshold_permille=s.threshold_permille, voters=tuple(s.voters), state=s.state,
    )


def account_out(node_id: str, a: _core.LedgerAccount) -> AccountOut:
    return AccountOut(node_id, a.balance, a.locked, a.available, a.earned_total, a.spent_total)


