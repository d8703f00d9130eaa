//! Counters the engine keeps about its links (read them any time, lock-free).

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters since the engine started.
#[derive(Default, Debug)]
pub struct Stats {
    pub connections_established: AtomicU64,
    pub connections_closed: AtomicU64,
    pub dials_failed: AtomicU64,
    /// Dials where the remote authenticated with a key other than the expected one.
    pub impostors_refused: AtomicU64,
    /// Inbound connections that failed before authentication (garbage, half-open, timeout).
    pub inbound_handshakes_failed: AtomicU64,
    /// Connections refused by the connection limits (either direction).
    pub connections_denied: AtomicU64,
    /// Requests or responses from remotes refused for exceeding the size limit.
    pub oversize_refused: AtomicU64,
    pub requests_sent: AtomicU64,
    pub requests_received: AtomicU64,
    pub responses_sent: AtomicU64,
    pub responses_received: AtomicU64,
    pub requests_failed: AtomicU64,
    /// Inbound requests that could not be answered (timeout, closed, unknown protocol).
    pub inbound_failed: AtomicU64,
    /// Responses given for a channel that no longer exists (expired or unknown).
    pub responses_dropped: AtomicU64,
    /// Inbound requests refused because too many bytes already await answers.
    pub inbound_shed: AtomicU64,
    /// Events dropped because the host did not drain the event queue.
    pub events_dropped: AtomicU64,
}

/// A copy of [`Stats`] at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub connections_established: u64,
    pub connections_closed: u64,
    pub dials_failed: u64,
    pub impostors_refused: u64,
    pub inbound_handshakes_failed: u64,
    pub connections_denied: u64,
    pub oversize_refused: u64,
    pub requests_sent: u64,
    pub requests_received: u64,
    pub responses_sent: u64,
    pub responses_received: u64,
    pub requests_failed: u64,
    pub inbound_failed: u64,
    pub responses_dropped: u64,
    pub inbound_shed: u64,
    pub events_dropped: u64,
}

impl Stats {
    pub(crate) fn bump(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connections_established: get(&self.connections_established),
            connections_closed: get(&self.connections_closed),
            dials_failed: get(&self.dials_failed),
            impostors_refused: get(&self.impostors_refused),
            inbound_handshakes_failed: get(&self.inbound_handshakes_failed),
            connections_denied: get(&self.connections_denied),
            oversize_refused: get(&self.oversize_refused),
            requests_sent: get(&self.requests_sent),
            requests_received: get(&self.requests_received),
            responses_sent: get(&self.responses_sent),
            responses_received: get(&self.responses_received),
            requests_failed: get(&self.requests_failed),
            inbound_failed: get(&self.inbound_failed),
            responses_dropped: get(&self.responses_dropped),
            inbound_shed: get(&self.inbound_shed),
            events_dropped: get(&self.events_dropped),
        }
    }
}
