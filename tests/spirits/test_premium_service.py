"""Premium summons through the spirits service against an in-memory ledger with the real lock/post/void rules.

The fake ledger keeps balances, open locks and every operation id (a resend of the same id answers
``exists``, as the Raft ledger does) and can be told to lose answers or refuse with a code.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from spirits.support import package, run_async
from vudo.api.app import create_app
from vudo.config import NodeConfig
from vudo.credits.transaction import UNITS_PER_CREDIT, LockRequest, NameClaim, PostRequest, VoidRequest
from vudo.credits.wire import Committed, NameOut, ReadReply, Refused, Response
from vudo.identity import Identity, init_data_dir, load_api_token
from vudo.node import Node
from vudo.services.spirits import PAYMENTS_FILE, SpiritsService
from vudo.spirits.errors import PackageError, SpiritError
from vudo.spirits.manifest import Permissions, Tier

NO_IMPORTS = '(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 8)))'
TRAPS = """(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 8))
  (func (export "summon") (param i32 i32) (result i32) unreachable))"""
PRICE = 7


@contextlib.asynccontextmanager
async def running(config: NodeConfig, identity: Identity, **ports: Any) -> AsyncIterator[SpiritsService]:
    """A started spirits service with the given ledger ports, stopped on the way out."""
    service = SpiritsService(config, identity, **ports)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


class FakeLedger:
    def __init__(self, balances: dict[str, int]) -> None:
        self.balances = dict(balances)
        self.locks: dict[str, tuple[str, int]] = {}
        self.ops: dict[str, object] = {}
        self.applied: list[str] = []
        self.refuse_next: list[str] = []  # codes to answer (without applying) for the next calls
        self.lose_next = 0  # apply, but answer no_leader (the answer was lost)

    async def __call__(self, op: LockRequest | PostRequest | VoidRequest) -> Response:
        if self.refuse_next:
            return Refused(self.refuse_next.pop(0), "scripted")
        if op.id in self.ops:
            return Committed("exists", 1) if self.ops[op.id] == op else Refused("id_conflict", "different op")
        answer = self._apply(op)
        if self.lose_next:
            self.lose_next -= 1
            return Refused("no_leader", "the answer was lost")
        return answer

    def _apply(self, op: LockRequest | PostRequest | VoidRequest) -> Response:
        self.ops[op.id] = op
        if isinstance(op, LockRequest):
            available = self.balances.get(op.owner, 0) - sum(a for o, a in self.locks.values() if o == op.owner)
            if available < op.amount:
                return Refused("insufficient_funds", f"{op.owner} has {available}, cannot lock {op.amount}")
            self.locks[op.id] = (op.owner, op.amount)
        else:
            if op.lock_id not in self.locks:
                return Refused("unknown_lock", f"no open lock {op.lock_id}")
            owner, amount = self.locks.pop(op.lock_id)
            if isinstance(op, PostRequest):
                self.balances[owner] -= op.amount
                self.balances[op.payee] = self.balances.get(op.payee, 0) + op.amount
        self.applied.append(type(op).__name__)
        return Committed("applied", 1)


@pytest.fixture()
def payer(tmp_path: Path) -> tuple[NodeConfig, Identity]:
    identity = init_data_dir(tmp_path / "n")
    config = dataclasses.replace(NodeConfig(), data_dir=tmp_path / "n", spirit_grants=(("fancy", Permissions()), ("broken", Permissions())))
    return config, identity


def fancy(author: Identity, name: str = "fancy", wat: str = NO_IMPORTS) -> bytes:
    exports = ("memory", "alloc", "summon") if "summon" in wat else ("memory", "alloc")
    return package(author, wat, name=name, tier=Tier("premium", PRICE), exports=exports, imports=())


def test_a_premium_summon_pays_the_author_once_per_summon(payer: tuple[NodeConfig, Identity], author: Identity) -> None:
    config, identity = payer
    ledger = FakeLedger({identity.node_id: 100 * UNITS_PER_CREDIT})

    async def scenario() -> None:
        async with running(config, identity, ledger=ledger) as service:
            service.install_bytes(fancy(author))
            assert (await service.summon("fancy")).state == "running"
            assert ledger.balances == {identity.node_id: 93 * UNITS_PER_CREDIT, author.node_id: PRICE * UNITS_PER_CREDIT}
            assert not ledger.locks and not service.payments.open
            await service.dismiss("fancy")
            assert (await service.summon("fancy")).state == "running"  # a new summon pays again
            assert ledger.balances[author.node_id] == 2 * PRICE * UNITS_PER_CREDIT
            assert ledger.applied == ["LockRequest", "PostRequest"] * 2
            lines = [line.text for line in service.logs("fancy") or []]
            assert any("payment of summon #2 paid" in text for text in lines)

    run_async(scenario())


def test_a_failing_summon_voids_its_lock(payer: tuple[NodeConfig, Identity], author: Identity) -> None:
    config, identity = payer
    ledger = FakeLedger({identity.node_id: 100 * UNITS_PER_CREDIT})

    async def scenario() -> None:
        async with running(config, identity, ledger=ledger) as service:
            service.install_bytes(fancy(author, "broken", TRAPS))
            with pytest.raises(SpiritError):
                await service.summon("broken")
            assert service.view_one("broken").state == "failed"  # type: ignore[union-attr]
            assert ledger.applied == ["LockRequest", "VoidRequest"] and not ledger.locks
            assert ledger.balances == {identity.node_id: 100 * UNITS_PER_CREDIT}

    run_async(scenario())


def test_refusals_carry_the_ledger_code_and_a_retry_is_never_charged_twice(payer: tuple[NodeConfig, Identity], author: Identity) -> None:
    config, identity = payer
    ledger = FakeLedger({identity.node_id: 10 * UNITS_PER_CREDIT})

    async def scenario() -> None:
        async with running(config, identity, ledger=ledger) as service:
            service.install_bytes(fancy(author))
            # the lock commits but its answer is lost: the summon is refused (503), the retry resends the same lock
            ledger.lose_next = 1
            with pytest.raises(SpiritError) as info:
                await service.summon("fancy")
            assert info.value.reason == "no_leader" and len(ledger.locks) == 1
            assert (await service.summon("fancy")).state == "running"
            assert ledger.balances[identity.node_id] == 3 * UNITS_PER_CREDIT and ledger.applied == ["LockRequest", "PostRequest"]
            await service.dismiss("fancy")
            with pytest.raises(SpiritError) as info:
                await service.summon("fancy")  # 3 credits left, 7 needed
            assert info.value.reason == "insufficient_funds" and "7 credits per summon" in str(info.value)
            assert service.view_one("fancy").error_reason == "insufficient_funds"  # type: ignore[union-attr]
            assert ledger.balances[identity.node_id] == 3 * UNITS_PER_CREDIT and not service.payments.open

    run_async(scenario())


def test_a_crash_between_lock_and_post_is_settled_once_at_restart(payer: tuple[NodeConfig, Identity], author: Identity) -> None:
    config, identity = payer
    ledger = FakeLedger({identity.node_id: 100 * UNITS_PER_CREDIT})

    async def scenario() -> None:
        first = SpiritsService(config, identity, ledger=ledger)
        await first.start()
        first.install_bytes(fancy(author))
        ledger.refuse_next = []
        # the summon succeeds, the post is decided and journaled, then every answer is lost ("crash")
        ledger.lose_next = 0
        original = ledger.__call__

        async def post_unanswered(op: LockRequest | PostRequest | VoidRequest) -> Response:
            if isinstance(op, PostRequest):
                return Refused("no_leader", "down")
            return await original(op)

        first._ledger = post_unanswered
        assert (await first.summon("fancy")).state == "running"
        assert ledger.locks and (config.data_dir / "spirits" / PAYMENTS_FILE).exists()
        await first.stop()  # the journal holds the POSTING payment
        second = SpiritsService(config, identity, ledger=ledger)
        await second.start()
        try:
            assert second.payments.open["fancy"].phase.value == "posting"
            await second.settle_due(1e12)
            for task in list(second._tasks):
                await task
            assert not ledger.locks and ledger.balances[author.node_id] == PRICE * UNITS_PER_CREDIT
            assert not second.payments.open and ledger.applied == ["LockRequest", "PostRequest"]
            # a resend after settling changes nothing (the ledger answers "exists")
            await second.settle_due(2e12)
            assert ledger.applied == ["LockRequest", "PostRequest"]
        finally:
            await second.stop()

    run_async(scenario())


def test_a_crash_while_summoning_voids_the_lock_at_restart(payer: tuple[NodeConfig, Identity], author: Identity) -> None:
    config, identity = payer
    ledger = FakeLedger({identity.node_id: 100 * UNITS_PER_CREDIT})

    async def scenario() -> None:
        first = SpiritsService(config, identity, ledger=ledger)
        await first.start()
        first.install_bytes(fancy(author))
        installed = first.spirits["fancy"]
        first.payments.begin(spirit="fancy", package_sha256=installed.package.sha256, payee=author.node_id,
                             amount=PRICE * UNITS_PER_CREDIT, now=100.0)
        await first._pay(first.payments.lock_committed("fancy", 100.0)[:1])  # persisted as LOCKED
        first._save_payments()
        lock = first.payments.open["fancy"]
        await ledger(LockRequest(id=lock.ids.lock, owner=identity.node_id, amount=lock.amount, timestamp=lock.timestamp,
                                 memo=f"summon fancy #1 {lock.package_sha256[:16]}").signed(identity))
        await first.stop()
        second = SpiritsService(config, identity, ledger=ledger)
        await second.start()
        try:
            await second.settle_due(1e12)
            for task in list(second._tasks):
                await task
            assert not ledger.locks and ledger.applied == ["LockRequest", "VoidRequest"]
            assert ledger.balances == {identity.node_id: 100 * UNITS_PER_CREDIT}
        finally:
            await second.stop()

    run_async(scenario())


def test_a_corrupt_payment_journal_stops_the_service_loudly(payer: tuple[NodeConfig, Identity]) -> None:
    config, identity = payer
    (config.data_dir / "spirits").mkdir(parents=True, exist_ok=True)
    (config.data_dir / "spirits" / PAYMENTS_FILE).write_text("{not json")

    async def scenario() -> None:
        with pytest.raises(SpiritError) as info:
            await SpiritsService(config, identity, ledger=FakeLedger({})).start()
        assert info.value.reason == "storage_error" and "payment journal" in str(info.value)

    run_async(scenario())


def test_no_ledger_or_own_spirit(payer: tuple[NodeConfig, Identity], tmp_path: Path) -> None:
    config, identity = payer

    async def scenario() -> None:
        without = SpiritsService(config, identity)
        await without.start()
        try:
            without.install_bytes(fancy(Identity.generate()))
            with pytest.raises(SpiritError) as info:
                await without.summon("fancy")
            assert info.value.reason == "payment_unavailable"
        finally:
            await without.stop()
        ledger = FakeLedger({})
        own = SpiritsService(config, identity, ledger=ledger)
        await own.start()
        try:
            own.install_bytes(fancy(identity, "broken"))  # the author summoning its own spirit pays nobody
            assert (await own.summon("broken")).state == "running" and ledger.applied == []
        finally:
            await own.stop()

    run_async(scenario())


def test_the_api_answers_503_with_the_code_when_no_ledger_is_reachable(tmp_path: Path, author: Identity) -> None:
    init_data_dir(tmp_path / "n")
    config = dataclasses.replace(NodeConfig(), data_dir=tmp_path / "n", spirit_grants=(("fancy", Permissions()),))
    node = Node(config)
    run_async(node.spirits.start())
    try:
        client = TestClient(create_app(node.queries), base_url="http://127.0.0.1:7500")
        headers = {"Authorization": f"Bearer {load_api_token(config.data_dir)}"}
        r = client.post("/v1/spirits", content=fancy(author), headers={**headers, "Content-Type": "application/octet-stream"})
        assert r.status_code == 201, r.text
        refused = client.post("/v1/spirits/fancy/summon", headers=headers)  # the credits service is not running
        assert refused.status_code == 503 and refused.json()["code"] == "unavailable", refused.text
        node.spirits._ledger = FakeLedger({})
        poor = client.post("/v1/spirits/fancy/summon", headers=headers)
        assert poor.status_code == 402 and poor.json()["code"] == "insufficient_funds", poor.text
    finally:
        run_async(node.spirits.stop())


def test_a_journal_that_cannot_be_written_fails_the_summon_and_a_lost_settlement_is_resent(
    payer: tuple[NodeConfig, Identity], author: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, identity = payer
    ledger = FakeLedger({identity.node_id: 100 * UNITS_PER_CREDIT})

    async def scenario() -> None:
        async with running(config, identity, ledger=ledger) as service:
            service.install_bytes(fancy(author))
            real_save = service._save_payments

            def disk_full() -> None:
                raise OSError(28, "No space left on device")

            monkeypatch.setattr(service, "_save_payments", disk_full)
            with pytest.raises(SpiritError) as info:
                await service.summon("fancy")
            assert info.value.reason == "internal" and service.view_one("fancy").state == "failed"  # type: ignore[union-attr]
            assert ledger.applied == []  # nothing is sent before the journal holds it
            monkeypatch.setattr(service, "_save_payments", real_save)
            # the retry journals and sends the same lock; the post's answer is lost twice: the summon still
            # succeeds, the timer posts it once
            original = ledger.__call__
            lost = {"n": 0}

            async def flaky(op: LockRequest | PostRequest | VoidRequest) -> Response:
                if isinstance(op, PostRequest) and lost["n"] < 2:
                    lost["n"] += 1
                    raise ConnectionError("the ledger went away")
                return await original(op)

            service._ledger = flaky
            assert (await service.summon("fancy")).state == "running"
            assert service.payments.open["fancy"].phase.value == "posting"
            for now in (1e12, 2e12, 3e12):
                await service.settle_due(now)
                for task in list(service._tasks):
                    await task
            assert not service.payments.open and ledger.applied == ["LockRequest", "PostRequest"]
            assert ledger.balances[author.node_id] == PRICE * UNITS_PER_CREDIT and service.payments.attempts == {
                service.spirits["fancy"].package.sha256: 1}

    run_async(scenario())


class FakeNames:
    """Name claims with the ledger's rules, and reads of them."""

    def __init__(self) -> None:
        self.owners: dict[str, NameOut] = {}
        self.claims: list[NameClaim] = []
        self.down = False

    async def read(self, name: str) -> Response:
        if self.down:
            return Refused("no_leader", "down")
        return ReadReply(1, name=self.owners.get(name))

    async def submit(self, op: LockRequest | PostRequest | VoidRequest | NameClaim) -> Response:
        assert isinstance(op, NameClaim) and op.signature
        self.claims.append(op)
        owner = self.owners.get(op.name)
        if owner is not None and owner.author != op.author:
            return Refused("name_owned", f"owned by {owner.author}")
        if owner is not None and op.rev <= owner.rev:
            return Refused("stale_rev", f"recorded at {owner.rev}")
        self.owners[op.name] = NameOut(op.name, op.author, op.rev, op.package, len(self.claims))
        return Committed("applied", len(self.claims))


def test_names_are_claimed_by_their_publisher_and_checked_at_install(payer: tuple[NodeConfig, Identity], author: Identity) -> None:
    config, identity = payer
    names = FakeNames()

    async def scenario() -> None:
        async with running(config, identity, ledger=names.submit, names=names.read) as service:
            # publishing our own package records the name (a reinstall of the same rev claims nothing new)
            await service.install(package(identity, NO_IMPORTS, name="mine", rev=2, exports=("memory", "alloc"), imports=()))
            assert names.owners["mine"].author == identity.node_id and names.owners["mine"].rev == 2
            await service.install(package(identity, NO_IMPORTS, name="mine", rev=3, exports=("memory", "alloc"), imports=()))
            assert names.owners["mine"].rev == 3 and len(names.claims) == 2

    names.owners["taken"] = NameOut("taken", author.node_id, 4, "ab" * 32, 1)

    async def checks() -> None:
        async with running(config, identity, ledger=names.submit, names=names.read) as service:
            stranger = Identity.generate()
            with pytest.raises(PackageError) as info:
                await service.install(package(stranger, NO_IMPORTS, name="taken", rev=9, exports=("memory", "alloc"), imports=()))
            assert info.value.reason == "name_owned" and author.node_id in str(info.value)
            for rev in (3, 4):  # lower, or the recorded rev with another package
                with pytest.raises(PackageError) as info:
                    await service.install(package(author, NO_IMPORTS, name="taken", rev=rev, exports=("memory", "alloc"), imports=()))
                assert info.value.reason == "stale_rev"
            view = await service.install(package(author, NO_IMPORTS, name="taken", rev=5, exports=("memory", "alloc"), imports=()))
            assert view.rev == 5 and view.author == author.node_id
            # an unclaimed name installs; so does anything while the ledger cannot answer (on the package's own checks)
            assert (await service.install(package(stranger, NO_IMPORTS, name="free", exports=("memory", "alloc"), imports=()))).name == "free"
            names.down = True
            assert (await service.install(package(stranger, NO_IMPORTS, name="later", exports=("memory", "alloc"), imports=()))).name == "later"
            # our own package under a name another author owns is refused by the ledger's claim too
            names.down = False
            names.owners["theirs"] = NameOut("theirs", author.node_id, 1, "cd" * 32, 1)
            with pytest.raises(PackageError) as info:
                await service.install(package(identity, NO_IMPORTS, name="theirs", rev=2, exports=("memory", "alloc"), imports=()))
            assert info.value.reason == "name_owned"
            metrics = service.metrics.registry
            assert metrics.get_sample_value("vudo_spirit_packages_rejected_total", {"reason": "name_owned"}) == 2.0

    run_async(scenario())
    run_async(checks())


def test_a_ledger_that_never_answers_does_not_hold_an_install_forever(
    payer: tuple[NodeConfig, Identity], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from vudo.services import spirits as spirits_module

    config, identity = payer
    monkeypatch.setattr(spirits_module, "NAME_CHECK_S", 0.2)

    async def silent(name: str) -> Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def scenario() -> None:
        async with running(config, identity, ledger=FakeNames().submit, names=silent) as service:
            view = await service.install(package(Identity.generate(), NO_IMPORTS, name="quiet", exports=("memory", "alloc"), imports=()))
            assert view.name == "quiet"

    run_async(scenario())
