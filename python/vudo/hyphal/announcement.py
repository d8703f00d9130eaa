"""Trait ``Discoverable``: the signed NodeAnnouncement and the leave notice."""

from __future__ import annotations

from typing import Annotated

import msgspec

from vudo.hyphal.capability import Capabilities
from vudo.hyphal.signed import Carrier, open_sealed, seal
from vudo.identity import Identity

ANNOUNCEMENT_KEY = "announcement"
LEAVE_KEY = "leave"

_NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_Addr = Annotated[str, msgspec.Meta(max_length=256)]
_Timestamp = Annotated[float, msgspec.Meta(ge=0)]


class NodeAnnouncement(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    node_id: _NodeId
    addr: _Addr  # gossip (link) address, host:port
    api: _Addr  # HTTP API base URL ("" when not exposed)
    capabilities: Capabilities
    version: Annotated[str, msgspec.Meta(max_length=32)]
    timestamp: _Timestamp
    link: _Addr = ""  # libp2p multiaddr of the node's link listener ("" when it has none)


class LeaveNotice(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Published just before a graceful shutdown so peers mark us "left"."""

    node_id: _NodeId
    timestamp: _Timestamp


def announce(identity: Identity, announcement: NodeAnnouncement, *, carrier: Carrier | None = None) -> str:
    """Seal an announcement; gossip publishes it with its ``carrier`` (see :func:`vudo.hyphal.signed.seal`)."""
    if announcement.node_id != identity.node_id or (carrier is not None and carrier.node_id != identity.node_id):
        raise ValueError("an announcement must name the identity that signs it")
    return seal(identity, announcement, carrier=carrier)


def verify_announcement(value: str, *, carrier: Carrier | None = None, owner: str | None = None,
                        now: float, ttl: float) -> NodeAnnouncement:
    """``carrier``: from gossip (exact binding); ``owner``: passed on over an authenticated link."""
    return open_sealed(value, NodeAnnouncement, carrier=carrier, owner=owner, now=now, ttl=ttl)
