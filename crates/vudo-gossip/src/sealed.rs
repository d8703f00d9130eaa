//! The chitchat transport over UDP sealed with the cluster keyring.
//!
//! Theory of operation
//! -------------------
//! chitchat 0.13 encodes its messages only inside its own sockets (the wire
//! codec is crate-private), so a sealing transport cannot simply turn an
//! envelope into bytes. [`SealedTransport`] therefore keeps chitchat's own
//! UDP socket as a *codec* bound to an ephemeral loopback port, and talks to
//! it through one loopback "pipe" socket per remote peer:
//!
//! ```text
//!  send(to, envelope):  codec --plain--> pipe[to] ; seal ; public --sealed--> to
//!  recv():              public <--sealed-- from ; open ; pipe[from] --plain--> codec
//!                       codec.recv() yields (pipe[from], envelope) -> (from, envelope)
//! ```
//!
//! A message too large for one sealed datagram (chitchat fills datagrams to
//! the UDP limit; sealing adds a few dozen bytes) travels as sealed fragments
//! (see [`crate::frames`]).
//!
//! The pipe a datagram arrives through names its real sender, so no
//! bookkeeping can get out of step even when chitchat drops an undecodable
//! payload or cancels a `recv`. Only datagrams that opened under an
//! installed key ever reach the codec; the codec and the pipes accept
//! datagrams only from each other (anything else on those loopback ports is
//! dropped and counted), so chitchat never sees an unauthenticated byte.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use chitchat::ChitchatEnvelope;

use crate::frames::{self, Reassembler, Unframed};
use crate::pipes::{Incoming, Relay};
use crate::keyring::{Keyring, KeyringStats, Reject, OVERHEAD};

/// Largest UDP payload (IPv4).
pub const MAX_DATAGRAM: usize = 65_507;

/// Tests lower the framing limit to exercise fragmentation (0: the real limit).
#[cfg(test)]
pub(crate) static TEST_FRAME_LIMIT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn frame_limit() -> usize {
    #[cfg(test)]
    {
        let limit = TEST_FRAME_LIMIT.load(Ordering::Relaxed);
        if limit > 0 {
            return limit;
        }
    }
    MAX_DATAGRAM - OVERHEAD
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Datagram counters of one gossip socket.
#[derive(Debug, Default)]
pub struct TransportCounters {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Datagrams on the internal loopback ports that did not come from us.
    pub foreign_loopback: AtomicU64,
    /// Messages too large for one sealed datagram, sent as fragments.
    pub fragmented: AtomicU64,
}

/// A shared, live-rotatable keyring.
pub type SharedKeyring = Arc<Mutex<Keyring>>;

fn lock(ring: &SharedKeyring) -> std::sync::MutexGuard<'_, Keyring> {
    ring.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct SealedTransport {
    pub keyring: SharedKeyring,
    pub counters: Arc<TransportCounters>,
}

#[async_trait]
impl Transport for SealedTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let stats = lock(&self.keyring).stats.clone();
        Ok(Box::new(SealedSocket {
            relay: Relay::open(listen_addr, self.counters.clone()).await?,
            keyring: self.keyring.clone(),
            stats,
            reassembler: Reassembler::default(),
            message_id: 0,
        }))
    }
}

struct SealedSocket {
    relay: Relay,
    keyring: SharedKeyring,
    stats: Arc<KeyringStats>,
    reassembler: Reassembler,
    message_id: u32,
}

#[async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.relay.local_addr()
    }

    async fn send(&mut self, to: SocketAddr, envelope: ChitchatEnvelope) -> anyhow::Result<SendOutcome> {
        self.message_id = self.message_id.wrapping_add(1);
        let message_id = self.message_id;
        let plain = self.relay.encode(to, envelope).await?;
        let len = plain.len();
        let Some(plaintexts) = frames::frame(plain, message_id, frame_limit()) else {
            self.stats.count(Reject::Oversize);
            anyhow::bail!("a chitchat message of {len} bytes cannot be framed; dropped");
        };
        let sealed: Vec<Vec<u8>> = {
            let ring = lock(&self.keyring);
            let now = now_ms();
            plaintexts.iter().map(|p| ring.seal(p, now)).collect::<Result<_, _>>()?
        };
        if sealed.len() > 1 {
            self.relay.counters.fragmented.fetch_add(1, Ordering::Relaxed);
        }
        let mut num_bytes_sent = 0;
        for datagram in sealed {
            num_bytes_sent += self.relay.send_public(&datagram, to).await?;
        }
        Ok(SendOutcome { num_bytes_sent })
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let (from, len) = match self.relay.next().await? {
                Incoming::Decoded(outcome) => return Ok(outcome),
                Incoming::Datagram { from, len } => (from, len),
            };
            if len > MAX_DATAGRAM {
                self.stats.count(Reject::Oversize);
                continue;
            }
            let opened = lock(&self.keyring).open(self.relay.datagram(len), now_ms());
            let Ok(plain) = opened else { continue };
            match self.reassembler.accept(from, plain) {
                Unframed::Message(message) => self.relay.deliver(from, &message).await?,
                Unframed::Pending => {}
                Unframed::Invalid => self.stats.count(Reject::BadFrame),
            }
        }
    }
}
