//! Every ledger rule, one at a time.

use super::*;
use crate::error::RejectCode;
use crate::ledger::{Ledger, Outcome, ProposalState, MAX_MEMO_BYTES, UNITS_PER_CREDIT};

const CREDIT: u64 = UNITS_PER_CREDIT;

fn rejected(outcome: &Outcome) -> Option<RejectCode> {
    match outcome {
        Outcome::Rejected { code, .. } => Some(*code),
        _ => None,
    }
}

/// A ledger with a (100 credits), b (50 credits), witnesses a, b, c.
fn founded() -> (Ledger, Who, Who, Who) {
    let (a, b, c) = (who(1), who(2), who(3));
    let mut ledger = Ledger::new();
    assert_eq!(ledger.apply(&genesis(&[(&a, 100 * CREDIT), (&b, 50 * CREDIT)], &[&a, &b, &c]), 1), Outcome::Applied);
    (ledger, a, b, c)
}

#[test]
fn genesis_mints_once_and_sets_witnesses() {
    let (mut ledger, a, b, c) = founded();
    let summary = ledger.summary();
    assert_eq!(summary.total_minted, 150 * CREDIT);
    assert_eq!(summary.witnesses.len(), 3);
    assert_eq!(ledger.account(&a.id).balance, 100 * CREDIT);
    let again = ledger.apply(&genesis(&[(&c, CREDIT)], &[&c]), 2);
    assert_eq!(rejected(&again), Some(RejectCode::IdConflict));
    assert_eq!(ledger.summary().total_minted, 150 * CREDIT);
    assert_eq!(ledger.account(&b.id).balance, 50 * CREDIT);
    ledger.check_invariants().unwrap();
}

#[test]
fn transfer_moves_amount_and_fee_goes_to_pool() {
    let (mut ledger, a, b, _) = founded();
    assert_eq!(ledger.apply(&transfer("t1", &a, &b, 10 * CREDIT, 1000), 2), Outcome::Applied);
    let (acc_a, acc_b) = (ledger.account(&a.id), ledger.account(&b.id));
    assert_eq!(acc_a.balance, 90 * CREDIT - 1000);
    assert_eq!(acc_a.spent_total, 10 * CREDIT + 1000);
    assert_eq!(acc_b.balance, 60 * CREDIT);
    assert_eq!(acc_b.earned_total, 60 * CREDIT);
    assert_eq!(ledger.summary().pool, 1000);
    ledger.check_invariants().unwrap();
}

#[test]
fn transfer_needs_available_amount_plus_fee() {
    let (mut ledger, a, b, _) = founded();
    let before = ledger.state_hash();
    let outcome = ledger.apply(&transfer("t1", &b, &a, 50 * CREDIT, 1), 2);
    assert_eq!(rejected(&outcome), Some(RejectCode::InsufficientFunds));
    assert_eq!(ledger.account(&b.id).balance, 50 * CREDIT);
    // exactly the balance works
    assert_eq!(ledger.apply(&transfer("t2", &b, &a, 50 * CREDIT - 1, 1), 3), Outcome::Applied);
    assert_eq!(ledger.account(&b.id).balance, 0);
    assert_ne!(before, ledger.state_hash());
    ledger.check_invariants().unwrap();
}

#[test]
fn locked_units_are_not_available() {
    let (mut ledger, a, b, _) = founded();
    assert_eq!(ledger.apply(&lock("l1", &b, 40 * CREDIT), 2), Outcome::Applied);
    assert_eq!(ledger.account(&b.id).available(), 10 * CREDIT);
    let outcome = ledger.apply(&transfer("t1", &b, &a, 11 * CREDIT, 0), 3);
    assert_eq!(rejected(&outcome), Some(RejectCode::InsufficientFunds));
    let outcome = ledger.apply(&lock("l2", &b, 11 * CREDIT), 4);
    assert_eq!(rejected(&outcome), Some(RejectCode::InsufficientFunds));
    ledger.check_invariants().unwrap();
}

#[test]
fn forged_signature_is_refused_and_does_not_burn_the_id() {
    let (mut ledger, a, b, _) = founded();
    // b signs a transfer that spends a's money
    let mut forged = transfer("t1", &a, &b, CREDIT, 0);
    if let Command::Transfer(tx) = &mut forged {
        tx.signature = sign(Command::Transfer(tx.clone()), &b.key).signing_bytes(); // garbage
    }
    let forged = match forged {
        Command::Transfer(mut tx) => {
            let resigned = sign(Command::Transfer(tx.clone()), &b.key);
            if let Command::Transfer(r) = resigned {
                tx.signature = r.signature;
            }
            Command::Transfer(tx)
        }
        other => other,
    };
    assert_eq!(rejected(&ledger.apply(&forged, 2)), Some(RejectCode::InvalidSignature));
    assert!(ledger.op("t1").is_none(), "a forged command must not be recorded");
    // tampering with a signed command breaks the signature
    let mut tampered = transfer("t2", &a, &b, CREDIT, 0);
    if let Command::Transfer(tx) = &mut tampered {
        tx.amount = 99 * CREDIT;
    }
    assert_eq!(rejected(&ledger.apply(&tampered, 3)), Some(RejectCode::InvalidSignature));
    // the real owner can still use the id
    assert_eq!(ledger.apply(&transfer("t1", &a, &b, CREDIT, 0), 4), Outcome::Applied);
    assert_eq!(ledger.account(&b.id).balance, 51 * CREDIT);
}

#[test]
fn same_id_same_content_exists_different_content_conflicts() {
    let (mut ledger, a, b, _) = founded();
    let tx = transfer("t1", &a, &b, CREDIT, 0);
    assert_eq!(ledger.apply(&tx, 2), Outcome::Applied);
    let hash = ledger.state_hash();
    assert_eq!(ledger.apply(&tx, 3), Outcome::Exists);
    assert_eq!(ledger.state_hash(), hash, "a replay changes nothing");
    let other = transfer("t1", &a, &b, 2 * CREDIT, 0);
    assert_eq!(rejected(&ledger.apply(&other, 4)), Some(RejectCode::IdConflict));
    assert_eq!(ledger.state_hash(), hash);
    assert_eq!(ledger.account(&b.id).balance, 51 * CREDIT);
}

#[test]
fn an_id_that_failed_never_succeeds_later() {
    let (mut ledger, a, b, _) = founded();
    let tx = transfer("t1", &b, &a, 60 * CREDIT, 0);
    assert_eq!(rejected(&ledger.apply(&tx, 2)), Some(RejectCode::InsufficientFunds));
    // b gets money, then retries the very same command
    assert_eq!(ledger.apply(&transfer("t2", &a, &b, 20 * CREDIT, 0), 3), Outcome::Applied);
    assert_eq!(rejected(&ledger.apply(&tx, 4)), Some(RejectCode::InsufficientFunds));
    assert_eq!(ledger.account(&b.id).balance, 70 * CREDIT);
}

#[test]
fn memo_length_is_capped() {
    let (mut ledger, a, b, _) = founded();
    let mut tx = match transfer("t1", &a, &b, 1, 0) {
        Command::Transfer(tx) => tx,
        _ => unreachable!(),
    };
    tx.memo = "x".repeat(MAX_MEMO_BYTES + 1);
    let cmd = sign(Command::Transfer(tx.clone()), &a.key);
    assert_eq!(rejected(&ledger.apply(&cmd, 2)), Some(RejectCode::MemoTooLong));
    tx.memo = "x".repeat(MAX_MEMO_BYTES);
    let cmd = sign(Command::Transfer(tx), &a.key);
    assert_eq!(ledger.apply(&cmd, 3), Outcome::Applied);
}

#[test]
fn arithmetic_overflow_is_refused() {
    let (a, b) = (who(1), who(2));
    let mut ledger = Ledger::new();
    assert_eq!(ledger.apply(&genesis(&[(&a, u64::MAX)], &[&a]), 1), Outcome::Applied);
    let outcome = ledger.apply(&transfer("t1", &a, &b, u64::MAX, 1), 2);
    assert_eq!(rejected(&outcome), Some(RejectCode::Overflow));
    let mut over = Ledger::new();
    let outcome = over.apply(&genesis(&[(&a, u64::MAX), (&b, 1)], &[&a]), 1);
    assert_eq!(rejected(&outcome), Some(RejectCode::Overflow));
    assert_eq!(over.summary().total_minted, 0);
    // minting beyond u64 through a decision fails the decision, not the ledger
    assert_eq!(ledger.apply(&propose("p1", &a, Action::Mint { to: b.id.clone(), amount: 1 }), 3), Outcome::Applied);
    assert_eq!(ledger.apply(&vote("p1", &a, true), 4), Outcome::Applied);
    let proposal = ledger.proposal("p1").unwrap();
    assert_eq!(proposal.state, ProposalState::Rejected);
    assert!(proposal.failure.as_deref().unwrap().contains("overflow"));
    ledger.check_invariants().unwrap();
}

#[test]
fn malformed_commands_are_invalid_arguments() {
    let (mut ledger, a, b, _) = founded();
    let zero = transfer("t0", &a, &b, 0, 0);
    assert_eq!(rejected(&ledger.apply(&zero, 2)), Some(RejectCode::InvalidArgument));
    let to_self = transfer("t1", &a, &a, 1, 0);
    assert_eq!(rejected(&ledger.apply(&to_self, 3)), Some(RejectCode::InvalidArgument));
    let bad_id = transfer("has space", &a, &b, 1, 0);
    assert_eq!(rejected(&ledger.apply(&bad_id, 4)), Some(RejectCode::InvalidArgument));
    let long_id = transfer(&"i".repeat(65), &a, &b, 1, 0);
    assert_eq!(rejected(&ledger.apply(&long_id, 5)), Some(RejectCode::InvalidArgument));
    let mut bad_to = match transfer("t2", &a, &b, 1, 0) {
        Command::Transfer(tx) => tx,
        _ => unreachable!(),
    };
    bad_to.to = "not-a-peer-id".into();
    let cmd = sign(Command::Transfer(bad_to), &a.key);
    assert_eq!(rejected(&ledger.apply(&cmd, 6)), Some(RejectCode::InvalidArgument));
    assert_eq!(ledger.summary().sum_balances, 150 * u128::from(CREDIT));
}

#[test]
fn lock_then_post_pays_the_payee_and_releases_the_rest() {
    let (mut ledger, a, b, c) = founded();
    assert_eq!(ledger.apply(&lock("l1", &a, 30 * CREDIT), 2), Outcome::Applied);
    assert_eq!(ledger.account(&a.id).locked, 30 * CREDIT);
    assert_eq!(ledger.apply(&post("p1", "l1", &a, &c, 20 * CREDIT), 3), Outcome::Applied);
    let acc_a = ledger.account(&a.id);
    assert_eq!((acc_a.balance, acc_a.locked), (80 * CREDIT, 0));
    assert_eq!(ledger.account(&c.id).balance, 20 * CREDIT);
    // a lock is settled once
    let again = ledger.apply(&post("p2", "l1", &a, &c, CREDIT), 4);
    assert_eq!(rejected(&again), Some(RejectCode::UnknownLock));
    let void_after = ledger.apply(&void("v1", "l1", &a), 5);
    assert_eq!(rejected(&void_after), Some(RejectCode::UnknownLock));
    let _ = b;
    ledger.check_invariants().unwrap();
}

#[test]
fn post_never_overdraws_the_lock_and_only_the_owner_settles() {
    let (mut ledger, a, b, c) = founded();
    assert_eq!(ledger.apply(&lock("l1", &a, 5 * CREDIT), 2), Outcome::Applied);
    let over = ledger.apply(&post("p1", "l1", &a, &c, 5 * CREDIT + 1), 3);
    assert_eq!(rejected(&over), Some(RejectCode::InsufficientFunds));
    let stranger = ledger.apply(&post("p2", "l1", &b, &c, CREDIT), 4);
    assert_eq!(rejected(&stranger), Some(RejectCode::NotOwner));
    let stranger_void = ledger.apply(&void("v0", "l1", &b), 5);
    assert_eq!(rejected(&stranger_void), Some(RejectCode::NotOwner));
    assert_eq!(ledger.apply(&void("v1", "l1", &a), 6), Outcome::Applied);
    let acc_a = ledger.account(&a.id);
    assert_eq!((acc_a.balance, acc_a.locked), (100 * CREDIT, 0));
    ledger.check_invariants().unwrap();
}

#[test]
fn quorum_mint_needs_the_threshold_of_witnesses() {
    let (mut ledger, a, b, c) = founded();
    let d = who(4);
    let mint = Action::Mint { to: d.id.clone(), amount: 7 * CREDIT };
    assert_eq!(rejected(&ledger.apply(&propose("m1", &d, mint.clone()), 2)), Some(RejectCode::NotWitness));
    assert_eq!(ledger.apply(&propose("m1", &a, mint), 3), Outcome::Applied);
    assert_eq!(ledger.apply(&vote("m1", &a, true), 4), Outcome::Applied);
    assert_eq!(ledger.apply(&vote("m1", &b, true), 5), Outcome::Applied);
    // 2 of 3 = 0.667 < 0.67: still pending
    assert_eq!(ledger.proposal("m1").unwrap().state, ProposalState::Pending);
    assert_eq!(ledger.account(&d.id).balance, 0);
    assert_eq!(rejected(&ledger.apply(&vote("m1", &d, true), 6)), Some(RejectCode::NotWitness));
    assert_eq!(ledger.apply(&vote("m1", &c, true), 7), Outcome::Applied);
    assert_eq!(ledger.proposal("m1").unwrap().state, ProposalState::Approved);
    assert_eq!(ledger.account(&d.id).balance, 7 * CREDIT);
    assert_eq!(ledger.summary().total_minted, 157 * CREDIT);
    // closed: no more votes; a changed vote is an id conflict
    assert_eq!(rejected(&ledger.apply(&vote("m1", &a, false), 8)), Some(RejectCode::IdConflict));
    ledger.check_invariants().unwrap();
}

#[test]
fn quorum_rejects_once_approval_is_out_of_reach() {
    let (mut ledger, a, b, _) = founded();
    let action = Action::Mint { to: b.id.clone(), amount: CREDIT };
    assert_eq!(ledger.apply(&propose("m1", &a, action), 2), Outcome::Applied);
    assert_eq!(ledger.apply(&vote("m1", &b, false), 3), Outcome::Applied);
    assert_eq!(ledger.proposal("m1").unwrap().state, ProposalState::Rejected);
    let late = ledger.apply(&vote("m1", &a, true), 4);
    assert_eq!(rejected(&late), Some(RejectCode::ProposalClosed));
    assert_eq!(ledger.summary().total_minted, 150 * CREDIT);
}

#[test]
fn quorum_adds_and_removes_witnesses() {
    let (mut ledger, a, b, c) = founded();
    let d = who(4);
    assert_eq!(ledger.apply(&propose("w1", &a, Action::AddWitness { node: d.id.clone() }), 2), Outcome::Applied);
    for (i, w) in [&a, &b, &c].into_iter().enumerate() {
        assert_eq!(ledger.apply(&vote("w1", w, true), 3 + i as u64), Outcome::Applied);
    }
    assert!(ledger.summary().witnesses.contains(&d.id));
    assert_eq!(ledger.apply(&propose("w2", &d, Action::RemoveWitness { node: c.id.clone() }), 6), Outcome::Applied);
    for (i, w) in [&a, &b, &d].into_iter().enumerate() {
        assert_eq!(ledger.apply(&vote("w2", w, true), 7 + i as u64), Outcome::Applied);
    }
    // 3 of 4 = 0.75 >= 0.67
    assert_eq!(ledger.proposal("w2").unwrap().state, ProposalState::Approved);
    assert!(!ledger.summary().witnesses.contains(&c.id));
    assert_eq!(ledger.summary().witnesses.len(), 3);
}

#[test]
fn state_hash_is_a_function_of_the_state_only() {
    let (mut one, a, b, _) = founded();
    let (mut two, ..) = founded();
    for (i, cmd) in [transfer("t1", &a, &b, 5, 1), lock("l1", &b, 3), void("v1", "l1", &b)].iter().enumerate() {
        one.apply(cmd, 10 + i as u64);
        two.apply(cmd, 10 + i as u64);
    }
    assert_eq!(one.state_hash(), two.state_hash());
    two.apply(&transfer("t2", &a, &b, 1, 0), 20);
    assert_ne!(one.state_hash(), two.state_hash());
}

#[test]
fn signing_bytes_are_canonical_and_length_prefixed() {
    let (a, b) = (who(1), who(2));
    let bytes = transfer("t1", &a, &b, 5, 1).signing_bytes();
    let domain = b"vudo.credits.v1";
    assert_eq!(&bytes[..4], &(domain.len() as u32).to_be_bytes());
    assert_eq!(&bytes[4..4 + domain.len()], domain);
    // moving a character between two fields changes the encoding
    let mut moved = match transfer("t1", &a, &b, 5, 1) {
        Command::Transfer(tx) => tx,
        _ => unreachable!(),
    };
    moved.id = "t".into();
    moved.memo = format!("1{}", moved.memo);
    assert_ne!(Command::Transfer(moved).signing_bytes(), bytes);
}

#[test]
fn history_lists_an_accounts_operations_newest_first_and_bounded() {
    let (mut ledger, a, b, _) = founded();
    assert_eq!(ledger.apply(&transfer("t1", &a, &b, 10 * CREDIT, 7), 2), Outcome::Applied);
    assert_eq!(rejected(&ledger.apply(&transfer("t2", &b, &a, 500 * CREDIT, 0), 3)), Some(RejectCode::InsufficientFunds));
    let hash = ledger.state_hash();
    let history = ledger.history(&a.id, 10);
    assert_eq!(ledger.state_hash(), hash, "reading history changes nothing");
    let ids: Vec<&str> = history.iter().map(|e| e.op_id.as_str()).collect();
    assert_eq!(ids, ["t2", "t1", "genesis"]);
    assert_eq!((history[0].status, history[0].code, history[0].incoming), ("rejected", "insufficient_funds", true));
    assert_eq!((history[1].kind, history[1].amount, history[1].fee, history[1].incoming), ("transfer", 10 * CREDIT, 7, false));
    assert_eq!(history[1].counterparty, b.id);
    assert_eq!((history[2].kind, history[2].amount, history[2].incoming), ("genesis", 100 * CREDIT, true));
    assert_eq!(ledger.history(&a.id, 1).len(), 1);
    assert!(ledger.history(&who(9).id, 10).is_empty());
    for i in 0..(crate::ledger::MAX_HISTORY + 5) {
        ledger.apply(&transfer(&format!("m{i}"), &a, &b, 1, 0), 10 + i as u64);
    }
    assert_eq!(ledger.history(&a.id, usize::MAX).len(), crate::ledger::MAX_HISTORY);
}

#[test]
fn the_first_author_owns_a_name_and_later_versions_need_a_higher_rev() {
    let (mut ledger, a, b, _) = founded();
    assert_eq!(ledger.apply(&claim("n1", "physarum", &a, 1), 2), Outcome::Applied);
    let record = ledger.name("physarum").cloned().unwrap();
    assert_eq!((record.author.as_str(), record.rev, record.index), (a.id.as_str(), 1, 2));
    // a resend of the same claim is idempotent
    assert_eq!(ledger.apply(&claim("n1", "physarum", &a, 1), 3), Outcome::Exists);
    // someone else cannot take the name, whatever the rev
    let squat = ledger.apply(&claim("n2", "physarum", &b, 99), 4);
    assert_eq!(rejected(&squat), Some(RejectCode::NameOwned));
    // the owner needs a higher rev
    let same = ledger.apply(&claim("n3", "physarum", &a, 1), 5);
    assert_eq!(rejected(&same), Some(RejectCode::StaleRev));
    assert_eq!(ledger.apply(&claim("n4", "physarum", &a, 3), 6), Outcome::Applied);
    let lower = ledger.apply(&claim("n5", "physarum", &a, 2), 7);
    assert_eq!(rejected(&lower), Some(RejectCode::StaleRev));
    assert_eq!(ledger.name("physarum").map(|r| (r.rev, r.index)), Some((3, 6)));
    // another name is another owner's to take
    assert_eq!(ledger.apply(&claim("n6", "other", &b, 1), 8), Outcome::Applied);
    assert!(ledger.name("nobody").is_none());
    ledger.check_invariants().unwrap();
}

#[test]
fn name_claims_are_shaped_and_signed() {
    let (mut ledger, a, b, _) = founded();
    let long = "a".repeat(crate::ledger::MAX_NAME_BYTES + 1);
    for bad in ["", "Physarum", "9lives", "with space", "dots.no", long.as_str()] {
        let outcome = ledger.apply(&claim(&format!("bad-{}", bad.len()), bad, &a, 1), 2);
        assert_eq!(rejected(&outcome), Some(RejectCode::InvalidArgument), "{bad:?}");
    }
    let zero = ledger.apply(&claim("zero", "ok", &a, 0), 3);
    assert_eq!(rejected(&zero), Some(RejectCode::InvalidArgument));
    let mut forged = claim("forged", "ok", &a, 1);
    if let Command::ClaimName(op) = &mut forged {
        op.author = b.id.clone(); // signed by a, claims to be b
    }
    assert_eq!(rejected(&ledger.apply(&forged, 4)), Some(RejectCode::InvalidSignature));
    let mut bad_hash = claim("hash", "ok", &a, 1);
    if let Command::ClaimName(op) = &mut bad_hash {
        op.package = "AB".repeat(32);
    }
    let bad_hash = sign(bad_hash, &a.key);
    assert_eq!(rejected(&ledger.apply(&bad_hash, 5)), Some(RejectCode::InvalidArgument));
    assert!(ledger.name("ok").is_none());
    assert_eq!(ledger.apply(&claim("good", "ok", &a, 1), 6), Outcome::Applied);
}
