//! Property tests: random operation sequences never break conservation,
//! non-negativity or idempotency.

use proptest::prelude::*;

use super::*;
use crate::error::RejectCode;
use crate::ledger::{Ledger, Outcome, UNITS_PER_CREDIT};

#[derive(Debug, Clone)]
enum Op {
    Transfer { from: usize, to: usize, amount: u64, fee: u64 },
    Lock { owner: usize, amount: u64 },
    Post { lock: usize, payee: usize, amount: u64 },
    Void { lock: usize },
    Mint { to: usize, amount: u64 },
    Replay { pick: usize },
    Conflict { pick: usize },
    Forge { from: usize, to: usize, amount: u64 },
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0..300 * UNITS_PER_CREDIT,
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let n = 4usize;
    prop_oneof![
        4 => (0..n, 0..n, amount(), 0..1000u64).prop_map(|(from, to, amount, fee)| Op::Transfer { from, to, amount, fee }),
        2 => (0..n, amount()).prop_map(|(owner, amount)| Op::Lock { owner, amount }),
        2 => (any::<usize>(), 0..n, amount()).prop_map(|(lock, payee, amount)| Op::Post { lock, payee, amount }),
        1 => any::<usize>().prop_map(|lock| Op::Void { lock }),
        1 => (0..n, amount()).prop_map(|(to, amount)| Op::Mint { to, amount }),
        2 => any::<usize>().prop_map(|pick| Op::Replay { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Conflict { pick }),
        1 => (0..n, 0..n, amount()).prop_map(|(from, to, amount)| Op::Forge { from, to, amount }),
    ]
}

fn with_memo(command: &Command, memo: &str, key: &ed25519_dalek::SigningKey) -> Option<Command> {
    match command {
        Command::Transfer(tx) => {
            let mut tx = tx.clone();
            tx.memo = memo.into();
            Some(sign(Command::Transfer(tx), key))
        }
        Command::Lock(op) => {
            let mut op = op.clone();
            op.memo = memo.into();
            Some(sign(Command::Lock(op), key))
        }
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_the_invariants(ops in prop::collection::vec(op(), 1..40)) {
        let people: Vec<Who> = (1..=4).map(who).collect();
        let mut ledger = Ledger::new();
        let g = genesis(&[(&people[0], 100 * UNITS_PER_CREDIT), (&people[1], 40 * UNITS_PER_CREDIT)], &[&people[0], &people[1], &people[2]]);
        prop_assert_eq!(ledger.apply(&g, 1), Outcome::Applied);
        let mut history: Vec<(Command, usize)> = Vec::new(); // (command, signer index)
        let mut locks: Vec<(String, usize)> = Vec::new();
        let mut index = 1u64;
        for (i, op) in ops.into_iter().enumerate() {
            let id = format!("op{i}");
            let before = ledger.state_hash();
            index += 1;
            match op {
                Op::Transfer { from, to, amount, fee } => {
                    let cmd = transfer(&id, &people[from], &people[to], amount, fee);
                    ledger.apply(&cmd, index);
                    history.push((cmd, from));
                }
                Op::Lock { owner, amount } => {
                    let cmd = lock(&id, &people[owner], amount);
                    ledger.apply(&cmd, index);
                    locks.push((id.clone(), owner));
                    history.push((cmd, owner));
                }
                Op::Post { lock: pick, payee, amount } => {
                    if let Some((lock_id, owner)) = locks.get(pick % locks.len().max(1)).cloned() {
                        let cmd = post(&id, &lock_id, &people[owner], &people[payee], amount);
                        ledger.apply(&cmd, index);
                        history.push((cmd, owner));
                    }
                }
                Op::Void { lock: pick } => {
                    if let Some((lock_id, owner)) = locks.get(pick % locks.len().max(1)).cloned() {
                        let cmd = void(&id, &lock_id, &people[owner]);
                        ledger.apply(&cmd, index);
                        history.push((cmd, owner));
                    }
                }
                Op::Mint { to, amount } => {
                    let action = crate::ledger::Action::Mint { to: people[to].id.clone(), amount };
                    ledger.apply(&propose(&id, &people[0], action), index);
                    for witness in people.iter().take(3) {
                        index += 1;
                        ledger.apply(&vote(&id, witness, true), index);
                    }
                }
                Op::Replay { pick } => {
                    if let Some((cmd, _)) = history.get(pick % history.len().max(1)) {
                        let recorded = ledger.op(&cmd.op_id()).map(|r| r.outcome.clone());
                        let outcome = ledger.apply(cmd, index);
                        prop_assert_eq!(ledger.state_hash(), before, "a replay changed the state");
                        if let Some(first) = recorded {
                            let want = if first == Outcome::Applied { Outcome::Exists } else { first };
                            prop_assert_eq!(outcome, want);
                        }
                    }
                }
                Op::Conflict { pick } => {
                    if let Some((cmd, signer)) = history.get(pick % history.len().max(1)) {
                        if ledger.op(&cmd.op_id()).is_some() {
                            if let Some(changed) = with_memo(cmd, "changed", &people[*signer].key) {
                                let outcome = ledger.apply(&changed, index);
                                let conflict = matches!(outcome, Outcome::Rejected { code: RejectCode::IdConflict, .. });
                                prop_assert!(conflict, "expected id_conflict, got {:?}", outcome);
                                prop_assert_eq!(ledger.state_hash(), before);
                            }
                        }
                    }
                }
                Op::Forge { from, to, amount } => {
                    let forger = &people[(from + 1) % people.len()];
                    let honest = transfer(&id, &people[from], &people[to], amount.max(1), 0);
                    let forged = sign(honest, &forger.key);
                    let outcome = ledger.apply(&forged, index);
                    let refused = matches!(outcome, Outcome::Rejected { code: RejectCode::InvalidSignature | RejectCode::InvalidArgument, .. });
                    prop_assert!(refused, "a forged transfer was not refused: {:?}", outcome);
                    prop_assert_eq!(ledger.state_hash(), before);
                }
            }
            if let Err(violation) = ledger.check_invariants() {
                prop_assert!(false, "after step {}: {}", i, violation);
            }
        }
        // a ledger rebuilt from its state (what a snapshot or a restart does) is identical
        let copy = Ledger::from_state(ledger.state().clone());
        prop_assert_eq!(copy.state_hash(), ledger.state_hash());
    }
}
