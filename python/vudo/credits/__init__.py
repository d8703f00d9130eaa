"""Credits: building and signing ledger operations, and an asyncio client of the Raft ledger.

The ledger itself (deterministic, signature-checked apply, atomic with
``last_applied``) is the Rust engine ``vudo._core.Ledger``; this package
builds what it applies and awaits what it commits.
"""

from vudo.credits.client import Committed, LedgerClient, LedgerRefused
from vudo.credits.transaction import (
    MAX_ID_BYTES,
    MAX_MEMO_BYTES,
    SIGNING_DOMAIN,
    UNITS_PER_CREDIT,
    CreditTransaction,
    LockRequest,
    NameClaim,
    PostRequest,
    Proposal,
    SignedVote,
    VoidRequest,
    credits_to_units,
    format_units,
    new_op_id,
)

__all__ = [
    "MAX_ID_BYTES",
    "MAX_MEMO_BYTES",
    "SIGNING_DOMAIN",
    "UNITS_PER_CREDIT",
    "Committed",
    "CreditTransaction",
    "LedgerClient",
    "LedgerRefused",
    "LockRequest",
    "NameClaim",
    "PostRequest",
    "Proposal",
    "SignedVote",
    "VoidRequest",
    "credits_to_units",
    "format_units",
    "new_op_id",
]
