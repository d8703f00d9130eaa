"""The marketplace service: our catalogue in gossip, everyone's offers, fetching packages.

It decides nothing itself; the policies live in :mod:`vudo.spirits.catalogue`
(what a catalogue is and how it is verified) and :mod:`vudo.spirits.fetch`
(the chunked fetch protocol and its state machine). It:

* publishes the installed spirits as this node's signed catalogue (a
  membership publisher: re-signed when the offer changes or nears its TTL);
* aggregates the verified catalogues of live members with ours into
  :meth:`MarketService.marketplace` (who offers what);
* serves chunks of installed packages on ``/vudo/spirit/1`` through its
  link port (:class:`~vudo.spirits.fetch.ChunkServer`, rate-limited per peer);
* runs fetch jobs (:meth:`MarketService.start_fetch`): one
  :class:`~vudo.spirits.fetch.PackageFetch` per job, fed the port's
  responses and a timer; a completed download is installed through the
  spirits service, which verifies the signature and every hash again.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter

from vudo.hyphal.linkproto import LinkDown, LinkUp, RequestFailed, RequestReceived, Respond, ResponseReceived, SendRequest
from vudo.hyphal.signed import Carrier
from vudo.identity import Identity
from vudo.services.base import NodeEvents
from vudo.services.spirits import SpiritsService
from vudo.spirits.catalogue import CATALOGUE_KEY, Catalogue, CatalogueEntry, entry_of, seal_catalogue
from vudo.spirits.errors import SpiritError
from vudo.spirits.fetch import ChunkServer, Completed, Failed, PackageFetch, PeerFailed, Progress
from vudo.spirits.manifest import NAME_RE, SEMVER_RE

log = logging.getLogger("vudo.market")

TICK_S = 0.25
MAX_JOBS = 64
MAX_RUNNING_JOBS = 4

PortEvent = LinkUp | LinkDown | RequestReceived | ResponseReceived | RequestFailed


class MarketPort(Protocol):
    def execute(self, instruction: SendRequest | Respond) -> None: ...

    async def next_event(self) -> PortEvent | None: ...


class MarketMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.served = Counter("vudo_market_chunk_bytes_served", "Package bytes this node served on /vudo/spirit/1", registry=registry)
        self.refused = Counter("vudo_market_requests_refused", "Chunk requests this node refused, by reason", ["reason"], registry=registry)
        self.peer_failures = Counter("vudo_market_fetch_peer_failures", "Sources a fetch gave up on, by reason", ["reason"], registry=registry)
        self.fetches = Counter("vudo_market_fetches", "Package fetches by outcome", ["outcome"], registry=registry)


@dataclass(frozen=True, slots=True)
class OfferView:
    """One package on the network: its catalogue entry and who offers it."""

    name: str
    version: str
    rev: int
    author: str
    sha256: str
    tier: str
    price: int
    size: int
    offered_by: tuple[str, ...]
    installed_here: bool


FetchState = Literal["fetching", "installed", "failed"]


@dataclass(frozen=True, slots=True)
class FetchView:
    id: int
    name: str
    version: str
    sha256: str
    size: int
    state: FetchState
    received: int
    source: str | None
    tried: tuple[tuple[str, str], ...]
    error: str | None
    error_reason: str | None
    started_at: float
    fetched_at: float | None  # every byte in and the hash checked (then the package is verified and installed)
    finished_at: float | None


@dataclass
class _Job:
    id: int
    offer: OfferView
    machine: PackageFetch | None
    started_at: float
    state: FetchState = "fetching"
    error: str | None = None
    error_reason: str | None = None
    fetched_at: float | None = None
    finished_at: float | None = None
    source: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class FileSource:
    """An installed package read by range from its stored file (one bounded read per chunk)."""

    path: Path
    size: int

    def read(self, offset: int, length: int) -> bytes:
        with self.path.open("rb") as f:
            if os.fstat(f.fileno()).st_size != self.size:
                raise OSError(errno.ESTALE, "the stored package changed size since it was installed")
            f.seek(offset)
            return f.read(length)


class FetchRefused(SpiritError):
    """A fetch that cannot start (unknown name or version, nobody offers it, too many running)."""


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``NAME[@VERSION]`` -> (name, version or None); ``ValueError`` names what is wrong."""
    name, _, version = ref.partition("@")
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"{name[:50]!r} is not a spirit name")
    if version and not SEMVER_RE.fullmatch(version):
        raise ValueError(f"{version[:50]!r} is not a semantic version")
    return name, version or None


class MarketService:
    name = "market"

    def __init__(
        self,
        identity: Identity,
        spirits: SpiritsService,
        port_factory: Callable[[], MarketPort],
        catalogues: Callable[[], dict[str, Catalogue]],
        linked: Callable[[], frozenset[str]],
        *,
        refresh_s: float = 30.0,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.spirits = spirits
        self._port_factory = port_factory
        self.port: MarketPort | None = None
        self._catalogues = catalogues
        self._linked = linked
        self.refresh_s = refresh_s
        self.clock = clock
        self.metrics = MarketMetrics(registry or CollectorRegistry())
        self.server = ChunkServer(self._lookup)
        self._published: tuple[tuple[CatalogueEntry, ...], float, Carrier, str] | None = None
        self._jobs: OrderedDict[int, _Job] = OrderedDict()
        self._by_request: dict[int, _Job] = {}
        self._request_ids = itertools.count(1)
        self._job_ids = itertools.count(1)
        self._running = False

    # -- the catalogue -------------------------------------------------------------------------

    def own_entries(self) -> tuple[CatalogueEntry, ...]:
        return tuple(entry_of(package, size) for package, size in self.spirits.offers())

    def gossip_values(self, now: float, carrier: Carrier) -> dict[str, str]:
        """Our signed catalogue, re-signed when the offer changes or nears its TTL."""
        entries = self.own_entries()
        cached = self._published
        if cached is None or cached[0] != entries or cached[2] != carrier or now - cached[1] >= self.refresh_s:
            cached = self._published = (entries, now, carrier, seal_catalogue(self.identity, entries, now, carrier=carrier))
        return {CATALOGUE_KEY: cached[3]}

    def marketplace(self, query: str = "") -> list[OfferView]:
        """Every verified offer on the network (ours included), merged by package hash."""
        offers: dict[str, tuple[CatalogueEntry, list[str]]] = {}
        sources = {self.identity.node_id: self.own_entries()}
        for node_id, catalogue in self._catalogues().items():
            if node_id != self.identity.node_id:
                sources[node_id] = catalogue.spirits
        for node_id, entries in sources.items():
            for entry in entries:
                offers.setdefault(entry.sha256, (entry, []))[1].append(node_id)
        q = query.lower()
        out = []
        for entry, nodes in offers.values():
            if q and q not in entry.name and q not in entry.author.lower():
                continue
            out.append(OfferView(
                name=entry.name, version=entry.version, rev=entry.rev, author=entry.author, sha256=entry.sha256,
                tier=entry.tier, price=entry.price, size=entry.size, offered_by=tuple(sorted(nodes)),
                installed_here=self.spirits.installed_sha256(entry.name) == entry.sha256,
            ))
        return sorted(out, key=lambda o: (o.name, -o.rev, o.sha256))

    # -- serving ---------------------------------------------------------------------------------

    def _lookup(self, sha256: str) -> FileSource | None:
        """Only what this node has installed (and so publishes) is served, read from its stored file."""
        found = self.spirits.package_file(sha256)
        return FileSource(*found) if found is not None else None

    def _serve(self, event: RequestReceived) -> None:
        before_served, before_refused = self.server.served_bytes, dict(self.server.refused)
        response = self.server.handle(event.peer, event.payload, event.now)
        if self.server.served_bytes > before_served:
            self.metrics.served.inc(self.server.served_bytes - before_served)
        for reason, count in self.server.refused.items():
            if count > before_refused.get(reason, 0):
                self.metrics.refused.labels(reason).inc()
                log.debug("refused a chunk request from %s: %s", event.peer, reason)
        if self.port is not None:
            self.port.execute(Respond(event.channel, response))

    # -- fetching --------------------------------------------------------------------------------

    def _choose(self, name: str, version: str | None) -> OfferView:
        offers = [o for o in self.marketplace() if o.name == name and (version is None or o.version == version)]
        if not offers:
            what = f"{name}@{version}" if version else name
            raise FetchRefused("not_offered", f"no node offers spirit {what!r} (see `vudo spirit search {name}`)")
        return max(offers, key=lambda o: (o.rev, len(o.offered_by), o.sha256))

    def start_fetch(self, name: str, version: str | None = None) -> FetchView:
        """Start fetching ``name[@version]`` (the highest rev offered when no version is given)."""
        offer = self._choose(name, version)
        now = self.clock()
        job = _Job(next(self._job_ids), offer, None, now)
        if offer.installed_here:
            job.state, job.finished_at = "installed", now
            job.done.set()
            self._remember(job)
            return self.view_of(job)
        running = [j for j in self._jobs.values() if j.state == "fetching"]
        for other in running:
            if other.offer.sha256 == offer.sha256:
                return self.view_of(other)  # already on its way: one download per package
        if len(running) >= MAX_RUNNING_JOBS:
            raise FetchRefused("too_many", f"{MAX_RUNNING_JOBS} fetches are running; wait for one to finish")
        linked = self._linked()
        peers = [n for n in offer.offered_by if n != self.identity.node_id]
        if not peers:
            raise FetchRefused("not_offered", f"only this node offers {offer.name}@{offer.version}")
        peers.sort(key=lambda n: (n not in linked, n))  # linked peers first
        job.machine = PackageFetch(offer.sha256, offer.size, peers, lambda: next(self._request_ids))
        self._remember(job)
        log.info("fetch %d: %s@%s (%d bytes, %s) from %d candidate(s)", job.id, offer.name, offer.version, offer.size,
                 offer.sha256[:16], len(peers))
        self._run(job, job.machine.start(now))
        return self.view_of(job)

    def _remember(self, job: _Job) -> None:
        self._jobs[job.id] = job
        while len(self._jobs) > MAX_JOBS:
            oldest = next(iter(self._jobs.values()))
            if oldest.state == "fetching":
                break
            self._jobs.popitem(last=False)

    def _run(self, job: _Job, outputs: list[SendRequest | Progress | PeerFailed | Completed | Failed]) -> None:
        for o in outputs:
            if isinstance(o, SendRequest):
                self._by_request[o.request_id] = job
                job.source = o.peer
                if self.port is not None:
                    self.port.execute(o)
            elif isinstance(o, PeerFailed):
                self.metrics.peer_failures.labels(o.reason.split(":")[0]).inc()
                log.warning("fetch %d: event %d: source %s failed (%s: %s); trying the next", job.id, o.id, o.peer, o.reason, o.detail)
            elif isinstance(o, Completed):
                job.source, job.fetched_at = o.peer, self.clock()
                asyncio.get_running_loop().create_task(self._install(job, o.data))
            elif isinstance(o, Failed):
                self._finish(job, "failed", o.reason, o.message)

    async def _install(self, job: _Job, data: bytes) -> None:
        try:
            view = await self.spirits.install(data)
        except SpiritError as err:
            self._finish(job, "failed", err.reason, f"fetched {job.offer.name} from {job.source} but it was refused: {err}")
            return
        log.info("fetch %d: installed %s@%s rev %d from %s", job.id, view.name, view.version, view.rev, job.source)
        self._finish(job, "installed", None, None)

    def _finish(self, job: _Job, state: FetchState, reason: str | None, message: str | None) -> None:
        job.state, job.error_reason, job.error, job.finished_at = state, reason, message, self.clock()
        self.metrics.fetches.labels(state).inc()
        for rid in [r for r, j in self._by_request.items() if j is job]:
            del self._by_request[rid]
        if message:
            log.warning("fetch %d: %s", job.id, message)
        job.done.set()

    def receive(self, event: PortEvent) -> None:
        if isinstance(event, RequestReceived):
            self._serve(event)
        elif isinstance(event, ResponseReceived | RequestFailed):
            job = self._by_request.pop(event.request_id, None)
            if job is not None and job.machine is not None and job.state == "fetching":
                self._run(job, job.machine.receive(event))

    def tick(self, now: float) -> None:
        for job in list(self._jobs.values()):
            if job.state == "fetching" and job.machine is not None:
                self._run(job, job.machine.handle_timer(now))

    def view_of(self, job: _Job) -> FetchView:
        m = job.machine
        return FetchView(
            id=job.id, name=job.offer.name, version=job.offer.version, sha256=job.offer.sha256, size=job.offer.size,
            state=job.state, received=job.offer.size if job.state == "installed" else (m.received if m else 0),
            source=job.source, tried=tuple(m.tried) if m else (), error=job.error, error_reason=job.error_reason,
            started_at=job.started_at, fetched_at=job.fetched_at, finished_at=job.finished_at,
        )

    def fetch_status(self, fetch_id: int) -> FetchView | None:
        job = self._jobs.get(fetch_id)
        return self.view_of(job) if job is not None else None

    async def wait(self, fetch_id: int) -> FetchView | None:
        job = self._jobs.get(fetch_id)
        if job is None:
            return None
        await job.done.wait()
        return self.view_of(job)

    # -- service -----------------------------------------------------------------------------------

    async def start(self) -> None:
        self.port = self._port_factory()
        self._running = True

    async def _pump(self) -> None:
        assert self.port is not None
        while (event := await self.port.next_event()) is not None:
            if self._running:
                self.receive(event)

    async def _ticker(self) -> None:
        while self._running:
            self.tick(self.clock())
            await asyncio.sleep(TICK_S)

    async def run(self, events: NodeEvents) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._pump())
            tg.create_task(self._ticker())

    def leave(self, now: float) -> None:
        """Fetches in flight finish or fail on their own; nothing to announce."""

    async def stop(self) -> None:
        self._running = False
