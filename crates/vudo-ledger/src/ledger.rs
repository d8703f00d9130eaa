//! The credit ledger: a deterministic state machine over signed commands.
//!
//! Theory of operation
//! -------------------
//! Raft hands every committed [`Command`] to [`Ledger::apply`] in log order,
//! on every member. `apply` must therefore be a pure function of the current
//! state and the command: no clock (time comes from the command), no
//! randomness, no iteration over hash maps (all maps are `BTreeMap`).
//!
//! Every command except `Genesis` is signed by the node it spends from (or the
//! witness that proposes/votes); the signature covers [`Command::signing_bytes`],
//! a length-prefixed canonical encoding that the Python side reproduces.
//! Each command carries an operation id. The first *authentic* command with a
//! given id is recorded in the transaction log together with its outcome:
//!
//! | same id seen before with ...  | result                                  |
//! |-------------------------------|-----------------------------------------|
//! | identical command, applied    | `Exists` (nothing changes)              |
//! | identical command, refused    | the original refusal (never succeeds)   |
//! | a different command           | `IdConflict` (nothing changes)          |
//!
//! Commands that are malformed, whose signature does not verify, or whose
//! signer is not authorised (not a witness, not the lock's owner) are refused
//! without being recorded, so they cannot burn somebody else's id. (Ids are
//! global: a node could still squat an id it saw in flight with a transfer of
//! its own; clients use random 128-bit ids.)
//!
//! Money: amounts are atomic units (1 credit = 1 000 000 units). An account's
//! `balance` includes its `locked` part; `available = balance - locked`.
//! A lock reserves available units; it is later *posted* (part or all of it
//! paid to a payee, the rest released) or *voided* (all released). Fees go
//! to the Bondieu pool. Units are created only by `Genesis` (once) or by an
//! approved `Mint` proposal, so the invariants are
//! `sum(balance) + pool == total_minted`, `balance >= locked` and
//! `locked == sum(open locks of the owner)` for every account.
//! All money arithmetic is checked; an overflow refuses the command.
//!
//! Quorum decisions: a witness proposes an action (mint, add or remove a
//! witness); witnesses vote once each. With `w` current witnesses, `a`
//! approvals and `r` rejections among them and threshold `t` (per mille,
//! default 670): approved when `a * 1000 >= t * w`, rejected when
//! `r * 1000 > (1000 - t) * w`, pending otherwise. (The seed's formula counts
//! every missing vote as a rejection, which would reject each new proposal
//! at once; we count the explicit rejections.) An approved action executes
//! in the same apply.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{Signature, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::RejectCode;
use crate::types::verifying_key;

/// Atomic units per credit.
pub const UNITS_PER_CREDIT: u64 = 1_000_000;
/// Longest memo, in UTF-8 bytes.
pub const MAX_MEMO_BYTES: usize = 256;
/// Longest operation id, in bytes (ids are printable ASCII).
pub const MAX_ID_BYTES: usize = 64;
/// Default quorum threshold, per mille of the witnesses.
pub const DEFAULT_THRESHOLD_PERMILLE: u32 = 670;
/// Most allocations or witnesses a genesis may name.
pub const MAX_GENESIS_ENTRIES: usize = 1024;
/// Domain separation tag of every signed ledger message.
pub const SIGNING_DOMAIN: &[u8] = b"vudo.credits.v1";
/// Longest spirit name the ledger records (the spirit manifest's own limit).
pub const MAX_NAME_BYTES: usize = 40;

/// One account (`mycelialCredits` in the seed).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Account {
    pub balance: u64,
    pub locked: u64,
    /// Lifetime units received (saturating statistic, not money).
    pub earned_total: u64,
    /// Lifetime units paid out, fees included (saturating statistic).
    pub spent_total: u64,
}

impl Account {
    /// Units that may be spent or locked now.
    pub fn available(&self) -> u64 {
        self.balance.saturating_sub(self.locked)
    }
}

/// A signed transfer (`CreditTransaction` in the seed). `timestamp` is unix milliseconds, chosen by the signer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CreditTransaction {
    pub id: String,
    pub from: String,
    pub to: String,
    pub amount: u64,
    pub fee: u64,
    pub memo: String,
    pub timestamp: u64,
    pub signature: Vec<u8>,
}

/// Reserve `amount` of the owner's available units.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LockOp {
    pub id: String,
    pub owner: String,
    pub amount: u64,
    pub memo: String,
    pub timestamp: u64,
    pub signature: Vec<u8>,
}

/// Pay `amount` (at most the lock's amount) of an open lock to `payee`; the rest is released.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PostOp {
    pub id: String,
    pub lock_id: String,
    pub owner: String,
    pub payee: String,
    pub amount: u64,
    pub timestamp: u64,
    pub signature: Vec<u8>,
}

/// Release an open lock entirely.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct VoidOp {
    pub id: String,
    pub lock_id: String,
    pub owner: String,
    pub timestamp: u64,
    pub signature: Vec<u8>,
}

/// Record that `author` publishes `name` at `rev` (package `package`, sha256 hex). The first claim of a
/// name makes its author the owner; a later claim must be by the owner with a higher `rev`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NameClaimOp {
    pub id: String,
    pub name: String,
    pub author: String,
    pub rev: u64,
    pub package: String,
    pub timestamp: u64,
    pub signature: Vec<u8>,
}

/// Who owns a spirit name and what it last published.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NameRecord {
    pub author: String,
    pub rev: u64,
    pub package: String,
    /// The Raft index of the claim that set this record.
    pub index: u64,
}

/// What a quorum decision does once approved.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Mint { to: String, amount: u64 },
    AddWitness { node: String },
    RemoveWitness { node: String },
}

impl Action {
    fn parts(&self) -> (&'static str, &str, u64) {
        match self {
            Action::Mint { to, amount } => ("mint", to, *amount),
            Action::AddWitness { node } => ("add_witness", node, 0),
            Action::RemoveWitness { node } => ("remove_witness", node, 0),
        }
    }
}

/// A witness proposes a quorum decision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ProposeOp {
    pub id: String,
    pub proposer: String,
    pub action: Action,
    pub timestamp: u64,
    pub signature: Vec<u8>,
}

/// A witness votes on a pending proposal (once; its operation id is `vote/<proposal>/<voter>`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct VoteOp {
    pub proposal_id: String,
    pub voter: String,
    pub approve: bool,
    pub timestamp: u64,
    pub signature: Vec<u8>,
}

/// The founding entry: initial allocations, witnesses and threshold. Accepted once.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Genesis {
    pub allocations: Vec<(String, u64)>,
    pub witnesses: Vec<String>,
    pub threshold_permille: u32,
    pub timestamp: u64,
}

/// Everything the ledger's Raft log carries.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Genesis(Genesis),
    Transfer(CreditTransaction),
    Lock(LockOp),
    Post(PostOp),
    Void(VoidOp),
    Propose(ProposeOp),
    Vote(VoteOp),
    /// Appended last: earlier variants keep their encoding.
    ClaimName(NameClaimOp),
}

/// The result of applying one log entry (replicated, deterministic).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A blank or membership entry: nothing for the ledger.
    Nothing,
    Applied,
    /// The same command was applied before (idempotent retry).
    Exists,
    Rejected { code: RejectCode, message: String },
}

/// Canonical, length-prefixed encoding of the signed fields.
struct Canon(Vec<u8>);

impl Canon {
    fn new(kind: &str) -> Self {
        let mut canon = Canon(Vec::with_capacity(128));
        canon.bytes(SIGNING_DOMAIN);
        canon.str(kind);
        canon
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bool(&mut self, v: bool) -> &mut Self {
        self.0.push(u8::from(v));
        self
    }
}

impl Command {
    /// The operation id under which this command is recorded.
    pub fn op_id(&self) -> String {
        match self {
            Command::Genesis(_) => "genesis".to_owned(),
            Command::Transfer(tx) => tx.id.clone(),
            Command::Lock(op) => op.id.clone(),
            Command::Post(op) => op.id.clone(),
            Command::Void(op) => op.id.clone(),
            Command::Propose(op) => op.id.clone(),
            Command::Vote(op) => format!("vote/{}/{}", op.proposal_id, op.voter),
            Command::ClaimName(op) => op.id.clone(),
        }
    }

    /// The node whose signature authorises this command (none for genesis).
    pub fn signer(&self) -> Option<&str> {
        match self {
            Command::Genesis(_) => None,
            Command::Transfer(tx) => Some(&tx.from),
            Command::Lock(op) => Some(&op.owner),
            Command::Post(op) => Some(&op.owner),
            Command::Void(op) => Some(&op.owner),
            Command::Propose(op) => Some(&op.proposer),
            Command::Vote(op) => Some(&op.voter),
            Command::ClaimName(op) => Some(&op.author),
        }
    }

    fn signature(&self) -> &[u8] {
        match self {
            Command::Genesis(_) => &[],
            Command::Transfer(tx) => &tx.signature,
            Command::Lock(op) => &op.signature,
            Command::Post(op) => &op.signature,
            Command::Void(op) => &op.signature,
            Command::Propose(op) => &op.signature,
            Command::Vote(op) => &op.signature,
            Command::ClaimName(op) => &op.signature,
        }
    }

    /// The bytes the signer signs (empty for genesis).
    pub fn signing_bytes(&self) -> Vec<u8> {
        match self {
            Command::Genesis(_) => Vec::new(),
            Command::Transfer(tx) => {
                let mut c = Canon::new("transfer");
                c.str(&tx.id).str(&tx.from).str(&tx.to).u64(tx.amount).u64(tx.fee).str(&tx.memo).u64(tx.timestamp);
                c.0
            }
            Command::Lock(op) => {
                let mut c = Canon::new("lock");
                c.str(&op.id).str(&op.owner).u64(op.amount).str(&op.memo).u64(op.timestamp);
                c.0
            }
            Command::Post(op) => {
                let mut c = Canon::new("post");
                c.str(&op.id).str(&op.lock_id).str(&op.owner).str(&op.payee).u64(op.amount).u64(op.timestamp);
                c.0
            }
            Command::Void(op) => {
                let mut c = Canon::new("void");
                c.str(&op.id).str(&op.lock_id).str(&op.owner).u64(op.timestamp);
                c.0
            }
            Command::Propose(op) => {
                let (kind, target, amount) = op.action.parts();
                let mut c = Canon::new("propose");
                c.str(&op.id).str(&op.proposer).str(kind).str(target).u64(amount).u64(op.timestamp);
                c.0
            }
            Command::Vote(op) => {
                let mut c = Canon::new("vote");
                c.str(&op.proposal_id).str(&op.voter).bool(op.approve).u64(op.timestamp);
                c.0
            }
            Command::ClaimName(op) => {
                let mut c = Canon::new("claim_name");
                c.str(&op.id).str(&op.name).str(&op.author).u64(op.rev).str(&op.package).u64(op.timestamp);
                c.0
            }
        }
    }

    /// Check ids, memo and node ids (no state needed).
    pub fn validate_shape(&self) -> Result<(), (RejectCode, String)> {
        let id_ok = |what: &str, id: &str| -> Result<(), (RejectCode, String)> {
            if id.is_empty() || id.len() > MAX_ID_BYTES || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return Err((
                    RejectCode::InvalidArgument,
                    format!("{what} must be 1..={MAX_ID_BYTES} printable ASCII characters"),
                ));
            }
            Ok(())
        };
        let node_ok = |what: &str, node: &str| -> Result<(), (RejectCode, String)> {
            verifying_key(node).map(|_| ()).map_err(|e| (RejectCode::InvalidArgument, format!("{what}: {e}")))
        };
        let memo_ok = |memo: &str| -> Result<(), (RejectCode, String)> {
            if memo.len() > MAX_MEMO_BYTES {
                return Err((
                    RejectCode::MemoTooLong,
                    format!("memo is {} bytes; at most {MAX_MEMO_BYTES}", memo.len()),
                ));
            }
            Ok(())
        };
        let positive = |what: &str, v: u64| -> Result<(), (RejectCode, String)> {
            if v == 0 {
                return Err((RejectCode::InvalidArgument, format!("{what} must be positive")));
            }
            Ok(())
        };
        match self {
            Command::Genesis(g) => {
                if g.allocations.len() > MAX_GENESIS_ENTRIES || g.witnesses.len() > MAX_GENESIS_ENTRIES {
                    return Err((RejectCode::InvalidArgument, "genesis names too many nodes".into()));
                }
                if g.witnesses.is_empty() {
                    return Err((RejectCode::InvalidArgument, "genesis needs at least one witness".into()));
                }
                if g.threshold_permille == 0 || g.threshold_permille > 1000 {
                    return Err((RejectCode::InvalidArgument, "threshold must be 1..=1000 per mille".into()));
                }
                for (node, _) in &g.allocations {
                    node_ok("allocation", node)?;
                }
                for node in &g.witnesses {
                    node_ok("witness", node)?;
                }
                Ok(())
            }
            Command::Transfer(tx) => {
                id_ok("transfer id", &tx.id)?;
                node_ok("from", &tx.from)?;
                node_ok("to", &tx.to)?;
                memo_ok(&tx.memo)?;
                positive("amount", tx.amount)?;
                if tx.from == tx.to {
                    return Err((RejectCode::InvalidArgument, "from and to are the same node".into()));
                }
                Ok(())
            }
            Command::Lock(op) => {
                id_ok("lock id", &op.id)?;
                node_ok("owner", &op.owner)?;
                memo_ok(&op.memo)?;
                positive("amount", op.amount)
            }
            Command::Post(op) => {
                id_ok("post id", &op.id)?;
                id_ok("lock id", &op.lock_id)?;
                node_ok("owner", &op.owner)?;
                node_ok("payee", &op.payee)?;
                positive("amount", op.amount)?;
                if op.owner == op.payee {
                    return Err((RejectCode::InvalidArgument, "payee is the lock owner; void the lock instead".into()));
                }
                Ok(())
            }
            Command::Void(op) => {
                id_ok("void id", &op.id)?;
                id_ok("lock id", &op.lock_id)?;
                node_ok("owner", &op.owner)
            }
            Command::Propose(op) => {
                id_ok("proposal id", &op.id)?;
                node_ok("proposer", &op.proposer)?;
                match &op.action {
                    Action::Mint { to, amount } => {
                        node_ok("mint target", to)?;
                        positive("amount", *amount)
                    }
                    Action::AddWitness { node } | Action::RemoveWitness { node } => node_ok("witness", node),
                }
            }
            Command::Vote(op) => {
                id_ok("proposal id", &op.proposal_id)?;
                node_ok("voter", &op.voter)
            }
            Command::ClaimName(op) => {
                id_ok("claim id", &op.id)?;
                node_ok("author", &op.author)?;
                name_ok(&op.name)?;
                positive("rev", op.rev)?;
                if op.package.len() != 64 || !op.package.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                    return Err((RejectCode::InvalidArgument, "package must be a sha256 in 64 lowercase hex digits".into()));
                }
                Ok(())
            }
        }
    }

    /// Verify the signer's Ed25519 signature over [`Command::signing_bytes`].
    pub fn verify_signature(&self) -> bool {
        let Some(signer) = self.signer() else { return true };
        let Ok(key) = verifying_key(signer) else { return false };
        let Ok(signature) = Signature::from_slice(self.signature()) else { return false };
        key.verify(&self.signing_bytes(), &signature).is_ok()
    }
}

/// A spirit name as the manifest allows it: 1..=[`MAX_NAME_BYTES`] of `a-z`, `0-9`, `-`, starting with a letter.
fn name_ok(name: &str) -> Result<(), (RejectCode, String)> {
    let bytes = name.as_bytes();
    let shaped = !bytes.is_empty()
        && bytes.len() <= MAX_NAME_BYTES
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if !shaped {
        return Err((
            RejectCode::InvalidArgument,
            format!("a name is 1..={MAX_NAME_BYTES} of a-z, 0-9 and '-', starting with a letter"),
        ));
    }
    Ok(())
}

/// Network-wide values of the ledger.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct LedgerMeta {
    /// The Bondieu pool (fees).
    pub pool: u64,
    pub total_minted: u64,
    pub genesis_done: bool,
    pub witnesses: BTreeSet<String>,
    pub threshold_permille: u32,
}

/// An open lock.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    pub owner: String,
    pub amount: u64,
    pub memo: String,
    pub timestamp: u64,
}

/// Where a quorum decision stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposalState {
    Pending,
    Approved,
    Rejected,
}

impl ProposalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalState::Pending => "pending",
            ProposalState::Approved => "approved",
            ProposalState::Rejected => "rejected",
        }
    }
}

/// A quorum decision and its votes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub proposer: String,
    pub action: Action,
    pub timestamp: u64,
    pub votes: BTreeMap<String, bool>,
    pub state: ProposalState,
    /// Why an approved action could not execute (then `state` is `Rejected`).
    pub failure: Option<String>,
}

/// One entry of the transaction log: the command, its outcome and its Raft index.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    pub command: Command,
    pub outcome: Outcome,
    pub index: u64,
}

/// The whole replicated state. Ordered maps only: its encoding is canonical.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct LedgerState {
    pub meta: LedgerMeta,
    pub accounts: BTreeMap<String, Account>,
    pub locks: BTreeMap<String, Lock>,
    pub proposals: BTreeMap<String, Proposal>,
    pub ops: BTreeMap<String, OpRecord>,
    /// Spirit names and their owners (appended last: a snapshot of an older ledger does not decode).
    pub names: BTreeMap<String, NameRecord>,
}

/// Most entries one history read returns.
pub const MAX_HISTORY: usize = 1000;

/// One operation that moved (or tried to move) an account's credits, as its history shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub op_id: String,
    /// "genesis", "transfer", "lock", "post" or "void".
    pub kind: &'static str,
    pub index: u64,
    /// "applied" or "rejected".
    pub status: &'static str,
    pub code: &'static str,
    /// The other account ("" when there is none: genesis, lock, void).
    pub counterparty: String,
    pub amount: u64,
    pub fee: u64,
    /// True when the credits came to this account.
    pub incoming: bool,
    pub memo: String,
    pub timestamp: u64,
}

type Involvement = (&'static str, String, u64, u64, bool, String, u64);

/// How `record` involved `node`, if at all.
fn involvement(node: &str, command: &Command) -> Option<Involvement> {
    Some(match command {
        Command::Genesis(g) => {
            let mine = g.allocations.iter().filter(|(n, _)| n == node).map(|(_, a)| *a);
            let amount = mine.clone().fold(0u64, u64::saturating_add);
            if mine.count() == 0 {
                return None;
            }
            ("genesis", String::new(), amount, 0, true, String::new(), g.timestamp)
        }
        Command::Transfer(tx) if tx.from == node => {
            ("transfer", tx.to.clone(), tx.amount, tx.fee, false, tx.memo.clone(), tx.timestamp)
        }
        Command::Transfer(tx) if tx.to == node => {
            ("transfer", tx.from.clone(), tx.amount, 0, true, tx.memo.clone(), tx.timestamp)
        }
        Command::Lock(op) if op.owner == node => ("lock", String::new(), op.amount, 0, false, op.memo.clone(), op.timestamp),
        Command::Post(op) if op.owner == node => ("post", op.payee.clone(), op.amount, 0, false, String::new(), op.timestamp),
        Command::Post(op) if op.payee == node => ("post", op.owner.clone(), op.amount, 0, true, String::new(), op.timestamp),
        Command::Void(op) if op.owner == node => ("void", String::new(), 0, 0, false, String::new(), op.timestamp),
        _ => return None,
    })
}

/// A record the store must rewrite after an apply batch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Meta,
    Account(String),
    Lock(String),
    Proposal(String),
    Op(String),
    Name(String),
}

/// Totals for dashboards and invariant checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub total_minted: u64,
    pub pool: u64,
    pub sum_balances: u128,
    pub sum_locked: u128,
    pub accounts: usize,
    pub open_locks: usize,
    pub witnesses: Vec<String>,
    pub threshold_permille: u32,
}

type Refusal = (RejectCode, String);

fn add(a: u64, b: u64, what: &str) -> Result<u64, Refusal> {
    a.checked_add(b).ok_or_else(|| (RejectCode::Overflow, format!("{what} would overflow u64")))
}

/// The state machine: state plus the set of records changed since the store last persisted.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    state: LedgerState,
    dirty: BTreeSet<Key>,
    /// The Raft index being applied (recorded in name records).
    index: u64,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_state(state: LedgerState) -> Self {
        Self { state, dirty: BTreeSet::new(), index: 0 }
    }

    pub fn state(&self) -> &LedgerState {
        &self.state
    }

    /// Records changed since the last call (the store persists exactly these).
    pub fn take_dirty(&mut self) -> BTreeSet<Key> {
        std::mem::take(&mut self.dirty)
    }

    pub fn account(&self, node: &str) -> Account {
        self.state.accounts.get(node).cloned().unwrap_or_default()
    }

    pub fn op(&self, id: &str) -> Option<&OpRecord> {
        self.state.ops.get(id)
    }

    pub fn proposal(&self, id: &str) -> Option<&Proposal> {
        self.state.proposals.get(id)
    }

    /// Who owns the spirit name `name`, if anyone claimed it.
    pub fn name(&self, name: &str) -> Option<&NameRecord> {
        self.state.names.get(name)
    }

    /// The latest `limit` (at most [`MAX_HISTORY`]) operations that involved `node`, newest first.
    /// A scan of the recorded operations: cost grows with the log, the answer stays bounded.
    pub fn history(&self, node: &str, limit: usize) -> Vec<HistoryEntry> {
        let mut out: Vec<HistoryEntry> = self
            .state
            .ops
            .iter()
            .filter_map(|(id, record)| {
                let (kind, counterparty, amount, fee, incoming, memo, timestamp) = involvement(node, &record.command)?;
                let (status, code) = match &record.outcome {
                    Outcome::Rejected { code, .. } => ("rejected", code.as_str()),
                    _ => ("applied", ""),
                };
                Some(HistoryEntry {
                    op_id: id.clone(),
                    kind,
                    index: record.index,
                    status,
                    code,
                    counterparty,
                    amount,
                    fee,
                    incoming,
                    memo,
                    timestamp,
                })
            })
            .collect();
        out.sort_by(|a, b| b.index.cmp(&a.index).then_with(|| a.op_id.cmp(&b.op_id)));
        out.truncate(limit.min(MAX_HISTORY));
        out
    }

    /// SHA-256 over the canonical encoding of the whole state.
    pub fn state_hash(&self) -> [u8; 32] {
        let bytes = postcard::to_stdvec(&self.state).unwrap_or_default();
        Sha256::digest(&bytes).into()
    }

    pub fn summary(&self) -> Summary {
        let s = &self.state;
        Summary {
            total_minted: s.meta.total_minted,
            pool: s.meta.pool,
            sum_balances: s.accounts.values().map(|a| u128::from(a.balance)).sum(),
            sum_locked: s.accounts.values().map(|a| u128::from(a.locked)).sum(),
            accounts: s.accounts.len(),
            open_locks: s.locks.len(),
            witnesses: s.meta.witnesses.iter().cloned().collect(),
            threshold_permille: s.meta.threshold_permille,
        }
    }

    /// Check conservation, solvency and lock accounting; `Err` names the first violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        let s = &self.state;
        let sum: u128 = s.accounts.values().map(|a| u128::from(a.balance)).sum::<u128>() + u128::from(s.meta.pool);
        if sum != u128::from(s.meta.total_minted) {
            return Err(format!("conservation: balances + pool = {sum}, minted = {}", s.meta.total_minted));
        }
        let mut locked: BTreeMap<&str, u128> = BTreeMap::new();
        for lock in s.locks.values() {
            *locked.entry(lock.owner.as_str()).or_default() += u128::from(lock.amount);
        }
        for (node, account) in &s.accounts {
            if account.locked > account.balance {
                return Err(format!("solvent: {node} has locked {} > balance {}", account.locked, account.balance));
            }
            let want = locked.get(node.as_str()).copied().unwrap_or(0);
            if u128::from(account.locked) != want {
                return Err(format!("locks: {node} has locked {} but open locks sum to {want}", account.locked));
            }
        }
        for owner in locked.keys() {
            if !s.accounts.contains_key(*owner) {
                return Err(format!("locks: {owner} has open locks but no account"));
            }
        }
        Ok(())
    }

    /// Apply one committed command at Raft log `index`. Deterministic.
    pub fn apply(&mut self, command: &Command, index: u64) -> Outcome {
        self.index = index;
        if let Err((code, message)) = command.validate_shape() {
            return Outcome::Rejected { code, message };
        }
        if !command.verify_signature() {
            return Outcome::Rejected {
                code: RejectCode::InvalidSignature,
                message: format!("signature does not verify against {}", command.signer().unwrap_or("?")),
            };
        }
        let op_id = command.op_id();
        if let Some(record) = self.state.ops.get(&op_id) {
            if record.command == *command {
                return match &record.outcome {
                    Outcome::Applied => Outcome::Exists,
                    other => other.clone(),
                };
            }
            return Outcome::Rejected {
                code: RejectCode::IdConflict,
                message: format!("id {op_id:?} was already used by a different operation"),
            };
        }
        let outcome = match self.execute(command) {
            Ok(()) => Outcome::Applied,
            // Not authorised: like a bad signature, refused without burning the id.
            Err((code @ (RejectCode::NotWitness | RejectCode::NotOwner), message)) => {
                return Outcome::Rejected { code, message };
            }
            Err((code, message)) => Outcome::Rejected { code, message },
        };
        self.state.ops.insert(op_id.clone(), OpRecord { command: command.clone(), outcome: outcome.clone(), index });
        self.dirty.insert(Key::Op(op_id));
        outcome
    }

    /// Check everything first, then mutate: a refusal changes nothing.
    fn execute(&mut self, command: &Command) -> Result<(), Refusal> {
        match command {
            Command::Genesis(g) => self.genesis(g),
            Command::Transfer(tx) => self.transfer(tx),
            Command::Lock(op) => self.lock(op),
            Command::Post(op) => self.post(op),
            Command::Void(op) => self.void(op),
            Command::Propose(op) => self.propose(op),
            Command::Vote(op) => self.vote(op),
            Command::ClaimName(op) => self.claim_name(op),
        }
    }

    fn set_account(&mut self, node: &str, account: Account) {
        self.state.accounts.insert(node.to_owned(), account);
        self.dirty.insert(Key::Account(node.to_owned()));
    }

    fn genesis(&mut self, g: &Genesis) -> Result<(), Refusal> {
        if self.state.meta.genesis_done {
            return Err((RejectCode::MintingClosed, "genesis already happened".into()));
        }
        let mut balances: BTreeMap<&str, u64> = BTreeMap::new();
        let mut total = 0u64;
        for (node, amount) in &g.allocations {
            let entry = balances.entry(node.as_str()).or_default();
            *entry = add(*entry, *amount, "genesis allocation")?;
            total = add(total, *amount, "genesis total")?;
        }
        for (node, amount) in balances {
            let account = Account { balance: amount, earned_total: amount, ..Account::default() };
            self.set_account(node, account);
        }
        let meta = &mut self.state.meta;
        meta.genesis_done = true;
        meta.total_minted = total;
        meta.witnesses = g.witnesses.iter().cloned().collect();
        meta.threshold_permille = g.threshold_permille;
        self.dirty.insert(Key::Meta);
        Ok(())
    }

    fn transfer(&mut self, tx: &CreditTransaction) -> Result<(), Refusal> {
        let total = add(tx.amount, tx.fee, "amount + fee")?;
        let mut from = self.account(&tx.from);
        if from.available() < total {
            return Err((
                RejectCode::InsufficientFunds,
                format!("{} has {} units available, needs {total}", tx.from, from.available()),
            ));
        }
        let mut to = self.account(&tx.to);
        let to_balance = add(to.balance, tx.amount, "payee balance")?;
        let pool = add(self.state.meta.pool, tx.fee, "pool")?;
        from.balance -= total;
        from.spent_total = from.spent_total.saturating_add(total);
        to.balance = to_balance;
        to.earned_total = to.earned_total.saturating_add(tx.amount);
        self.set_account(&tx.from, from);
        self.set_account(&tx.to, to);
        if tx.fee > 0 {
            self.state.meta.pool = pool;
            self.dirty.insert(Key::Meta);
        }
        Ok(())
    }

    fn lock(&mut self, op: &LockOp) -> Result<(), Refusal> {
        let mut owner = self.account(&op.owner);
        if owner.available() < op.amount {
            return Err((
                RejectCode::InsufficientFunds,
                format!("{} has {} units available, cannot lock {}", op.owner, owner.available(), op.amount),
            ));
        }
        owner.locked = add(owner.locked, op.amount, "locked")?;
        self.set_account(&op.owner, owner);
        let lock = Lock { owner: op.owner.clone(), amount: op.amount, memo: op.memo.clone(), timestamp: op.timestamp };
        self.state.locks.insert(op.id.clone(), lock);
        self.dirty.insert(Key::Lock(op.id.clone()));
        Ok(())
    }

    fn open_lock(&self, lock_id: &str, owner: &str) -> Result<Lock, Refusal> {
        let lock = self
            .state
            .locks
            .get(lock_id)
            .ok_or_else(|| (RejectCode::UnknownLock, format!("no open lock {lock_id:?}")))?;
        if lock.owner != owner {
            return Err((RejectCode::NotOwner, format!("lock {lock_id:?} belongs to {}", lock.owner)));
        }
        Ok(lock.clone())
    }

    fn close_lock(&mut self, lock_id: &str) {
        self.state.locks.remove(lock_id);
        self.dirty.insert(Key::Lock(lock_id.to_owned()));
    }

    fn post(&mut self, op: &PostOp) -> Result<(), Refusal> {
        let lock = self.open_lock(&op.lock_id, &op.owner)?;
        if op.amount > lock.amount {
            return Err((
                RejectCode::InsufficientFunds,
                format!("post of {} exceeds lock {:?} of {}", op.amount, op.lock_id, lock.amount),
            ));
        }
        let mut owner = self.account(&op.owner);
        let mut payee = self.account(&op.payee);
        let payee_balance = add(payee.balance, op.amount, "payee balance")?;
        owner.locked -= lock.amount;
        owner.balance -= op.amount;
        owner.spent_total = owner.spent_total.saturating_add(op.amount);
        payee.balance = payee_balance;
        payee.earned_total = payee.earned_total.saturating_add(op.amount);
        self.set_account(&op.owner, owner);
        self.set_account(&op.payee, payee);
        self.close_lock(&op.lock_id);
        Ok(())
    }

    fn void(&mut self, op: &VoidOp) -> Result<(), Refusal> {
        let lock = self.open_lock(&op.lock_id, &op.owner)?;
        let mut owner = self.account(&op.owner);
        owner.locked -= lock.amount;
        self.set_account(&op.owner, owner);
        self.close_lock(&op.lock_id);
        Ok(())
    }

    fn claim_name(&mut self, op: &NameClaimOp) -> Result<(), Refusal> {
        if let Some(record) = self.state.names.get(&op.name) {
            if record.author != op.author {
                return Err((
                    RejectCode::NameOwned,
                    format!("name {:?} is owned by {}, its first author", op.name, record.author),
                ));
            }
            if op.rev <= record.rev {
                return Err((
                    RejectCode::StaleRev,
                    format!("name {:?} is recorded at rev {}; a new version needs a higher rev, not {}", op.name, record.rev, op.rev),
                ));
            }
        }
        let record = NameRecord { author: op.author.clone(), rev: op.rev, package: op.package.clone(), index: self.index };
        self.state.names.insert(op.name.clone(), record);
        self.dirty.insert(Key::Name(op.name.clone()));
        Ok(())
    }

    fn require_witness(&self, node: &str) -> Result<(), Refusal> {
        if !self.state.meta.witnesses.contains(node) {
            return Err((RejectCode::NotWitness, format!("{node} is not a witness")));
        }
        Ok(())
    }

    fn propose(&mut self, op: &ProposeOp) -> Result<(), Refusal> {
        self.require_witness(&op.proposer)?;
        if !self.state.meta.genesis_done {
            return Err((RejectCode::InvalidArgument, "no genesis yet".into()));
        }
        if self.state.proposals.contains_key(&op.id) {
            return Err((RejectCode::IdConflict, format!("proposal {:?} exists", op.id)));
        }
        let proposal = Proposal {
            proposer: op.proposer.clone(),
            action: op.action.clone(),
            timestamp: op.timestamp,
            votes: BTreeMap::new(),
            state: ProposalState::Pending,
            failure: None,
        };
        self.state.proposals.insert(op.id.clone(), proposal);
        self.dirty.insert(Key::Proposal(op.id.clone()));
        Ok(())
    }

    /// The seed's `check_consensus` in integer arithmetic (see the module comment).
    pub fn tally(&self, proposal: &Proposal) -> ProposalState {
        let witnesses = &self.state.meta.witnesses;
        let total = witnesses.len() as u64;
        if total == 0 {
            return ProposalState::Pending;
        }
        let counted = proposal.votes.iter().filter(|(voter, _)| witnesses.contains(*voter));
        let (approvals, rejections) =
            counted.fold((0u64, 0u64), |(a, r), (_, approve)| if *approve { (a + 1, r) } else { (a, r + 1) });
        let threshold = u64::from(self.state.meta.threshold_permille);
        if approvals * 1000 >= threshold * total {
            ProposalState::Approved
        } else if rejections * 1000 > (1000 - threshold) * total {
            ProposalState::Rejected
        } else {
            ProposalState::Pending
        }
    }

    fn vote(&mut self, op: &VoteOp) -> Result<(), Refusal> {
        self.require_witness(&op.voter)?;
        let mut proposal = self
            .state
            .proposals
            .get(&op.proposal_id)
            .cloned()
            .ok_or_else(|| (RejectCode::UnknownProposal, format!("no proposal {:?}", op.proposal_id)))?;
        if proposal.state != ProposalState::Pending {
            return Err((RejectCode::ProposalClosed, format!("proposal is {}", proposal.state.as_str())));
        }
        proposal.votes.insert(op.voter.clone(), op.approve);
        proposal.state = self.tally(&proposal);
        if proposal.state == ProposalState::Approved {
            if let Err((_, why)) = self.enact(&proposal.action) {
                proposal.state = ProposalState::Rejected;
                proposal.failure = Some(why);
            }
        }
        self.state.proposals.insert(op.proposal_id.clone(), proposal);
        self.dirty.insert(Key::Proposal(op.proposal_id.clone()));
        Ok(())
    }

    fn enact(&mut self, action: &Action) -> Result<(), Refusal> {
        match action {
            Action::Mint { to, amount } => {
                let total = add(self.state.meta.total_minted, *amount, "total minted")?;
                let mut account = self.account(to);
                account.balance = add(account.balance, *amount, "balance")?;
                account.earned_total = account.earned_total.saturating_add(*amount);
                self.set_account(to, account);
                self.state.meta.total_minted = total;
            }
            Action::AddWitness { node } => {
                if !self.state.meta.witnesses.insert(node.clone()) {
                    return Err((RejectCode::InvalidArgument, format!("{node} is already a witness")));
                }
            }
            Action::RemoveWitness { node } => {
                if self.state.meta.witnesses.len() <= 1 {
                    return Err((RejectCode::InvalidArgument, "the last witness cannot be removed".into()));
                }
                if !self.state.meta.witnesses.remove(node) {
                    return Err((RejectCode::InvalidArgument, format!("{node} is not a witness")));
                }
            }
        }
        self.dirty.insert(Key::Meta);
        Ok(())
    }
}
