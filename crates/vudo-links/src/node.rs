//! `LinksNode`: the non-blocking facade over one running link engine.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, SwarmBuilder, TransportError};
use tokio::sync::mpsc::{self, UnboundedSender};

use crate::behaviour::LinkBehaviour;
use crate::config::LinksConfig;
use crate::driver::{Command, Driver};
use crate::error::LinksError;
use crate::events::{EventQueue, LinkEvent};
use crate::runtime;
use crate::stats::{Stats, StatsSnapshot};

/// How long `start` waits for the listener to report its address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A running link engine. Every method returns at once; results arrive as
/// [`LinkEvent`]s on [`LinksNode::poll_events`]. Dropping it stops the engine.
pub struct LinksNode {
    peer_id: PeerId,
    listen_addrs: Vec<Multiaddr>,
    protocols: Vec<String>,
    max_message_size: usize,
    commands: UnboundedSender<Command>,
    events: Arc<EventQueue>,
    stats: Arc<Stats>,
    next_request_id: AtomicU64,
}

/// The PeerId (NodeId) of a 32-byte Ed25519 secret key.
pub fn peer_id_of_secret(secret_key: [u8; 32]) -> Result<PeerId, LinksError> {
    Ok(keypair(secret_key)?.public().to_peer_id())
}

fn keypair(mut secret_key: [u8; 32]) -> Result<Keypair, LinksError> {
    Keypair::ed25519_from_bytes(&mut secret_key)
        .map_err(|err| LinksError::InvalidConfig(format!("not an Ed25519 secret key: {err}")))
}

impl LinksNode {
    /// Start an engine and wait for its listener. Blocks for at most a few
    /// seconds (binding a local socket): call it off any event loop.
    pub fn start(config: LinksConfig) -> Result<Self, LinksError> {
        runtime::get().block_on(Self::start_async(config))
    }

    /// [`LinksNode::start`] for async hosts.
    pub async fn start_async(config: LinksConfig) -> Result<Self, LinksError> {
        config.validate()?;
        runtime::get()
            .spawn(Self::setup(config))
            .await
            .map_err(|err| LinksError::Listen("(setup)".into(), err.to_string()))?
    }

    async fn setup(config: LinksConfig) -> Result<Self, LinksError> {
        let key = keypair(config.secret_key)?;
        let peer_id = key.public().to_peer_id();
        let protocols = config.stream_protocols()?;
        let stats = Arc::new(Stats::default());
        let events = Arc::new(
            EventQueue::new(config.max_queued_events, stats.clone())
                .map_err(|err| LinksError::Listen(config.listen_addr.to_string(), format!("wake-up socket: {err}")))?,
        );
        let behaviour = LinkBehaviour::new(&key, &config, &protocols, stats.clone());
        let mut swarm = SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(tcp::Config::new().nodelay(true), noise::Config::new, yamux::Config::default)
            .map_err(|err| LinksError::InvalidConfig(format!("noise: {err}")))?
            .with_behaviour(|_| behaviour)
            .map_err(|err| LinksError::InvalidConfig(format!("behaviour: {err}")))?
            .with_swarm_config(|c| {
                // Links live until a policy closes them or pings fail; an idle
                // link (no request in flight) is still a link.
                c.with_idle_connection_timeout(Duration::from_secs(365 * 24 * 3600))
            })
            .with_connection_timeout(config.handshake_timeout)
            .build();
        let addr = config.listen_addr.clone();
        let socket = check_listen_addr(&addr)?;
        if socket.port() != 0 {
            // libp2p-tcp listens with SO_REUSEPORT, so a second node on the same
            // port would silently share it. A plain bind first refuses that.
            std::net::TcpListener::bind(socket).map_err(|err| {
                if err.kind() == std::io::ErrorKind::AddrInUse {
                    LinksError::AddressInUse(addr.to_string())
                } else {
                    LinksError::Listen(addr.to_string(), err.to_string())
                }
            })?;
        }
        swarm.listen_on(addr.clone()).map_err(|err| match err {
            TransportError::Other(io) if io.kind() == std::io::ErrorKind::AddrInUse => {
                LinksError::AddressInUse(addr.to_string())
            }
            TransportError::MultiaddrNotSupported(a) => {
                LinksError::InvalidConfig(format!("cannot listen on {a}: expected /ip4/<ip>/tcp/<port> or /ip6/..."))
            }
            other => LinksError::Listen(addr.to_string(), other.to_string()),
        })?;
        let listen_addrs = tokio::time::timeout(LISTEN_TIMEOUT, async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr { address, .. } => return Ok(vec![address]),
                    SwarmEvent::ListenerClosed { reason: Err(err), .. } | SwarmEvent::ListenerError { error: err, .. } => {
                        return Err(if err.kind() == std::io::ErrorKind::AddrInUse {
                            LinksError::AddressInUse(addr.to_string())
                        } else {
                            LinksError::Listen(addr.to_string(), err.to_string())
                        });
                    }
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| LinksError::Listen(addr.to_string(), "listener did not start in time".into()))??;
        let (tx, rx) = mpsc::unbounded_channel();
        let names: Vec<String> = protocols.iter().map(|p| p.as_ref().to_string()).collect();
        tokio::spawn(Driver::new(swarm, names.clone(), rx, events.clone(), stats.clone(), config.max_inbound_bytes).run());
        Ok(Self {
            peer_id,
            listen_addrs,
            protocols: names,
            max_message_size: config.max_message_size,
            commands: tx,
            events,
            stats,
            next_request_id: AtomicU64::new(1),
        })
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses the engine listens on (the real port when 0 was asked).
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    fn send(&self, cmd: Command) -> Result<(), LinksError> {
        self.commands.send(cmd).map_err(|_| LinksError::Stopped)
    }

    /// Connect to `addr`; the connection is refused unless the remote
    /// authenticates as `expected`. Outcome: `Connected` or `DialFailed`.
    pub fn dial(&self, addr: Multiaddr, expected: PeerId) -> Result<(), LinksError> {
        if expected == self.peer_id {
            return Err(LinksError::InvalidArgument(format!("{expected} is this node; a node does not dial itself")));
        }
        let mut addr = addr;
        if let Some(Protocol::P2p(id)) = addr.iter().last() {
            if id != expected {
                return Err(LinksError::InvalidArgument(format!(
                    "address {addr} names peer {id} but {expected} is expected"
                )));
            }
            addr.pop();
        }
        self.send(Command::Dial { addr, expected })
    }

    /// Close every connection to `peer`; `reason` is reported with `Disconnected`.
    pub fn disconnect(&self, peer: PeerId, reason: &str) -> Result<(), LinksError> {
        self.send(Command::Disconnect { peer, reason: reason.to_string() })
    }

    /// Send `payload` to `peer` on `protocol`; returns the request id that the
    /// `Response` or `RequestFailed` event will carry.
    pub fn request(&self, peer: PeerId, protocol: &str, payload: Vec<u8>) -> Result<u64, LinksError> {
        let slot = self.slot(protocol)?;
        self.check_size("request", payload.len())?;
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        self.send(Command::Request { peer, slot, request_id, payload })?;
        Ok(request_id)
    }

    /// Answer the inbound request that arrived with `channel`. A channel that
    /// expired (timeout, closed link) is counted in `responses_dropped`.
    pub fn respond(&self, channel: u64, payload: Vec<u8>) -> Result<(), LinksError> {
        self.check_size("response", payload.len())?;
        self.send(Command::Respond { channel, payload })
    }

    fn slot(&self, protocol: &str) -> Result<usize, LinksError> {
        self.protocols.iter().position(|p| p == protocol).ok_or_else(|| {
            LinksError::InvalidArgument(format!(
                "protocol {protocol:?} is not registered with this engine (registered: {:?})",
                self.protocols
            ))
        })
    }

    fn check_size(&self, what: &str, len: usize) -> Result<(), LinksError> {
        if len > self.max_message_size {
            return Err(LinksError::InvalidArgument(format!(
                "{what} of {len} bytes exceeds the {} byte message limit",
                self.max_message_size
            )));
        }
        Ok(())
    }

    /// Up to `max` pending events; never blocks.
    pub fn poll_events(&self, max: usize) -> Vec<LinkEvent> {
        self.events.poll(max)
    }

    /// The event queue (for `readable().await` in async Rust hosts).
    pub fn events(&self) -> &EventQueue {
        &self.events
    }

    /// A file descriptor readable while events wait; owned by the engine.
    pub fn wake_fd(&self) -> RawFd {
        self.events.wake_fd()
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Stop the engine: listener and connections close, the event queue is
    /// marked closed. Idempotent; returns at once.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }

    pub fn is_stopped(&self) -> bool {
        self.commands.is_closed() || self.events.is_closed()
    }
}

impl Drop for LinksNode {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn check_listen_addr(addr: &Multiaddr) -> Result<std::net::SocketAddr, LinksError> {
    let mut it = addr.iter();
    let ip: std::net::IpAddr = match it.next() {
        Some(Protocol::Ip4(ip)) => ip.into(),
        Some(Protocol::Ip6(ip)) => ip.into(),
        _ => return Err(bad_listen_addr(addr)),
    };
    match (it.next(), it.next()) {
        (Some(Protocol::Tcp(port)), None) => Ok(std::net::SocketAddr::new(ip, port)),
        _ => Err(bad_listen_addr(addr)),
    }
}

fn bad_listen_addr(addr: &Multiaddr) -> LinksError {
    LinksError::InvalidConfig(format!(
        "cannot listen on {addr}: expected /ip4/<ip>/tcp/<port> or /ip6/<ip>/tcp/<port>"
    ))
}

/// `addr` without a trailing `/p2p/<peer>` (the peer is reported separately).
pub(crate) fn strip_p2p(mut addr: Multiaddr) -> Multiaddr {
    if let Some(Protocol::P2p(_)) = addr.iter().last() {
        addr.pop();
    }
    addr
}
