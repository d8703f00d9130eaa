//! Loopback "pipes": one per remote peer, so chitchat's own UDP socket can
//! serve as the codec of a transport that rewrites datagrams (see
//! [`crate::sealed`] and [`crate::guarded`]).
//!
//! The transport's codec socket (chitchat's `UdpSocket`, bound to an
//! ephemeral loopback port) sends to and receives from the pipe of a peer;
//! the pipe a datagram arrives through names its real sender.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::UdpSocket;

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
