//! Python face of `vudo_links::LinksNode`: non-blocking calls + an event queue.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use vudo_links::{LinkEvent as Event, LinksConfig, LinksNode, Multiaddr, PeerId};

use crate::errors::CoreFailure;

/// One thing that happened on the links; `kind` says which fields matter.
///
/// kinds: "connected" (peer, addr, direction), "disconnected" (peer, reason),
/// "dial_failed" (addr, peer = expected peer or "", reason), "rtt" (peer, rtt_ms),
/// "request" (peer, protocol, channel, payload), "response" (peer, protocol,
/// request_id, payload), "request_failed" (peer, protocol, request_id, reason).
#[pyclass(frozen, get_all, module = "vudo._core")]
pub struct LinkEvent {
    kind: &'static str,
    peer: String,
    addr: String,
    direction: &'static str,
    reason: String,
    rtt_ms: f64,
    protocol: String,
    channel: u64,
    request_id: u64,
    payload: Py<PyBytes>,
}

#[pymethods]
impl LinkEvent {
    fn __repr__(&self) -> String {
        format!("LinkEvent(kind={:?}, peer={:?})", self.kind, self.peer)
    }
}

impl LinkEvent {
    fn convert(py: Python<'_>, event: Event) -> Self {
        let mut out = LinkEvent {
            kind: "",
            peer: String::new(),
            addr: String::new(),
            direction: "",
            reason: String::new(),
            rtt_ms: 0.0,
            protocol: String::new(),
            channel: 0,
            request_id: 0,
            payload: PyBytes::new(py, b"").unbind(),
        };
        match event {
            Event::Connected { peer, addr, direction } => {
                out.kind = "connected";
                out.peer = peer.to_string();
                out.addr = addr.to_string();
                out.direction = direction.as_str();
            }
            Event::Disconnected { peer, reason } => {
                out.kind = "disconnected";
                out.peer = peer.to_string();
                out.reason = reason;
            }
            Event::DialFailed { addr, expected_peer, reason } => {
                out.kind = "dial_failed";
                out.addr = addr.to_string();
                out.peer = expected_peer.map(|p| p.to_string()).unwrap_or_default();
                out.reason = reason;
            }
            Event::Rtt { peer, rtt } => {
                out.kind = "rtt";
                out.peer = peer.to_string();
                out.rtt_ms = rtt.as_secs_f64() * 1000.0;
            }
            Event::InboundRequest { peer, protocol, channel, payload } => {
                out.kind = "request";
                out.peer = peer.to_string();
                out.protocol = protocol;
                out.channel = channel;
                out.payload = PyBytes::new(py, &payload).unbind();
            }
            Event::Response { peer, protocol, request_id, payload } => {
                out.kind = "response";
                out.peer = peer.to_string();
                out.protocol = protocol;
                out.request_id = request_id;
                out.payload = PyBytes::new(py, &payload).unbind();
            }
            Event::RequestFailed { peer, protocol, request_id, reason } => {
                out.kind = "request_failed";
                out.peer = peer.to_string();
                out.protocol = protocol;
                out.request_id = request_id;
                out.reason = reason;
            }
        }
        out
    }
}

/// Counters of one link engine since it started.
#[pyclass(frozen, get_all, module = "vudo._core")]
pub struct LinkStats {
    connections_established: u64,
    connections_closed: u64,
    dials_failed: u64,
    impostors_refused: u64,
    inbound_handshakes_failed: u64,
    connections_denied: u64,
    oversize_refused: u64,
    requests_sent: u64,
    requests_received: u64,
    responses_sent: u64,
    responses_received: u64,
    requests_failed: u64,
    inbound_failed: u64,
    responses_dropped: u64,
    inbound_shed: u64,
    events_dropped: u64,
}

/// A running link engine (rust-libp2p). Every method returns at once.
#[pyclass(frozen, module = "vudo._core")]
pub struct Links {
    node: LinksNode,
}

fn parse_peer(what: &str, text: &str) -> Result<PeerId, CoreFailure> {
    if text.len() > 128 {
        return Err(CoreFailure::InvalidArgument(format!("{what} is longer than 128 characters")));
    }
    text.parse()
        .map_err(|err| CoreFailure::InvalidArgument(format!("{what} {text:?} is not a node id (libp2p PeerId): {err}")))
}

fn parse_multiaddr(what: &str, text: &str) -> Result<Multiaddr, CoreFailure> {
    text.parse().map_err(|err| {
        CoreFailure::InvalidArgument(format!(
            "{what} {text:?} is not a multiaddr like /ip4/127.0.0.1/tcp/7600: {err}"
        ))
    })
}

#[pymethods]
impl Links {
    #[new]
    #[pyo3(signature = (*, secret_key, listen_addr, protocols, max_message_size=1_048_576,
        max_connections=256, max_connections_per_peer=2, max_pending_incoming=64,
        handshake_timeout_ms=10_000, request_timeout_ms=10_000, ping_interval_ms=15_000,
        ping_timeout_ms=20_000, max_inbound_bytes=67_108_864, max_queued_events=65_536, agent_version=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        secret_key: &[u8],
        listen_addr: &str,
        protocols: Vec<String>,
        max_message_size: usize,
        max_connections: u32,
        max_connections_per_peer: u32,
        max_pending_incoming: u32,
        handshake_timeout_ms: u64,
        request_timeout_ms: u64,
        ping_interval_ms: u64,
        ping_timeout_ms: u64,
        max_inbound_bytes: usize,
        max_queued_events: usize,
        agent_version: Option<String>,
    ) -> Result<Self, CoreFailure> {
        let secret: [u8; 32] = secret_key.try_into().map_err(|_| {
            CoreFailure::InvalidArgument(format!(
                "secret_key must be the 32-byte raw Ed25519 secret, got {} bytes",
                secret_key.len()
            ))
        })?;
        let mut config = LinksConfig::new(secret, parse_multiaddr("listen_addr", listen_addr)?, protocols);
        config.max_message_size = max_message_size;
        config.max_connections = max_connections;
        config.max_connections_per_peer = max_connections_per_peer;
        config.max_pending_incoming = max_pending_incoming;
        config.handshake_timeout = Duration::from_millis(handshake_timeout_ms);
        config.request_timeout = Duration::from_millis(request_timeout_ms);
        config.ping_interval = Duration::from_millis(ping_interval_ms);
        config.ping_timeout = Duration::from_millis(ping_timeout_ms);
        config.max_inbound_bytes = max_inbound_bytes;
        config.max_queued_events = max_queued_events;
        if let Some(agent) = agent_version {
            config.agent_version = agent;
        }
        let node = py.detach(|| LinksNode::start(config))?;
        Ok(Self { node })
    }

    /// This node's PeerId (= NodeId).
    #[getter]
    fn peer_id(&self) -> String {
        self.node.peer_id().to_string()
    }

    #[getter]
    fn listen_addrs(&self) -> Vec<String> {
        self.node.listen_addrs().iter().map(|a| a.to_string()).collect()
    }

    #[getter]
    fn protocols(&self) -> Vec<String> {
        self.node.protocols().to_vec()
    }

    #[getter]
    fn max_message_size(&self) -> usize {
        self.node.max_message_size()
    }

    /// Readable while events wait (register with `loop.add_reader`); owned by the engine.
    #[getter]
    fn wake_fd(&self) -> i32 {
        self.node.wake_fd()
    }

    #[getter]
    fn running(&self) -> bool {
        !self.node.is_stopped()
    }

    /// Connect to `addr`, refusing any key but `expected_peer`'s.
    fn dial(&self, addr: &str, expected_peer: &str) -> Result<(), CoreFailure> {
        let addr = parse_multiaddr("addr", addr)?;
        let peer = parse_peer("expected_peer", expected_peer)?;
        Ok(self.node.dial(addr, peer)?)
    }

    #[pyo3(signature = (peer, reason=""))]
    fn disconnect(&self, peer: &str, reason: &str) -> Result<(), CoreFailure> {
        Ok(self.node.disconnect(parse_peer("peer", peer)?, reason)?)
    }

    /// Send `payload` to `peer` on `protocol`; returns the request id of the outcome event.
    fn request(&self, peer: &str, protocol: &str, payload: &[u8]) -> Result<u64, CoreFailure> {
        let peer = parse_peer("peer", peer)?;
        Ok(self.node.request(peer, protocol, payload.to_vec())?)
    }

    fn respond(&self, channel: u64, payload: &[u8]) -> Result<(), CoreFailure> {
        Ok(self.node.respond(channel, payload.to_vec())?)
    }

    /// Up to `max` pending events (never blocks).
    #[pyo3(signature = (max=256))]
    fn poll_events(&self, py: Python<'_>, max: usize) -> Vec<LinkEvent> {
        let events = self.node.poll_events(max);
        events.into_iter().map(|e| LinkEvent::convert(py, e)).collect()
    }

    fn stats(&self) -> LinkStats {
        let s = self.node.stats();
        LinkStats {
            connections_established: s.connections_established,
            connections_closed: s.connections_closed,
            dials_failed: s.dials_failed,
            impostors_refused: s.impostors_refused,
            inbound_handshakes_failed: s.inbound_handshakes_failed,
            connections_denied: s.connections_denied,
            oversize_refused: s.oversize_refused,
            requests_sent: s.requests_sent,
            requests_received: s.requests_received,
            responses_sent: s.responses_sent,
            responses_received: s.responses_received,
            requests_failed: s.requests_failed,
            inbound_failed: s.inbound_failed,
            responses_dropped: s.responses_dropped,
            inbound_shed: s.inbound_shed,
            events_dropped: s.events_dropped,
        }
    }

    /// Stop the engine (returns at once; links close, the wake fd turns readable).
    fn shutdown(&self) {
        self.node.shutdown();
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LinkEvent>()?;
    m.add_class::<LinkStats>()?;
    m.add_class::<Links>()?;
    Ok(())
}
