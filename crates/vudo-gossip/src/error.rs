use std::net::SocketAddr;

/// Everything that can go wrong in the gossip engine.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    #[error("gossip address {0} is already in use by another process; stop it or pick another --gossip-port")]
    AddressInUse(SocketAddr),
    #[error("cannot bind gossip socket {0}: {1}")]
    Bind(SocketAddr, String),
    #[error("invalid gossip configuration: {0}")]
    InvalidConfig(String),
    #[error("gossip node is stopped")]
    Stopped,
    #[error("gossip key error: {0}")]
    InvalidKey(String),
    #[error("this node gossips in the open (no keyring); restart it with a gossip key to manage keys")]
    OpenGossip,
    #[error("gossip shutdown failed: {0}")]
    Shutdown(String),
}
