//! VUDO's credit ledger: a deterministic, signature-checked state machine
//! ([`ledger`]) replicated by openraft 0.9 (storage v2) over a durable redb
//! store ([`store`]), with a host-driven byte transport ([`network`]) and a
//! node façade on a private tokio runtime ([`node`]).
//!
//! Pure Rust: no Python types here; `vudo-core` binds it.

pub mod error;
pub mod ledger;
pub mod memory;
pub mod network;
pub mod node;
pub mod store;
pub mod types;

pub use error::{LedgerError, RejectCode};
pub use ledger::{
    Account, Action, Command, CreditTransaction, Genesis, Ledger, LockOp, NameClaimOp, NameRecord, Outcome, PostOp,
    ProposalState, ProposeOp, Summary, VoidOp, VoteOp, DEFAULT_THRESHOLD_PERMILLE, MAX_MEMO_BYTES, MAX_NAME_BYTES,
    UNITS_PER_CREDIT,
};
pub use memory::MemoryNetwork;
pub use network::{OutboundRpc, MAX_RPC_BYTES};
pub use node::{Committed, LedgerHandle, LedgerNode, NodeConfig, Status};
pub use types::{peer_id_of, raft_id, verifying_key, TypeConfig};

#[cfg(test)]
mod tests;
