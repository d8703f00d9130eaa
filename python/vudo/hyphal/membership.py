"""Membership policy: what the gossip engine's raw view means.

Theory of operation
-------------------
The engine (chitchat, via ``vudo._core.Gossip``) tells us which nodes it
knows, which the phi-accrual detector thinks are live, and each node's
key-values. It authenticates nothing. This class turns that raw view into
verified membership:

* each observation (:class:`GossipObserved`) carries the full snapshot and
  the caller's ``now``; the class never reads a clock;
* one node id may appear under several generations (a restart); the newest
  generation wins;
* a member is ``verified`` when its announcement opens (right owner, good
  signature, younger than ``announcement_ttl``); its gradient is shown only
  when it opens too; every rejected value is counted once per distinct
  value under its reason;
* status: ``left`` when a valid signed leave notice is present, else
  ``alive``/``dead`` from the failure detector;
* it returns events (joined, status changed, verified changed, rejected),
  each with a sequence id, for the node to log and export.

Status transitions (anything not listed keeps its status):

    (new)  -> alive | dead | left
    alive  -> dead | left
    dead   -> alive (same generation came back, or a newer generation) | left
    left   -> alive (a newer generation joined)
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
from vudo.hyphal.signed import check_age, verify_sealed
from vudo.hyphal.topology import LINKS_KEY, LinkList

Status = Literal["alive", "dead", "left"]
#: A leave notice stays meaningful this long (seconds).
LEAVE_TTL = 24 * 3600.0
#: Bound on remembered rejected-value digests (memory safety against floods).
MAX_REJECTION_MEMORY = 10_000


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


Event = MemberJoined | MemberStatusChanged | MemberVerifiedChanged | ValueRejected | MemberForgotten


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
    rejected: dict[str, str] = field(default_factory=dict)  # key -> reason
    since: float = 0.0


class Membership:
    def __init__(self, *, self_id: str, announcement_ttl: float) -> None:
        self.self_id = self_id
        self.announcement_ttl = announcement_ttl
        self.members: dict[str, MemberRecord] = {}
        self.gradients = GradientField()
        self.rejections: dict[tuple[str, str], int] = {}  # (key, reason) -> count
        self._seen_bad: set[bytes] = set()
        # (node_id, key) -> (value, decoded body) of the last value whose signature verified:
        # values change only when re-signed (every refresh interval) but are seen every tick,
        # and Ed25519 verification of every member's values on every tick is O(N) per tick.
        self._verified: dict[tuple[str, str], tuple[str, msgspec.Struct]] = {}
        self._next_id = 0

    # -- queries ----------------------------------------------------------

    def verified_peers(self) -> list[MemberRecord]:
        return [m for m in self.members.values() if not m.is_self and m.verified and m.status == "alive"]

    def count(self, status: Status) -> int:
        return sum(1 for m in self.members.values() if m.status == status)

    # -- events -----------------------------------------------------------

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def receive(self, event: GossipObserved) -> list[Event]:
        newest: dict[str, GossipMember] = {}
        for member in event.members:
            current = newest.get(member.node_id)
            if current is None or member.generation > current.generation or (
                member.generation == current.generation and member.live
            ):
                newest[member.node_id] = member
        out: list[Event] = []
        for _, member in sorted(newest.items()):
            out.extend(self._observe(member, event.now))
        for node_id in sorted(set(self.members) - set(newest)):
            del self.members[node_id]
            for key in [k for k in self._verified if k[0] == node_id]:
                del self._verified[key]
            self.gradients.forget(node_id)
            out.append(MemberForgotten(self._id(), node_id))
        return out

    def _open(self, member: GossipMember, key: str, kind: type, now: float, ttl: float, out: list[Event]) -> object | None:
        value = member.key_values.get(key)
        if value is None:
            return None
        try:
            cached = self._verified.get((member.node_id, key))
            body: msgspec.Struct
            if cached is not None and cached[0] == value and isinstance(cached[1], kind):
                body = cached[1]
            else:
                body = verify_sealed(value, kind, owner=member.node_id)
                self._verified[(member.node_id, key)] = (value, body)
            return check_age(body, now=now, ttl=ttl)
        except RemoteValueError as err:
            record = self.members.get(member.node_id)
            if record is not None:
                record.rejected[key] = err.reason
            digest = hashlib.blake2b(f"{member.node_id}\0{key}\0{err.reason}\0{value}".encode(), digest_size=16).digest()
            if digest not in self._seen_bad:
                if len(self._seen_bad) >= MAX_REJECTION_MEMORY:
                    self._seen_bad.clear()
                self._seen_bad.add(digest)
                label = (key, err.reason)
                self.rejections[label] = self.rejections.get(label, 0) + 1
                out.append(ValueRejected(self._id(), member.node_id, key, err.reason, err.detail))
            return None

    def _observe(self, member: GossipMember, now: float) -> list[Event]:
        out: list[Event] = []
        record = self.members.get(member.node_id)
        is_new = record is None
        if record is None or member.generation > record.generation:
            previous_status = None if record is None else record.status
            record = MemberRecord(member.node_id, member.generation, member.gossip_addr, "alive", member.is_self, since=now)
            if previous_status is not None:
                record.status = previous_status
            self.members[member.node_id] = record
        record.gossip_addr = member.gossip_addr
        record.rejected = {}

        announcement = self._open(member, ANNOUNCEMENT_KEY, NodeAnnouncement, now, self.announcement_ttl, out)
        gradient = self._open(member, GRADIENT_KEY, GradientVector, now, self.announcement_ttl, out)
        leave = self._open(member, LEAVE_KEY, LeaveNotice, now, LEAVE_TTL, out)
        link_list = self._open(member, LINKS_KEY, LinkList, now, self.announcement_ttl, out)

        verified = isinstance(announcement, NodeAnnouncement)
        record.announcement = announcement if isinstance(announcement, NodeAnnouncement) else None
        record.announcement_value = member.key_values.get(ANNOUNCEMENT_KEY, "") if verified else ""
        record.link_list = link_list if isinstance(link_list, LinkList) and verified else None
        record.gradient = gradient if isinstance(gradient, GradientVector) else None
        if record.gradient is not None and not member.is_self:
            self.gradients.receive_gradient(member.node_id, record.gradient)

        status: Status
        if isinstance(leave, LeaveNotice):
            status = "left"
        elif member.live:
            status = "alive"
        else:
            status = "dead"

        if is_new:
            record.status = status
            record.verified = verified
            out.append(MemberJoined(self._id(), member.node_id, status))
            if verified:
                out.append(MemberVerifiedChanged(self._id(), member.node_id, True))
            return out
        if status != record.status:
            out.append(MemberStatusChanged(self._id(), member.node_id, record.status, status))
            record.status = status
            record.since = now
        if verified != record.verified:
            record.verified = verified
            out.append(MemberVerifiedChanged(self._id(), member.node_id, verified))
        if status != "alive":
            self.gradients.forget(member.node_id)
        return out
