"""Membership policy: what the gossip engine's raw view means.

Theory of operation
-------------------
The engine (chitchat, via ``vudo._core.Gossip``) tells us which chitchat
identities it knows -- ``(node id, generation, gossip address)`` -- which
the phi-accrual detector thinks are live, and each identity's key-values.
It authenticates nothing: anyone who reaches a gossip port can add
identities under any node id and generation, and copy any value it has
seen. This class turns that raw view into verified membership:

* each observation (:class:`GossipObserved`) carries a view and the
  caller's ``now``; the class never reads a clock. The view may be bounded
  (see :meth:`Membership.trusted`): identities this class trusts are always
  in it, others may come a few at a time;
* every signed value is opened with the carrier it came from (see
  :mod:`vudo.hyphal.signed`): a value copied to another identity is rejected
  (``wrong_generation``, ``wrong_addr``, ``wrong_owner``), counted once per
  distinct value, and ignored;
* an identity is *verified* when its announcement opens under it;
* **only verified generations count**: a node's status and details come
  from its newest verified identity; failing that, from the identity that
  was last verified (while it is still listed); only a node never verified
  is shown from its newest unverified identity. So an unverified newer
  generation never hides, displaces or kills a verified one, and a leave
  notice (bound to its generation) only ends its own generation;
* status of the chosen identity: ``left`` when its signed leave notice
  opens, else ``alive``/``dead`` from the failure detector;
* state is bounded: at most ``max_unverified`` never-verified nodes are
  kept (the least recently seen are evicted first), and those not seen for
  ``unverified_ttl`` seconds are dropped; caches are bounded too;
* it returns events (joined, status changed, verified changed, rejected,
  forgotten, evicted), each with a sequence id, for the node to log and
  export.

Status transitions of a node (anything not listed keeps its status):

    (new)  -> alive | dead | left
    alive  -> dead | left
    dead   -> alive (same generation came back, or a newer verified one) | left
    left   -> alive (a newer verified generation joined)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from vudo.errors import RemoteValueError
from vudo.gradient.field import GradientField
from vudo.gradient.vector import GRADIENT_KEY, GradientVector
from vudo.hyphal.announcement import ANNOUNCEMENT_KEY, LEAVE_KEY, LeaveNotice, NodeAnnouncement
from vudo.hyphal.signed import Carrier, check_age, verify_sealed
from vudo.hyphal.topology import LINKS_KEY, LinkList
from vudo.spirits.catalogue import CATALOGUE_KEY, Catalogue
from vudo.spirits.catalogue import validate as validate_catalogue

Status = Literal["alive", "dead", "left"]
#: A leave notice stays meaningful this long (seconds).
LEAVE_TTL = 24 * 3600.0
#: Bound on remembered verification results (memory safety against floods).
MAX_REJECTION_MEMORY = 10_000
MAX_VERIFIED_CACHE = 10_000
#: Default bound on nodes that were never verified.
MAX_UNVERIFIED = 256
#: Never-verified nodes not seen for this long are dropped (seconds).
UNVERIFIED_TTL = 30.0
#: The keys read from identities not yet trusted: enough to verify them.
PROBE_KEYS = (ANNOUNCEMENT_KEY, LEAVE_KEY)


@dataclass(frozen=True, slots=True)
class GossipMember:
    """One node as the gossip engine reports it."""

    node_id: str
    generation: int
    gossip_addr: str
    live: bool
    is_self: bool
    key_values: dict[str, str]


@dataclass(frozen=True, slots=True)
class GossipObserved:
    members: tuple[GossipMember, ...]
    now: float


@dataclass(frozen=True, slots=True)
class MemberJoined:
    id: int
    node_id: str
    status: Status


@dataclass(frozen=True, slots=True)
class MemberStatusChanged:
    id: int
    node_id: str
    old: Status
    new: Status


@dataclass(frozen=True, slots=True)
class MemberVerifiedChanged:
    id: int
    node_id: str
    verified: bool


@dataclass(frozen=True, slots=True)
class ValueRejected:
    id: int
    node_id: str
    key: str
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class MemberForgotten:
    id: int
    node_id: str


@dataclass(frozen=True, slots=True)
class UnverifiedEvicted:
    """``count`` never-verified nodes were dropped to respect the cap."""

    id: int
    count: int


Event = MemberJoined | MemberStatusChanged | MemberVerifiedChanged | ValueRejected | MemberForgotten | UnverifiedEvicted


@dataclass(slots=True)
class MemberRecord:
    node_id: str
    generation: int
    gossip_addr: str
    status: Status
    is_self: bool
    verified: bool = False
    announcement: NodeAnnouncement | None = None
    announcement_value: str = ""  # the sealed announcement as published (passed on in link introductions)
    gradient: GradientVector | None = None
    link_list: LinkList | None = None  # the member's signed list of its links (for the topology view)
    catalogue: Catalogue | None = None  # the spirits the member offers (its signed catalogue)
    rejected: dict[str, str] = field(default_factory=dict)  # key -> reason
    since: float = 0.0
    last_seen: float = 0.0
    #: (generation, address) of the identity last verified; None: never verified.
    anchor: tuple[int, str] | None = None


@dataclass(frozen=True, slots=True)
class _Assessed:
    member: GossipMember
    carrier: Carrier
    announcement: NodeAnnouncement | None
    leave: LeaveNotice | None


class Membership:
    def __init__(
        self,
        *,
        self_id: str,
        announcement_ttl: float,
        max_unverified: int = MAX_UNVERIFIED,
        unverified_ttl: float = UNVERIFIED_TTL,
    ) -> None:
        if max_unverified < 1:
            raise ValueError("max_unverified must be >= 1")
        self.self_id = self_id
        self.announcement_ttl = announcement_ttl
        self.max_unverified = max_unverified
        self.unverified_ttl = unverified_ttl
        self.members: dict[str, MemberRecord] = {}
        self.gradients = GradientField()
        self.rejections: dict[tuple[str, str], int] = {}  # (key, reason) -> count
        self.evicted = 0
        # digest of (carrier, key, value) -> (reason, detail) of values that failed verification.
        self._bad: dict[bytes, tuple[str, str]] = {}
        # (carrier, key) -> (value, decoded body) of the last value whose signature verified:
        # values change only when re-signed (every refresh interval) but are seen every tick,
        # and Ed25519 verification of every member's values on every tick is O(N) per tick.
        self._verified: dict[tuple[Carrier, str], tuple[str, msgspec.Struct]] = {}
        self._next_id = 0

    # -- queries ----------------------------------------------------------

    def verified_peers(self) -> list[MemberRecord]:
        return [m for m in self.members.values() if not m.is_self and m.verified and m.status == "alive"]

    def count(self, status: Status) -> int:
        return sum(1 for m in self.members.values() if m.status == status)

    def unverified_count(self) -> int:
        return sum(1 for m in self.members.values() if m.anchor is None and not m.is_self)

    def trusted(self) -> list[tuple[str, int, str]]:
        """``(node_id, generation, gossip_addr)`` of the identities the engine must always report in full
        (and, in open gossip, always admit)."""
        return sorted((m.node_id, m.anchor[0], m.anchor[1]) for m in self.members.values() if m.anchor is not None)

    # -- events -----------------------------------------------------------

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def receive(self, event: GossipObserved) -> list[Event]:
        by_node: dict[str, list[GossipMember]] = {}
        for member in event.members:
            by_node.setdefault(member.node_id, []).append(member)
        out: list[Event] = []
        for node_id, identities in sorted(by_node.items()):
            out.extend(self._observe(node_id, identities, event.now))
        for node_id, record in sorted(self.members.items()):
            if node_id in by_node:
                continue
            if record.anchor is not None or record.is_self or event.now - record.last_seen > self.unverified_ttl:
                self._forget(node_id)
                out.append(MemberForgotten(self._id(), node_id))
        out.extend(self._enforce_cap())
        return out

    def _forget(self, node_id: str) -> None:
        del self.members[node_id]
        for key in [k for k in self._verified if k[0].node_id == node_id]:
            del self._verified[key]
        self.gradients.forget(node_id)

    def _enforce_cap(self) -> list[Event]:
        unverified = [m for m in self.members.values() if m.anchor is None and not m.is_self]
        excess = len(unverified) - self.max_unverified
        if excess <= 0:
            return []
        unverified.sort(key=lambda m: (m.last_seen, m.node_id))
        for record in unverified[:excess]:
            self._forget(record.node_id)
        self.evicted += excess
        return [UnverifiedEvicted(self._id(), excess)]

    def _open(self, member: GossipMember, carrier: Carrier, key: str, kind: type, ttl: float, now: float,
              rejected: dict[str, str], out: list[Event]) -> object | None:
        value = member.key_values.get(key)
        if value is None:
            return None
        digest = hashlib.blake2b(
            f"{carrier.node_id}\0{carrier.generation}\0{carrier.addr}\0{key}\0{value}".encode(), digest_size=16
        ).digest()
        try:
            known_bad = self._bad.get(digest)
            if known_bad is not None:
                raise RemoteValueError(*known_bad)
            cached = self._verified.get((carrier, key))
            body: msgspec.Struct
            if cached is not None and cached[0] == value and isinstance(cached[1], kind):
                body = cached[1]
            else:
                try:
                    body = verify_sealed(value, kind, carrier=carrier)
                except RemoteValueError as err:
                    self._remember_bad(digest, err, member.node_id, key, out)
                    raise
                if len(self._verified) >= MAX_VERIFIED_CACHE:
                    self._verified.clear()
                self._verified[(carrier, key)] = (value, body)
            try:
                return check_age(body, now=now, ttl=ttl)
            except RemoteValueError as err:
                age_digest = hashlib.blake2b(digest + err.reason.encode(), digest_size=16).digest()
                if age_digest not in self._bad:
                    self._remember_bad(age_digest, err, member.node_id, key, out)
                raise
        except RemoteValueError as err:
            rejected[key] = err.reason
            return None

    def _remember_bad(self, digest: bytes, err: RemoteValueError, node_id: str, key: str, out: list[Event]) -> None:
        if len(self._bad) >= MAX_REJECTION_MEMORY:
            self._bad.clear()
        self._bad[digest] = (err.reason, err.detail)
        label = (key, err.reason)
        self.rejections[label] = self.rejections.get(label, 0) + 1
        out.append(ValueRejected(self._id(), node_id, key, err.reason, err.detail))

    def _assess(self, member: GossipMember, now: float, rejected: dict[str, str], out: list[Event]) -> _Assessed:
        carrier = Carrier(member.node_id, member.generation, member.gossip_addr)
        announcement = self._open(member, carrier, ANNOUNCEMENT_KEY, NodeAnnouncement, self.announcement_ttl, now, rejected, out)
        leave = self._open(member, carrier, LEAVE_KEY, LeaveNotice, LEAVE_TTL, now, rejected, out)
        return _Assessed(
            member,
            carrier,
            announcement if isinstance(announcement, NodeAnnouncement) else None,
            leave if isinstance(leave, LeaveNotice) else None,
        )

    def _choose(self, record: MemberRecord | None, assessed: list[_Assessed]) -> _Assessed:
        """The identity a node is shown as: newest verified, else last verified, else newest."""
        def rank(a: _Assessed) -> tuple[int, bool]:
            return (a.member.generation, a.member.live)

        verified = [a for a in assessed if a.announcement is not None]
        if verified:
            return max(verified, key=rank)
        if record is not None and record.anchor is not None:
            for a in assessed:
                if (a.member.generation, a.member.gossip_addr) == record.anchor:
                    return a
        return max(assessed, key=rank)

    def _observe(self, node_id: str, identities: list[GossipMember], now: float) -> list[Event]:
        out: list[Event] = []
        rejected: dict[str, str] = {}
        assessed = [self._assess(m, now, rejected, out) for m in identities]
        record = self.members.get(node_id)
        chosen = self._choose(record, assessed)
        member = chosen.member
        is_new = record is None
        if record is None:
            record = MemberRecord(node_id, member.generation, member.gossip_addr, "alive", member.is_self, since=now)
            self.members[node_id] = record
        record.generation = member.generation
        record.gossip_addr = member.gossip_addr
        record.is_self = member.is_self
        record.last_seen = now

        verified = chosen.announcement is not None
        if verified:
            record.anchor = (member.generation, member.gossip_addr)
        gradient = None
        if verified:
            opened = self._open(member, chosen.carrier, GRADIENT_KEY, GradientVector, self.announcement_ttl, now, rejected, out)
            gradient = opened if isinstance(opened, GradientVector) else None
        record.rejected = rejected
        record.announcement = chosen.announcement
        record.gradient = gradient
        if gradient is not None and not member.is_self:
            self.gradients.receive_gradient(node_id, gradient)
        record.announcement_value = member.key_values.get(ANNOUNCEMENT_KEY, "") if verified else ""
        link_list = None
        if verified:
            opened_links = self._open(member, chosen.carrier, LINKS_KEY, LinkList, self.announcement_ttl, now, rejected, out)
            link_list = opened_links if isinstance(opened_links, LinkList) else None
        record.link_list = link_list
        catalogue = None
        if verified:
            opened_catalogue = self._open(member, chosen.carrier, CATALOGUE_KEY, Catalogue, self.announcement_ttl, now, rejected, out)
            if isinstance(opened_catalogue, Catalogue):
                try:
                    catalogue = validate_catalogue(opened_catalogue)
                except RemoteValueError as err:
                    value = member.key_values.get(CATALOGUE_KEY, "")
                    digest = hashlib.blake2b(f"{chosen.carrier}\0{CATALOGUE_KEY}\0{value}".encode(), digest_size=16).digest()
                    if digest not in self._bad:
                        self._remember_bad(digest, err, member.node_id, CATALOGUE_KEY, out)
                    rejected[CATALOGUE_KEY] = err.reason
        record.catalogue = catalogue

        status: Status
        if chosen.leave is not None:
            status = "left"
        elif member.live:
            status = "alive"
        else:
            status = "dead"

        if is_new:
            record.status = status
            record.verified = verified
            out.append(MemberJoined(self._id(), node_id, status))
            if verified:
                out.append(MemberVerifiedChanged(self._id(), node_id, True))
            return out
        if status != record.status:
            out.append(MemberStatusChanged(self._id(), node_id, record.status, status))
            record.status = status
            record.since = now
        if verified != record.verified:
            record.verified = verified
            out.append(MemberVerifiedChanged(self._id(), node_id, verified))
        if status != "alive":
            self.gradients.forget(node_id)
        return out
