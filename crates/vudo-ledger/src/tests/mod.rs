//! Tests of the ledger crate: rules, properties, openraft's storage suite, clusters.

mod cluster;
mod properties;
mod rules;
mod storage_suite;

use ed25519_dalek::{Signer, SigningKey};

use crate::ledger::{Action, Command, CreditTransaction, Genesis, LockOp, NameClaimOp, PostOp, ProposeOp, VoidOp, VoteOp};
use crate::types::peer_id_of;

/// A deterministic test identity.
pub(crate) struct Who {
    pub key: SigningKey,
    pub id: String,
}

pub(crate) fn who(seed: u8) -> Who {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let id = peer_id_of(&key.verifying_key().to_bytes()).expect("valid key");
    Who { key, id }
}

pub(crate) fn sign(mut command: Command, key: &SigningKey) -> Command {
    let signature = key.sign(&command.signing_bytes()).to_bytes().to_vec();
    match &mut command {
        Command::Genesis(_) => {}
        Command::Transfer(op) => op.signature = signature,
        Command::Lock(op) => op.signature = signature,
        Command::Post(op) => op.signature = signature,
        Command::Void(op) => op.signature = signature,
        Command::Propose(op) => op.signature = signature,
        Command::Vote(op) => op.signature = signature,
        Command::ClaimName(op) => op.signature = signature,
    }
    command
}

pub(crate) fn claim(id: &str, name: &str, author: &Who, rev: u64) -> Command {
    let op = NameClaimOp {
        id: id.into(),
        name: name.into(),
        author: author.id.clone(),
        rev,
        package: format!("{rev:064x}"),
        timestamp: 7,
        signature: vec![],
    };
    sign(Command::ClaimName(op), &author.key)
}

pub(crate) fn transfer(id: &str, from: &Who, to: &Who, amount: u64, fee: u64) -> Command {
    let tx = CreditTransaction {
        id: id.into(),
        from: from.id.clone(),
        to: to.id.clone(),
        amount,
        fee,
        memo: "test".into(),
        timestamp: 1_700_000_000_000,
        signature: Vec::new(),
    };
    sign(Command::Transfer(tx), &from.key)
}

pub(crate) fn lock(id: &str, owner: &Who, amount: u64) -> Command {
    let op = LockOp { id: id.into(), owner: owner.id.clone(), amount, memo: String::new(), timestamp: 1, signature: vec![] };
    sign(Command::Lock(op), &owner.key)
}

pub(crate) fn post(id: &str, lock_id: &str, owner: &Who, payee: &Who, amount: u64) -> Command {
    let op = PostOp {
        id: id.into(),
        lock_id: lock_id.into(),
        owner: owner.id.clone(),
        payee: payee.id.clone(),
        amount,
        timestamp: 2,
        signature: vec![],
    };
    sign(Command::Post(op), &owner.key)
}

pub(crate) fn void(id: &str, lock_id: &str, owner: &Who) -> Command {
    let op = VoidOp { id: id.into(), lock_id: lock_id.into(), owner: owner.id.clone(), timestamp: 3, signature: vec![] };
    sign(Command::Void(op), &owner.key)
}

pub(crate) fn propose(id: &str, proposer: &Who, action: Action) -> Command {
    let op = ProposeOp { id: id.into(), proposer: proposer.id.clone(), action, timestamp: 4, signature: vec![] };
    sign(Command::Propose(op), &proposer.key)
}

pub(crate) fn vote(proposal_id: &str, voter: &Who, approve: bool) -> Command {
    let op = VoteOp { proposal_id: proposal_id.into(), voter: voter.id.clone(), approve, timestamp: 5, signature: vec![] };
    sign(Command::Vote(op), &voter.key)
}

pub(crate) fn genesis(allocations: &[(&Who, u64)], witnesses: &[&Who]) -> Command {
    Command::Genesis(Genesis {
        allocations: allocations.iter().map(|(w, a)| (w.id.clone(), *a)).collect(),
        witnesses: witnesses.iter().map(|w| w.id.clone()).collect(),
        threshold_permille: crate::ledger::DEFAULT_THRESHOLD_PERMILLE,
        timestamp: 0,
    })
}
