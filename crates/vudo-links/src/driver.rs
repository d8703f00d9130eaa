//! The task that owns the swarm: executes commands, translates swarm events.
//!
//! Theory of operation: one tokio task per engine owns the libp2p `Swarm`
//! and nothing else touches it. The facade sends [`Command`]s over an
//! unbounded channel (they are the host's own calls, never remote input);
//! the task turns every swarm event it cares about into a [`LinkEvent`] on
//! the shared queue and bumps the counters. Remote input only reaches the
//! task through libp2p (authenticated, size-bounded by the codec, limited by
//! `connection_limits`); per-request state is keyed by ids the task itself
//! allocated and is removed when libp2p reports the request done or failed.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError, ListenError, SwarmEvent};
use libp2p::{ping, Multiaddr, PeerId, Swarm};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::behaviour::{LinkBehaviour, LinkBehaviourEvent, RrEvent};
use crate::events::{Direction, EventQueue, LinkEvent};
use crate::node::strip_p2p;
use crate::stats::Stats;

/// What the facade asks the swarm task to do.
pub(crate) enum Command {
    Dial { addr: Multiaddr, expected: PeerId },
    Disconnect { peer: PeerId, reason: String },
    Request { peer: PeerId, slot: usize, request_id: u64, payload: Vec<u8> },
    Respond { channel: u64, payload: Vec<u8> },
    Shutdown,
}

struct Outbound {
    request_id: u64,
    peer: PeerId,
}

pub(crate) struct Driver {
    pub(crate) swarm: Swarm<LinkBehaviour>,
    pub(crate) protocols: Vec<String>,
    pub(crate) commands: UnboundedReceiver<Command>,
    pub(crate) events: Arc<EventQueue>,
    pub(crate) stats: Arc<Stats>,
    pending_dials: HashMap<ConnectionId, (Multiaddr, PeerId)>,
    outbound: HashMap<(usize, OutboundRequestId), Outbound>,
    /// Inbound requests awaiting the host's answer: (slot, channel, payload bytes).
    channels: HashMap<u64, (usize, ResponseChannel<Vec<u8>>, usize)>,
    /// Sum of the payload bytes in `channels`, bounded by `max_inbound_bytes`.
    inbound_bytes: usize,
    max_inbound_bytes: usize,
    inbound: HashMap<(usize, InboundRequestId), u64>,
    next_channel: u64,
    /// Why we closed a peer's connections, reported with its `Disconnected`.
    local_reasons: HashMap<PeerId, String>,
}

impl Driver {
    pub(crate) fn new(
        swarm: Swarm<LinkBehaviour>,
        protocols: Vec<String>,
        commands: UnboundedReceiver<Command>,
        events: Arc<EventQueue>,
        stats: Arc<Stats>,
        max_inbound_bytes: usize,
    ) -> Self {
        Self {
            swarm,
            protocols,
            commands,
            events,
            stats,
            pending_dials: HashMap::new(),
            outbound: HashMap::new(),
            channels: HashMap::new(),
            inbound_bytes: 0,
            max_inbound_bytes,
            inbound: HashMap::new(),
            next_channel: 1,
            local_reasons: HashMap::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => break,
                    Some(cmd) => self.on_command(cmd),
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
            }
        }
        self.events.close();
        // Dropping the swarm closes the listener and every connection.
    }

    fn emit(&self, event: LinkEvent) {
        self.events.push(event);
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial { addr, expected } => self.dial(addr, expected),
            Command::Disconnect { peer, reason } => {
                if self.swarm.is_connected(&peer) {
                    self.local_reasons.insert(peer, format!("closed locally: {reason}"));
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
            }
            Command::Request { peer, slot, request_id, payload } => self.request(peer, slot, request_id, payload),
            Command::Respond { channel, payload } => self.respond(channel, payload),
            Command::Shutdown => {}
        }
    }

    fn dial(&mut self, addr: Multiaddr, expected: PeerId) {
        let opts = DialOpts::peer_id(expected)
            .addresses(vec![addr.clone()])
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.pending_dials.insert(id, (addr, expected));
            }
            Err(err) => {
                self.stats.bump(&self.stats.dials_failed);
                let reason = match err {
                    DialError::DialPeerConditionFalse(_) => "already connected or dialing".to_string(),
                    other => dial_error_text(&other),
                };
                self.emit(LinkEvent::DialFailed { addr, expected_peer: Some(expected), reason });
            }
        }
    }

    fn request(&mut self, peer: PeerId, slot: usize, request_id: u64, payload: Vec<u8>) {
        let protocol = self.protocols[slot].clone();
        if !self.swarm.is_connected(&peer) {
            self.stats.bump(&self.stats.requests_failed);
            self.emit(LinkEvent::RequestFailed { peer, protocol, request_id, reason: "not connected".into() });
            return;
        }
        let Some(rr) = self.swarm.behaviour_mut().rr(slot) else {
            return; // slots are validated by the facade
        };
        let id = rr.send_request(&peer, payload);
        self.stats.bump(&self.stats.requests_sent);
        self.outbound.insert((slot, id), Outbound { request_id, peer });
    }

    fn respond(&mut self, channel: u64, payload: Vec<u8>) {
        let Some((slot, ch, len)) = self.channels.remove(&channel) else {
            self.stats.bump(&self.stats.responses_dropped);
            return;
        };
        self.inbound_bytes -= len;
        if let Some(rr) = self.swarm.behaviour_mut().rr(slot) {
            if rr.send_response(ch, payload).is_err() {
                self.stats.bump(&self.stats.responses_dropped);
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<LinkBehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, num_established, .. } => {
                self.pending_dials.remove(&connection_id);
                self.stats.bump(&self.stats.connections_established);
                if num_established.get() == 1 {
                    let (addr, direction) = match endpoint {
                        ConnectedPoint::Dialer { address, .. } => (address, Direction::Outbound),
                        ConnectedPoint::Listener { send_back_addr, .. } => (send_back_addr, Direction::Inbound),
                    };
                    self.emit(LinkEvent::Connected { peer: peer_id, addr: strip_p2p(addr), direction });
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, num_established, .. } => {
                self.stats.bump(&self.stats.connections_closed);
                if num_established == 0 {
                    let reason = match (self.local_reasons.remove(&peer_id), cause) {
                        (Some(local), _) => local,
                        (None, Some(err)) => format!("connection lost: {err}"),
                        (None, None) => "closed".to_string(),
                    };
                    self.emit(LinkEvent::Disconnected { peer: peer_id, reason });
                }
            }
            SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                self.stats.bump(&self.stats.dials_failed);
                match &error {
                    DialError::WrongPeerId { .. } => self.stats.bump(&self.stats.impostors_refused),
                    DialError::Denied { .. } => self.stats.bump(&self.stats.connections_denied),
                    _ => {}
                }
                // Only dials the host asked for are reported; others (none are
                // started on purpose) are counted and end in a RequestFailed.
                if let Some((addr, expected)) = self.pending_dials.remove(&connection_id) {
                    self.emit(LinkEvent::DialFailed { addr, expected_peer: Some(expected), reason: dial_error_text(&error) });
                }
            }
            SwarmEvent::IncomingConnectionError { error, .. } => match error {
                ListenError::Denied { .. } => self.stats.bump(&self.stats.connections_denied),
                _ => self.stats.bump(&self.stats.inbound_handshakes_failed),
            },
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: LinkBehaviourEvent) {
        match event {
            LinkBehaviourEvent::Ping(ping::Event { peer, connection, result }) => match result {
                Ok(rtt) => self.emit(LinkEvent::Rtt { peer, rtt }),
                Err(err) => {
                    // A link that does not answer pings is dead: close it so the
                    // policies learn it (ping alone does not close connections).
                    if matches!(err, ping::Failure::Timeout | ping::Failure::Other { .. }) {
                        self.local_reasons.insert(peer, format!("ping failed: {err}"));
                        self.swarm.close_connection(connection);
                    }
                }
            },
            // What a peer claims about itself is not used: addresses come from
            // signed announcements, the key from the Noise handshake.
            LinkBehaviourEvent::Identify(_) => {}
            LinkBehaviourEvent::Limits(never) => match never {},
            LinkBehaviourEvent::Rr0(e) => self.on_rr_event(0, e),
            LinkBehaviourEvent::Rr1(e) => self.on_rr_event(1, e),
            LinkBehaviourEvent::Rr2(e) => self.on_rr_event(2, e),
            LinkBehaviourEvent::Rr3(e) => self.on_rr_event(3, e),
            LinkBehaviourEvent::Rr4(e) => self.on_rr_event(4, e),
            LinkBehaviourEvent::Rr5(e) => self.on_rr_event(5, e),
            LinkBehaviourEvent::Rr6(e) => self.on_rr_event(6, e),
            LinkBehaviourEvent::Rr7(e) => self.on_rr_event(7, e),
        }
    }

    fn on_rr_event(&mut self, slot: usize, event: RrEvent) {
        let protocol = self.protocols[slot].clone();
        match event {
            RrEvent::Message { peer, message, .. } => match message {
                request_response::Message::Request { request_id, request, channel } => {
                    if self.inbound_bytes + request.len() > self.max_inbound_bytes {
                        // The host is behind: refuse now (dropping the channel tells
                        // the remote at once) rather than buffer without bound.
                        self.stats.bump(&self.stats.inbound_shed);
                        drop(channel);
                        return;
                    }
                    self.stats.bump(&self.stats.requests_received);
                    let id = self.next_channel;
                    self.next_channel += 1;
                    self.inbound_bytes += request.len();
                    self.channels.insert(id, (slot, channel, request.len()));
                    self.inbound.insert((slot, request_id), id);
                    self.emit(LinkEvent::InboundRequest { peer, protocol, channel: id, payload: request });
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(out) = self.outbound.remove(&(slot, request_id)) {
                        self.stats.bump(&self.stats.responses_received);
                        self.emit(LinkEvent::Response { peer: out.peer, protocol, request_id: out.request_id, payload: response });
                    }
                }
            },
            RrEvent::OutboundFailure { peer, request_id, error, .. } => {
                if let Some(out) = self.outbound.remove(&(slot, request_id)) {
                    self.stats.bump(&self.stats.requests_failed);
                    self.emit(LinkEvent::RequestFailed {
                        peer,
                        protocol,
                        request_id: out.request_id,
                        reason: outbound_failure_text(&error),
                    });
                }
            }
            RrEvent::InboundFailure { request_id, .. } => {
                self.stats.bump(&self.stats.inbound_failed);
                if let Some(channel) = self.inbound.remove(&(slot, request_id)) {
                    if let Some((_, _, len)) = self.channels.remove(&channel) {
                        self.inbound_bytes -= len;
                    }
                }
            }
            RrEvent::ResponseSent { request_id, .. } => {
                self.stats.bump(&self.stats.responses_sent);
                self.inbound.remove(&(slot, request_id));
            }
        }
    }
}

fn outbound_failure_text(error: &request_response::OutboundFailure) -> String {
    use request_response::OutboundFailure as F;
    match error {
        F::Timeout => "timeout: no response in time".into(),
        F::ConnectionClosed => "connection closed before the response".into(),
        F::UnsupportedProtocols => "remote does not speak this protocol".into(),
        F::DialFailure => "not connected".into(),
        F::Io(err) => format!("stream error: {err}"),
    }
}

fn dial_error_text(error: &DialError) -> String {
    match error {
        DialError::WrongPeerId { obtained, .. } => {
            format!("remote authenticated as {obtained}, not the expected peer (refused)")
        }
        DialError::Denied { cause } => format!("refused by local connection limits: {cause}"),
        DialError::LocalPeerId { .. } => "the address belongs to this node".into(),
        DialError::Transport(errors) => match errors.first() {
            Some((_, err)) => format!("transport: {err}"),
            None => "transport: no address".into(),
        },
        other => other.to_string(),
    }
}
