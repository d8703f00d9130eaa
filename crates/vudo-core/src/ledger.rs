//! Python face of `vudo_ledger`: a Raft ledger member that never blocks the caller.
//!
//! Every call that waits on consensus (submissions, linearizable-read barriers,
//! membership changes, serving an inbound RPC) returns a *ticket* at once and
//! runs on the node's private runtime. Its completion becomes a
//! [`LedgerEvent`] in a queue that Python drains with `poll_events()`. The
//! read end of a socket pair (`wake_fd`) becomes readable whenever an event or
//! an outbound RPC is waiting, so an asyncio loop can `add_reader` on it.

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use vudo_ledger::{
    Action, Command, CreditTransaction, Genesis, LedgerError, LedgerHandle, LedgerNode, LockOp, NameClaimOp, NodeConfig, Outcome,
    PostOp, ProposeOp, VoidOp, VoteOp,
};

use crate::errors::CoreFailure;

/// One completion, delivered through `Ledger.poll_events()`.
#[pyclass(frozen, get_all, module = "vudo._core")]
pub struct LedgerEvent {
    /// The ticket returned by the call that started the work.
    ticket: u64,
    /// "committed", "failed", "read_ready", "done" or "rpc_reply".
    kind: &'static str,
    /// For "committed": "applied" or "exists".
    outcome: &'static str,
    /// Raft log index (committed) or applied index (read_ready); 0 otherwise.
    index: u64,
    /// For "failed": a machine-readable code (insufficient_funds, not_leader, ...).
    code: &'static str,
    message: String,
    /// For "failed" with code "not_leader": the leader to forward to, when known.
    leader: Option<String>,
    /// For "rpc_reply": the bytes to send back to the peer.
    reply: Option<Vec<u8>>,
}

#[pymethods]
impl LedgerEvent {
    fn __repr__(&self) -> String {
        format!(
            "LedgerEvent(ticket={}, kind={:?}, outcome={:?}, index={}, code={:?}, message={:?})",
            self.ticket, self.kind, self.outcome, self.index, self.code, self.message
        )
    }
}

impl LedgerEvent {
    fn new(ticket: u64, kind: &'static str) -> Self {
        Self { ticket, kind, outcome: "", index: 0, code: "", message: String::new(), leader: None, reply: None }
    }

    fn failed(ticket: u64, err: &LedgerError) -> Self {
        let leader = match err {
            LedgerError::NotLeader { leader } => leader.clone(),
            _ => None,
        };
        Self { code: err.code(), message: err.to_string(), leader, ..Self::new(ticket, "failed") }
    }
}

/// The event queue and the wake-up socket shared with the runtime's tasks.
struct Events {
    queue: Mutex<VecDeque<LedgerEvent>>,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
    next_ticket: std::sync::atomic::AtomicU64,
}

impl Events {
    fn new() -> std::io::Result<Self> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(Self { queue: Mutex::new(VecDeque::new()), wake_tx, wake_rx, next_ticket: 1.into() })
    }

    fn wake(&self) {
        // A full socket buffer already means "readable"; nothing to do then.
        let _ = (&self.wake_tx).write(&[1]);
    }

    fn push(&self, event: LedgerEvent) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.push_back(event);
        }
        self.wake();
    }

    fn ticket(&self) -> u64 {
        self.next_ticket.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// In-process network for ledger nodes (tests, benchmarks, simulations).
#[pyclass(frozen, module = "vudo._core")]
pub struct LedgerNetwork {
    inner: vudo_ledger::MemoryNetwork,
}

#[pymethods]
impl LedgerNetwork {
    #[new]
    fn new() -> Self {
        Self { inner: vudo_ledger::MemoryNetwork::new() }
    }

    /// Drop every RPC between two members (PeerIds), both ways.
    fn cut(&self, a: &str, b: &str) {
        self.inner.cut(a, b);
    }

    fn heal(&self, a: &str, b: &str) {
        self.inner.heal(a, b);
    }
}

/// A read-only account.
#[pyclass(frozen, get_all, module = "vudo._core")]
pub struct LedgerAccount {
    balance: u64,
    locked: u64,
    earned_total: u64,
    spent_total: u64,
    available: u64,
}

/// Totals and the Raft view of one node.
#[pyclass(frozen, get_all, module = "vudo._core")]
pub struct LedgerSummary {
    total_minted: u64,
    pool: u64,
    sum_balances: u128,
    accounts: usize,
    open_locks: usize,
    witnesses: Vec<String>,
    threshold_permille: u32,
    state_hash: String,
    leader: Option<String>,
    state: String,
    term: u64,
    last_applied: Option<u64>,
    last_log_index: Option<u64>,
    snapshot_index: Option<u64>,
    voters: Vec<String>,
    learners: Vec<String>,
    refused_rpcs: u64,
    bad_messages: u64,
}

/// The recorded outcome of an operation id.
#[pyclass(frozen, get_all, module = "vudo._core")]
pub struct LedgerRecord {
    op_id: String,
    /// "applied" or "rejected".
    status: &'static str,
    code: &'static str,
    message: String,
    index: u64,
}

/// One operation in an account's history.
#[pyclass(frozen, get_all, module = "vudo._core")]
pub struct LedgerHistoryEntry {
    op_id: String,
    kind: &'static str,
    index: u64,
    status: &'static str,
    code: &'static str,
    counterparty: String,
    amount: u64,
    fee: u64,
    incoming: bool,
    memo: String,
    timestamp: u64,
}

/// A quorum decision.
#[pyclass(frozen, get_all, module = "vudo._core")]
pub struct LedgerProposal {
    proposal_id: String,
    proposer: String,
    action: &'static str,
    target: String,
    amount: u64,
    state: &'static str,
    approvals: usize,
    rejections: usize,
    failure: Option<String>,
}

/// Who owns a spirit name and what it last published.
#[pyclass(frozen, get_all, module = "vudo._core")]
pub struct LedgerName {
    name: String,
    author: String,
    rev: u64,
    package: String,
    index: u64,
}

/// A Raft ledger member.
#[pyclass(module = "vudo._core")]
pub struct Ledger {
    node: Mutex<Option<LedgerNode>>,
    handle: LedgerHandle,
    events: Arc<Events>,
    peer_id: String,
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Ledger {
    fn spawn_ticket<F, T>(&self, work: F, finish: fn(u64, T) -> LedgerEvent) -> Result<u64, CoreFailure>
    where
        F: std::future::Future<Output = Result<T, LedgerError>> + Send + 'static,
        T: Send + 'static,
    {
        let ticket = self.events.ticket();
        let events = self.events.clone();
        let guard = self.node.lock().map_err(|_| CoreFailure::Other("ledger state poisoned".into()))?;
        let node = guard.as_ref().ok_or_else(|| CoreFailure::Stopped("the ledger node is stopped".into()))?;
        node.spawn(async move {
            let event = match work.await {
                Ok(value) => finish(ticket, value),
                Err(err) => LedgerEvent::failed(ticket, &err),
            };
            events.push(event);
        });
        Ok(ticket)
    }

    fn submit_command(&self, command: Command) -> Result<u64, CoreFailure> {
        let handle = self.handle.clone();
        self.spawn_ticket(async move { handle.submit(command).await }, |ticket, committed| {
            let outcome = match committed.outcome {
                Outcome::Exists => "exists",
                _ => "applied",
            };
            LedgerEvent { outcome, index: committed.index, ..LedgerEvent::new(ticket, "committed") }
        })
    }
}

fn done(ticket: u64, (): ()) -> LedgerEvent {
    LedgerEvent::new(ticket, "done")
}

#[pymethods]
impl Ledger {
    #[new]
    #[pyo3(signature = (*, peer_id, data_dir, bootstrap_peers=Vec::new(), network=None, heartbeat_ms=100,
        election_min_ms=500, election_max_ms=1000, snapshot_every=5000, keep_logs=1000, snapshot_chunk_bytes=262_144))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        peer_id: String,
        data_dir: std::path::PathBuf,
        bootstrap_peers: Vec<String>,
        network: Option<PyRef<'_, LedgerNetwork>>,
        heartbeat_ms: u64,
        election_min_ms: u64,
        election_max_ms: u64,
        snapshot_every: u64,
        keep_logs: u64,
        snapshot_chunk_bytes: u64,
    ) -> Result<Self, CoreFailure> {
        let events = Arc::new(Events::new().map_err(|e| CoreFailure::Other(format!("wake socket: {e}")))?);
        let mut config = NodeConfig::new(peer_id.clone(), data_dir);
        config.bootstrap_peers = bootstrap_peers;
        config.heartbeat_ms = heartbeat_ms;
        config.election_min_ms = election_min_ms;
        config.election_max_ms = election_max_ms;
        config.snapshot_every = snapshot_every;
        config.keep_logs = keep_logs;
        config.snapshot_chunk_bytes = snapshot_chunk_bytes;
        let wake_events = events.clone();
        config.on_outbound = Some(Arc::new(move || wake_events.wake()));
        let memory = network.map(|n| n.inner.clone());
        let node = py.detach(|| LedgerNode::start(config))?;
        if let Some(net) = memory {
            net.attach(&node);
        }
        let handle = node.handle();
        Ok(Self { node: Mutex::new(Some(node)), handle, events, peer_id })
    }

    #[getter]
    fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// File descriptor that becomes readable when events or outbound RPCs wait (drain it, then poll).
    #[getter]
    fn wake_fd(&self) -> i32 {
        self.events.wake_rx.as_raw_fd()
    }

    /// Take up to `max_events` completed events (never blocks).
    #[pyo3(signature = (max_events=1024))]
    fn poll_events(&self, max_events: usize) -> Vec<LedgerEvent> {
        let mut queue = match self.events.queue.lock() {
            Ok(q) => q,
            Err(_) => return Vec::new(),
        };
        let n = max_events.min(queue.len());
        queue.drain(..n).collect()
    }

    /// Found a cluster whose witnesses (Raft voters) are `witnesses`; on one node only.
    fn initialize(&self, witnesses: Vec<String>) -> Result<u64, CoreFailure> {
        let handle = self.handle.clone();
        self.spawn_ticket(async move { handle.initialize(&witnesses).await }, done)
    }

    #[pyo3(signature = (*, allocations, witnesses, threshold_permille, timestamp))]
    fn submit_genesis(
        &self,
        allocations: Vec<(String, u64)>,
        witnesses: Vec<String>,
        threshold_permille: u32,
        timestamp: u64,
    ) -> Result<u64, CoreFailure> {
        self.submit_command(Command::Genesis(Genesis { allocations, witnesses, threshold_permille, timestamp }))
    }

    #[pyo3(signature = (*, id, from_node, to, amount, fee, memo, timestamp, signature))]
    #[allow(clippy::too_many_arguments)]
    fn submit_transfer(
        &self,
        id: String,
        from_node: String,
        to: String,
        amount: u64,
        fee: u64,
        memo: String,
        timestamp: u64,
        signature: Vec<u8>,
    ) -> Result<u64, CoreFailure> {
        let tx = CreditTransaction { id, from: from_node, to, amount, fee, memo, timestamp, signature };
        self.submit_command(Command::Transfer(tx))
    }

    #[pyo3(signature = (*, id, owner, amount, memo, timestamp, signature))]
    fn submit_lock(
        &self,
        id: String,
        owner: String,
        amount: u64,
        memo: String,
        timestamp: u64,
        signature: Vec<u8>,
    ) -> Result<u64, CoreFailure> {
        self.submit_command(Command::Lock(LockOp { id, owner, amount, memo, timestamp, signature }))
    }

    #[pyo3(signature = (*, id, name, author, rev, package, timestamp, signature))]
    #[allow(clippy::too_many_arguments)]
    fn submit_claim_name(
        &self,
        id: String,
        name: String,
        author: String,
        rev: u64,
        package: String,
        timestamp: u64,
        signature: Vec<u8>,
    ) -> Result<u64, CoreFailure> {
        self.submit_command(Command::ClaimName(NameClaimOp { id, name, author, rev, package, timestamp, signature }))
    }

    #[pyo3(signature = (*, id, lock_id, owner, payee, amount, timestamp, signature))]
    #[allow(clippy::too_many_arguments)]
    fn submit_post(
        &self,
        id: String,
        lock_id: String,
        owner: String,
        payee: String,
        amount: u64,
        timestamp: u64,
        signature: Vec<u8>,
    ) -> Result<u64, CoreFailure> {
        self.submit_command(Command::Post(PostOp { id, lock_id, owner, payee, amount, timestamp, signature }))
    }

    #[pyo3(signature = (*, id, lock_id, owner, timestamp, signature))]
    fn submit_void(
        &self,
        id: String,
        lock_id: String,
        owner: String,
        timestamp: u64,
        signature: Vec<u8>,
    ) -> Result<u64, CoreFailure> {
        self.submit_command(Command::Void(VoidOp { id, lock_id, owner, timestamp, signature }))
    }

    /// `action` is "mint" (target = payee, amount > 0), "add_witness" or "remove_witness" (amount 0).
    #[pyo3(signature = (*, id, proposer, action, target, amount, timestamp, signature))]
    #[allow(clippy::too_many_arguments)]
    fn submit_propose(
        &self,
        id: String,
        proposer: String,
        action: &str,
        target: String,
        amount: u64,
        timestamp: u64,
        signature: Vec<u8>,
    ) -> Result<u64, CoreFailure> {
        let action = match (action, amount) {
            ("mint", _) => Action::Mint { to: target, amount },
            ("add_witness", 0) => Action::AddWitness { node: target },
            ("remove_witness", 0) => Action::RemoveWitness { node: target },
            _ => {
                return Err(CoreFailure::InvalidArgument(format!(
                    "action {action:?} with amount {amount}: use mint (amount > 0), add_witness or remove_witness (amount 0)"
                )))
            }
        };
        self.submit_command(Command::Propose(ProposeOp { id, proposer, action, timestamp, signature }))
    }

    #[pyo3(signature = (*, proposal_id, voter, approve, timestamp, signature))]
    fn submit_vote(
        &self,
        proposal_id: String,
        voter: String,
        approve: bool,
        timestamp: u64,
        signature: Vec<u8>,
    ) -> Result<u64, CoreFailure> {
        self.submit_command(Command::Vote(VoteOp { proposal_id, voter, approve, timestamp, signature }))
    }

    /// Linearizable-read barrier: when its "read_ready" event arrives, local reads are up to date.
    fn read_barrier(&self) -> Result<u64, CoreFailure> {
        let handle = self.handle.clone();
        self.spawn_ticket(
            async move {
                let handle2 = handle.clone();
                handle.read(move |_| handle2.status().last_applied.unwrap_or(0)).await
            },
            |ticket, index| LedgerEvent { index, ..LedgerEvent::new(ticket, "read_ready") },
        )
    }

    /// On the leader: add `peer` as a learner, wait until it caught up, make it a voter.
    fn add_witness(&self, peer: String) -> Result<u64, CoreFailure> {
        let handle = self.handle.clone();
        self.spawn_ticket(async move { handle.add_witness(&peer).await }, done)
    }

    /// On the leader: remove `peer` from the cluster.
    fn remove_member(&self, peer: String) -> Result<u64, CoreFailure> {
        let handle = self.handle.clone();
        self.spawn_ticket(async move { handle.remove_member(&peer).await }, done)
    }

    /// On the leader: make the Raft voters equal the ledger's witness set.
    fn reconcile_witnesses(&self) -> Result<u64, CoreFailure> {
        let handle = self.handle.clone();
        self.spawn_ticket(async move { handle.reconcile_witnesses().await }, done)
    }

    /// Peers whose Raft RPCs are accepted while this node knows no membership yet (how a new witness joins).
    fn set_bootstrap_peers(&self, peers: Vec<String>) -> Result<(), CoreFailure> {
        Ok(self.handle.set_bootstrap_peers(&peers)?)
    }

    /// Outbound Raft RPCs for the host to carry: (request_id, target PeerId, bytes). Never blocks.
    #[pyo3(signature = (max_rpcs=256))]
    fn take_outbound(&self, max_rpcs: usize) -> Vec<(u64, String, Vec<u8>)> {
        std::iter::from_fn(|| self.handle.try_next_outbound())
            .take(max_rpcs)
            .map(|rpc| (rpc.request_id, rpc.target, rpc.bytes))
            .collect()
    }

    /// The peer's reply to an outbound RPC, or `error` (reply None) when it could not be reached.
    #[pyo3(signature = (request_id, reply, error=None))]
    fn deliver_reply(&self, request_id: u64, reply: Option<Vec<u8>>, error: Option<String>) -> bool {
        let result = match reply {
            Some(bytes) => Ok(bytes),
            None => Err(error.unwrap_or_else(|| "unreachable".into())),
        };
        self.handle.deliver_reply(request_id, result)
    }

    /// Serve an inbound RPC from the authenticated `from_peer`; the reply comes as an "rpc_reply" event.
    fn handle_rpc(&self, from_peer: String, data: Vec<u8>) -> Result<u64, CoreFailure> {
        let handle = self.handle.clone();
        self.spawn_ticket(async move { handle.handle_rpc(&from_peer, &data).await }, |ticket, reply| LedgerEvent {
            reply: Some(reply),
            ..LedgerEvent::new(ticket, "rpc_reply")
        })
    }

    // ---- local reads (this node's applied state; use read_barrier first for linearizable reads) ----

    fn account(&self, node_id: &str) -> LedgerAccount {
        let a = self.handle.local_read(|l| l.account(node_id));
        LedgerAccount {
            balance: a.balance,
            locked: a.locked,
            earned_total: a.earned_total,
            spent_total: a.spent_total,
            available: a.available(),
        }
    }

    /// Every account as node_id -> (balance, locked).
    fn balances(&self) -> Vec<(String, u64, u64)> {
        self.handle.local_read(|l| {
            l.state().accounts.iter().map(|(k, a)| (k.clone(), a.balance, a.locked)).collect()
        })
    }

    fn record(&self, op_id: &str) -> Option<LedgerRecord> {
        self.handle.local_read(|l| {
            l.op(op_id).map(|r| {
                let (status, code, message) = match &r.outcome {
                    Outcome::Rejected { code, message } => ("rejected", code.as_str(), message.clone()),
                    _ => ("applied", "", String::new()),
                };
                LedgerRecord { op_id: op_id.to_owned(), status, code, message, index: r.index }
            })
        })
    }

    /// The latest `limit` (at most 1000) operations that involved `node_id`, newest first.
    #[pyo3(signature = (node_id, limit=100))]
    fn history(&self, node_id: &str, limit: usize) -> Vec<LedgerHistoryEntry> {
        self.handle.local_read(|l| {
            l.history(node_id, limit)
                .into_iter()
                .map(|e| LedgerHistoryEntry {
                    op_id: e.op_id,
                    kind: e.kind,
                    index: e.index,
                    status: e.status,
                    code: e.code,
                    counterparty: e.counterparty,
                    amount: e.amount,
                    fee: e.fee,
                    incoming: e.incoming,
                    memo: e.memo,
                    timestamp: e.timestamp,
                })
                .collect()
        })
    }

    /// Who owns the spirit name `name` (this member's applied state), if anyone claimed it.
    fn name(&self, name: &str) -> Option<LedgerName> {
        self.handle.local_read(|l| {
            l.name(name).map(|r| LedgerName {
                name: name.to_owned(),
                author: r.author.clone(),
                rev: r.rev,
                package: r.package.clone(),
                index: r.index,
            })
        })
    }

    fn proposal(&self, proposal_id: &str) -> Option<LedgerProposal> {
        self.handle.local_read(|l| {
            l.proposal(proposal_id).map(|p| {
                let (action, target, amount) = match &p.action {
                    Action::Mint { to, amount } => ("mint", to.clone(), *amount),
                    Action::AddWitness { node } => ("add_witness", node.clone(), 0),
                    Action::RemoveWitness { node } => ("remove_witness", node.clone(), 0),
                };
                LedgerProposal {
                    proposal_id: proposal_id.to_owned(),
                    proposer: p.proposer.clone(),
                    action,
                    target,
                    amount,
                    state: p.state.as_str(),
                    approvals: p.votes.values().filter(|v| **v).count(),
                    rejections: p.votes.values().filter(|v| !**v).count(),
                    failure: p.failure.clone(),
                }
            })
        })
    }

    fn summary(&self) -> LedgerSummary {
        let (s, hash) = self.handle.local_read(|l| (l.summary(), l.state_hash()));
        let st = self.handle.status();
        LedgerSummary {
            total_minted: s.total_minted,
            pool: s.pool,
            sum_balances: s.sum_balances,
            accounts: s.accounts,
            open_locks: s.open_locks,
            witnesses: s.witnesses,
            threshold_permille: s.threshold_permille,
            state_hash: to_hex(&hash),
            leader: st.leader,
            state: st.state,
            term: st.term,
            last_applied: st.last_applied,
            last_log_index: st.last_log_index,
            snapshot_index: st.snapshot_index,
            voters: st.voters,
            learners: st.learners,
            refused_rpcs: st.refused_rpcs,
            bad_messages: st.bad_messages,
        }
    }

    /// Stop Raft and the runtime (idempotent). Pending tickets never complete.
    fn shutdown(&self, py: Python<'_>) -> Result<(), CoreFailure> {
        let node = self.node.lock().map_err(|_| CoreFailure::Other("ledger state poisoned".into()))?.take();
        if let Some(node) = node {
            py.detach(|| node.shutdown());
        }
        Ok(())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Ledger>()?;
    m.add_class::<LedgerNetwork>()?;
    m.add_class::<LedgerEvent>()?;
    m.add_class::<LedgerAccount>()?;
    m.add_class::<LedgerSummary>()?;
    m.add_class::<LedgerRecord>()?;
    m.add_class::<LedgerProposal>()?;
    m.add_class::<LedgerName>()?;
    m.add_class::<LedgerHistoryEntry>()?;
    Ok(())
}
