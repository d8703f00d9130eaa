//! What the engine reports, and the bounded queue the host drains.
//!
//! The swarm task pushes [`LinkEvent`]s; the host pulls them with
//! [`EventQueue::poll`] without ever blocking. To wake an event loop, the
//! queue owns a socket pair: one byte is written when the queue goes from
//! empty to non-empty, and the bytes are drained when a poll empties it, so
//! the read end is readable exactly while events wait (register it with
//! `loop.add_reader`, `epoll`, ...).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};

use crate::stats::Stats;

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// One thing that happened on the links. Peers are always Noise-authenticated keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// The first connection to `peer` is established.
    Connected { peer: PeerId, addr: Multiaddr, direction: Direction },
    /// The last connection to `peer` closed.
    Disconnected { peer: PeerId, reason: String },
    /// A dial asked for with [`crate::LinksNode::dial`] produced no connection.
    DialFailed { addr: Multiaddr, expected_peer: Option<PeerId>, reason: String },
    /// A ping round trip on a link to `peer`.
    Rtt { peer: PeerId, rtt: Duration },
    /// `peer` asks something; answer with [`crate::LinksNode::respond`] on `channel`.
    InboundRequest { peer: PeerId, protocol: String, channel: u64, payload: Vec<u8> },
    /// The answer to our request `request_id`.
    Response { peer: PeerId, protocol: String, request_id: u64, payload: Vec<u8> },
    /// Our request `request_id` got no answer.
    RequestFailed { peer: PeerId, protocol: String, request_id: u64, reason: String },
}

struct Inner {
    queue: VecDeque<LinkEvent>,
    closed: bool,
}

/// Bounded multi-producer queue of events with a readable-fd wake-up.
pub struct EventQueue {
    inner: Mutex<Inner>,
    capacity: usize,
    wake_read: UnixStream,
    wake_write: UnixStream,
    notify: tokio::sync::Notify,
    stats: Arc<Stats>,
}

impl EventQueue {
    pub(crate) fn new(capacity: usize, stats: Arc<Stats>) -> std::io::Result<Self> {
        let (wake_read, wake_write) = UnixStream::pair()?;
        wake_read.set_nonblocking(true)?;
        wake_write.set_nonblocking(true)?;
        Ok(Self {
            inner: Mutex::new(Inner { queue: VecDeque::new(), closed: false }),
            capacity,
            wake_read,
            wake_write,
            notify: tokio::sync::Notify::new(),
            stats,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the queue inconsistent
        // (push/pop are atomic), so keep going with the data.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queue `event`; drops it (and counts the drop) when the host lags `capacity` events behind.
    pub(crate) fn push(&self, event: LinkEvent) {
        let mut inner = self.lock();
        if inner.queue.len() >= self.capacity {
            self.stats.bump(&self.stats.events_dropped);
            return;
        }
        inner.queue.push_back(event);
        if inner.queue.len() == 1 {
            self.signal();
        }
    }

    /// Mark the queue closed (the engine stopped) and wake the host one last time.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        self.signal();
    }

    fn signal(&self) {
        // A full socket buffer already means "readable": nothing lost.
        let _ = (&self.wake_write).write(&[1]);
        self.notify.notify_one();
    }

    /// Up to `max` events, oldest first; never blocks.
    pub fn poll(&self, max: usize) -> Vec<LinkEvent> {
        let mut inner = self.lock();
        let n = max.min(inner.queue.len());
        let events: Vec<LinkEvent> = inner.queue.drain(..n).collect();
        if inner.queue.is_empty() && !inner.closed {
            self.drain_wake();
        }
        events
    }

    /// True once the engine stopped; no further events will come.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn drain_wake(&self) {
        let mut buf = [0u8; 64];
        loop {
            match (&self.wake_read).read(&mut buf) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return, // WouldBlock: drained
            }
        }
    }

    /// File descriptor that is readable while events wait (or the engine stopped).
    pub fn wake_fd(&self) -> RawFd {
        self.wake_read.as_raw_fd()
    }

    /// Wait (async) until an event may be available; for Rust hosts and tests.
    pub async fn readable(&self) {
        loop {
            {
                let inner = self.lock();
                if !inner.queue.is_empty() || inner.closed {
                    return;
                }
            }
            self.notify.notified().await;
        }
    }
}
