//! Start parameters of a link engine.

use std::time::Duration;

use libp2p::{Multiaddr, StreamProtocol};

use crate::error::LinksError;

/// Most request/response protocols one engine can carry.
pub const MAX_PROTOCOLS: usize = 8;
/// Largest message size the engine accepts as a limit (16 MiB).
pub const MAX_MESSAGE_SIZE_LIMIT: usize = 16 * 1024 * 1024;

/// Everything a link engine needs to start.
#[derive(Clone, Debug)]
pub struct LinksConfig {
    /// The node's Ed25519 secret key (32 bytes): its libp2p PeerId is the NodeId.
    pub secret_key: [u8; 32],
    /// Where to listen, e.g. `/ip4/127.0.0.1/tcp/7600` (port 0 picks a free port).
    pub listen_addr: Multiaddr,
    /// Request/response protocol ids, e.g. `/vudo/hyphal/1` (at most [`MAX_PROTOCOLS`]).
    pub protocols: Vec<String>,
    /// Largest request or response, in bytes, in either direction.
    pub max_message_size: usize,
    /// Most established connections in total.
    pub max_connections: u32,
    /// Most established connections to one peer (2 tolerates simultaneous dials).
    pub max_connections_per_peer: u32,
    /// Most inbound connections still in their handshake.
    pub max_pending_incoming: u32,
    /// How long a TCP connection may take to finish Noise + yamux.
    pub handshake_timeout: Duration,
    /// How long a request may wait for its response.
    pub request_timeout: Duration,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Payload bytes of inbound requests waiting for the host's answer, over
    /// all peers; requests beyond it are refused at once (and counted).
    pub max_inbound_bytes: usize,
    /// Events kept for the host before new ones are dropped (and counted).
    pub max_queued_events: usize,
    /// Identify's agent version, e.g. `vudo/0.2.0`.
    pub agent_version: String,
}

impl LinksConfig {
    /// Defaults for everything but the key, the address and the protocols.
    pub fn new(secret_key: [u8; 32], listen_addr: Multiaddr, protocols: Vec<String>) -> Self {
        Self {
            secret_key,
            listen_addr,
            protocols,
            max_message_size: 1024 * 1024,
            max_connections: 256,
            max_connections_per_peer: 2,
            max_pending_incoming: 64,
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(20),
            max_inbound_bytes: 64 * 1024 * 1024,
            max_queued_events: 65_536,
            agent_version: concat!("vudo/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }

    /// The protocols as libp2p stream protocols, checked.
    pub(crate) fn stream_protocols(&self) -> Result<Vec<StreamProtocol>, LinksError> {
        if self.protocols.len() > MAX_PROTOCOLS {
            return Err(LinksError::InvalidConfig(format!(
                "{} protocols given, at most {MAX_PROTOCOLS} are supported",
                self.protocols.len()
            )));
        }
        let mut out: Vec<StreamProtocol> = Vec::new();
        for p in &self.protocols {
            let proto = StreamProtocol::try_from_owned(p.clone()).map_err(|_| {
                LinksError::InvalidConfig(format!("protocol id {p:?} must start with '/'"))
            })?;
            if p.len() > 128 {
                return Err(LinksError::InvalidConfig(format!("protocol id {p:?} is longer than 128 bytes")));
            }
            if out.iter().any(|q| q.as_ref() == p) {
                return Err(LinksError::InvalidConfig(format!("protocol id {p:?} is given twice")));
            }
            out.push(proto);
        }
        Ok(out)
    }

    pub(crate) fn validate(&self) -> Result<(), LinksError> {
        let bad = |why: &str| Err(LinksError::InvalidConfig(why.to_string()));
        if self.max_message_size == 0 || self.max_message_size > MAX_MESSAGE_SIZE_LIMIT {
            return bad("max_message_size must be between 1 byte and 16 MiB");
        }
        if self.max_connections == 0 || self.max_connections_per_peer == 0 || self.max_pending_incoming == 0 {
            return bad("connection limits must be at least 1");
        }
        if self.max_inbound_bytes < self.max_message_size {
            return bad("max_inbound_bytes must be at least max_message_size");
        }
        if self.max_queued_events == 0 {
            return bad("max_queued_events must be at least 1");
        }
        for (name, d) in [
            ("handshake_timeout", self.handshake_timeout),
            ("request_timeout", self.request_timeout),
            ("ping_interval", self.ping_interval),
            ("ping_timeout", self.ping_timeout),
        ] {
            if d.is_zero() {
                return Err(LinksError::InvalidConfig(format!("{name} must be positive")));
            }
        }
        self.stream_protocols().map(|_| ())
    }
}
