//! The one error type of the link engine.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LinksError {
    /// A start parameter the engine cannot use (local configuration error).
    #[error("invalid link configuration: {0}")]
    InvalidConfig(String),
    /// A call argument the engine cannot use (local caller error).
    #[error("{0}")]
    InvalidArgument(String),
    /// The listen address is taken by another process.
    #[error("link address {0} is already in use; choose another link port")]
    AddressInUse(String),
    /// Binding the listen address failed for another reason.
    #[error("cannot listen on {0}: {1}")]
    Listen(String, String),
    /// The engine was shut down.
    #[error("the link engine is stopped")]
    Stopped,
}
