//! openraft's own storage test suite, run against the redb store.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use tempfile::TempDir;

use crate::store::{open_database, LogStore, StateMachineStore};
use crate::types::TypeConfig;

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = open_database(&dir.path().join("ledger.redb")).expect("open redb");
        let sm = StateMachineStore::open(db.clone()).expect("load state machine");
        Ok((dir, LogStore::new(db), sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_redb_store() {
    Suite::test_all(RedbBuilder).expect("openraft storage suite");
}
