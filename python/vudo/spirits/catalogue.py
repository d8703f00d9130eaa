"""A node's spirit catalogue: what it offers, as a signed gossip value.

Each node publishes the spirits it has installed under the gossip key
:data:`CATALOGUE_KEY`: a :class:`Catalogue` sealed with the project's
sealed-value envelope and bound to the chitchat identity that carries it
(:func:`vudo.hyphal.signed.seal` with ``carrier=``), like the link lists.
A receiver opens it only under the carrier it came from (the membership
policy does, for verified members), so nobody can publish an offer in
another node's name or replay an old node's catalogue under a new one.

Bounded: at most :data:`MAX_ENTRIES` entries, every field constrained by the
decoder (names, semver, sha256, tier, price, size), one entry per name, and
the whole sealed value within the envelope's 8 KiB. A catalogue that does
not fit is cut (names in order) before sealing, never sent oversize.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

import msgspec

from vudo.errors import RemoteValueError
from vudo.hyphal.signed import MAX_SIGNED_VALUE, Carrier, check_age, seal, verify_sealed
from vudo.identity import Identity
from vudo.spirits.manifest import MAX_PRICE, MAX_REV, NAME_RE, SEMVER_RE
from vudo.spirits.package import MAX_ARCHIVE_BYTES, Package

CATALOGUE_KEY = "spirits"
MAX_ENTRIES = 16
#: Why a catalogue is refused beyond the envelope's reasons.
TOO_MANY = "too_many"
DUPLICATE = "duplicate"

_NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class CatalogueEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One package a node offers: enough to find it and fetch it by hash."""

    name: Annotated[str, msgspec.Meta(pattern=f"^{NAME_RE.pattern}$")]
    version: Annotated[str, msgspec.Meta(max_length=64, pattern=f"^{SEMVER_RE.pattern}$")]
    rev: Annotated[int, msgspec.Meta(ge=1, le=MAX_REV)]
    author: _NodeId
    sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    tier: Literal["free", "premium"]
    price: Annotated[int, msgspec.Meta(ge=0, le=MAX_PRICE)]
    size: Annotated[int, msgspec.Meta(ge=1, le=MAX_ARCHIVE_BYTES)]


class Catalogue(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    node_id: _NodeId
    timestamp: Annotated[float, msgspec.Meta(ge=0)]
    spirits: tuple[CatalogueEntry, ...]  # bounded by validate(): the envelope's size already caps it


def entry_of(package: Package, size: int) -> CatalogueEntry:
    m = package.manifest
    return CatalogueEntry(name=m.name, version=m.version, rev=m.rev, author=m.author, sha256=package.sha256,
                          tier=m.tier.kind, price=m.tier.price, size=size)


def validate(catalogue: Catalogue) -> Catalogue:
    """Rules the decoder cannot express: count and one entry per name."""
    if len(catalogue.spirits) > MAX_ENTRIES:
        raise RemoteValueError(TOO_MANY, f"{len(catalogue.spirits)} entries, at most {MAX_ENTRIES}")
    names = [e.name for e in catalogue.spirits]
    if len(set(names)) != len(names):
        raise RemoteValueError(DUPLICATE, "a spirit name is listed twice")
    return catalogue


def seal_catalogue(identity: Identity, entries: Iterable[CatalogueEntry], now: float, *, carrier: Carrier) -> str:
    """Our signed catalogue (sorted by name), cut to what fits in one sealed value."""
    chosen = sorted(entries, key=lambda e: e.name)[:MAX_ENTRIES]
    while True:
        try:
            return seal(identity, Catalogue(identity.node_id, now, tuple(chosen)), carrier=carrier)
        except ValueError:
            if not chosen:
                raise
            chosen = chosen[:-1]


def open_catalogue(value: str, *, carrier: Carrier, now: float, ttl: float) -> Catalogue:
    """Verify a catalogue that arrived under ``carrier``; :class:`RemoteValueError` names why not."""
    if len(value) > MAX_SIGNED_VALUE:
        raise RemoteValueError("oversize", f"{len(value)} bytes > {MAX_SIGNED_VALUE}")
    return check_age(validate(verify_sealed(value, Catalogue, carrier=carrier)), now=now, ttl=ttl)
