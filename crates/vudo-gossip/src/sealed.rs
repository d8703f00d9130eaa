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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpSocket as CodecSocket};
use chitchat::ChitchatEnvelope;
use tokio::net::UdpSocket;

use crate::frames::{self, Reassembler, Unframed};
use crate::pipes::{Pipes, LOOPBACK, PIPE_SEND_TIMEOUT};
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
        let public = UdpSocket::bind(listen_addr)
            .await
            .with_context(|| format!("failed to bind to {listen_addr}/UDP for gossip"))?;
        let codec = CodecSocket::open(LOOPBACK.parse()?).await?;
        let codec_addr = codec.local_addr()?;
        let stats = lock(&self.keyring).stats.clone();
        Ok(Box::new(SealedSocket {
            public,
            codec,
            codec_addr,
            pipes: Pipes::default(),
            keyring: self.keyring.clone(),
            stats,
            counters: self.counters.clone(),
            reassembler: Reassembler::default(),
            message_id: 0,
            buf: vec![0u8; MAX_DATAGRAM + 1].into_boxed_slice(),
            send_buf: vec![0u8; MAX_DATAGRAM + 1].into_boxed_slice(),
        }))
    }
}

struct SealedSocket {
    public: UdpSocket,
    codec: CodecSocket,
    codec_addr: SocketAddr,
    pipes: Pipes,
    keyring: SharedKeyring,
    stats: Arc<KeyringStats>,
    counters: Arc<TransportCounters>,
    reassembler: Reassembler,
    message_id: u32,
    buf: Box<[u8]>,
    send_buf: Box<[u8]>,
}

#[async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.public.local_addr()?)
    }

    async fn send(&mut self, to: SocketAddr, envelope: ChitchatEnvelope) -> anyhow::Result<SendOutcome> {
        let codec_addr = self.codec_addr;
        let pipe_addr = self.pipes.get_or_open(to)?.addr;
        self.codec.send(pipe_addr, envelope).await?;
        let pipe = self.pipes.get_or_open(to)?;
        let len = loop {
            let (len, from) = tokio::time::timeout(Duration::from_secs(1), pipe.socket.recv_from(&mut self.send_buf))
                .await
                .context("chitchat's encoder did not deliver the datagram")??;
            if from == codec_addr {
                break len;
            }
            self.counters.foreign_loopback.fetch_add(1, Ordering::Relaxed);
        };
        self.message_id = self.message_id.wrapping_add(1);
        let Some(plaintexts) = frames::frame(&self.send_buf[..len], self.message_id, frame_limit()) else {
            self.stats.count(Reject::Oversize);
            anyhow::bail!("a chitchat message of {len} bytes cannot be framed; dropped");
        };
        let sealed: Vec<Vec<u8>> = {
            let ring = lock(&self.keyring);
            let now = now_ms();
            plaintexts.iter().map(|p| ring.seal(p, now)).collect::<Result<_, _>>()?
        };
        if sealed.len() > 1 {
            self.counters.fragmented.fetch_add(1, Ordering::Relaxed);
        }
        let mut num_bytes_sent = 0;
        for datagram in sealed {
            num_bytes_sent += self.public.send_to(&datagram, to).await?;
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
        }
        Ok(SendOutcome { num_bytes_sent })
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            tokio::select! {
                biased;
                outcome = self.codec.recv() => {
                    let outcome = outcome?;
                    match self.pipes.peer(&outcome.from_addr) {
                        Some(peer) => return Ok(RecvOutcome { from_addr: peer, ..outcome }),
                        None => { self.counters.foreign_loopback.fetch_add(1, Ordering::Relaxed); }
                    }
                }
                received = self.public.recv_from(&mut self.buf) => {
                    let (len, from) = match received {
                        Ok(ok) => ok,
                        Err(err) if matches!(err.kind(), std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::OutOfMemory) => continue,
                        Err(err) => return Err(err).context("fatal UDP recv error"),
                    };
                    self.counters.received.fetch_add(1, Ordering::Relaxed);
                    if len > MAX_DATAGRAM {
                        self.stats.count(Reject::Oversize);
                        continue;
                    }
                    let opened = lock(&self.keyring).open(&self.buf[..len], now_ms());
                    let Ok(plain) = opened else { continue };
                    match self.reassembler.accept(from, plain) {
                        Unframed::Message(message) => {
                            let codec_addr = self.codec_addr;
                            let pipe = self.pipes.get_or_open(from)?;
                            // A new pipe is not known writable yet (`try_send_to` would fail), so wait
                            // for it; loopback never blocks for long: if it stays full, drop like UDP would.
                            let _ = tokio::time::timeout(PIPE_SEND_TIMEOUT, pipe.socket.send_to(&message, codec_addr)).await;
                        }
                        Unframed::Pending => {}
                        Unframed::Invalid => self.stats.count(Reject::BadFrame),
                    }
                }
            }
        }
    }
}
