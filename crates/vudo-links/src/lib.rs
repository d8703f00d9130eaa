//! Direct links between VUDO nodes.
//!
//! A pure engine (no Python types) over rust-libp2p: TCP, Noise XX with the
//! node's own Ed25519 key (the libp2p PeerId *is* the NodeId), yamux, ping
//! (latency, liveness), identify, and request/response protocols carrying
//! raw bytes with a hard size bound. Connection limits are enforced here.
//!
//! The host drives it through [`LinksNode`]: every call returns at once and
//! its outcome arrives as a [`LinkEvent`] on a bounded queue the host pulls
//! (with a readable file descriptor to wake an event loop).

mod behaviour;
mod codec;
mod config;
mod driver;
mod error;
mod events;
mod node;
mod runtime;
mod stats;

pub use config::{LinksConfig, MAX_MESSAGE_SIZE_LIMIT, MAX_PROTOCOLS};
pub use error::LinksError;
pub use events::{Direction, EventQueue, LinkEvent};
pub use libp2p::{Multiaddr, PeerId};
pub use node::{peer_id_of_secret, LinksNode};
pub use stats::{Stats, StatsSnapshot};
