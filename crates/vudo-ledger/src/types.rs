//! Raft type configuration and the NodeId <-> raft id mapping.
//!
//! Raft ids are `u64` (what openraft's storage suite and metrics expect). A
//! ledger member is named by its libp2p PeerId string; its raft id is derived
//! from that string (first 8 bytes of a domain-separated SHA-256), and the
//! PeerId itself travels in the membership as `BasicNode.addr`, so every node
//! can map a raft id back to the authenticated peer it must talk to.

use std::io::Cursor;

use libp2p_identity::{PeerId, PublicKey};
use sha2::{Digest, Sha256};

use crate::error::LedgerError;
use crate::ledger::{Command, Outcome};

openraft::declare_raft_types!(
    /// The ledger's openraft type configuration.
    pub TypeConfig:
        D = Command,
        R = Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Longest PeerId string accepted anywhere.
pub const MAX_PEER_ID_LEN: usize = 128;

/// The raft id of a member named by its PeerId string.
pub fn raft_id(peer_id: &str) -> u64 {
    let digest = Sha256::new().chain_update(b"vudo-ledger raft id\0").chain_update(peer_id.as_bytes()).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The Ed25519 verifying key inlined in a PeerId string (`12D3KooW...`).
pub fn verifying_key(peer_id: &str) -> Result<ed25519_dalek::VerifyingKey, LedgerError> {
    let invalid = |why: &str| LedgerError::InvalidArgument(format!("node id {peer_id:?} {why}"));
    if peer_id.len() > MAX_PEER_ID_LEN {
        return Err(invalid("is longer than 128 characters"));
    }
    let parsed: PeerId = peer_id.parse().map_err(|_| invalid("is not a libp2p PeerId"))?;
    let multihash = parsed.as_ref();
    if multihash.code() != 0 {
        return Err(invalid("does not inline its public key"));
    }
    let key = PublicKey::try_decode_protobuf(multihash.digest()).map_err(|_| invalid("holds no valid public key"))?;
    let key = key.try_into_ed25519().map_err(|_| invalid("is not an Ed25519 key"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&key.to_bytes()).map_err(|_| invalid("holds an invalid Ed25519 point"))
}

/// Whether `peer_id` is a well-formed Ed25519 PeerId.
pub fn is_valid_peer_id(peer_id: &str) -> bool {
    verifying_key(peer_id).is_ok()
}

/// The PeerId string of an Ed25519 public key (32 bytes).
pub fn peer_id_of(public_key: &[u8; 32]) -> Result<String, LedgerError> {
    let key = libp2p_identity::ed25519::PublicKey::try_from_bytes(public_key)
        .map_err(|_| LedgerError::InvalidArgument("not a valid Ed25519 public key".into()))?;
    Ok(PeerId::from_public_key(&PublicKey::from(key)).to_string())
}
