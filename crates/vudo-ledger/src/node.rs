//! A ledger member: openraft on a private tokio runtime over the redb store.
//!
//! Theory of operation
//! -------------------
//! [`LedgerNode::start`] opens `<data_dir>/ledger.redb`, loads the state
//! machine, and starts openraft on a runtime owned by the node, so hosts
//! (Python, the links engine) never lend their own event loop. Everything
//! that waits on consensus is an `async fn` on the cheap, clonable
//! [`LedgerHandle`]; a host runs it with [`LedgerNode::spawn`] and collects
//! the result however it likes (the PyO3 binding pushes it onto an event
//! queue). Raft RPCs leave through the outbound queue and arrive through
//! [`LedgerHandle::handle_rpc`] (see [`crate::network`]).
//!
//! Only witnesses are Raft voters. A node that is not the leader answers
//! writes with `NotLeader { leader }` so its host can forward the command to
//! the leader over the links; a command carries its own id, so a retry after
//! a timeout is safe (`Exists` when the first attempt committed).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, InstallSnapshotError, RaftError};
use openraft::{BasicNode, ChangeMembers, Config, Raft, ServerState, SnapshotPolicy};
use tokio::runtime::Runtime;

use crate::error::LedgerError;
use crate::ledger::{Command, Genesis, Ledger, Outcome};
use crate::network::{decode_bounded, encode, NetworkFactory, OutboundRpc, RaftReply, RaftRequest, RpcHub};
use crate::store::{open_database, Applied, LogStore, StateMachineStore, MAX_SNAPSHOT_BYTES};
use crate::types::{raft_id, verifying_key, TypeConfig};

/// How to run one ledger member.
#[derive(Clone)]
pub struct NodeConfig {
    /// This node's PeerId string (its Ed25519 identity).
    pub peer_id: String,
    /// Directory holding `ledger.redb`.
    pub data_dir: PathBuf,
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Build a snapshot (and purge the log before it) every this many applied entries.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot (for slow followers).
    pub keep_logs: u64,
    /// Largest snapshot chunk sent in one install-snapshot RPC (the host's message size limit bounds it).
    pub snapshot_chunk_bytes: u64,
    /// Peers whose RPCs are accepted while this node knows no membership yet (how a new member joins).
    pub bootstrap_peers: Vec<String>,
    /// Worker threads of the node's private runtime.
    pub worker_threads: usize,
    /// Called (from any thread) when an outbound RPC is queued; hosts use it to wake their loop.
    pub on_outbound: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl NodeConfig {
    pub fn new(peer_id: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            peer_id: peer_id.into(),
            data_dir: data_dir.into(),
            heartbeat_ms: 100,
            election_min_ms: 500,
            election_max_ms: 1000,
            snapshot_every: 5000,
            keep_logs: 1000,
            snapshot_chunk_bytes: 256 * 1024,
            bootstrap_peers: Vec::new(),
            worker_threads: 2,
            on_outbound: None,
        }
    }
}

/// What a committed command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// `Applied`, or `Exists` for an idempotent retry.
    pub outcome: Outcome,
    /// The Raft log index of the entry that carried it.
    pub index: u64,
}

/// A snapshot of the node's Raft view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub peer_id: String,
    pub raft_id: u64,
    pub state: String,
    pub leader: Option<String>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    /// Current Raft voters (the witnesses), as PeerIds.
    pub voters: Vec<String>,
    pub learners: Vec<String>,
    pub refused_rpcs: u64,
    pub bad_messages: u64,
    pub pending_rpcs: usize,
}

#[derive(Default)]
struct Counters {
    refused_rpcs: AtomicU64,
    bad_messages: AtomicU64,
}

/// The clonable face of a running node; every method that waits on consensus is async.
#[derive(Clone)]
pub struct LedgerHandle {
    raft: Raft<TypeConfig>,
    hub: Arc<RpcHub>,
    applied: Arc<RwLock<Applied>>,
    peer_id: Arc<str>,
    bootstrap: Arc<RwLock<BTreeSet<String>>>,
    counters: Arc<Counters>,
}

/// A running ledger member (owns its runtime). Dropping it stops everything at once, like a crash.
pub struct LedgerNode {
    runtime: Option<Runtime>,
    handle: LedgerHandle,
}

fn raft_err<E: std::fmt::Display>(err: E) -> LedgerError {
    LedgerError::Raft(err.to_string())
}

impl LedgerNode {
    /// Open the store and start openraft. Blocks only while the store loads.
    pub fn start(config: NodeConfig) -> Result<Self, LedgerError> {
        verifying_key(&config.peer_id)?;
        for peer in &config.bootstrap_peers {
            verifying_key(peer)?;
        }
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| LedgerError::Storage(format!("cannot create {}: {e}", config.data_dir.display())))?;
        let db = open_database(&config.data_dir.join("ledger.redb"))?;
        let log_store = LogStore::new(db.clone());
        let state_machine = StateMachineStore::open(db)?;
        let applied = state_machine.applied();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("vudo-ledger")
            .enable_time()
            .build()
            .map_err(|e| LedgerError::Storage(format!("cannot start the ledger runtime: {e}")))?;
        let raft_config = Config {
            cluster_name: "vudo-ledger".into(),
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_min_ms,
            election_timeout_max: config.election_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: config.keep_logs,
            snapshot_max_chunk_size: config.snapshot_chunk_bytes.max(1024),
            install_snapshot_timeout: 2000,
            ..Config::default()
        }
        .validate()
        .map_err(|e| LedgerError::InvalidArgument(format!("raft timing: {e}")))?;
        let hub = Arc::new(RpcHub::new(config.on_outbound.clone()));
        let network = NetworkFactory { hub: hub.clone() };
        let id = raft_id(&config.peer_id);
        let raft = runtime
            .block_on(Raft::new(id, Arc::new(raft_config), network, log_store, state_machine))
            .map_err(raft_err)?;
        let handle = LedgerHandle {
            raft,
            hub,
            applied,
            peer_id: config.peer_id.as_str().into(),
            bootstrap: Arc::new(RwLock::new(config.bootstrap_peers.iter().cloned().collect())),
            counters: Arc::default(),
        };
        Ok(Self { runtime: Some(runtime), handle })
    }

    pub fn handle(&self) -> LedgerHandle {
        self.handle.clone()
    }

    /// Run a future on the node's runtime (the result comes back through the JoinHandle or a channel).
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime_handle().spawn(future)
    }

    pub fn runtime_handle(&self) -> tokio::runtime::Handle {
        match &self.runtime {
            Some(rt) => rt.handle().clone(),
            None => unreachable!("the runtime lives until the node is dropped"),
        }
    }

    /// Block the calling (non-async) thread on a future; for tests, tools and benchmarks only.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        match &self.runtime {
            Some(rt) => rt.block_on(future),
            None => unreachable!("the runtime lives until the node is dropped"),
        }
    }

    /// Stop Raft gracefully, then the runtime.
    pub fn shutdown(mut self) {
        if let Some(rt) = self.runtime.take() {
            let raft = self.handle.raft.clone();
            let _ = rt.block_on(async move { tokio::time::timeout(Duration::from_secs(5), raft.shutdown()).await });
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for LedgerNode {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

fn forward_error(leader: Option<&BasicNode>) -> LedgerError {
    match leader {
        Some(node) => LedgerError::NotLeader { leader: Some(node.addr.clone()) },
        None => LedgerError::NoLeader,
    }
}

impl LedgerHandle {
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// Found a new cluster whose voters (witnesses) are `witnesses`. Call on one node only.
    pub async fn initialize(&self, witnesses: &[String]) -> Result<(), LedgerError> {
        let mut members = BTreeMap::new();
        for peer in witnesses {
            verifying_key(peer)?;
            if members.insert(raft_id(peer), BasicNode { addr: peer.clone() }).is_some() {
                return Err(LedgerError::InvalidArgument(format!("{peer} is listed twice")));
            }
        }
        if members.is_empty() {
            return Err(LedgerError::InvalidArgument("a cluster needs at least one witness".into()));
        }
        self.raft.initialize(members).await.map_err(raft_err)
    }

    /// Submit a genesis (accepted once per ledger).
    pub async fn genesis(&self, genesis: Genesis) -> Result<Committed, LedgerError> {
        self.submit(Command::Genesis(genesis)).await
    }

    /// Propose `command` through Raft and wait until it is applied here.
    /// A refusal by the state machine is `Err(Rejected { code, .. })` (and is committed).
    pub async fn submit(&self, command: Command) -> Result<Committed, LedgerError> {
        let response = self.raft.client_write(command).await.map_err(|err| match err {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => forward_error(f.leader_node.as_ref()),
            RaftError::APIError(other) => LedgerError::Raft(other.to_string()),
            RaftError::Fatal(fatal) => LedgerError::Raft(fatal.to_string()),
        })?;
        let index = response.log_id.index;
        match response.data {
            Outcome::Rejected { code, message } => Err(LedgerError::Rejected { code, message }),
            outcome => Ok(Committed { outcome, index }),
        }
    }

    /// Linearizable read: confirm leadership with a quorum, wait until applied, then read.
    pub async fn read<T>(&self, f: impl FnOnce(&Ledger) -> T) -> Result<T, LedgerError> {
        self.raft.ensure_linearizable().await.map_err(|err| match err {
            RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => forward_error(f.leader_node.as_ref()),
            RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)) => LedgerError::NoLeader,
            RaftError::Fatal(fatal) => LedgerError::Raft(fatal.to_string()),
        })?;
        Ok(self.local_read(f))
    }

    /// Read this node's applied state without consensus (may be stale on followers).
    pub fn local_read<T>(&self, f: impl FnOnce(&Ledger) -> T) -> T {
        let applied = self.applied.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&applied.ledger)
    }

    /// SHA-256 of the applied ledger state and the index it covers.
    pub fn state_hash(&self) -> ([u8; 32], Option<u64>) {
        let applied = self.applied.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        (applied.ledger.state_hash(), applied.last_applied.map(|l| l.index))
    }

    pub fn status(&self) -> Status {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let peer = |id: u64| membership.get_node(&id).map(|n| n.addr.clone());
        let state = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        Status {
            peer_id: self.peer_id.to_string(),
            raft_id: m.id,
            state: state.into(),
            leader: m.current_leader.and_then(peer),
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            voters: membership.voter_ids().filter_map(peer).collect(),
            learners: membership.learner_ids().filter_map(peer).collect(),
            refused_rpcs: self.counters.refused_rpcs.load(Ordering::Relaxed),
            bad_messages: self.counters.bad_messages.load(Ordering::Relaxed),
            pending_rpcs: self.hub.pending_count(),
        }
    }

    /// Wait until `pred(status)` holds or `timeout` passes; returns whether it held.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Status) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.raft.metrics();
        loop {
            if pred(&self.status()) {
                return true;
            }
            let changed = tokio::time::timeout_at(deadline, rx.changed()).await;
            match changed {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return pred(&self.status()),
            }
        }
    }

    /// Make `peer` a voting witness: add it as a learner (waits until it caught up), then a voter.
    pub async fn add_witness(&self, peer: &str) -> Result<(), LedgerError> {
        verifying_key(peer)?;
        let id = raft_id(peer);
        let write_err = |err: RaftError<u64, ClientWriteError<u64, BasicNode>>| match err {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => forward_error(f.leader_node.as_ref()),
            other => raft_err(other),
        };
        self.raft.add_learner(id, BasicNode { addr: peer.to_owned() }, true).await.map_err(write_err)?;
        self.raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false).await.map_err(write_err)?;
        Ok(())
    }

    /// Remove `peer` from the cluster entirely; its RPCs are refused from then on.
    pub async fn remove_member(&self, peer: &str) -> Result<(), LedgerError> {
        let id = raft_id(peer);
        let write_err = |err: RaftError<u64, ClientWriteError<u64, BasicNode>>| match err {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => forward_error(f.leader_node.as_ref()),
            other => raft_err(other),
        };
        self.raft
            .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
            .await
            .map_err(write_err)?;
        Ok(())
    }

    /// On the leader: make the Raft voters equal the ledger's witness set (after approved decisions).
    pub async fn reconcile_witnesses(&self) -> Result<(), LedgerError> {
        let witnesses: BTreeSet<String> = self.read(|l| l.state().meta.witnesses.clone()).await?;
        if witnesses.is_empty() {
            return Ok(());
        }
        let voters: BTreeSet<String> = self.status().voters.into_iter().collect();
        for peer in witnesses.difference(&voters) {
            self.add_witness(peer).await?;
        }
        for peer in voters.difference(&witnesses) {
            self.remove_member(peer).await?;
        }
        Ok(())
    }

    /// Ask for a snapshot now (it is built in the background).
    pub async fn trigger_snapshot(&self) -> Result<(), LedgerError> {
        self.raft.trigger().snapshot().await.map_err(raft_err)
    }

    // ---- the host side of the network (see `crate::network`) ----

    /// The next RPC to carry, without waiting.
    pub fn try_next_outbound(&self) -> Option<OutboundRpc> {
        self.hub.try_next()
    }

    /// The next RPC to carry; `None` once the node stopped.
    pub async fn next_outbound(&self) -> Option<OutboundRpc> {
        self.hub.next().await
    }

    /// The reply (or the reason there is none) to an outbound RPC. False if nobody waits for it any more.
    pub fn deliver_reply(&self, request_id: u64, reply: Result<Vec<u8>, String>) -> bool {
        self.hub.deliver_reply(request_id, reply)
    }

    /// Replace the peers whose RPCs are accepted while this node knows no membership (a host learns the
    /// witnesses after start, e.g. by gossip). Once the node holds a membership, only members count.
    pub fn set_bootstrap_peers(&self, peers: &[String]) -> Result<(), LedgerError> {
        for peer in peers {
            verifying_key(peer)?;
        }
        *self.bootstrap.write().unwrap_or_else(std::sync::PoisonError::into_inner) = peers.iter().cloned().collect();
        Ok(())
    }

    fn is_member(&self, from: &str) -> bool {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let membership = m.membership();
        let mut nodes = membership.nodes().peekable();
        if nodes.peek().is_none() {
            return self.bootstrap.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(from);
        }
        membership.get_node(&raft_id(from)).is_some_and(|node| node.addr == from)
    }

    /// Serve one inbound RPC from the authenticated peer `from`; returns the reply bytes.
    pub async fn handle_rpc(&self, from: &str, bytes: &[u8]) -> Result<Vec<u8>, LedgerError> {
        if !self.is_member(from) {
            self.counters.refused_rpcs.fetch_add(1, Ordering::Relaxed);
            return Err(LedgerError::NotMember { peer: from.to_owned() });
        }
        let bad = |reason: String| {
            self.counters.bad_messages.fetch_add(1, Ordering::Relaxed);
            LedgerError::BadMessage { peer: from.to_owned(), reason }
        };
        let request: RaftRequest = decode_bounded(bytes).map_err(bad)?;
        let sender = raft_id(from);
        let claimed = match &request {
            RaftRequest::Append(rpc) => rpc.vote.leader_id().voted_for(),
            RaftRequest::Vote(rpc) => rpc.vote.leader_id().voted_for(),
            RaftRequest::Snapshot(rpc) => rpc.vote.leader_id().voted_for(),
        };
        if claimed != Some(sender) {
            return Err(bad(format!("the request speaks for raft node {claimed:?}, not for its sender")));
        }
        let reply = match request {
            RaftRequest::Append(rpc) => match self.raft.append_entries(rpc).await {
                Ok(resp) => RaftReply::Append(resp),
                Err(e) => RaftReply::Refused(e.to_string()),
            },
            RaftRequest::Vote(rpc) => match self.raft.vote(rpc).await {
                Ok(resp) => RaftReply::Vote(resp),
                Err(e) => RaftReply::Refused(e.to_string()),
            },
            RaftRequest::Snapshot(rpc) => {
                let end = rpc.offset.saturating_add(rpc.data.len() as u64);
                if end > MAX_SNAPSHOT_BYTES {
                    return Err(bad(format!("snapshot chunk ends at byte {end}, beyond the cap")));
                }
                match self.raft.install_snapshot(rpc).await {
                    Ok(resp) => RaftReply::Snapshot(resp),
                    Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m))) => RaftReply::SnapshotMismatch(m),
                    Err(e) => RaftReply::Refused(e.to_string()),
                }
            }
        };
        Ok(encode(&reply))
    }
}
