"""Ledger operations as signed msgspec structs (genes ``CreditTransaction``, ``SignedVote``).

Every operation is signed by the node it spends from (or the witness that
proposes or votes) over its *canonical bytes*: the domain tag
``vudo.credits.v1``, the operation kind, then each field in a fixed order —
strings as a 4-byte big-endian length plus UTF-8, integers as 8-byte
big-endian unsigned, booleans as one byte. The Rust ledger
(``vudo_ledger::ledger::Command::signing_bytes``) builds the same bytes and
verifies the Ed25519 signature against the key inlined in the NodeId.

Amounts are integer atomic units (1 credit = 1 000 000 units); timestamps are
unix milliseconds chosen by the signer (the ledger never reads a clock).
"""

from __future__ import annotations

import secrets
from decimal import Decimal, InvalidOperation
from typing import Literal

import msgspec

from vudo.identity import Identity, verify_signature

UNITS_PER_CREDIT = 1_000_000
MAX_MEMO_BYTES = 256
MAX_ID_BYTES = 64
SIGNING_DOMAIN = b"vudo.credits.v1"
_U64 = 2**64

Field = str | int | bool


def canonical_bytes(kind: str, *fields: Field) -> bytes:
    """The canonical encoding of an operation's signed fields."""
    out = bytearray()

    def put(data: bytes) -> None:
        out.extend(len(data).to_bytes(4, "big"))
        out.extend(data)

    put(SIGNING_DOMAIN)
    put(kind.encode())
    for value in fields:
        if isinstance(value, bool):
            out.append(1 if value else 0)
        elif isinstance(value, int):
            if not 0 <= value < _U64:
                raise ValueError(f"{value} does not fit an unsigned 64-bit field")
            out.extend(value.to_bytes(8, "big"))
        else:
            put(value.encode())
    return bytes(out)


def new_op_id() -> str:
    """A fresh random operation id (128 bits, hex). Reuse it when retrying the same operation."""
    return secrets.token_hex(16)


def credits_to_units(text: str) -> int:
    """Parse a decimal credit amount ("1.5") into units exactly; more than 6 decimals is an error."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal number of credits") from None
    units = value * UNITS_PER_CREDIT
    if not value.is_finite() or units != units.to_integral_value():
        raise ValueError(f"{text!r} has more than 6 decimals (1 unit = 0.000001 credit)")
    if not 0 <= units < _U64:
        raise ValueError(f"{text!r} is outside 0 .. 2**64 - 1 units")
    return int(units)


def format_units(units: int) -> str:
    """Units as a decimal credit string ("1.5"), exact."""
    whole, frac = divmod(units, UNITS_PER_CREDIT)
    return f"{whole}.{frac:06d}".rstrip("0").rstrip(".")


class CreditTransaction(msgspec.Struct, frozen=True, kw_only=True):
    """A transfer of ``amount`` units plus ``fee`` (to the Bondieu pool), signed by ``from_``."""

    id: str
    from_: str = msgspec.field(name="from")
    to: str
    amount: int
    fee: int = 0
    memo: str = ""
    timestamp: int
    signature: bytes = b""

    def signing_bytes(self) -> bytes:
        return canonical_bytes(
            "transfer", self.id, self.from_, self.to, self.amount, self.fee, self.memo, self.timestamp
        )

    def signed(self, identity: Identity) -> CreditTransaction:
        return msgspec.structs.replace(self, signature=identity.sign(self.signing_bytes()))

    @property
    def valid_signature(self) -> bool:
        """Constraint ``valid_signature`` (the ledger checks it again on apply)."""
        return verify_signature(self.from_, self.signing_bytes(), self.signature)


class LockRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Reserve ``amount`` of the owner's available units (to pay for an allocation)."""

    id: str
    owner: str
    amount: int
    memo: str = ""
    timestamp: int
    signature: bytes = b""

    def signing_bytes(self) -> bytes:
        return canonical_bytes("lock", self.id, self.owner, self.amount, self.memo, self.timestamp)

    def signed(self, identity: Identity) -> LockRequest:
        return msgspec.structs.replace(self, signature=identity.sign(self.signing_bytes()))


class PostRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Pay ``amount`` (at most the lock) of an open lock to ``payee``; the rest is released."""

    id: str
    lock_id: str
    owner: str
    payee: str
    amount: int
    timestamp: int
    signature: bytes = b""

    def signing_bytes(self) -> bytes:
        return canonical_bytes(
            "post", self.id, self.lock_id, self.owner, self.payee, self.amount, self.timestamp
        )

    def signed(self, identity: Identity) -> PostRequest:
        return msgspec.structs.replace(self, signature=identity.sign(self.signing_bytes()))


class VoidRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Release an open lock entirely."""

    id: str
    lock_id: str
    owner: str
    timestamp: int
    signature: bytes = b""

    def signing_bytes(self) -> bytes:
        return canonical_bytes("void", self.id, self.lock_id, self.owner, self.timestamp)

    def signed(self, identity: Identity) -> VoidRequest:
        return msgspec.structs.replace(self, signature=identity.sign(self.signing_bytes()))


class NameClaim(msgspec.Struct, frozen=True, kw_only=True):
    """The author publishes spirit ``name`` at ``rev`` (package sha256 hex): the first claim owns the name,
    later ones must be by the same author with a higher ``rev`` (the ledger checks both)."""

    id: str
    name: str
    author: str
    rev: int
    package: str
    timestamp: int
    signature: bytes = b""

    def signing_bytes(self) -> bytes:
        return canonical_bytes("claim_name", self.id, self.name, self.author, self.rev, self.package, self.timestamp)

    def signed(self, identity: Identity) -> NameClaim:
        return msgspec.structs.replace(self, signature=identity.sign(self.signing_bytes()))


ActionKind = Literal["mint", "add_witness", "remove_witness"]


class Proposal(msgspec.Struct, frozen=True, kw_only=True):
    """A witness proposes a quorum decision (``amount`` is 0 for witness changes)."""

    id: str
    proposer: str
    action: ActionKind
    target: str
    amount: int = 0
    timestamp: int
    signature: bytes = b""

    def signing_bytes(self) -> bytes:
        return canonical_bytes(
            "propose", self.id, self.proposer, self.action, self.target, self.amount, self.timestamp
        )

    def signed(self, identity: Identity) -> Proposal:
        return msgspec.structs.replace(self, signature=identity.sign(self.signing_bytes()))


class SignedVote(msgspec.Struct, frozen=True, kw_only=True):
    """A witness's vote on a proposal (one per witness and proposal)."""

    proposal_id: str
    voter: str
    approve: bool
    timestamp: int
    signature: bytes = b""

    def signing_bytes(self) -> bytes:
        return canonical_bytes("vote", self.proposal_id, self.voter, self.approve, self.timestamp)

    def signed(self, identity: Identity) -> SignedVote:
        return msgspec.structs.replace(self, signature=identity.sign(self.signing_bytes()))


#: Every operation a node signs and submits to the ledger.
SignedOperation = CreditTransaction | LockRequest | PostRequest | VoidRequest | Proposal | SignedVote | NameClaim
