//! Python face of `vudo_gossip::GossipNode`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use std::collections::HashSet;

use vudo_gossip::{GossipConfig, GossipKey, GossipNode, Network, ViewFilter};

use crate::errors::CoreFailure;

/// One member as seen by this node (a read-only value).
#[pyclass(frozen, get_all, module = "vudo._core")]
pub struct Member {
    node_id: String,
    generation: u64,
    gossip_addr: String,
    heartbeat: u64,
    live: bool,
    is_self: bool,
    key_values: HashMap<String, String>,
}

#[pymethods]
impl Member {
    fn __repr__(&self) -> String {
        format!(
            "Member(node_id={:?}, generation={}, live={}, keys={})",
            self.node_id,
            self.generation,
            self.live,
            self.key_values.len()
        )
    }
}

/// Datagram counters of a gossip node's transport (a read-only value).
#[pyclass(frozen, get_all, module = "vudo._core")]
pub struct TransportStats {
    sealed_transport: bool,
    sent: u64,
    received: u64,
    sealed: u64,
    opened: u64,
    rejected: HashMap<String, u64>,
    foreign_loopback: u64,
    fragmented: u64,
    rewritten: u64,
    truncated: u64,
    admission_cap: usize,
    admitted_unverified: usize,
    ids_refused: HashMap<String, u64>,
    admission_released: u64,
    values_refused: HashMap<String, u64>,
    engine_key_values: u64,
    engine_value_bytes: u64,
}

/// A new random 32-byte gossip key.
#[pyfunction]
pub fn generate_gossip_key() -> Result<Vec<u8>, CoreFailure> {
    Ok(GossipKey::generate()?.as_bytes().to_vec())
}

/// The public id (8 hex digits) of a gossip key, as datagrams and `keys list` name it.
#[pyfunction]
pub fn gossip_key_id(key: &[u8]) -> Result<String, CoreFailure> {
    Ok(GossipKey::from_bytes(key)?.id_hex())
}

/// An in-process network for gossip (tests, simulations): many nodes in one
/// process, links that can be cut and healed.
#[pyclass(frozen, module = "vudo._core")]
pub struct MemoryNetwork {
    inner: vudo_gossip::MemoryNetwork,
}

#[pymethods]
impl MemoryNetwork {
    #[new]
    fn new() -> Self {
        Self { inner: vudo_gossip::MemoryNetwork::new() }
    }

    /// Drop every datagram between two gossip addresses, both ways.
    fn cut(&self, py: Python<'_>, a: &str, b: &str) -> Result<(), CoreFailure> {
        let (a, b) = (parse_addr("a", a)?, parse_addr("b", b)?);
        py.detach(|| self.inner.cut(a, b));
        Ok(())
    }

    /// Restore the link between two gossip addresses.
    fn heal(&self, py: Python<'_>, a: &str, b: &str) -> Result<(), CoreFailure> {
        let (a, b) = (parse_addr("a", a)?, parse_addr("b", b)?);
        py.detach(|| self.inner.heal(a, b));
        Ok(())
    }

    /// (messages, bytes) sent through this network so far.
    #[getter]
    fn statistics(&self) -> (u64, u64) {
        self.inner.statistics()
    }
}

/// A running chitchat gossip server.
#[pyclass(module = "vudo._core")]
pub struct Gossip {
    inner: Mutex<GossipNode>,
}

fn parse_addr(what: &str, text: &str) -> Result<SocketAddr, CoreFailure> {
    text.parse()
        .map_err(|_| CoreFailure::InvalidArgument(format!("{what} {text:?} is not an IP:port address")))
}

impl Gossip {
    fn with<T>(&self, f: impl FnOnce(&mut GossipNode) -> Result<T, vudo_gossip::GossipError>) -> Result<T, CoreFailure> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| CoreFailure::Other("gossip state poisoned by an earlier panic".into()))?;
        f(&mut guard).map_err(CoreFailure::from)
    }
}

#[pymethods]
impl Gossip {
    #[new]
    #[pyo3(signature = (*, node_id, generation, listen_addr, advertise_addr, seeds, cluster_id,
        gossip_interval_ms, phi_threshold, dead_node_grace_period_ms, max_interval_ms, initial_key_values,
        network=None, keys=Vec::new(), replay_window_ms=30_000, max_unverified=256))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        node_id: String,
        generation: u64,
        listen_addr: &str,
        advertise_addr: &str,
        seeds: Vec<String>,
        cluster_id: String,
        gossip_interval_ms: u64,
        phi_threshold: f64,
        dead_node_grace_period_ms: u64,
        max_interval_ms: u64,
        initial_key_values: HashMap<String, String>,
        network: Option<PyRef<'_, MemoryNetwork>>,
        keys: Vec<Vec<u8>>,
        replay_window_ms: u64,
        max_unverified: usize,
    ) -> Result<Self, CoreFailure> {
        let keys = keys.iter().map(|k| GossipKey::from_bytes(k)).collect::<Result<Vec<_>, _>>()?;
        let mut initial: Vec<(String, String)> = initial_key_values.into_iter().collect();
        initial.sort();
        let config = GossipConfig {
            node_id,
            generation,
            listen_addr: parse_addr("listen_addr", listen_addr)?,
            advertise_addr: parse_addr("advertise_addr", advertise_addr)?,
            seeds,
            cluster_id,
            gossip_interval: Duration::from_millis(gossip_interval_ms),
            phi_threshold,
            dead_node_grace_period: Duration::from_millis(dead_node_grace_period_ms),
            max_interval: Duration::from_millis(max_interval_ms),
            initial_key_values: initial,
            network: network.map_or(Network::Udp, |n| Network::Memory(n.inner.clone())),
            keys,
            replay_window: Duration::from_millis(replay_window_ms),
            max_unverified,
        };
        let node = py.detach(|| GossipNode::start(config))?;
        Ok(Self { inner: Mutex::new(node) })
    }

    #[getter]
    fn node_id(&self) -> Result<String, CoreFailure> {
        self.with(|n| Ok(n.node_id().to_owned()))
    }

    #[getter]
    fn gossip_addr(&self) -> Result<String, CoreFailure> {
        self.with(|n| Ok(n.gossip_addr().to_string()))
    }

    #[getter]
    fn running(&self) -> Result<bool, CoreFailure> {
        self.with(|n| Ok(n.is_running()))
    }

    fn set(&self, py: Python<'_>, key: &str, value: &str) -> Result<(), CoreFailure> {
        py.detach(|| self.with(|n| n.set(key, value)))
    }

    fn delete(&self, py: Python<'_>, key: &str) -> Result<(), CoreFailure> {
        py.detach(|| self.with(|n| n.delete(key)))
    }

    fn snapshot(&self, py: Python<'_>) -> Result<Vec<Member>, CoreFailure> {
        let members = py.detach(|| self.with(|n| n.snapshot()))?;
        Ok(members.into_iter().map(member).collect())
    }

    /// A bounded view: self, the trusted ``(node_id, generation, gossip_addr)``
    /// members with every key, and at most ``max_untrusted`` others (only
    /// ``probe_keys``), rotating through the others call after call. In open
    /// gossip the trusted identities also always pass the engine's admission.
    /// Returns (members, size of the engine's whole table).
    fn snapshot_view(
        &self,
        py: Python<'_>,
        trusted: Vec<(String, u64, String)>,
        max_untrusted: usize,
        probe_keys: Vec<String>,
    ) -> Result<(Vec<Member>, usize), CoreFailure> {
        let trusted = trusted
            .into_iter()
            .map(|(node_id, generation, addr)| Ok((node_id, generation, parse_addr("trusted gossip_addr", &addr)?)))
            .collect::<Result<HashSet<_>, CoreFailure>>()?;
        let filter = ViewFilter { trusted, max_untrusted, probe_keys };
        let view = py.detach(|| self.with(|n| n.snapshot_view(&filter)))?;
        Ok((view.members.into_iter().map(member).collect(), view.total))
    }

    /// ``True`` when every datagram is sealed with the cluster keyring.
    #[getter]
    fn sealed(&self) -> Result<bool, CoreFailure> {
        self.with(|n| Ok(n.is_sealed()))
    }

    /// Installed keys as ``(key id, primary)``, primary first.
    fn keys(&self) -> Result<Vec<(String, bool)>, CoreFailure> {
        self.with(|n| Ok(n.keys()?.into_iter().map(|k| (k.id, k.primary)).collect()))
    }

    fn install_key(&self, key: &[u8]) -> Result<(), CoreFailure> {
        let key = GossipKey::from_bytes(key)?;
        self.with(|n| n.install_key(key))
    }

    fn use_key(&self, key: &[u8]) -> Result<(), CoreFailure> {
        let key = GossipKey::from_bytes(key)?;
        self.with(|n| n.use_key(&key))
    }

    fn remove_key(&self, key: &[u8]) -> Result<(), CoreFailure> {
        let key = GossipKey::from_bytes(key)?;
        self.with(|n| n.remove_key(&key))
    }

    fn transport_stats(&self) -> Result<TransportStats, CoreFailure> {
        let s = self.with(|n| Ok(n.transport_stats()))?;
        Ok(TransportStats {
            sealed_transport: s.sealed_transport,
            sent: s.sent,
            received: s.received,
            sealed: s.sealed,
            opened: s.opened,
            rejected: s.rejected.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            foreign_loopback: s.foreign_loopback,
            fragmented: s.fragmented,
            rewritten: s.rewritten,
            truncated: s.truncated,
            admission_cap: s.admission.as_ref().map_or(0, |a| a.cap),
            admitted_unverified: s.admission.as_ref().map_or(0, |a| a.admitted),
            ids_refused: s
                .admission
                .as_ref()
                .map(|a| a.refused.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
                .unwrap_or_default(),
            admission_released: s.admission.as_ref().map_or(0, |a| a.released),
            values_refused: s
                .admission
                .as_ref()
                .map(|a| a.values_refused.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
                .unwrap_or_default(),
            engine_key_values: s.held_key_values,
            engine_value_bytes: s.held_value_bytes,
        })
    }

    fn shutdown(&self, py: Python<'_>) -> Result<(), CoreFailure> {
        py.detach(|| self.with(|n| n.shutdown()))
    }
}

fn member(m: vudo_gossip::MemberSnapshot) -> Member {
    Member {
        node_id: m.node_id,
        generation: m.generation,
        gossip_addr: m.gossip_addr.to_string(),
        heartbeat: m.heartbeat,
        live: m.live,
        is_self: m.is_self,
        key_values: m.key_values.into_iter().collect(),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Member>()?;
    m.add_class::<TransportStats>()?;
    m.add_function(wrap_pyfunction!(generate_gossip_key, m)?)?;
    m.add_function(wrap_pyfunction!(gossip_key_id, m)?)?;
    m.add_class::<Gossip>()?;
    m.add_class::<MemoryNetwork>()?;
    Ok(())
}
