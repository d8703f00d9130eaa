//! The one error type of the ledger crate, with machine-readable codes.

use serde::{Deserialize, Serialize};

/// Why a ledger operation was refused by the state machine. Recorded in the
/// replicated log, so it must be deterministic and serialisable.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectCode {
    InsufficientFunds,
    InvalidSignature,
    IdConflict,
    Overflow,
    MemoTooLong,
    InvalidArgument,
    UnknownLock,
    UnknownProposal,
    NotWitness,
    NotOwner,
    ProposalClosed,
    MintingClosed,
    NameOwned,
    StaleRev,
}

impl RejectCode {
    /// The stable machine-readable code (API error codes use the same words).
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::InsufficientFunds => "insufficient_funds",
            RejectCode::InvalidSignature => "invalid_signature",
            RejectCode::IdConflict => "id_conflict",
            RejectCode::Overflow => "overflow",
            RejectCode::MemoTooLong => "memo_too_long",
            RejectCode::InvalidArgument => "invalid_argument",
            RejectCode::UnknownLock => "unknown_lock",
            RejectCode::UnknownProposal => "unknown_proposal",
            RejectCode::NotWitness => "not_witness",
            RejectCode::NotOwner => "not_owner",
            RejectCode::ProposalClosed => "proposal_closed",
            RejectCode::MintingClosed => "minting_closed",
            RejectCode::NameOwned => "name_owned",
            RejectCode::StaleRev => "stale_rev",
        }
    }
}

/// Every failure the crate reports to its host.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum LedgerError {
    /// The state machine refused the operation (the refusal is committed).
    #[error("{}: {message}", code.as_str())]
    Rejected { code: RejectCode, message: String },
    /// This node is not the leader; submit to `leader` (a PeerId) instead.
    #[error("not the leader; forward to {leader:?}")]
    NotLeader { leader: Option<String> },
    /// No leader is known (election in progress or no quorum); retry later with the same id.
    #[error("no leader is known right now; retry with the same id")]
    NoLeader,
    /// The caller passed a value that cannot be used (local error).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A remote peer sent bytes that do not decode or are too large (remote error).
    #[error("bad message from {peer}: {reason}")]
    BadMessage { peer: String, reason: String },
    /// A remote peer that is not a current cluster member spoke Raft to us.
    #[error("{peer} is not a member of the ledger cluster; its RPC was refused")]
    NotMember { peer: String },
    /// Durable storage failed (local error: disk, permissions, corruption).
    #[error("storage: {0}")]
    Storage(String),
    /// The consensus engine stopped or failed.
    #[error("consensus engine: {0}")]
    Raft(String),
    /// The node was shut down.
    #[error("the ledger node is stopped")]
    Stopped,
}

impl LedgerError {
    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            LedgerError::Rejected { code, .. } => code.as_str(),
            LedgerError::NotLeader { .. } => "not_leader",
            LedgerError::NoLeader => "no_leader",
            LedgerError::InvalidArgument(_) => "invalid_argument",
            LedgerError::BadMessage { .. } => "bad_message",
            LedgerError::NotMember { .. } => "not_member",
            LedgerError::Storage(_) => "storage",
            LedgerError::Raft(_) => "raft",
            LedgerError::Stopped => "stopped",
        }
    }
}

impl From<redb::Error> for LedgerError {
    fn from(err: redb::Error) -> Self {
        LedgerError::Storage(err.to_string())
    }
}
