//! NodeId <-> libp2p PeerId conversions.

use libp2p_identity::{ed25519, PeerId, PublicKey};
use pyo3::prelude::*;

use crate::errors::CoreFailure;

/// libp2p PeerId string of a 32-byte Ed25519 public key.
#[pyfunction]
fn peer_id_from_public_key(public_key: &[u8]) -> Result<String, CoreFailure> {
    let key = ed25519::PublicKey::try_from_bytes(public_key).map_err(|err| {
        CoreFailure::InvalidArgument(format!(
            "not a valid Ed25519 public key ({} bytes): {err}",
            public_key.len()
        ))
    })?;
    Ok(PeerId::from_public_key(&PublicKey::from(key)).to_string())
}

/// The Ed25519 public key embedded in a PeerId string.
#[pyfunction]
fn public_key_from_peer_id(peer_id: &str) -> Result<Vec<u8>, CoreFailure> {
    let invalid = |why: String| CoreFailure::InvalidArgument(format!("invalid node id {peer_id:?}: {why}"));
    if peer_id.len() > 128 {
        return Err(invalid("longer than 128 characters".into()));
    }
    let parsed: PeerId = peer_id.parse().map_err(|err| invalid(format!("{err}")))?;
    let multihash = parsed.as_ref();
    if multihash.code() != 0 {
        return Err(invalid("not an inline (identity-hashed) key".into()));
    }
    let key = PublicKey::try_decode_protobuf(multihash.digest()).map_err(|err| invalid(format!("{err}")))?;
    let key = key.try_into_ed25519().map_err(|_| invalid("not an Ed25519 key".into()))?;
    Ok(key.to_bytes().to_vec())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(peer_id_from_public_key, m)?)?;
    m.add_function(wrap_pyfunction!(public_key_from_peer_id, m)?)?;
    Ok(())
}
