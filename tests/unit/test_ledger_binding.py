"""The Raft ledger through ``vudo._core.Ledger``: signed in Python, applied in Rust.

Every wait is on a condition with a generous timeout, never on a duration.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vudo import _core
from vudo.credits import (
    MAX_MEMO_BYTES,
    UNITS_PER_CREDIT,
    CreditTransaction,
    LedgerClient,
    LedgerRefused,
    LockRequest,
    NameClaim,
    PostRequest,
    Proposal,
    SignedVote,
    VoidRequest,
)
from vudo.identity import Identity

PATIENCE = 60.0
U = UNITS_PER_CREDIT


def ident(seed: int) -> Identity:
    return Identity.from_private_key(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


A, B, C = ident(1), ident(2), ident(3)
FAST = {"heartbeat_ms": 50, "election_min_ms": 150, "election_max_ms": 300}


async def until(pred: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def transfer(tx_id: str, src: Identity, dst: Identity, amount: int, fee: int = 0, memo: str = "") -> CreditTransaction:
    tx = CreditTransaction(id=tx_id, from_=src.node_id, to=dst.node_id, amount=amount, fee=fee, memo=memo, timestamp=1)
    return tx.signed(src)


async def founded(data_dir: Path) -> LedgerClient:
    """A one-witness ledger (A) with A = 1000 credits, B = 100 credits."""
    ledger = _core.Ledger(peer_id=A.node_id, data_dir=data_dir, bootstrap_peers=[A.node_id], **FAST)
    client = LedgerClient(ledger)
    await client.initialize([A.node_id])
    await until(lambda: ledger.summary().state == "leader", "leadership")
    await client.genesis({A.node_id: 1000 * U, B.node_id: 100 * U}, [A.node_id], timestamp=0)
    return client


def run(coro_fn: Callable[[Path], object], tmp: Path) -> None:
    async def main() -> None:
        await coro_fn(tmp)  # type: ignore[misc]

    # Its own thread: a session-wide Playwright driver may already run a loop in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, main()).result(timeout=600)


def test_transfers_commit_idempotently_and_refusals_carry_codes(tmp_path: Path) -> None:
    async def scenario(tmp: Path) -> None:
        client = await founded(tmp / "a")
        ledger = client.ledger
        try:
            tx = transfer("t1", A, B, 10 * U, fee=500)
            first = await client.transfer(tx)
            assert first.outcome == "applied"
            again = await client.transfer(tx)
            assert again.outcome == "exists"
            assert ledger.account(B.node_id).balance == 110 * U
            refusals = {
                "id_conflict": transfer("t1", A, B, 11 * U),
                "insufficient_funds": transfer("t2", B, A, 111 * U),
                "invalid_signature": CreditTransaction(
                    id="t3", from_=A.node_id, to=B.node_id, amount=1, timestamp=1
                ).signed(B),
                "memo_too_long": transfer("t4", A, B, 1, memo="m" * (MAX_MEMO_BYTES + 1)),
                "overflow": transfer("t5", A, B, 2**64 - 1, fee=1),
            }
            for code, bad in refusals.items():
                with pytest.raises(LedgerRefused) as info:
                    await client.transfer(bad)
                assert info.value.code == code, info.value
            record = ledger.record("t2")
            assert record is not None and record.status == "rejected" and record.code == "insufficient_funds"
            assert ledger.record("t3") is None  # a forgery burns no id
            index = await client.read_barrier()
            assert index >= first.index
            summary = ledger.summary()
            assert summary.pool == 500
            assert summary.sum_balances + summary.pool == summary.total_minted == 1100 * U
            assert len(summary.state_hash) == 64
        finally:
            client.close()
            ledger.shutdown()

    run(scenario, tmp_path)


def test_locks_and_quorum_decisions_through_the_binding(tmp_path: Path) -> None:
    async def scenario(tmp: Path) -> None:
        client = await founded(tmp / "a")
        ledger = client.ledger
        try:
            await client.lock(LockRequest(id="l1", owner=A.node_id, amount=30 * U, timestamp=1).signed(A))
            assert ledger.account(A.node_id).available == 970 * U
            post = PostRequest(id="p1", lock_id="l1", owner=A.node_id, payee=C.node_id, amount=20 * U, timestamp=2)
            await client.post(post.signed(A))
            assert ledger.account(C.node_id).balance == 20 * U
            assert ledger.account(A.node_id).locked == 0
            await client.lock(LockRequest(id="l2", owner=A.node_id, amount=5 * U, timestamp=3).signed(A))
            await client.void(VoidRequest(id="v2", lock_id="l2", owner=A.node_id, timestamp=4).signed(A))
            assert ledger.account(A.node_id).locked == 0
            with pytest.raises(LedgerRefused) as info:
                await client.void(VoidRequest(id="v3", lock_id="l2", owner=A.node_id, timestamp=5).signed(A))
            assert info.value.code == "unknown_lock"
            mint = Proposal(id="m1", proposer=A.node_id, action="mint", target=B.node_id, amount=7 * U, timestamp=6)
            await client.propose(mint.signed(A))
            with pytest.raises(LedgerRefused) as info:
                await client.vote(SignedVote(proposal_id="m1", voter=B.node_id, approve=True, timestamp=7).signed(B))
            assert info.value.code == "not_witness"
            await client.vote(SignedVote(proposal_id="m1", voter=A.node_id, approve=True, timestamp=7).signed(A))
            proposal = ledger.proposal("m1")
            assert proposal is not None and proposal.state == "approved" and proposal.approvals == 1
            assert ledger.account(B.node_id).balance == 107 * U
            assert ledger.summary().total_minted == 1107 * U
        finally:
            client.close()
            ledger.shutdown()

    run(scenario, tmp_path)


def test_spirit_names_are_owned_by_their_first_author_through_the_binding(tmp_path: Path) -> None:
    def claim(claim_id: str, who: Identity, rev: int, name: str = "fancy") -> NameClaim:
        return NameClaim(id=claim_id, name=name, author=who.node_id, rev=rev, package=f"{rev:064x}", timestamp=1).signed(who)

    async def scenario(tmp: Path) -> None:
        client = await founded(tmp / "a")
        ledger = client.ledger
        try:
            assert ledger.name("fancy") is None
            first = await client.claim_name(claim("c1", B, 2))
            owner = ledger.name("fancy")
            assert owner is not None and (owner.author, owner.rev, owner.package, owner.index) == (B.node_id, 2, f"{2:064x}", first.index)
            assert (await client.claim_name(claim("c1", B, 2))).outcome == "exists"
            for claim_id, who, rev, code in (("c2", C, 9, "name_owned"), ("c3", B, 2, "stale_rev"), ("c4", B, 1, "stale_rev")):
                with pytest.raises(LedgerRefused) as info:
                    await client.claim_name(claim(claim_id, who, rev))
                assert info.value.code == code
            with pytest.raises(LedgerRefused) as info:
                await client.claim_name(claim("c5", B, 1, name="Bad Name"))
            assert info.value.code == "invalid_argument"
            await client.claim_name(claim("c6", B, 3))
            assert ledger.name("fancy").rev == 3  # type: ignore[union-attr]
        finally:
            client.close()
            ledger.shutdown()

    run(scenario, tmp_path)


def test_bad_arguments_are_local_errors(tmp_path: Path) -> None:
    with pytest.raises(_core.InvalidArgumentError):
        _core.Ledger(peer_id="not-a-peer-id", data_dir=tmp_path / "x")
    ledger = _core.Ledger(peer_id=A.node_id, data_dir=tmp_path / "y", **FAST)
    try:
        with pytest.raises(_core.InvalidArgumentError):
            ledger.submit_propose(
                id="p", proposer=A.node_id, action="explode", target=B.node_id, amount=0, timestamp=0, signature=b""
            )
    finally:
        ledger.shutdown()
    with pytest.raises(_core.EngineStoppedError):
        ledger.read_barrier()


def test_a_follower_names_the_leader_and_state_agrees_across_three_nodes(tmp_path: Path) -> None:
    async def scenario(tmp: Path) -> None:
        net = _core.LedgerNetwork()
        ids = [A.node_id, B.node_id, C.node_id]
        ledgers = {
            who.node_id: _core.Ledger(
                peer_id=who.node_id, data_dir=tmp / str(i), bootstrap_peers=ids, network=net, **FAST
            )
            for i, who in enumerate((A, B, C))
        }
        clients = {peer: LedgerClient(ledger) for peer, ledger in ledgers.items()}
        try:
            await clients[A.node_id].initialize(ids)
            await until(lambda: all(lg.summary().leader for lg in ledgers.values()), "a leader everywhere")
            leader = ledgers[A.node_id].summary().leader
            assert leader is not None
            follower = next(p for p in ids if p != leader)
            with pytest.raises(LedgerRefused) as info:
                await clients[follower].genesis({A.node_id: 10 * U}, ids, timestamp=0)
            assert info.value.code == "not_leader"
            assert info.value.leader == leader
            await clients[leader].genesis({A.node_id: 10 * U}, ids, timestamp=0)
            done = await clients[leader].transfer(transfer("x1", A, B, 3 * U, fee=1))
            await until(
                lambda: all((lg.summary().last_applied or 0) >= done.index for lg in ledgers.values()),
                "every node applied the transfer",
            )
            hashes = {lg.summary().state_hash for lg in ledgers.values()}
            assert len(hashes) == 1
            assert all(lg.account(B.node_id).balance == 3 * U for lg in ledgers.values())
        finally:
            for peer, client in clients.items():
                client.close()
                ledgers[peer].shutdown()

    run(scenario, tmp_path)


def test_a_host_can_carry_raft_rpcs_itself(tmp_path: Path) -> None:
    """The interface the libp2p links engine will drive: take_outbound -> handle_rpc -> deliver_reply."""
    ids = [A.node_id, B.node_id, C.node_id]
    ledgers = {
        who.node_id: _core.Ledger(peer_id=who.node_id, data_dir=tmp_path / str(i), bootstrap_peers=ids, **FAST)
        for i, who in enumerate((A, B, C))
    }
    inflight: dict[tuple[str, int], tuple[str, int]] = {}  # (server, ticket) -> (client, request id)
    other_events: dict[str, list[_core.LedgerEvent]] = {p: [] for p in ids}

    def pump() -> None:
        for peer, ledger in ledgers.items():
            for request_id, target, data in ledger.take_outbound():
                ticket = ledgers[target].handle_rpc(peer, data)
                inflight[(target, ticket)] = (peer, request_id)
            for event in ledger.poll_events():
                origin = inflight.pop((peer, event.ticket), None)
                if origin is None:
                    other_events[peer].append(event)
                    continue
                source, request_id = origin
                ledgers[source].deliver_reply(request_id, event.reply, event.message or None)

    def wait(pred: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + PATIENCE
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            pump()
            time.sleep(0.002)

    def completion(peer: str, ticket: int) -> _core.LedgerEvent:
        found: list[_core.LedgerEvent] = []

        def seen() -> bool:
            found.extend(e for e in other_events[peer] if e.ticket == ticket)
            return bool(found)

        wait(seen, f"ticket {ticket}")
        return found[0]

    try:
        init = ledgers[A.node_id].initialize(ids)
        assert completion(A.node_id, init).kind == "done"
        wait(lambda: all(lg.summary().leader for lg in ledgers.values()), "a leader")
        leader = ledgers[A.node_id].summary().leader
        assert leader is not None
        genesis = ledgers[leader].submit_genesis(
            allocations=[(A.node_id, 5 * U)], witnesses=ids, threshold_permille=670, timestamp=0
        )
        assert completion(leader, genesis).kind == "committed"
        tx = transfer("h1", A, C, 2 * U)
        ticket = ledgers[leader].submit_transfer(
            id=tx.id, from_node=tx.from_, to=tx.to, amount=tx.amount, fee=tx.fee,
            memo=tx.memo, timestamp=tx.timestamp, signature=tx.signature,
        )
        event = completion(leader, ticket)
        assert (event.kind, event.outcome) == ("committed", "applied")
        wait(lambda: len({lg.summary().state_hash for lg in ledgers.values()}) == 1, "equal state hashes")
        assert all(lg.account(C.node_id).balance == 2 * U for lg in ledgers.values())
        # an outsider's bytes are refused with a code, and counted
        outsider = ident(9).node_id
        refused = ledgers[leader].handle_rpc(outsider, b"\x00\x01")
        event = completion(leader, refused)
        assert (event.kind, event.code) == ("failed", "not_member")
        assert ledgers[leader].summary().refused_rpcs == 1
    finally:
        for ledger in ledgers.values():
            ledger.shutdown()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2), st.integers(0, 2), st.integers(0, 400 * U), st.integers(0, 1000), st.booleans()
        ),
        min_size=1,
        max_size=12,
    )
)
def test_random_transfers_conserve_units_and_match_a_model(
    ops: list[tuple[int, int, int, int, bool]],
) -> None:
    people = [A, B, C]
    model = {A.node_id: 1000 * U, B.node_id: 100 * U, C.node_id: 0}

    async def scenario(tmp: Path) -> None:
        client = await founded(tmp)
        ledger = client.ledger
        pool = 0
        try:
            applied: list[CreditTransaction] = []
            for i, (src, dst, amount, fee, replay) in enumerate(ops):
                tx = transfer(f"r{i}", people[src], people[dst], amount, fee)
                should_apply = src != dst and amount > 0 and model[tx.from_] >= amount + fee
                try:
                    result = await client.transfer(tx)
                except LedgerRefused as refused:
                    assert not should_apply, refused
                    assert refused.code in {"insufficient_funds", "invalid_argument"}
                    continue
                assert should_apply and result.outcome == "applied"
                model[tx.from_] -= amount + fee
                model[tx.to] += amount
                pool += fee
                applied.append(tx)
                if replay:
                    assert (await client.transfer(tx)).outcome == "exists"
            await client.read_barrier()
            for peer, units in model.items():
                assert ledger.account(peer).balance == units
            summary = ledger.summary()
            assert summary.pool == pool
            assert summary.sum_balances + summary.pool == summary.total_minted
            assert all(balance >= locked >= 0 for _, balance, locked in ledger.balances())
        finally:
            client.close()
            ledger.shutdown()

    with tempfile.TemporaryDirectory() as tmp:
        run(scenario, Path(tmp))
