"""Gene ``capability``: what a node offers to the network."""

from __future__ import annotations

from typing import Annotated

import msgspec

_U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
_U64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_Protocol = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9.+-]*$")]


class Compute(msgspec.Struct, frozen=True, tag="compute", tag_field="kind", forbid_unknown_fields=True):
    cores: _U32
    memory_mb: _U64


class Storage(msgspec.Struct, frozen=True, tag="storage", tag_field="kind", forbid_unknown_fields=True):
    capacity_mb: _U64
    iops: _U32


class Gateway(msgspec.Struct, frozen=True, tag="gateway", tag_field="kind", forbid_unknown_fields=True):
    protocols: Annotated[tuple[_Protocol, ...], msgspec.Meta(max_length=16)]


class Witness(msgspec.Struct, frozen=True, tag="witness", tag_field="kind", forbid_unknown_fields=True):
    stake: _U64


Capability = Compute | Storage | Gateway | Witness
Capabilities = Annotated[tuple[Capability, ...], msgspec.Meta(max_length=8)]


def is_witness(capabilities: tuple[Capability, ...]) -> bool:
    return any(isinstance(c, Witness) for c in capabilities)
