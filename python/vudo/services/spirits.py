"""The spirits service: installed packages, the wasm runtime and each spirit's lifecycle.

It owns the :class:`SpiritRuntime` (one wasmtime engine and its epoch
ticker), the packages stored under ``<data_dir>/spirits/<name>/package.spirit``
and one :class:`SpiritLifecycle` policy per spirit. It executes what the
policies answer: summon (verify the stored package again, check the module
against its manifest, instantiate under the granted permissions, call the
summon hook), tick, dismiss, drop. Calls into wasm run off the event loop.
A spirit that traps, runs out of fuel or time, or breaks the ABI fails
alone: its error is kept in its view and its log, the node runs on.

Host functions reach the node through injected callables: ``topology``
(bytes describing the members, built by the supervisor from the membership
view) and ``emit`` (until the signals service exists, signals are logged,
counted and delivered to the other running spirits on this node).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from vudo.config import NodeConfig
from vudo.credits.transaction import UNITS_PER_CREDIT, LockRequest, NameClaim, PostRequest, VoidRequest
from vudo.credits.wire import Committed, ReadReply, Refused, Response
from vudo.identity import Identity
from vudo.metrics import NodeMetrics
from vudo.services.base import NodeEvents
from vudo.spirits import package as pkg
from vudo.spirits.errors import PackageError, SpiritError
from vudo.spirits.lifecycle import (
    CallFailed,
    CallSucceeded,
    CallTick,
    DismissFinished,
    DismissRequested,
    DropInstance,
    Event,
    Instruction,
    Refuse,
    SpiritLifecycle,
    StartDismiss,
    StartSummon,
    State,
    SummonFailed,
    SummonRequested,
    SummonSucceeded,
    effective_permissions,
    missing_permissions,
)
from vudo.spirits.manifest import Manifest, Permissions
from vudo.spirits.payment import Instruction as PaymentInstruction
from vudo.spirits.payment import (
    Payment,
    PaymentBook,
    PaymentClosed,
    Persist,
    RefuseSummon,
    RunSummon,
    SubmitLock,
    SubmitPost,
    SubmitVoid,
)
from vudo.spirits.runtime import CallResult, SpiritInstance, SpiritRuntime, summon_context

log = logging.getLogger("vudo.spirits")

PACKAGE_FILE = "package.spirit"
PAYMENTS_FILE = "payments.json"
MAX_INSTALLED = 64
LOG_LINES = 500


@dataclass(frozen=True, slots=True)
class SpiritLogLine:
    time: float
    level: str
    text: str


@dataclass(frozen=True, slots=True)
class SpiritView:
    """One installed spirit as the interfaces show it."""

    name: str
    version: str
    rev: int
    author: str
    license: str
    description: str
    tags: tuple[str, ...]
    tier: str
    price: int
    permissions: Permissions
    granted: Permissions | None
    missing: tuple[str, ...]
    state: str
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
    exports: tuple[str, ...]
    imports: tuple[str, ...]
    files: tuple[tuple[str, str], ...]  # (path, sha256) of every module and asset
    web: bool


@dataclass(frozen=True, slots=True)
class SpiritAsset:
    data: bytes
    media_type: str


MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8", ".json": "application/json", ".wasm": "application/wasm", ".svg": "image/svg+xml",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8", ".map": "application/json",
}


@dataclass
class Installed:
    package: pkg.Package
    policy: SpiritLifecycle
    size: int = 0  # bytes of the stored archive
    instance: SpiritInstance | None = None
    logs: deque[SpiritLogLine] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    #: The runtime thread appends (host ``vudo.log``) while the event loop reads.
    log_lock: threading.Lock = field(default_factory=threading.Lock)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def manifest(self) -> Manifest:
        return self.package.manifest


class _Host:
    """The node side of the host functions; called on the runtime's call thread."""

    def __init__(self, service: SpiritsService) -> None:
        self._service = service

    def topology(self) -> bytes:
        return self._service.topology_bytes

    def emit(self, spirit: str, payload: bytes) -> bool:
        return self._service.emit_signal(spirit, payload)

    def log(self, spirit: str, level: str, text: str) -> None:
        self._service.spirit_log(spirit, level, text[:2000])

    def now_ms(self) -> int:
        return int(time.time() * 1000)


LedgerSubmit = Callable[[LockRequest | PostRequest | VoidRequest | NameClaim], Awaitable[Response]]
#: Reads who owns a spirit name on the ledger (a ``ReadReply`` whose ``name`` is None: nobody yet).
NameRead = Callable[[str], Awaitable[Response]]
#: How long an install waits in all for the ledger's word on a name before going on without it
#: (the CLI waits 60 s for the whole install).
NAME_CHECK_S = 30.0


class _PaymentsFile(msgspec.Struct, frozen=True):
    attempts: dict[str, int]
    open: list[Payment]


class SpiritsService:
    name = "spirits"

    def __init__(
        self,
        config: NodeConfig,
        identity: Identity,
        metrics: NodeMetrics | None = None,
        *,
        topology: Callable[[], bytes] = lambda: b"[]",
        on_signal: Callable[[str, bytes], None] | None = None,
        ledger: LedgerSubmit | None = None,
        names: NameRead | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.metrics = metrics or NodeMetrics()
        self.root = config.data_dir / "spirits"
        self._topology = topology
        self._on_signal = on_signal
        self.topology_bytes = b"[]"
        self.spirits: dict[str, Installed] = {}
        self.runtime: SpiritRuntime | None = None
        self.signals_emitted = 0
        self._host = _Host(self)
        #: Submits a signed lock/post/void to the credit ledger (None: no ledger, premium spirits are refused).
        self._ledger = ledger
        #: Reads name ownership from the ledger (None: no ledger, names are not checked).
        self._names = names
        self.payments = PaymentBook(identity.node_id)
        self._settling: set[str] = set()  # spirits whose background settlement is in flight
        self._tasks: set[asyncio.Task[None]] = set()

    # -- storage -------------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self.root / name / PACKAGE_FILE

    def _policy(self, manifest: Manifest) -> SpiritLifecycle:
        return SpiritLifecycle(manifest.name, manifest.permissions, tick_interval=self.config.spirit_tick_ms / 1000,
                               price=manifest.tier.price if manifest.tier.kind == "premium" else 0)

    def load_installed(self) -> None:
        """Read and verify every stored package (a package that no longer verifies is skipped, loudly)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in sorted(self.root.glob(f"*/{PACKAGE_FILE}")):
            try:
                package = pkg.read_package(path.read_bytes())
            except (SpiritError, OSError) as err:
                log.error("stored spirit %s does not verify and is skipped: %s", path, err)
                continue
            if package.name != path.parent.name:
                log.error("stored spirit %s holds %r; skipped", path, package.name)
                continue
            self.spirits[package.name] = Installed(package, self._policy(package.manifest), path.stat().st_size)

    async def install(self, data: bytes) -> SpiritView:
        """Verify a package off the event loop (hashing up to 64 MiB), then store it."""
        try:
            package = await asyncio.to_thread(pkg.read_package, data)
        except PackageError as err:
            self.metrics.spirit_packages_rejected.labels(err.reason).inc()
            log.warning("refused a spirit package: %s", err)
            raise
        try:
            await self._check_name(package)
        except PackageError as err:
            self.metrics.spirit_packages_rejected.labels(err.reason).inc()
            log.warning("refused a spirit package: %s", err)
            raise
        return self.install_verified(package, data)

    # -- names owned through the ledger -----------------------------------------------------------

    async def _check_name(self, package: pkg.Package) -> None:
        """Anyone's package is checked against the name's claim on the ledger; publishing our own claims it.

        The ledger's word is final (``name_owned``, ``stale_rev``); when it cannot be reached in
        ``NAME_CHECK_S`` the install goes on with the package's own signature checks, and says so."""
        if self._ledger is None or self._names is None:
            return
        m = package.manifest
        deadline = time.monotonic() + NAME_CHECK_S
        response = await self._ask(self._names(m.name), deadline)
        if isinstance(response, Refused):
            log.warning("spirit %s: the ledger could not check the name (%s: %s); installed on the package's own checks",
                        m.name, response.code, response.message)
            return
        owner = response.name if isinstance(response, ReadReply) else None
        if owner is not None:
            if owner.author != m.author:
                raise PackageError("name_owned", f"the name {m.name!r} is owned on the ledger by {owner.author}, its first "
                                                 f"author; this package is by {m.author}")
            if m.rev < owner.rev or (m.rev == owner.rev and package.sha256 != owner.package):
                raise PackageError("stale_rev", f"the ledger records {m.name!r} at rev {owner.rev} (package "
                                                f"{owner.package[:16]}); this package is rev {m.rev} ({package.sha256[:16]})")
        if m.author != self.identity.node_id or (owner is not None and owner.rev == m.rev):
            return
        digest = hashlib.sha256(f"vudo.name.v1\n{m.name}\n{m.rev}\n{package.sha256}".encode()).hexdigest()[:40]
        # a content-addressed id and a fixed timestamp: a resend is the same signed claim (the ledger answers "exists")
        claim = NameClaim(id=f"name-{digest}", name=m.name, author=m.author, rev=m.rev, package=package.sha256,
                          timestamp=0).signed(self.identity)
        claimed = await self._ask(self._ledger(claim), deadline)
        if isinstance(claimed, Refused):
            if claimed.code in ("name_owned", "stale_rev"):
                raise PackageError(claimed.code, f"the ledger refuses to record {m.name!r} rev {m.rev}: {claimed.message}")
            log.warning("spirit %s: the name claim is not recorded (%s: %s); installed anyway, install again to claim it",
                        m.name, claimed.code, claimed.message)
        else:
            log.info("spirit %s: the ledger records rev %d by this node", m.name, m.rev)

    @staticmethod
    async def _ask(call: Awaitable[Response], deadline: float) -> Response:
        try:
            return await asyncio.wait_for(call, max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            return Refused("timeout", f"no answer from the ledger within {NAME_CHECK_S:g} s")

    def install_bytes(self, data: bytes) -> SpiritView:
        """Verify a package and store it (a new name, or a higher rev by the same author)."""
        return self.install_verified(pkg.read_package(data), data)

    def install_verified(self, package: pkg.Package, data: bytes) -> SpiritView:
        name = package.name
        current = self.spirits.get(name)
        if current is not None and current.policy.state in (State.RUNNING, State.SUMMONING, State.DISMISSING):
            raise SpiritError("wrong_state", f"spirit {name!r} is {current.policy.state.value}; dismiss it before installing rev {package.manifest.rev}")
        try:
            pkg.check_upgrade(current.manifest if current else None, package.manifest)
        except PackageError as err:
            self.metrics.spirit_packages_rejected.labels(err.reason).inc()
            raise
        if current is None and len(self.spirits) >= MAX_INSTALLED:
            raise SpiritError("too_many", f"{MAX_INSTALLED} spirits are installed already")
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as err:
            raise SpiritError("storage_error", f"cannot store {path}: {err.strerror} (check the data dir's disk and permissions)") from None
        installed = Installed(package, self._policy(package.manifest), len(data))
        if current is not None:
            installed.logs, installed.log_lock = current.logs, current.log_lock
        self.spirits[name] = installed
        self._count_states()
        self._log(installed, "info", f"installed {name}@{package.manifest.version} rev {package.manifest.rev} "
                                     f"by {package.manifest.author} (package {package.sha256[:16]})")
        return self.view_of(installed)

    # -- logs and signals (called from the runtime thread too) ----------------------------

    @staticmethod
    def _append(spirit: Installed, level: str, text: str) -> None:
        with spirit.log_lock:
            spirit.logs.append(SpiritLogLine(time.time(), level, text))

    def _log(self, spirit: Installed, level: str, text: str) -> None:
        self._append(spirit, level, text)
        log.log(logging.WARNING if level in ("warn", "error") else logging.INFO, "spirit %s: %s", spirit.manifest.name, text)

    def spirit_log(self, name: str, level: str, text: str) -> None:
        spirit = self.spirits.get(name)
        if spirit is not None:
            self._append(spirit, level, text)

    def emit_signal(self, source: str, payload: bytes) -> bool:
        self.signals_emitted += 1
        self.spirit_log(source, "debug", f"emitted a signal of {len(payload)} bytes")
        if self._on_signal is not None:
            self._on_signal(source, payload)
        for name, spirit in list(self.spirits.items()):
            if name != source and spirit.instance is not None:
                spirit.instance.enqueue(payload)  # never calls wasm from here: the next tick delivers it
        return True

    # -- executing the lifecycle ------------------------------------------------------------

    def _feed(self, spirit: Installed, event: Event) -> list[Instruction]:
        instructions = spirit.policy.receive(event)
        if spirit.policy.history and spirit.policy.history[-1].event is event:
            t = spirit.policy.history[-1]
            log.debug("spirit %s event %d: %s -> %s on %s", spirit.manifest.name, t.id, t.old.value, t.new.value, type(event).__name__)
        for instruction in instructions:
            if isinstance(instruction, DropInstance):
                spirit.instance = None
        if isinstance(event, (SummonFailed, CallFailed)):
            self.metrics.spirit_failures.labels(spirit.manifest.name, event.reason).inc()
        self._count_states()
        return instructions

    def _count_states(self) -> None:
        for state in State:
            self.metrics.spirits.labels(state.value).set(sum(1 for s in self.spirits.values() if s.policy.state is state))

    def _count(self, spirit: Installed, before: tuple[int, int]) -> None:
        instance = spirit.instance
        if instance is not None:
            name = spirit.manifest.name
            self.metrics.spirit_calls.labels(name).inc(instance.stats.calls - before[0])
            self.metrics.spirit_fuel.labels(name).inc(instance.stats.fuel_used_total - before[1])

    def _summon_blocking(self, spirit: Installed, granted: Permissions) -> SpiritInstance:
        assert self.runtime is not None
        path = self._path(spirit.manifest.name)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise SpiritError("storage_error", f"cannot read {path}: {err.strerror}; install the package again") from None
        package = pkg.read_package(data)  # verify again: the disk is not trusted
        if package.sha256 != spirit.package.sha256:
            raise SpiritError("changed_on_disk", f"the stored package of {package.name!r} changed since it was installed; install it again")
        entry = package.manifest.entry_module()
        cached = self.runtime.is_cached(entry.sha256)
        instance = self.runtime.instantiate(package.manifest, package.files[entry.path], self._host, granted=granted)
        self.spirit_log(package.name, "info", f"instantiated {entry.path} ({'cached' if cached else 'compiled'}), "
                                              f"memory cap {instance.budget.memory_bytes} bytes")
        if instance.has("summon"):
            ptr, length = instance.put_bytes(summon_context(package.manifest, self.identity.node_id))
            instance.hook("summon", ptr, length)
        return instance

    async def summon(self, name: str) -> SpiritView:
        spirit = self._get(name)
        async with spirit.lock:
            granted = self.config.spirit_grant(name)
            for instruction in self._feed(spirit, SummonRequested(granted, time.time(), payment_available=self._ledger is not None)):
                if isinstance(instruction, Refuse):
                    self._log(spirit, "warn", f"summon refused: {instruction.message}")
                    if instruction.reason == "not_granted":
                        self.metrics.spirit_failures.labels(name, instruction.reason).inc()
                    raise SpiritError(instruction.reason, _refusal(name, instruction))
                if isinstance(instruction, StartSummon):
                    paying = self._pays(spirit)
                    if paying:
                        await self._lock_price(spirit)
                    self._log(spirit, "info", "summoning")
                    try:
                        effective = effective_permissions(spirit.manifest.permissions, granted or Permissions())
                        spirit.instance = await asyncio.to_thread(self._summon_blocking, spirit, effective)
                    except Exception as exc:  # noqa: BLE001 - whatever happens, the lifecycle must leave "summoning"
                        err = exc if isinstance(exc, SpiritError) else _internal(name, "summon", exc)
                        if isinstance(err, PackageError):
                            self.metrics.spirit_packages_rejected.labels(err.reason).inc()
                        self._feed(spirit, SummonFailed(err.reason, str(err), time.time()))
                        self._log(spirit, "error", f"summon failed: {err}")
                        if paying:
                            await self._settle_now(name, self.payments.summon_finished(name, False, time.time()))
                        raise err from None
                    self._count(spirit, (0, 0))
                    self._feed(spirit, SummonSucceeded(time.time()))
                    self._log(spirit, "info", "running")
                    if paying:
                        await self._settle_now(name, self.payments.summon_finished(name, True, time.time()))
        return self.view_of(spirit)

    # -- premium summons: the payment book's instructions, executed -----------------------------

    def _pays(self, spirit: Installed) -> bool:
        """A premium spirit is paid for, except by its own author (paying oneself moves nothing)."""
        return spirit.policy.price > 0 and spirit.manifest.author != self.identity.node_id

    async def _lock_price(self, spirit: Installed) -> None:
        """Lock the price before the summon runs; a refusal fails the summon with the ledger's code."""
        name, m = spirit.manifest.name, spirit.manifest
        try:
            run = await self._pay(self.payments.begin(spirit=name, package_sha256=spirit.package.sha256, payee=m.author,
                                                      amount=spirit.policy.price * UNITS_PER_CREDIT, now=time.time()))
        except Exception as exc:  # noqa: BLE001 - the lifecycle must leave "summoning"; the journal keeps any open lock
            err = _internal(name, "payment", exc)
            self._feed(spirit, SummonFailed(err.reason, str(err), time.time()))
            raise err from None
        if isinstance(run, RunSummon):
            self._log(spirit, "info", f"locked {spirit.policy.price} credits ({run.payment.ids.lock}) for summon "
                                      f"#{run.payment.attempt}; paid to {m.author} if it succeeds")
            return
        refusal = run or RefuseSummon("unavailable", "the credit ledger gave no answer", transient=True)
        hint = ("; retry later (a retry reuses the same lock, it is never charged twice)" if refusal.transient
                else "" if refusal.code != "insufficient_funds" else f"; spirit {name!r} costs {spirit.policy.price} credits per summon")
        err = SpiritError(refusal.code, f"premium summon of {name!r} refused by the credit ledger: {refusal.message}{hint}")
        self._feed(spirit, SummonFailed(refusal.code, str(err), time.time()))
        self._log(spirit, "warn", str(err))
        raise err

    async def _settle_now(self, name: str, instructions: list[PaymentInstruction]) -> None:
        """Post or void right after the summon; if that cannot finish, the timer sends it again from the book."""
        try:
            await self._pay(instructions)
        except Exception:  # noqa: BLE001 - the decision is in the book (and journaled when it could be)
            log.exception("spirit %s: settling the summon's payment failed; it is retried", name)

    def _save_payments(self) -> None:
        path = self.root / PAYMENTS_FILE
        tmp = path.with_suffix(".tmp")
        data = msgspec.json.encode(_PaymentsFile(self.payments.attempts, list(self.payments.open.values())))
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _load_payments(self) -> None:
        path = self.root / PAYMENTS_FILE
        if not path.exists():
            return
        try:
            saved = msgspec.json.decode(path.read_bytes(), type=_PaymentsFile)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as err:
            # Never guess: without the journal an open lock could be settled twice; the operator must look.
            raise SpiritError("storage_error", f"cannot read the premium payment journal {path}: {err}; "
                                               "restore it (open locks are settled from it)") from None
        self.payments.attempts = dict(saved.attempts)
        self.payments.open = {p.spirit: p for p in saved.open if p.payer == self.identity.node_id}

    async def _pay(self, instructions: list[PaymentInstruction]) -> RunSummon | RefuseSummon | None:
        """Execute the book's instructions (persisting first), feeding every ledger answer back in."""
        queue = list(instructions)
        verdict: RunSummon | RefuseSummon | None = None
        while queue:
            instruction = queue.pop(0)
            if isinstance(instruction, Persist):
                self._save_payments()
            elif isinstance(instruction, RunSummon | RefuseSummon):
                verdict = instruction
            elif isinstance(instruction, PaymentClosed):
                p = instruction.payment
                self.metrics.spirit_payments.labels(instruction.outcome.value).inc()
                spirit = self.spirits.get(p.spirit)
                text = (f"payment of summon #{p.attempt} {instruction.outcome.value}"
                        + (f" ({instruction.code})" if instruction.code else "")
                        + f": {p.amount / UNITS_PER_CREDIT:g} credits to {p.payee}")
                if spirit is not None:
                    self._log(spirit, "info", text)
                else:
                    log.info("spirit %s: %s", p.spirit, text)
            else:
                queue.extend(await self._submit(instruction))
        return verdict

    async def _submit(self, instruction: SubmitLock | SubmitPost | SubmitVoid) -> list[PaymentInstruction]:
        p = instruction.payment
        ids, now = p.ids, time.time()
        assert self._ledger is not None
        op: LockRequest | PostRequest | VoidRequest
        if isinstance(instruction, SubmitLock):
            op = LockRequest(id=ids.lock, owner=p.payer, amount=p.amount, timestamp=p.timestamp,
                             memo=f"summon {p.spirit} #{p.attempt} {p.package_sha256[:16]}")
        elif isinstance(instruction, SubmitPost):
            op = PostRequest(id=ids.post, lock_id=ids.lock, owner=p.payer, payee=p.payee, amount=p.amount, timestamp=p.timestamp)
        else:
            op = VoidRequest(id=ids.void, lock_id=ids.lock, owner=p.payer, timestamp=p.timestamp)
        response = await self._ledger(op.signed(self.identity))
        code = "" if isinstance(response, Committed) else response.code if isinstance(response, Refused) else "unavailable"
        message = response.message if isinstance(response, Refused) else "unexpected answer from the ledger"
        if isinstance(instruction, SubmitLock):
            return self.payments.lock_committed(p.spirit, now) if not code else self.payments.lock_refused(p.spirit, code, message, now)
        if code:
            log.warning("spirit %s: settling summon #%d refused: %s: %s", p.spirit, p.attempt, code, message)
        return self.payments.settled(p.spirit, now) if not code else self.payments.settle_refused(p.spirit, code, now)

    async def settle_due(self, now: float) -> None:
        """Resend the settlements and recoveries that are due (each spirit's in the background, one at a time)."""
        if self._ledger is None:
            return
        for instruction in self.payments.handle_timer(now):
            if isinstance(instruction, Persist):
                self._save_payments()
            elif isinstance(instruction, SubmitLock | SubmitPost | SubmitVoid):
                name = instruction.payment.spirit
                if name not in self._settling:
                    self._settling.add(name)
                    task = asyncio.create_task(self._settle(name, instruction))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def _settle(self, name: str, instruction: SubmitLock | SubmitPost | SubmitVoid) -> None:
        try:
            await self._pay([instruction])
        except Exception:  # noqa: BLE001 - the journal keeps the payment; the timer sends it again
            log.exception("spirit %s: settling a premium payment failed; it is retried", name)
        finally:
            self._settling.discard(name)

    async def dismiss(self, name: str) -> SpiritView:
        spirit = self._get(name)
        async with spirit.lock:
            await self._dismiss_locked(spirit)
        return self.view_of(spirit)

    async def _dismiss_locked(self, spirit: Installed) -> None:
        for instruction in self._feed(spirit, DismissRequested(time.time())):
            if isinstance(instruction, Refuse):
                raise SpiritError(instruction.reason, instruction.message)
            if isinstance(instruction, StartDismiss):
                error: str | None = None
                instance = spirit.instance
                if instance is not None:
                    try:
                        await asyncio.to_thread(instance.hook, "dismiss")
                    except Exception as exc:  # noqa: BLE001 - the instance is dropped whatever the hook does
                        err = exc if isinstance(exc, SpiritError) else _internal(spirit.manifest.name, "dismiss", exc)
                        error = str(err)
                        self._log(spirit, "warn", f"dismiss hook failed: {err}")
                self._feed(spirit, DismissFinished(error, time.time()))
                self._log(spirit, "info", "dismissed")

    async def uninstall(self, name: str) -> SpiritView:
        """Remove an installed spirit and its stored package; returns its last view.

        A spirit that runs (or is being summoned or dismissed) is refused with ``wrong_state``:
        dismiss it first. Its offer leaves this node's catalogue at the next gossip round."""
        spirit = self._get(name)
        async with spirit.lock:
            if self.spirits.get(name) is not spirit:
                raise SpiritError("unknown_spirit", f"spirit {name!r} was uninstalled meanwhile")
            state = spirit.policy.state
            if state in (State.RUNNING, State.SUMMONING, State.DISMISSING):
                raise SpiritError("wrong_state", f"spirit {name!r} is {state.value}; dismiss it before uninstalling "
                                                 f"(`vudo spirit dismiss {name}`)")
            directory = self._path(name).parent
            try:
                await asyncio.to_thread(shutil.rmtree, directory)
            except FileNotFoundError:
                pass
            except OSError as err:
                raise SpiritError("storage_error", f"cannot remove {directory}: {err.strerror} "
                                                   "(check the data dir's permissions)") from None
            view = self.view_of(spirit)
            del self.spirits[name]
            self._count_states()
            log.info("spirit %s: uninstalled %s rev %d (package %s)", name, spirit.manifest.version, spirit.manifest.rev,
                     spirit.package.sha256[:16])
            return view

    async def tick(self, now: float) -> None:
        """Give every running spirit its due tick (one at a time, off the event loop)."""
        self.topology_bytes = self._topology()
        for spirit in list(self.spirits.values()):
            if spirit.lock.locked():
                continue
            async with spirit.lock:
                for instruction in spirit.policy.handle_timer(now):
                    if isinstance(instruction, CallTick) and spirit.instance is not None:
                        instance = spirit.instance
                        before = (instance.stats.calls, instance.stats.fuel_used_total)
                        try:
                            result = await asyncio.to_thread(_tick, instance, instruction.now_ms)
                        except Exception as exc:  # noqa: BLE001 - a failed tick fails the spirit, never the service
                            err = exc if isinstance(exc, SpiritError) else _internal(spirit.manifest.name, "tick", exc)
                            self._count(spirit, before)
                            self._feed(spirit, CallFailed("tick", err.reason, str(err), time.time()))
                            self._log(spirit, "error", f"failed: {err}")
                        else:
                            self._count(spirit, before)
                            self._feed(spirit, CallSucceeded("tick", result.fuel_used if result else 0, time.time()))

    # -- views -------------------------------------------------------------------------------

    def _get(self, name: str) -> Installed:
        spirit = self.spirits.get(name)
        if spirit is None:
            raise SpiritError("unknown_spirit", f"no spirit named {name!r} is installed (see `vudo spirit list`)")
        return spirit

    def view_of(self, spirit: Installed) -> SpiritView:
        m = spirit.manifest
        entry = m.entry_module()
        instance = spirit.instance
        stats = instance.stats if instance is not None else None
        granted = self.config.spirit_grant(m.name)
        return SpiritView(
            name=m.name, version=m.version, rev=m.rev, author=m.author, license=m.license, description=m.description,
            tags=m.tags, tier=m.tier.kind, price=m.tier.price, permissions=m.permissions, granted=granted,
            missing=missing_permissions(m.permissions, granted), state=spirit.policy.state.value,
            error=spirit.policy.error, error_reason=spirit.policy.error_reason, summoned_at=spirit.policy.summoned_at,
            calls=stats.calls if stats else 0, fuel_used_total=stats.fuel_used_total if stats else 0,
            fuel_last_call=stats.fuel_last_call if stats else 0, fuel_per_call=m.budget.fuel_per_call,
            wall_ms_budget=m.budget.wall_ms, memory_bytes=instance.memory_bytes if instance is not None else 0,
            memory_cap=m.budget.memory_bytes, package_sha256=spirit.package.sha256, entry=m.entry,
            exports=entry.exports, imports=entry.imports, files=tuple(sorted(m.files().items())),
            web=self._serves_web(spirit),
        )

    def view(self) -> list[SpiritView]:
        return [self.view_of(s) for _, s in sorted(self.spirits.items())]

    def view_one(self, name: str) -> SpiritView | None:
        spirit = self.spirits.get(name)
        return self.view_of(spirit) if spirit is not None else None

    def logs(self, name: str) -> list[SpiritLogLine] | None:
        spirit = self.spirits.get(name)
        if spirit is None:
            return None
        with spirit.log_lock:
            return list(spirit.logs)

    def _serves_web(self, spirit: Installed) -> bool:
        return spirit.policy.state is State.RUNNING and spirit.manifest.permissions.display == "required"

    def asset(self, name: str, path: str) -> SpiritAsset | None:
        """A running spirit's verified file, for ``/spirits/{name}/{path}`` (None: not served)."""
        spirit = self.spirits.get(name)
        if spirit is None or not self._serves_web(spirit):
            return None
        data = spirit.package.files.get(path or "index.html")
        if data is None:
            return None
        suffix = os.path.splitext(path or "index.html")[1].lower()
        return SpiritAsset(data, MEDIA_TYPES.get(suffix, "application/octet-stream"))

    # -- what this node offers to others (the marketplace) -------------------------------------

    def offers(self) -> list[tuple[pkg.Package, int]]:
        """Every installed package and its size, by name."""
        return [(s.package, s.size) for _, s in sorted(self.spirits.items())]

    def installed_sha256(self, name: str) -> str | None:
        spirit = self.spirits.get(name)
        return spirit.package.sha256 if spirit is not None else None

    def package_file(self, sha256: str) -> tuple[Path, int] | None:
        """Where the stored archive of an installed package with this hash is, and its size.

        Not re-hashed here: whoever reads it by range (the marketplace serving
        chunks) hands it to a fetcher that checks the hash of the whole.
        """
        for spirit in self.spirits.values():
            if spirit.package.sha256 == sha256:
                return self._path(spirit.manifest.name), spirit.size
        return None

    # -- service -------------------------------------------------------------------------------

    async def start(self) -> None:
        self.load_installed()
        self._load_payments()
        for instruction in self.payments.recover(time.time()):  # no summon survives a restart: settle what was open
            if isinstance(instruction, Persist):
                self._save_payments()
        self.runtime = SpiritRuntime()
        log.info("spirits: %d installed in %s", len(self.spirits), self.root)

    async def run(self, events: NodeEvents) -> None:
        interval = min(self.config.spirit_tick_ms / 1000, 0.25)
        while self.runtime is not None:
            await self.tick(time.time())
            await self.settle_due(time.time())
            await asyncio.sleep(interval)

    def leave(self, now: float) -> None:
        """Spirits keep running while the node leaves; ``stop`` dismisses them."""

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for spirit in self.spirits.values():
            if spirit.policy.state is State.RUNNING:
                with contextlib.suppress(SpiritError):
                    async with spirit.lock:
                        await self._dismiss_locked(spirit)
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None


def _internal(name: str, what: str, exc: BaseException) -> SpiritError:
    log.error("spirit %s: unexpected error in %s", name, what, exc_info=exc)
    return SpiritError("internal", f"spirit {name!r} {what}: unexpected {type(exc).__name__}: {exc} (a VUDO bug; see the node log)")


def _tick(instance: SpiritInstance, now_ms: int) -> CallResult | None:
    instance.drain_signals()
    return instance.hook("tick", now_ms)


def _refusal(name: str, refuse: Refuse) -> str:
    if refuse.reason == "not_granted":
        return (f"{refuse.message}, not granted on this node; grant it under [spirits.allow.{name}] "
                f"in vudo.toml if you trust the author")
    return refuse.message
