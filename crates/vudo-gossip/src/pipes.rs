//! Loopback "pipes": one per remote peer, so chitchat's own UDP socket can
//! serve as the codec of a transport that rewrites datagrams (see
//! [`crate::sealed`] and [`crate::guarded`]).
//!
//! The transport's codec socket (chitchat's `UdpSocket`, bound to an
//! ephemeral loopback port) sends to and receives from the pipe of a peer;
//! the pipe a datagram arrives through names its real sender.
//!
//! [`Relay`] is what both rewriting transports share: the public socket,
//! the codec and the pipes. `encode` turns an envelope into chitchat's bytes,
//! `next` waits for either a message the codec decoded (its sender named)
//! or a datagram on the public socket (for the transport to check), and
//! `deliver` hands checked bytes to the codec as coming from their sender.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chitchat::transport::{RecvOutcome, Socket, UdpSocket as CodecSocket};
use chitchat::ChitchatEnvelope;
use tokio::net::UdpSocket;

use crate::sealed::{TransportCounters, MAX_DATAGRAM};

/// Most peers with a pipe at once; the least recently opened is closed first.
const MAX_PIPES: usize = 512;
pub const LOOPBACK: &str = "127.0.0.1:0";
/// Longest wait to hand a datagram to the codec through a pipe.
pub const PIPE_SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(200);

pub struct Pipe {
    pub socket: UdpSocket,
    pub addr: SocketAddr,
}

#[derive(Default)]
pub struct Pipes {
    by_peer: HashMap<SocketAddr, Pipe>,
    peer_of: HashMap<SocketAddr, SocketAddr>,
    order: VecDeque<SocketAddr>,
}

impl Pipes {
    pub fn get_or_open(&mut self, peer: SocketAddr) -> anyhow::Result<&Pipe> {
        if !self.by_peer.contains_key(&peer) {
            if self.order.len() >= MAX_PIPES {
                if let Some(old) = self.order.pop_front() {
                    if let Some(pipe) = self.by_peer.remove(&old) {
                        self.peer_of.remove(&pipe.addr);
                    }
                }
            }
            let std_socket = std::net::UdpSocket::bind(LOOPBACK).context("cannot open a loopback gossip pipe")?;
            std_socket.set_nonblocking(true)?;
            let socket = UdpSocket::from_std(std_socket)?;
            let addr = socket.local_addr()?;
            self.peer_of.insert(addr, peer);
            self.order.push_back(peer);
            self.by_peer.insert(peer, Pipe { socket, addr });
        }
        self.by_peer.get(&peer).context("pipe vanished")
    }
}

impl Pipes {
    /// The peer whose pipe is bound at `pipe_addr`.
    pub fn peer(&self, pipe_addr: &SocketAddr) -> Option<SocketAddr> {
        self.peer_of.get(pipe_addr).copied()
    }
}

/// What [`Relay::next`] waited for.
pub enum Incoming {
    /// A message the codec decoded, with its real sender.
    Decoded(RecvOutcome),
    /// A datagram of `len` bytes on the public socket (in [`Relay::datagram`]), not yet checked.
    Datagram { from: SocketAddr, len: usize },
}

/// The public socket, chitchat's codec and the pipes between them.
pub struct Relay {
    public: UdpSocket,
    codec: CodecSocket,
    codec_addr: SocketAddr,
    pipes: Pipes,
    pub counters: Arc<TransportCounters>,
    buf: Box<[u8]>,
    send_buf: Box<[u8]>,
}

impl Relay {
    pub async fn open(listen_addr: SocketAddr, counters: Arc<TransportCounters>) -> anyhow::Result<Self> {
        let public = UdpSocket::bind(listen_addr)
            .await
            .with_context(|| format!("failed to bind to {listen_addr}/UDP for gossip"))?;
        let codec = CodecSocket::open(LOOPBACK.parse()?).await?;
        let codec_addr = codec.local_addr()?;
        Ok(Self {
            public,
            codec,
            codec_addr,
            pipes: Pipes::default(),
            counters,
            buf: vec![0u8; MAX_DATAGRAM + 1].into_boxed_slice(),
            send_buf: vec![0u8; MAX_DATAGRAM + 1].into_boxed_slice(),
        })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.public.local_addr()?)
    }

    /// chitchat's encoding of `envelope` for `to`.
    pub async fn encode(&mut self, to: SocketAddr, envelope: ChitchatEnvelope) -> anyhow::Result<&[u8]> {
        let codec_addr = self.codec_addr;
        let pipe_addr = self.pipes.get_or_open(to)?.addr;
        self.codec.send(pipe_addr, envelope).await?;
        let pipe = self.pipes.get_or_open(to)?;
        loop {
            let (len, from) = tokio::time::timeout(Duration::from_secs(1), pipe.socket.recv_from(&mut self.send_buf))
                .await
                .context("chitchat's encoder did not deliver the datagram")??;
            if from == codec_addr {
                return Ok(&self.send_buf[..len]);
            }
            self.counters.foreign_loopback.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Send bytes on the public socket (counted).
    pub async fn send_public(&self, datagram: &[u8], to: SocketAddr) -> anyhow::Result<usize> {
        let n = self.public.send_to(datagram, to).await?;
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    }

    /// Wait for a decoded message or a public datagram (counted as received).
    pub async fn next(&mut self) -> anyhow::Result<Incoming> {
        loop {
            tokio::select! {
                biased;
                outcome = self.codec.recv() => {
                    let outcome = outcome?;
                    match self.pipes.peer(&outcome.from_addr) {
                        Some(peer) => return Ok(Incoming::Decoded(RecvOutcome { from_addr: peer, ..outcome })),
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
                    return Ok(Incoming::Datagram { from, len });
                }
            }
        }
    }

    /// The bytes of the last [`Incoming::Datagram`].
    pub fn datagram(&self, len: usize) -> &[u8] {
        &self.buf[..len]
    }

    /// Hand checked bytes to the codec as coming from `from`.
    pub async fn deliver(&mut self, from: SocketAddr, bytes: &[u8]) -> anyhow::Result<()> {
        let codec_addr = self.codec_addr;
        let pipe = self.pipes.get_or_open(from)?;
        // A new pipe is not known writable yet (`try_send_to` would fail), so wait for it;
        // loopback never blocks for long: if its buffer stays full, drop like UDP would.
        let _ = tokio::time::timeout(PIPE_SEND_TIMEOUT, pipe.socket.send_to(bytes, codec_addr)).await;
        Ok(())
    }
}
