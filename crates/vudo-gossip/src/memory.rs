//! An in-process network for gossip: chitchat's channel transport plus link
//! cutting, so tests can run many nodes in one process and partition them.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chitchat::transport::ChannelTransport;

use crate::runtime;

#[derive(Clone, Default)]
pub struct MemoryNetwork {
    transport: ChannelTransport,
    bound: Arc<Mutex<HashSet<SocketAddr>>>,
}

impl MemoryNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn transport(&self) -> &ChannelTransport {
        &self.transport
    }

    /// Records `addr` as taken; true when it already was.
    pub(crate) fn is_bound(&self, addr: SocketAddr) -> bool {
        let mut bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
        !bound.insert(addr)
    }

    /// Drop every datagram between `a` and `b`, both ways.
    pub fn cut(&self, a: SocketAddr, b: SocketAddr) {
        runtime::get().block_on(self.transport.remove_link(a, b));
    }

    /// Restore the link between `a` and `b`.
    pub fn heal(&self, a: SocketAddr, b: SocketAddr) {
        runtime::get().block_on(self.transport.add_link(a, b));
    }

    /// Messages and bytes sent so far through this network.
    pub fn statistics(&self) -> (u64, u64) {
        let stats = self.transport.statistics();
        (stats.num_messages_total, stats.num_bytes_total)
    }
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bound = self.bound.lock().map(|b| b.len()).unwrap_or(0);
        f.debug_struct("MemoryNetwork").field("bound", &bound).finish()
    }
}
