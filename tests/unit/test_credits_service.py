"""The credits service end to end in one process: three witness ledgers and a plain node over in-memory links.

Raft frames travel through the service's RaftCarrier on an in-memory ``/vudo/raft/1``; submissions and reads
from the plain node are forwarded on an in-memory ``/vudo/credits/1``. Waits are on conditions, never on time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec

from vudo.config import NodeConfig
from vudo.credits import UNITS_PER_CREDIT, CreditTransaction
from vudo.credits.transaction import ActionKind
from vudo.credits.wire import Committed, Genesis, Read, ReadReply, Refused, Submit, SummaryOut, decode_response, encode
from vudo.hyphal.linkproto import RequestFailed, RequestReceived, Respond, SendRequest
from vudo.identity import Identity
from vudo.services.credits import CreditsService, CreditsSources, Outbox
from vudo.testing.signalports import MemoryLinkHub

U = UNITS_PER_CREDIT
PATIENCE = 60.0


async def until(pred: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def run(coro: Callable[[], object]) -> None:
    with ThreadPoolExecutor(1) as pool:  # its own loop: a session-wide Playwright driver may run one here
        pool.submit(asyncio.run, coro()).result(timeout=600)  # type: ignore[arg-type]


class LimitedHub(MemoryLinkHub):
    """Like the link engine: a request above ``limit`` bytes fails at its sender; remembers the largest one sent."""

    def __init__(self, limit: int = 1024 * 1024) -> None:
        super().__init__()
        self.limit = limit
        self.largest = 0

    def _execute(self, sender: str, instruction: SendRequest | Respond) -> None:
        if isinstance(instruction, SendRequest) and len(instruction.payload) > self.limit:
            self.port(sender).events.put_nowait(RequestFailed(instruction.peer, instruction.protocol, instruction.request_id,
                                                              "message too large", time.time()))
            return
        self.largest = max(self.largest, len(instruction.payload))
        super()._execute(sender, instruction)


class Cluster:
    def __init__(self, root: Path, witnesses: int = 3, others: int = 1, *, snapshot_every: int = 5000, keep_logs: int = 1000,
                 chunk: int = 256 * 1024, limit: int = 1024 * 1024, joiners: int = 0) -> None:
        """``joiners`` nodes come last: witness-capable (they open a ledger) but not founding witnesses."""
        self.root = root
        self.ids = [Identity.generate() for _ in range(witnesses + others + joiners)]
        self.witness_ids = frozenset(i.node_id for i in self.ids[:witnesses])
        self.raft, self.credits = LimitedHub(limit), MemoryLinkHub()
        self.services: list[CreditsService] = []
        for n, ident in enumerate(self.ids):
            data = root / f"n{n}"
            data.mkdir()
            config = NodeConfig(data_dir=data, witness=n < witnesses or n >= witnesses + others, raft_heartbeat_ms=50, raft_election_min_ms=300,
                                raft_election_max_ms=600, raft_fault_drop_file=str(root / f"drop{n}"),
                                raft_snapshot_every=snapshot_every, raft_keep_logs=keep_logs)
            self.services.append(CreditsService(
                config, ident,
                (lambda nid=ident.node_id: self.raft.port(nid)),
                (lambda nid=ident.node_id: self.credits.port(nid)),
                CreditsSources(witness_members=lambda: self.witness_ids),
                tick_s=0.02,
                snapshot_chunk_bytes=chunk,
            ))
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for s in self.services:
            await s.start()
        for a in self.ids:
            for b in self.ids:
                if a.node_id < b.node_id:
                    self.raft.link(a.node_id, b.node_id)
                    self.credits.link(a.node_id, b.node_id)
        self.tasks = [asyncio.create_task(s.run(None)) for s in self.services]  # type: ignore[arg-type]

    async def stop(self) -> None:
        for s in self.services:
            await s.stop()
        self.raft.close()
        self.credits.close()
        await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 30)

    async def found(self) -> None:
        ids = sorted(self.witness_ids)
        for s in self.services[: len(ids)]:
            await s.initialize(ids)

        async def genesis() -> bool:
            response = await self.services[0].genesis({i.node_id: 1000 * U for i in self.ids})
            return isinstance(response, Committed)

        deadline = time.monotonic() + PATIENCE
        while not await genesis():
            assert time.monotonic() < deadline, "no genesis"
            await asyncio.sleep(0.1)


def test_a_plain_node_moves_credits_through_the_witnesses(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        await c.start()
        try:
            await c.found()
            plain, w0 = c.services[3], c.services[0]
            assert plain.ledger is None and w0.ledger is not None
            # a plain node pins one witness; a witness pins the others
            assert len(plain.pinned()) == 1 and plain.pinned() <= c.witness_ids
            assert w0.pinned() == c.witness_ids - {w0.identity.node_id}

            op_id, response = await plain.transfer(to=c.ids[0].node_id, amount=250 * U, fee=U, memo="rent", op_id="t-1")
            assert op_id == "t-1" and isinstance(response, Committed) and response.outcome == "applied"
            # the same id again: the same signed operation, applied once
            again = await plain.transfer(to=c.ids[0].node_id, amount=250 * U, fee=U, memo="rent", op_id="t-1")
            assert isinstance(again[1], Committed) and again[1].outcome == "exists"
            conflict = await plain.transfer(to=c.ids[0].node_id, amount=1, op_id="t-1")
            assert isinstance(conflict[1], Refused) and conflict[1].code == "id_conflict"
            poor = await plain.transfer(to=c.ids[1].node_id, amount=10_000 * U)
            assert isinstance(poor[1], Refused) and poor[1].code == "insufficient_funds"

            for reader in (plain, w0, c.services[1]):
                accounts = await reader.read("accounts")
                assert isinstance(accounts, ReadReply) and accounts.summary is not None
                balances = {a.node_id: a.balance for a in accounts.accounts}
                assert balances[c.ids[3].node_id] == 749 * U and balances[c.ids[0].node_id] == 1250 * U
                assert sum(balances.values()) + accounts.summary.pool == accounts.summary.total_minted == 4000 * U
            record = await plain.read("record", "t-1")
            assert isinstance(record, ReadReply) and record.record is not None and record.record.status == "applied"
            missing = await plain.read("record", "nope")
            assert isinstance(missing, ReadReply) and missing.record is None
            summary = await plain.read("summary")
            assert isinstance(summary, ReadReply) and summary.summary is not None
            assert summary.summary.leader in c.witness_ids and sorted(summary.summary.voters) == sorted(c.witness_ids)
            local = await w0.read("summary", linearizable=False)
            assert isinstance(local, ReadReply)

            # the gradient's credit_balance: this node's balance over the average
            await plain._refresh_ratio()
            await w0._refresh_ratio()
            assert plain.credit_ratio() == 749 * U / (3999 * U / 4)
            assert w0.credit_ratio() == 1250 * U / (3999 * U / 4)

            # a proposal by a witness, voted by the others
            pid, proposed = await w0.propose(action="mint", target=c.ids[3].node_id, amount=5 * U, op_id="p-1")
            assert isinstance(proposed, Committed)
            for s in c.services[1:3]:
                assert isinstance(await s.vote(proposal_id=pid, approve=True), Committed)
            prop = await plain.read("proposal", pid)
            assert isinstance(prop, ReadReply) and prop.proposal is not None and prop.proposal.approvals >= 2

            # every replica converges on one state
            await until(lambda: len({s.local_summary().state_hash for s in c.services[:3]}) == 1  # type: ignore[union-attr]
                        and len({s.local_summary().last_applied for s in c.services[:3]}) == 1, "converged replicas")  # type: ignore[union-attr]
        finally:
            await c.stop()

    run(scenario)


def test_forwarded_requests_are_checked_before_they_cost_a_raft_entry(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path, witnesses=1, others=0)
        await c.start()
        try:
            await c.found()
            w = c.services[0]
            outsider = Identity.generate()  # no service of its own: we play its side of /vudo/credits/1 by hand
            answers: list[bytes] = []
            port = c.credits.port(outsider.node_id)
            c.credits.link(outsider.node_id, w.identity.node_id)

            async def ask(payload: bytes) -> Refused | Committed | ReadReply:
                channel = 10_000 + len(answers)
                c.credits._open[channel] = (outsider.node_id, w.identity.node_id, channel)
                w._serve_forwarded(RequestReceived(outsider.node_id, "/vudo/credits/1", channel, payload, time.time()))
                while True:
                    event = await port.next_event()
                    if event is not None and getattr(event, "request_id", None) == channel:
                        answers.append(event.payload)  # type: ignore[union-attr]
                        return decode_response(event.payload)  # type: ignore[union-attr]

            bad = await ask(b"\xc1garbage")
            assert isinstance(bad, Refused) and bad.code == "malformed"
            forged = CreditTransaction(id="f", from_=c.ids[0].node_id, to=outsider.node_id, amount=U, timestamp=1).signed(outsider)
            refused = await ask(encode(Submit(transfer=forged)))
            assert isinstance(refused, Refused) and refused.code == "invalid_signature"
            genesis = await ask(encode(Genesis(((outsider.node_id, 10**9),), (outsider.node_id,), 670, 1)))
            assert isinstance(genesis, Refused) and genesis.code == "forbidden"
            honest = CreditTransaction(id="h", from_=outsider.node_id, to=c.ids[0].node_id, amount=U, timestamp=1).signed(outsider)
            reached = await ask(encode(Submit(transfer=honest)))  # well-formed and signed: it reaches the ledger
            assert isinstance(reached, Refused) and reached.code == "insufficient_funds"
            read = await ask(encode(Read("accounts")))
            assert isinstance(read, ReadReply) and [a.node_id for a in read.accounts] == [c.ids[0].node_id]
            assert w.metrics.bad.labels("invalid_signature")._value.get() == 1
        finally:
            await c.stop()

    run(scenario)


def test_a_plain_node_with_configured_witnesses_trusts_only_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        w0, w1, _, plain = c.services
        impostor = Identity.generate().node_id  # a member that merely advertises the Witness capability
        plain.sources = CreditsSources(witness_members=lambda: frozenset([*c.witness_ids, impostor]))
        assert impostor in plain.witnesses()  # without --ledger-witness, advertising is enough
        plain.config = dataclasses.replace(plain.config, ledger_witnesses=(w0.identity.node_id,))
        assert plain.witnesses() == {w0.identity.node_id} and plain.pinned() == {w0.identity.node_id}
        await c.start()
        try:
            await c.found()
            _, moved = await plain.transfer(to=w1.identity.node_id, amount=U)
            assert isinstance(moved, Committed), moved
            assert plain.forwarder.witnesses == {w0.identity.node_id}
        finally:
            await c.stop()

    run(scenario)


def test_the_outbox_keeps_signed_operations_across_restarts(tmp_path: Path) -> None:
    ident = Identity.generate()
    path = tmp_path / "outbox.jsonl"
    box = Outbox(path, limit=3)
    ops = [CreditTransaction(id=f"o{i}", from_=ident.node_id, to=ident.node_id, amount=i, timestamp=i).signed(ident) for i in range(8)]
    for op in ops:
        box.put(Submit(transfer=op))
    with open(path, "ab") as f:
        f.write(b'{"torn')  # a crash in the middle of a line
    again = Outbox(path, limit=3)
    assert again.get("o7") == Submit(transfer=ops[7]) and again.get("o5") is not None
    assert again.get("o0") is None  # bounded
    assert msgspec.json.decode(path.read_bytes().splitlines()[0])["transfer"]["id"] in {f"o{i}" for i in range(8)}


def test_a_partitioned_witness_catches_up_by_snapshot_in_chunks_the_links_can_carry(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path, snapshot_every=20, keep_logs=2, chunk=4096, limit=16 * 1024)
        await c.start()
        try:
            await c.found()
            w0, w1, cut, plain = c.services
            # cut off the third witness: it drops every raft frame to and from the other two
            (tmp_path / "drop2").write_text(f"{w0.identity.node_id}\n{w1.identity.node_id}\n")
            await until(lambda: cut.carrier.drop == {w0.identity.node_id, w1.identity.node_id}, "the partition")
            for i in range(70):
                op_id, response = await plain.transfer(to=c.ids[i % 3].node_id, amount=U + i, memo="m" * 250, op_id=f"s-{i}")
                assert isinstance(response, Committed), (op_id, response)

            def summaries() -> list:  # type: ignore[type-arg]
                return [s.local_summary() for s in (w0, w1, cut)]

            await until(lambda: all((s.snapshot_index or 0) >= 40 for s in summaries()[:2]), "snapshots that purge the log")
            assert (summaries()[2].last_applied or 0) < (summaries()[0].last_applied or 0)
            (tmp_path / "drop2").write_text("")  # heal
            await until(lambda: len({s.state_hash for s in summaries()}) == 1
                        and len({s.last_applied for s in summaries()}) == 1, "the cut witness to catch up")
            assert (summaries()[2].snapshot_index or 0) >= 40  # it installed a snapshot: the log it missed was gone
            assert 4096 < c.raft.largest <= c.raft.limit  # the snapshot went in chunks, none above the link limit
            assert cut.metrics.raft.labels("fault_dropped")._value.get() > 0
        finally:
            await c.stop()

    run(scenario)


async def decide(c: Cluster, action: ActionKind, target: str, votes: dict[int, bool], *, amount: int = 0,
                 proposer: int = 0) -> str:
    """A proposal by witness ``proposer`` and a signed vote by each service index in ``votes``; returns its final state."""
    pid, proposed = await c.services[proposer].propose(action=action, target=target, amount=amount)
    assert isinstance(proposed, Committed), proposed
    for index, approve in votes.items():
        voted = await c.services[index].vote(proposal_id=pid, approve=approve)
        assert isinstance(voted, Committed), (index, voted)
    prop = await c.services[proposer].read("proposal", pid)
    assert isinstance(prop, ReadReply) and prop.proposal is not None
    assert prop.proposal.failure is None, prop.proposal.failure
    return prop.proposal.state


async def leader_summary(c: Cluster) -> SummaryOut:
    reply = await c.services[0].read("summary")
    assert isinstance(reply, ReadReply) and reply.summary is not None
    return reply.summary


def test_quorum_decisions_add_a_witness_only_when_approved_and_mint_exactly(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path, joiners=1)
        w0, w1, w2, plain, joiner = c.services
        advertised: set[str] = set()  # what gossip has told the joiner about witnesses: nothing yet at its start
        joiner.sources = CreditsSources(witness_members=lambda: frozenset(advertised))
        # the joiner runs as a witness and says so in gossip, but the founders do not name it:
        # the genesis makes the Raft voters the witnesses, not whoever advertises itself
        for founder in (w0, w1, w2):
            founder.sources = CreditsSources(witness_members=lambda: frozenset([*c.witness_ids, joiner.identity.node_id]))
        await c.start()
        try:
            await c.found()
            assert sorted((await leader_summary(c)).witnesses) == sorted(c.witness_ids)
            new = joiner.identity.node_id
            founders = sorted(c.witness_ids)
            assert joiner.ledger is not None and joiner.local_summary().voters == []  # type: ignore[union-attr]

            # one rejection of three is more than 1 - 0.67 of them: rejected; one approval of three: pending
            assert await decide(c, "add_witness", new, {1: False}) == "rejected"
            assert await decide(c, "add_witness", new, {0: True}) == "pending"
            # two approvals of three (0.667 < 0.67) is still pending
            pending = await decide(c, "add_witness", new, {0: True, 1: True})
            assert pending == "pending"
            # a transfer commits after them, so the leader ticked past several reconcile chances
            _, moved = await plain.transfer(to=w0.identity.node_id, amount=U)
            assert isinstance(moved, Committed)
            summary = await leader_summary(c)
            assert sorted(summary.witnesses) == founders and sorted(summary.voters) == founders
            for s in (w0, w1, w2):
                local = s.local_summary()
                assert local is not None and new not in local.voters and new not in local.learners
            assert joiner.local_summary().last_applied is None  # type: ignore[union-attr]  # it holds nothing

            # approved by all three: the ledger names it a witness, the leader makes it a learner, then a voter
            assert await decide(c, "add_witness", new, {0: True, 1: True, 2: True}) == "approved"
            summary = await leader_summary(c)
            assert new in summary.witnesses
            # a ledger with no membership takes Raft RPCs only from the witnesses it has heard of: none yet
            await until(lambda: joiner.local_summary().refused_rpcs > 0, "the joiner to refuse an unknown leader")  # type: ignore[union-attr]
            assert joiner.local_summary().voters == []  # type: ignore[union-attr]
            advertised.update(c.witness_ids)  # gossip reaches it
            await until(lambda: all(new in (s.local_summary().voters) for s in (w0, w1, w2, joiner)),  # type: ignore[union-attr]
                        "the new witness to become a voter everywhere")
            reply = await plain.read("summary")
            assert isinstance(reply, ReadReply) and reply.summary is not None
            assert sorted(reply.summary.voters) == sorted([*founders, new])
            replicas = (w0, w1, w2, joiner)
            await until(lambda: len({s.local_summary().state_hash for s in replicas}) == 1  # type: ignore[union-attr]
                        and len({s.local_summary().last_applied for s in replicas}) == 1, "the new witness to replicate")

            # the new witness votes: a mint proposed by it, approved with 3 of 4 votes (0.75 >= 0.67)
            before = await leader_summary(c)
            state = await decide(c, "mint", plain.identity.node_id, {4: True, 1: True, 2: True}, amount=7 * U, proposer=4)
            assert state == "approved"
            accounts = await plain.read("accounts")
            assert isinstance(accounts, ReadReply) and accounts.summary is not None
            assert accounts.summary.total_minted == before.total_minted + 7 * U
            assert sum(a.balance for a in accounts.accounts) + accounts.summary.pool == accounts.summary.total_minted
            mine = next(a for a in accounts.accounts if a.node_id == plain.identity.node_id)
            assert mine.balance == 1000 * U - U + 7 * U and mine.earned_total == 1007 * U  # genesis + mint
            # a mint that is only pending mints nothing
            pid, _ = await c.services[0].propose(action="mint", target=plain.identity.node_id, amount=U)
            first = await c.services[0].vote(proposal_id=pid, approve=True)
            assert isinstance(first, Committed) and first.outcome == "applied", first
            # a retried vote re-sends the same signed vote: recorded once, whatever the retry
            again = await c.services[0].vote(proposal_id=pid, approve=True)
            assert isinstance(again, Committed) and again.outcome == "exists", again
            # one vote per witness: a change of mind is refused, not counted
            changed = await c.services[0].vote(proposal_id=pid, approve=False)
            assert isinstance(changed, Refused) and changed.code == "id_conflict", changed
            prop = await c.services[0].read("proposal", pid)
            assert isinstance(prop, ReadReply) and prop.proposal is not None
            assert (prop.proposal.state, prop.proposal.approvals, prop.proposal.rejections) == ("pending", 1, 0)
            assert (await leader_summary(c)).total_minted == before.total_minted + 7 * U
            await until(lambda: len({s.local_summary().state_hash for s in replicas}) == 1, "converged replicas")  # type: ignore[union-attr]
        finally:
            await c.stop()

    run(scenario)


def test_an_approved_removal_takes_the_witness_out_and_the_ledger_keeps_committing(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        await c.start()
        try:
            await c.found()
            plain = c.services[3]
            leader = (await leader_summary(c)).leader
            gone_index = next(i for i in range(3) if c.ids[i].node_id != leader)
            gone = c.ids[gone_index].node_id
            stay = [i for i in range(3) if i != gone_index]
            # two of three approve: pending, nothing changes
            assert await decide(c, "remove_witness", gone, {stay[0]: True, stay[1]: True}, proposer=stay[0]) == "pending"
            assert gone in (await leader_summary(c)).voters
            # all three (the one leaving too): approved
            assert await decide(c, "remove_witness", gone, {stay[0]: True, stay[1]: True, gone_index: True},
                                proposer=stay[0]) == "approved"
            assert gone not in (await leader_summary(c)).witnesses
            await until(lambda: all(gone not in c.services[i].local_summary().voters for i in stay),  # type: ignore[union-attr]
                        "the removed witness to leave the voters")
            summary = await leader_summary(c)
            assert sorted(summary.voters) == sorted(c.ids[i].node_id for i in stay)
            for n in range(10):
                _, response = await plain.transfer(to=c.ids[stay[0]].node_id, amount=U + n)
                assert isinstance(response, Committed), response
            accounts = await plain.read("accounts")
            assert isinstance(accounts, ReadReply) and accounts.summary is not None
            assert sum(a.balance for a in accounts.accounts) + accounts.summary.pool == accounts.summary.total_minted == 4000 * U
            # the removed witness may not vote any more
            late = await decide(c, "mint", plain.identity.node_id, {stay[0]: True}, amount=U, proposer=stay[0])
            assert late == "pending"  # 1 of 2 (0.5 < 0.67)
            refused = await c.services[gone_index].vote(proposal_id="nope", approve=True)
            assert isinstance(refused, Refused)
        finally:
            await c.stop()

    run(scenario)
