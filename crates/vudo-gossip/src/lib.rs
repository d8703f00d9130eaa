//! Gossip membership for VUDO nodes.
//!
//! This crate owns one job: run a real `chitchat` instance (scuttlebutt
//! anti-entropy + phi-accrual failure detection over UDP) on a private tokio
//! runtime and expose it through a small synchronous API that a host
//! language can call without knowing about tokio:
//!
//! * [`GossipNode::start`] binds the UDP socket and spawns chitchat;
//! * [`GossipNode::set`] / [`GossipNode::delete`] publish self key-values;
//! * [`GossipNode::snapshot`] returns every known member with its liveness
//!   and key-values — the host's policies decide what they mean;
//! * [`GossipNode::shutdown`] stops the server.
//!
//! Nothing here interprets values: signatures, ages and capabilities are
//! checked by the policies above (see `vudo.hyphal`).

pub mod admission;
mod error;
mod frames;
mod guarded;
pub mod keyring;
mod memory;
mod pipes;
mod runtime;
mod sealed;
pub mod wire;

pub use error::GossipError;
pub use keyring::{GossipKey, KeyInfo, Keyring, Reject};
pub use memory::MemoryNetwork;
pub use admission::{AdmissionStats, MAX_CAP};
pub use sealed::{TransportCounters, MAX_DATAGRAM};
use wire::Ident;

// (MemberSnapshot, View, ViewFilter, TransportStats are defined below.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig,
    ProtocolVersion,
};
use tokio::sync::Mutex;

/// Everything needed to start a gossip node.
#[derive(Clone, Debug)]
pub struct GossipConfig {
    /// Stable node name: the PeerId string of the node's Ed25519 key.
    pub node_id: String,
    /// Distinguishes restarts of the same identity (chitchat "generation").
    pub generation: u64,
    pub listen_addr: SocketAddr,
    pub advertise_addr: SocketAddr,
    /// Seed peers as `host:port` strings.
    pub seeds: Vec<String>,
    pub cluster_id: String,
    pub gossip_interval: Duration,
    /// Phi-accrual threshold above which a peer is considered dead.
    pub phi_threshold: f64,
    /// How long a dead node stays listed before it is forgotten.
    pub dead_node_grace_period: Duration,
    /// Largest heartbeat interval the failure detector will accept.
    pub max_interval: Duration,
    pub initial_key_values: Vec<(String, String)>,
    /// Where datagrams travel: real UDP sockets, or an in-process network.
    pub network: Network,
    /// Cluster keys (primary first). Empty: open gossip (plain chitchat).
    pub keys: Vec<GossipKey>,
    /// Sealed datagrams whose timestamp is further than this from our clock are refused.
    pub replay_window: Duration,
    /// Open gossip: most identities chitchat may hold that the host does not
    /// trust (see [`admission`]); `1..=MAX_CAP`.
    pub max_unverified: usize,
}

/// Datagram counters of the node's transport.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// `true` when datagrams are sealed with a keyring.
    pub sealed_transport: bool,
    pub sent: u64,
    pub received: u64,
    pub sealed: u64,
    pub opened: u64,
    /// `(reason, count)` for every reason in [`Reject::ALL`].
    pub rejected: Vec<(&'static str, u64)>,
    /// Datagrams on the internal loopback ports that were not ours.
    pub foreign_loopback: u64,
    /// Messages sent as several sealed fragments (too large for one datagram).
    pub fragmented: u64,
    /// Open gossip: datagrams passed on without the identities the admission refused.
    pub rewritten: u64,
    /// Open gossip: datagrams whose delta expanded beyond the read bound, passed on cut at it.
    pub truncated: u64,
    /// Open gossip: the admission policy's sizes and refusals (`None` with a keyring).
    pub admission: Option<AdmissionStats>,
    /// Key-values in chitchat's whole table (deletion tombstones included), as of the last view.
    pub held_key_values: u64,
    /// Key + value bytes in chitchat's whole table, as of the last view.
    pub held_value_bytes: u64,
}

/// Which members a bounded snapshot returns (see [`GossipNode::snapshot_view`]).
#[derive(Clone, Debug, Default)]
pub struct ViewFilter {
    /// `(node_id, generation, gossip address)` of members the host trusts:
    /// always returned, with every key; in open gossip they also always pass
    /// the transport's admission.
    pub trusted: HashSet<(String, u64, SocketAddr)>,
    /// Most other members returned per call; successive calls rotate through them.
    pub max_untrusted: usize,
    /// The only keys copied for untrusted members.
    pub probe_keys: Vec<String>,
}

/// A bounded snapshot plus the size of chitchat's whole table.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub members: Vec<MemberSnapshot>,
    pub total: usize,
}

/// The transport under chitchat. Both run the same gossip code; the
/// in-memory one lets a test run many nodes in one process and cut links.
#[derive(Clone, Debug, Default)]
pub enum Network {
    #[default]
    Udp,
    Memory(MemoryNetwork),
}

/// One member as seen by the local node.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberSnapshot {
    pub node_id: String,
    pub generation: u64,
    pub gossip_addr: SocketAddr,
    pub heartbeat: u64,
    /// `true` when the failure detector considers the member alive.
    pub live: bool,
    pub is_self: bool,
    pub key_values: Vec<(String, String)>,
}

/// A running chitchat server plus the handle to drive it.
pub struct GossipNode {
    handle: Option<ChitchatHandle>,
    chitchat: Arc<Mutex<chitchat::Chitchat>>,
    self_id: ChitchatId,
    keyring: Option<sealed::SharedKeyring>,
    counters: Arc<TransportCounters>,
    admission: Option<guarded::SharedAdmission>,
    guard: Arc<guarded::GuardCounters>,
    cursor: AtomicUsize,
    held_key_values: AtomicU64,
    held_value_bytes: AtomicU64,
}

impl GossipNode {
    /// Bind the UDP socket and start gossiping with the seeds.
    pub fn start(config: GossipConfig) -> Result<Self, GossipError> {
        validate(&config)?;
        let self_id = ChitchatId::new(config.node_id.clone(), config.generation, config.advertise_addr);
        let listen_addr = config.listen_addr;
        let chitchat_config = ChitchatConfig {
            chitchat_id: self_id.clone(),
            cluster_id: config.cluster_id.clone(),
            gossip_interval: config.gossip_interval,
            listen_addr,
            seed_nodes: config.seeds.clone(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: config.phi_threshold,
                sampling_window_size: 1000,
                max_interval: config.max_interval,
                initial_interval: config.gossip_interval,
                dead_node_grace_period: config.dead_node_grace_period,
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V0,
        };
        let initial = config.initial_key_values.clone();
        let network = config.network.clone();
        let counters = Arc::new(TransportCounters::default());
        let keyring = if config.keys.is_empty() {
            None
        } else {
            if matches!(config.network, Network::Memory(_)) {
                return Err(GossipError::InvalidConfig("a keyring needs the UDP transport".into()));
            }
            let window = u64::try_from(config.replay_window.as_millis()).unwrap_or(u64::MAX);
            Some(Arc::new(std::sync::Mutex::new(Keyring::new(config.keys.clone(), window)?)))
        };
        let admission = match (&keyring, &config.network) {
            (None, Network::Udp) => Some(Arc::new(std::sync::Mutex::new(admission::Admission::new(
                Ident::from(&self_id),
                config.max_unverified,
            )))),
            _ => None,
        };
        let guard = Arc::new(guarded::GuardCounters::default());
        let transport_keyring = keyring.clone();
        let transport_counters = counters.clone();
        let transport_admission = admission.clone();
        let transport_guard = guard.clone();
        let handle = runtime::get().block_on(async move {
            let spawned = match &network {
                Network::Udp => {
                    // Bind ourselves first so "address in use" is reported precisely;
                    // chitchat's own error is an opaque anyhow message.
                    match std::net::UdpSocket::bind(listen_addr) {
                        Ok(probe) => drop(probe),
                        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
                            return Err(GossipError::AddressInUse(listen_addr));
                        }
                        Err(err) => return Err(GossipError::Bind(listen_addr, err.to_string())),
                    }
                    match (transport_keyring, transport_admission) {
                        (Some(keyring), _) => {
                            let transport = sealed::SealedTransport { keyring, counters: transport_counters };
                            spawn_chitchat(chitchat_config, initial, &transport).await
                        }
                        (None, admission) => {
                            let Some(admission) = admission else {
                                return Err(GossipError::InvalidConfig("open UDP gossip needs its admission policy".into()));
                            };
                            let transport = guarded::GuardedTransport {
                                admission,
                                counters: transport_counters,
                                guard: transport_guard,
                            };
                            spawn_chitchat(chitchat_config, initial, &transport).await
                        }
                    }
                }
                Network::Memory(memory) => {
                    if memory.is_bound(listen_addr) {
                        return Err(GossipError::AddressInUse(listen_addr));
                    }
                    spawn_chitchat(chitchat_config, initial, memory.transport()).await
                }
            };
            spawned.map_err(|err| GossipError::Bind(listen_addr, format!("{err:#}")))
        })?;
        let chitchat = handle.chitchat();
        Ok(Self {
            handle: Some(handle),
            chitchat,
            self_id,
            keyring,
            counters,
            admission,
            guard,
            cursor: AtomicUsize::new(0),
            held_key_values: AtomicU64::new(0),
            held_value_bytes: AtomicU64::new(0),
        })
    }

    /// `true` when every datagram is sealed with the cluster keyring.
    pub fn is_sealed(&self) -> bool {
        self.keyring.is_some()
    }

    fn with_keyring<T>(&self, f: impl FnOnce(&mut Keyring) -> Result<T, GossipError>) -> Result<T, GossipError> {
        let ring = self.keyring.as_ref().ok_or(GossipError::OpenGossip)?;
        let mut guard = ring.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Installed keys, primary first (ids only).
    pub fn keys(&self) -> Result<Vec<KeyInfo>, GossipError> {
        self.with_keyring(|k| Ok(k.list()))
    }

    /// Add a key that opens datagrams (rotation step 1).
    pub fn install_key(&self, key: GossipKey) -> Result<(), GossipError> {
        self.with_keyring(|k| k.install(key))
    }

    /// Seal with an installed key from now on (rotation step 2).
    pub fn use_key(&self, key: &GossipKey) -> Result<(), GossipError> {
        self.with_keyring(|k| k.use_key(key))
    }

    /// Stop accepting a key (rotation step 3); the primary cannot be removed.
    pub fn remove_key(&self, key: &GossipKey) -> Result<(), GossipError> {
        self.with_keyring(|k| k.remove(key))
    }

    pub fn transport_stats(&self) -> TransportStats {
        let mut out = TransportStats {
            sealed_transport: self.keyring.is_some(),
            sent: self.counters.sent.load(Ordering::Relaxed),
            received: self.counters.received.load(Ordering::Relaxed),
            foreign_loopback: self.counters.foreign_loopback.load(Ordering::Relaxed),
            fragmented: self.counters.fragmented.load(Ordering::Relaxed),
            rewritten: self.guard.rewritten.load(Ordering::Relaxed),
            truncated: self.guard.truncated.load(Ordering::Relaxed),
            admission: self.admission.as_ref().map(|a| guarded::lock(a).stats()),
            held_key_values: self.held_key_values.load(Ordering::Relaxed),
            held_value_bytes: self.held_value_bytes.load(Ordering::Relaxed),
            ..Default::default()
        };
        if self.admission.is_some() {
            out.rejected = vec![
                ("undecodable", self.guard.undecodable.load(Ordering::Relaxed)),
                ("oversize", self.guard.oversize.load(Ordering::Relaxed)),
            ];
        }
        if let Some(ring) = &self.keyring {
            let stats = ring.lock().unwrap_or_else(|p| p.into_inner()).stats.clone();
            out.sealed = stats.sealed.load(Ordering::Relaxed);
            out.opened = stats.opened.load(Ordering::Relaxed);
            out.rejected = Reject::ALL.iter().map(|r| (r.label(), stats.rejected(*r))).collect();
        }
        out
    }

    pub fn node_id(&self) -> &str {
        &self.self_id.node_id
    }

    pub fn gossip_addr(&self) -> SocketAddr {
        self.self_id.gossip_advertise_addr
    }

    /// Publish (or replace) one of our own key-values.
    pub fn set(&self, key: &str, value: &str) -> Result<(), GossipError> {
        self.ensure_running()?;
        let chitchat = self.chitchat.clone();
        let (key, value) = (key.to_owned(), value.to_owned());
        runtime::get().block_on(async move {
            chitchat.lock().await.self_node_state().set(key, value);
        });
        Ok(())
    }

    /// Remove one of our own key-values (a tombstone is gossiped).
    pub fn delete(&self, key: &str) -> Result<(), GossipError> {
        self.ensure_running()?;
        let chitchat = self.chitchat.clone();
        let key = key.to_owned();
        runtime::get().block_on(async move {
            let mut guard = chitchat.lock().await;
            let state = guard.self_node_state();
            if state.get(&key).is_some() {
                state.delete(&key);
            }
        });
        Ok(())
    }

    /// Every member chitchat knows about, self included.
    pub fn snapshot(&self) -> Result<Vec<MemberSnapshot>, GossipError> {
        self.ensure_running()?;
        let chitchat = self.chitchat.clone();
        let self_id = self.self_id.clone();
        let admission = self.admission.clone();
        Ok(runtime::get().block_on(async move {
            let guard = chitchat.lock().await;
            sync_admission(admission.as_ref(), &guard, None);
            let live: std::collections::HashSet<ChitchatId> = guard.live_nodes().cloned().collect();
            guard
                .node_states()
                .iter()
                .map(|(id, state)| MemberSnapshot {
                    node_id: id.node_id.to_string(),
                    generation: id.generation_id,
                    gossip_addr: id.gossip_advertise_addr,
                    heartbeat: u64::from(state.heartbeat()),
                    live: live.contains(id) || *id == self_id,
                    is_self: *id == self_id,
                    key_values: state
                        .key_values()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                })
                .collect()
        }))
    }

    /// A bounded snapshot: self, every trusted member, and at most
    /// `max_untrusted` others (with only `probe_keys`), rotating through the
    /// others on successive calls so each is eventually looked at. The cost
    /// of a call is bounded by what the host trusts plus the cap, whatever
    /// an outsider pushed into chitchat.
    pub fn snapshot_view(&self, filter: &ViewFilter) -> Result<View, GossipError> {
        self.ensure_running()?;
        let chitchat = self.chitchat.clone();
        let self_id = self.self_id.clone();
        let start = self.cursor.fetch_add(filter.max_untrusted.max(1), Ordering::Relaxed);
        let admission = self.admission.clone();
        let (view, held) = runtime::get().block_on(async move {
            let guard = chitchat.lock().await;
            sync_admission(admission.as_ref(), &guard, Some(filter));
            let states = guard.node_states();
            let held = states.values().flat_map(|s| s.key_values_including_deleted()).fold((0u64, 0u64), |(n, b), (k, v)| {
                (n + 1, b + (k.len() + v.value.len()) as u64)
            });
            let live: HashSet<&ChitchatId> = guard.live_nodes().collect();
            let snap = |id: &ChitchatId, state: &chitchat::NodeState, all_keys: bool| MemberSnapshot {
                node_id: id.node_id.to_string(),
                generation: id.generation_id,
                gossip_addr: id.gossip_advertise_addr,
                heartbeat: u64::from(state.heartbeat()),
                live: live.contains(id) || *id == self_id,
                is_self: *id == self_id,
                key_values: if all_keys {
                    state.key_values().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
                } else {
                    filter
                        .probe_keys
                        .iter()
                        .filter_map(|k| state.get(k).map(|v| (k.clone(), v.to_owned())))
                        .collect()
                },
            };
            let mut members = Vec::new();
            let mut others: Vec<&ChitchatId> = Vec::new();
            for (id, state) in states {
                let trusted = *id == self_id
                    || filter.trusted.contains(&(id.node_id.to_string(), id.generation_id, id.gossip_advertise_addr));
                if trusted {
                    members.push(snap(id, state, true));
                } else {
                    others.push(id);
                }
            }
            let take = filter.max_untrusted.min(others.len());
            for i in 0..take {
                let id = others[(start + i) % others.len()];
                members.push(snap(id, &states[id], false));
            }
            (View { members, total: states.len() }, held)
        });
        self.held_key_values.store(held.0, Ordering::Relaxed);
        self.held_value_bytes.store(held.1, Ordering::Relaxed);
        Ok(view)
    }

    /// Stop gossiping. Idempotent.
    pub fn shutdown(&mut self) -> Result<(), GossipError> {
        if let Some(handle) = self.handle.take() {
            runtime::get()
                .block_on(handle.shutdown())
                .map_err(|err| GossipError::Shutdown(format!("{err:#}")))?;
        }
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.handle.is_some()
    }

    fn ensure_running(&self) -> Result<(), GossipError> {
        if self.handle.is_none() {
            return Err(GossipError::Stopped);
        }
        Ok(())
    }
}

impl Drop for GossipNode {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// Tell the admission policy what chitchat holds now (and, when given, whom
/// the host trusts and which keys it probes before trusting).
fn sync_admission(admission: Option<&guarded::SharedAdmission>, chitchat: &chitchat::Chitchat, filter: Option<&ViewFilter>) {
    let Some(admission) = admission else { return };
    let held: Vec<Ident> = chitchat.node_states().keys().map(Ident::from).collect();
    let mut policy = guarded::lock(admission);
    if let Some(filter) = filter {
        policy.set_trusted(filter.trusted.iter().map(|(n, g, a)| Ident::new(n.clone(), *g, *a)).collect());
        policy.set_reserved_keys(&filter.probe_keys);
    }
    policy.sync(held.iter(), sealed::now_ms());
}

fn validate(config: &GossipConfig) -> Result<(), GossipError> {
    if config.max_unverified == 0 || config.max_unverified > MAX_CAP {
        return Err(GossipError::InvalidConfig(format!(
            "max_unverified must be 1..={MAX_CAP} (the engine's digest of every identity it holds must fit one datagram)"
        )));
    }
    if config.node_id.is_empty() || config.node_id.len() > 128 {
        return Err(GossipError::InvalidConfig("node_id must be 1..=128 bytes".into()));
    }
    if config.gossip_interval < Duration::from_millis(10) {
        return Err(GossipError::InvalidConfig("gossip_interval must be at least 10 ms".into()));
    }
    if !(config.phi_threshold.is_finite() && config.phi_threshold > 0.0) {
        return Err(GossipError::InvalidConfig("phi_threshold must be a positive number".into()));
    }
    if config.cluster_id.is_empty() {
        return Err(GossipError::InvalidConfig("cluster_id must not be empty".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
