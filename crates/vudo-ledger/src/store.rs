//! Durable storage for openraft in one redb database file.
//!
//! Theory of operation
//! -------------------
//! redb commits with `Durability::Immediate`: when `commit()` returns, the
//! data is on disk (fsync'd). Every openraft storage call that must be durable
//! before it is acknowledged does its work in one write transaction and only
//! returns (or fires the append callback) after the commit:
//!
//! * `save_vote` commits the vote, then returns;
//! * `append` commits all entries, then calls `LogFlushed::log_io_completed`;
//! * `apply` updates the in-memory ledger, then writes the records it changed
//!   *and* `last_applied` (and the last membership) in one transaction, so a
//!   restart neither re-applies nor loses an applied entry;
//! * `install_snapshot` replaces the whole state machine and `last_applied`
//!   in one transaction.
//!
//! The state machine keeps the whole ledger in memory too (`Applied`), shared
//! with the node for reads; redb is the durable copy loaded at start.

// openraft's storage traits fix the error type (`StorageError`, 200+ bytes); the helpers share it.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, RwLock};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::LedgerError;
use crate::ledger::{Key, Ledger, LedgerMeta, LedgerState, Outcome};
use crate::types::TypeConfig;

type NodeId = u64;
type SErr = StorageError<NodeId>;

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const RAFT: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const SM: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");
const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
const LOCKS: TableDefinition<&str, &[u8]> = TableDefinition::new("locks");
const NAMES: TableDefinition<&str, &[u8]> = TableDefinition::new("names");
const PROPOSALS: TableDefinition<&str, &[u8]> = TableDefinition::new("proposals");
const OPS: TableDefinition<&str, &[u8]> = TableDefinition::new("ops");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "last_purged";
const LAST_APPLIED: &str = "last_applied";
const MEMBERSHIP: &str = "membership";
const LEDGER_META: &str = "ledger_meta";
const SNAPSHOT: &str = "snapshot";

/// Largest snapshot this node accepts from a leader, in bytes.
pub const MAX_SNAPSHOT_BYTES: u64 = 256 * 1024 * 1024;

fn io<E: std::fmt::Display>(subject: ErrorSubject<NodeId>, verb: ErrorVerb, err: E) -> SErr {
    StorageIOError::new(subject, verb, AnyError::error(err.to_string())).into()
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_stdvec(value).map_err(|e| format!("encode: {e}"))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("decode: {e}"))
}

fn durable_write(db: &Database) -> Result<WriteTransaction, redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate).map_err(|e| redb::Error::Corrupted(e.to_string()))?;
    Ok(txn)
}

/// Open (or create) the ledger database with all its tables.
pub fn open_database(path: &Path) -> Result<Arc<Database>, LedgerError> {
    let db = Database::create(path).map_err(|e| LedgerError::Storage(format!("{}: {e}", path.display())))?;
    let txn = durable_write(&db)?;
    {
        txn.open_table(LOGS).map_err(redb::Error::from)?;
        for def in [RAFT, SM, ACCOUNTS, LOCKS, PROPOSALS, OPS, NAMES] {
            txn.open_table(def).map_err(redb::Error::from)?;
        }
    }
    txn.commit().map_err(redb::Error::from)?;
    Ok(Arc::new(db))
}

/// The Raft log and vote.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &str, subject: ErrorSubject<NodeId>) -> Result<Option<T>, SErr> {
        let run = || -> Result<Option<T>, String> {
            let txn = self.db.begin_read().map_err(|e| e.to_string())?;
            let table = txn.open_table(RAFT).map_err(|e| e.to_string())?;
            let value = table.get(key).map_err(|e| e.to_string())?;
            value.map(|v| decode(v.value())).transpose()
        };
        run().map_err(|e| io(subject, ErrorVerb::Read, e))
    }

    fn write_meta<T: Serialize>(&self, key: &str, value: &T, subject: ErrorSubject<NodeId>) -> Result<(), SErr> {
        let run = || -> Result<(), String> {
            let bytes = encode(value)?;
            let txn = durable_write(&self.db).map_err(|e| e.to_string())?;
            {
                let mut table = txn.open_table(RAFT).map_err(|e| e.to_string())?;
                table.insert(key, bytes.as_slice()).map_err(|e| e.to_string())?;
            }
            txn.commit().map_err(|e| e.to_string())
        };
        run().map_err(|e| io(subject, ErrorVerb::Write, e))
    }

    /// Remove the log entries whose index lies in `range`, recording `purged` in the same transaction.
    fn remove_range(&self, range: (Bound<u64>, Bound<u64>), purged: Option<LogId<NodeId>>) -> Result<(), SErr> {
        let run = || -> Result<(), String> {
            let txn = durable_write(&self.db).map_err(|e| e.to_string())?;
            {
                let mut table = txn.open_table(LOGS).map_err(|e| e.to_string())?;
                let keys: Vec<u64> = table
                    .range(range)
                    .map_err(|e| e.to_string())?
                    .map(|item| item.map(|(k, _)| k.value()).map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?;
                for key in keys {
                    table.remove(key).map_err(|e| e.to_string())?;
                }
                if let Some(log_id) = purged {
                    let mut meta = txn.open_table(RAFT).map_err(|e| e.to_string())?;
                    meta.insert(PURGED, encode(&log_id)?.as_slice()).map_err(|e| e.to_string())?;
                }
            }
            txn.commit().map_err(|e| e.to_string())
        };
        run().map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        let run = || -> Result<Vec<Entry<TypeConfig>>, String> {
            let txn = self.db.begin_read().map_err(|e| e.to_string())?;
            let table = txn.open_table(LOGS).map_err(|e| e.to_string())?;
            let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
            let iter = table.range(bounds).map_err(|e| e.to_string())?;
            iter.map(|item| item.map_err(|e| e.to_string()).and_then(|(_, v)| decode(v.value()))).collect()
        };
        run().map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.read_meta(PURGED, ErrorSubject::Logs)?;
        let run = || -> Result<Option<LogId<NodeId>>, String> {
            let txn = self.db.begin_read().map_err(|e| e.to_string())?;
            let table = txn.open_table(LOGS).map_err(|e| e.to_string())?;
            let last = table.last().map_err(|e| e.to_string())?;
            last.map(|(_, v)| decode::<Entry<TypeConfig>>(v.value()).map(|e| e.log_id)).transpose()
        };
        let last = run().map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        Ok(LogState { last_purged_log_id, last_log_id: last.or(last_purged_log_id) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SErr> {
        // Committed with Durability::Immediate before returning.
        self.write_meta(VOTE, vote, ErrorSubject::Vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SErr> {
        self.read_meta(VOTE, ErrorSubject::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SErr> {
        // A hint for faster restarts, not a promise: committed without its own fsync
        // (Durability::None); the next durable commit (append, vote, apply) persists it.
        let run = || -> Result<(), String> {
            let bytes = encode(&committed)?;
            let mut txn = self.db.begin_write().map_err(|e| e.to_string())?;
            txn.set_durability(Durability::None).map_err(|e| e.to_string())?;
            {
                let mut table = txn.open_table(RAFT).map_err(|e| e.to_string())?;
                table.insert(COMMITTED, bytes.as_slice()).map_err(|e| e.to_string())?;
            }
            txn.commit().map_err(|e| e.to_string())
        };
        run().map_err(|e| io(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SErr> {
        Ok(self.read_meta::<Option<LogId<NodeId>>>(COMMITTED, ErrorSubject::Store)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let run = || -> Result<(), String> {
            let txn = durable_write(&self.db).map_err(|e| e.to_string())?;
            {
                let mut table = txn.open_table(LOGS).map_err(|e| e.to_string())?;
                for entry in entries {
                    table.insert(entry.log_id.index, encode(&entry)?.as_slice()).map_err(|e| e.to_string())?;
                }
            }
            txn.commit().map_err(|e| e.to_string())
        };
        match run() {
            Ok(()) => {
                // Only now, after the fsync'd commit, tell openraft the entries are durable.
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.clone())));
                Err(io(ErrorSubject::Logs, ErrorVerb::Write, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        self.remove_range((Bound::Included(log_id.index), Bound::Unbounded), None)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        self.remove_range((Bound::Unbounded, Bound::Included(log_id.index)), Some(log_id))
    }
}

/// What the state machine has applied: the ledger, `last_applied` and the last membership.
#[derive(Debug, Default)]
pub struct Applied {
    pub ledger: Ledger,
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, BasicNode>,
}

/// The encoded form of a snapshot.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    state: LedgerState,
}

/// A snapshot kept on disk so that `get_current_snapshot` survives restarts.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

/// The ledger state machine over redb.
#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<Database>,
    applied: Arc<RwLock<Applied>>,
}

fn sm_err<E: std::fmt::Display>(verb: ErrorVerb) -> impl Fn(E) -> SErr {
    move |e| io(ErrorSubject::StateMachine, verb, e)
}

impl StateMachineStore {
    /// Load the state machine from the database.
    pub fn open(db: Arc<Database>) -> Result<Self, LedgerError> {
        let applied = Self::load(&db).map_err(LedgerError::Storage)?;
        Ok(Self { db, applied: Arc::new(RwLock::new(applied)) })
    }

    /// The applied state, shared with readers.
    pub fn applied(&self) -> Arc<RwLock<Applied>> {
        self.applied.clone()
    }

    fn load(db: &Database) -> Result<Applied, String> {
        let txn = db.begin_read().map_err(|e| e.to_string())?;
        let sm = txn.open_table(SM).map_err(|e| e.to_string())?;
        let get = |key: &str| -> Result<Option<Vec<u8>>, String> {
            Ok(sm.get(key).map_err(|e| e.to_string())?.map(|v| v.value().to_vec()))
        };
        let last_applied = get(LAST_APPLIED)?.map(|b| decode(&b)).transpose()?;
        let membership = get(MEMBERSHIP)?.map(|b| decode(&b)).transpose()?.unwrap_or_default();
        let meta: LedgerMeta = get(LEDGER_META)?.map(|b| decode(&b)).transpose()?.unwrap_or_default();
        let mut state = LedgerState { meta, ..LedgerState::default() };
        fn load_map<T: DeserializeOwned>(
            txn: &redb::ReadTransaction,
            def: TableDefinition<&str, &[u8]>,
        ) -> Result<std::collections::BTreeMap<String, T>, String> {
            let table = txn.open_table(def).map_err(|e| e.to_string())?;
            let iter = table.iter().map_err(|e| e.to_string())?;
            iter.map(|item| {
                let (k, v) = item.map_err(|e| e.to_string())?;
                Ok((k.value().to_owned(), decode(v.value())?))
            })
            .collect()
        }
        state.accounts = load_map(&txn, ACCOUNTS)?;
        state.locks = load_map(&txn, LOCKS)?;
        state.proposals = load_map(&txn, PROPOSALS)?;
        state.ops = load_map(&txn, OPS)?;
        state.names = load_map(&txn, NAMES)?;
        Ok(Applied { ledger: Ledger::from_state(state), last_applied, membership })
    }

    /// Write the changed records, `last_applied` and membership in one durable transaction.
    fn persist(&self, applied: &mut Applied, rewrite_all: bool) -> Result<(), String> {
        let dirty = applied.ledger.take_dirty();
        let state = applied.ledger.state();
        let txn = durable_write(&self.db).map_err(|e| e.to_string())?;
        {
            if rewrite_all {
                for def in [ACCOUNTS, LOCKS, PROPOSALS, OPS, NAMES] {
                    txn.delete_table(def).map_err(|e| e.to_string())?;
                    txn.open_table(def).map_err(|e| e.to_string())?;
                }
            }
            let mut accounts = txn.open_table(ACCOUNTS).map_err(|e| e.to_string())?;
            let mut locks = txn.open_table(LOCKS).map_err(|e| e.to_string())?;
            let mut proposals = txn.open_table(PROPOSALS).map_err(|e| e.to_string())?;
            let mut ops = txn.open_table(OPS).map_err(|e| e.to_string())?;
            let mut names = txn.open_table(NAMES).map_err(|e| e.to_string())?;
            let mut sm = txn.open_table(SM).map_err(|e| e.to_string())?;
            let keys: BTreeSet<Key> = if rewrite_all {
                let mut all = BTreeSet::from([Key::Meta]);
                all.extend(state.accounts.keys().cloned().map(Key::Account));
                all.extend(state.locks.keys().cloned().map(Key::Lock));
                all.extend(state.proposals.keys().cloned().map(Key::Proposal));
                all.extend(state.ops.keys().cloned().map(Key::Op));
                all.extend(state.names.keys().cloned().map(Key::Name));
                all
            } else {
                dirty
            };
            fn put<T: Serialize>(
                table: &mut redb::Table<&str, &[u8]>,
                key: &str,
                value: Option<&T>,
            ) -> Result<(), String> {
                match value {
                    Some(v) => table.insert(key, encode(v)?.as_slice()).map(|_| ()),
                    None => table.remove(key).map(|_| ()),
                }
                .map_err(|e| e.to_string())
            }
            for key in &keys {
                match key {
                    Key::Meta => put(&mut sm, LEDGER_META, Some(&state.meta))?,
                    Key::Account(k) => put(&mut accounts, k, state.accounts.get(k))?,
                    Key::Lock(k) => put(&mut locks, k, state.locks.get(k))?,
                    Key::Proposal(k) => put(&mut proposals, k, state.proposals.get(k))?,
                    Key::Op(k) => put(&mut ops, k, state.ops.get(k))?,
                    Key::Name(k) => put(&mut names, k, state.names.get(k))?,
                }
            }
            put(&mut sm, LAST_APPLIED, applied.last_applied.as_ref())?;
            put(&mut sm, MEMBERSHIP, Some(&applied.membership))?;
        }
        txn.commit().map_err(|e| e.to_string())
    }

    fn save_snapshot(&self, stored: &StoredSnapshot) -> Result<(), String> {
        let txn = durable_write(&self.db).map_err(|e| e.to_string())?;
        {
            let mut sm = txn.open_table(SM).map_err(|e| e.to_string())?;
            sm.insert(SNAPSHOT, encode(stored)?.as_slice()).map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let (body, last_applied, membership) = {
            let applied = self.applied.read().map_err(|_| io(ErrorSubject::StateMachine, ErrorVerb::Read, "poisoned"))?;
            let body = SnapshotBody {
                last_applied: applied.last_applied,
                membership: applied.membership.clone(),
                state: applied.ledger.state().clone(),
            };
            (body, applied.last_applied, applied.membership.clone())
        };
        let data = encode(&body).map_err(sm_err(ErrorVerb::Read))?;
        let snapshot_id = match last_applied {
            Some(log_id) => format!("{}-{}-{}", log_id.leader_id.term, log_id.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id };
        let stored = StoredSnapshot { meta: meta.clone(), data };
        self.save_snapshot(&stored).map_err(|e| io(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(stored.data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), SErr> {
        let applied = self.applied.read().map_err(|_| io(ErrorSubject::StateMachine, ErrorVerb::Read, "poisoned"))?;
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = self.applied.write().map_err(|_| io(ErrorSubject::StateMachine, ErrorVerb::Write, "poisoned"))?;
        let mut outcomes = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => Outcome::Nothing,
                EntryPayload::Normal(command) => applied.ledger.apply(&command, entry.log_id.index),
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Outcome::Nothing
                }
            };
            outcomes.push(outcome);
        }
        self.persist(&mut applied, false).map_err(sm_err(ErrorVerb::Write))?;
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let data = snapshot.into_inner();
        let snap_err = |e: String| io(ErrorSubject::Snapshot(Some(meta.signature())), ErrorVerb::Read, e);
        if data.len() as u64 > MAX_SNAPSHOT_BYTES {
            return Err(snap_err(format!("snapshot of {} bytes exceeds the cap", data.len())));
        }
        let body: SnapshotBody = decode(&data).map_err(snap_err)?;
        let mut applied = self.applied.write().map_err(|_| io(ErrorSubject::StateMachine, ErrorVerb::Write, "poisoned"))?;
        applied.ledger = Ledger::from_state(body.state);
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        self.persist(&mut applied, true).map_err(sm_err(ErrorVerb::Write))?;
        let stored = StoredSnapshot { meta: meta.clone(), data };
        self.save_snapshot(&stored).map_err(|e| io(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        let run = || -> Result<Option<StoredSnapshot>, String> {
            let txn = self.db.begin_read().map_err(|e| e.to_string())?;
            let sm = txn.open_table(SM).map_err(|e| e.to_string())?;
            let value = sm.get(SNAPSHOT).map_err(|e| e.to_string())?;
            value.map(|v| decode(v.value())).transpose()
        };
        let stored = run().map_err(|e| io(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
        Ok(stored.map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
