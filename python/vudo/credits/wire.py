"""Protocol ``/vudo/credits/1``: ledger submissions and reads forwarded to the Raft leader.

A node that is not the leader (a follower witness, or any node that does not
hold the ledger) sends its operation to a linked witness; a follower witness
passes it on to the leader it knows (one more hop at most, ``hops``). Every
message is a bounded msgspec struct, decoded with ``forbid_unknown_fields``
and size-capped before decoding. Operations stay signed by their author
(``from`` / owner / proposer / voter): a forwarding node can delay or drop
them, never forge or alter them, and a retry with the same id is idempotent
in the ledger. Genesis carries no signature: it is accepted only from a
ledger voter (bound to the Noise-authenticated sender, not to any field).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from vudo.credits.transaction import (
    MAX_ID_BYTES,
    MAX_MEMO_BYTES,
    CreditTransaction,
    LockRequest,
    NameClaim,
    PostRequest,
    Proposal,
    SignedOperation,
    SignedVote,
    VoidRequest,
)
from vudo.errors import RemoteValueError

CREDITS_PROTOCOL = "/vudo/credits/1"
RAFT_PROTOCOL = "/vudo/raft/1"

#: Largest encoded request or response accepted on /vudo/credits/1.
MAX_MESSAGE_BYTES = 512 * 1024
#: A submission travels at most: origin -> any witness -> leader.
MAX_HOPS = 1
#: Most accounts one read reply carries (the rest is cut off and flagged).
MAX_ACCOUNTS = 4096
MAX_WITNESSES = 64

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_BYTES)]
_NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_U64 = Annotated[int, msgspec.Meta(ge=0)]  # up to 2**64 - 1 (msgspec bounds stop at int64; the ledger checks)
_Hops = Annotated[int, msgspec.Meta(ge=0, le=MAX_HOPS)]
_Text = Annotated[str, msgspec.Meta(max_length=1024)]


def _checked_op(op: msgspec.Struct) -> None:
    """Bounds the structs in transaction.py do not carry themselves."""
    for name in ("id", "lock_id", "proposal_id"):
        value = getattr(op, name, None)
        if value is not None and not 0 < len(value.encode()) <= MAX_ID_BYTES:
            raise RemoteValueError("bad_field", f"{name} must be 1..{MAX_ID_BYTES} bytes")
    memo = getattr(op, "memo", "")
    if len(memo.encode()) > MAX_MEMO_BYTES * 4:  # the ledger refuses > MAX_MEMO_BYTES with a committed code
        raise RemoteValueError("bad_field", "memo far above the ledger's limit")
    if len(getattr(op, "signature", b"")) != 64:
        raise RemoteValueError("bad_field", "signature must be 64 bytes")


class Submit(msgspec.Struct, frozen=True, tag="submit", forbid_unknown_fields=True):
    """One signed ledger operation (exactly one of the fields is set)."""

    hops: _Hops = 0
    transfer: CreditTransaction | None = None
    lock: LockRequest | None = None
    post: PostRequest | None = None
    void: VoidRequest | None = None
    propose: Proposal | None = None
    vote: SignedVote | None = None
    claim: NameClaim | None = None

    @classmethod
    def of(cls, op: SignedOperation) -> Submit:
        """The submission carrying ``op`` (the inverse of :meth:`op`)."""
        match op:
            case CreditTransaction():
                return cls(transfer=op)
            case LockRequest():
                return cls(lock=op)
            case PostRequest():
                return cls(post=op)
            case VoidRequest():
                return cls(void=op)
            case Proposal():
                return cls(propose=op)
            case NameClaim():
                return cls(claim=op)
            case SignedVote():
                return cls(vote=op)

    def op(self) -> SignedOperation:
        ops = [o for o in (self.transfer, self.lock, self.post, self.void, self.propose, self.vote, self.claim) if o is not None]
        if len(ops) != 1:
            raise RemoteValueError("bad_submit", f"a submission carries exactly one operation, not {len(ops)}")
        return ops[0]


class Genesis(msgspec.Struct, frozen=True, tag="genesis", forbid_unknown_fields=True):
    allocations: Annotated[tuple[tuple[_NodeId, _U64], ...], msgspec.Meta(max_length=MAX_ACCOUNTS)]
    witnesses: Annotated[tuple[_NodeId, ...], msgspec.Meta(min_length=1, max_length=MAX_WITNESSES)]
    threshold_permille: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    timestamp: _U64
    hops: _Hops = 0


ReadWhat = Literal["summary", "accounts", "account", "record", "proposal", "history", "name"]
#: Most entries of an account's history one read returns.
MAX_HISTORY = 1000


class Read(msgspec.Struct, frozen=True, tag="read", forbid_unknown_fields=True):
    """A linearizable read served by the leader (``key``: the account, op or proposal id)."""

    what: ReadWhat
    key: Annotated[str, msgspec.Meta(max_length=128)] = ""
    hops: _Hops = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_HISTORY)] = 100


Request = Submit | Genesis | Read


class Committed(msgspec.Struct, frozen=True, tag="committed", forbid_unknown_fields=True):
    outcome: Literal["applied", "exists"]
    index: _U64


class Refused(msgspec.Struct, frozen=True, tag="refused", forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    message: _Text = ""
    leader: _NodeId | None = None


class AccountOut(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    node_id: _NodeId
    balance: _U64
    locked: _U64
    available: _U64
    earned_total: _U64
    spent_total: _U64


class SummaryOut(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    total_minted: _U64
    pool: _U64
    sum_balances: _U64
    leader: _NodeId | None
    term: _U64
    last_applied: _U64 | None
    witnesses: Annotated[tuple[_NodeId, ...], msgspec.Meta(max_length=MAX_WITNESSES)]
    state_hash: Annotated[str, msgspec.Meta(max_length=128)]
    accounts: _U64 = 0
    open_locks: _U64 = 0
    threshold_permille: _U64 = 0
    voters: Annotated[tuple[_NodeId, ...], msgspec.Meta(max_length=MAX_WITNESSES)] = ()
    state: Annotated[str, msgspec.Meta(max_length=32)] = ""


class RecordOut(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: _Id
    status: Literal["applied", "rejected"]
    code: Annotated[str, msgspec.Meta(max_length=64)]
    message: _Text
    index: _U64


class ProposalOut(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: _Id
    proposer: _NodeId
    action: Annotated[str, msgspec.Meta(max_length=32)]
    target: _NodeId
    amount: _U64
    state: Annotated[str, msgspec.Meta(max_length=32)]
    approvals: _U64
    rejections: _U64
    failure: _Text | None


class NameOut(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Who owns a spirit name and what it last published (``index``: the claim's Raft index)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    author: _NodeId
    rev: _U64
    package: Annotated[str, msgspec.Meta(min_length=64, max_length=64)]
    index: _U64


class HistoryOut(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    op_id: _Id
    kind: Annotated[str, msgspec.Meta(max_length=32)]
    index: _U64
    status: Literal["applied", "rejected"]
    code: Annotated[str, msgspec.Meta(max_length=64)]
    counterparty: Annotated[str, msgspec.Meta(max_length=128)]
    amount: _U64
    fee: _U64
    incoming: bool
    memo: _Text
    timestamp: _U64


class ReadReply(msgspec.Struct, frozen=True, tag="read_reply", forbid_unknown_fields=True):
    """What a read found, as of ``index`` (the applied index the leader's read barrier returned)."""

    index: _U64
    summary: SummaryOut | None = None
    accounts: Annotated[tuple[AccountOut, ...], msgspec.Meta(max_length=MAX_ACCOUNTS)] = ()
    truncated: bool = False
    record: RecordOut | None = None
    proposal: ProposalOut | None = None
    history: Annotated[tuple[HistoryOut, ...], msgspec.Meta(max_length=MAX_HISTORY)] = ()
    name: NameOut | None = None


Response = Committed | Refused | ReadReply

_request_decoder = msgspec.msgpack.Decoder(Request)
_response_decoder = msgspec.msgpack.Decoder(Response)
_encoder = msgspec.msgpack.Encoder()


def encode(message: Request | Response) -> bytes:
    return _encoder.encode(message)


def decode_request(data: bytes) -> Request:
    """A request from the wire, bounded and validated; ``RemoteValueError`` (the sender's fault) otherwise."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise RemoteValueError("oversize", f"{len(data)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        message: Request = _request_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise RemoteValueError("malformed", str(err)[:200]) from None
    if isinstance(message, Submit):
        _checked_op(message.op())
    return message


def decode_response(data: bytes) -> Response:
    if len(data) > MAX_MESSAGE_BYTES:
        raise RemoteValueError("oversize", f"{len(data)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        response: Response = _response_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise RemoteValueError("malformed", str(err)[:200]) from None
    return response
