//! Three (and four) real Raft nodes in one process over the in-memory host.

use std::path::Path;
use std::time::Duration;

use openraft::Vote;

use super::*;
use crate::error::{LedgerError, RejectCode};
use crate::ledger::{Ledger, Outcome, UNITS_PER_CREDIT};
use crate::memory::MemoryNetwork;
use crate::network::{encode, RaftRequest};
use crate::node::{LedgerNode, NodeConfig};
use crate::types::raft_id;

const PATIENCE: Duration = Duration::from_secs(60);

fn start(dir: &Path, me: &Who, net: &MemoryNetwork, bootstrap: &[&Who]) -> LedgerNode {
    let mut config = NodeConfig::new(me.id.clone(), dir);
    config.heartbeat_ms = 50;
    config.election_min_ms = 300;
    config.election_max_ms = 600;
    config.snapshot_every = 16;
    config.keep_logs = 4;
    config.worker_threads = 1;
    config.bootstrap_peers = bootstrap.iter().map(|w| w.id.clone()).collect();
    let node = LedgerNode::start(config).expect("node starts");
    net.attach(&node);
    node
}

fn wait_leader(nodes: &[&LedgerNode]) -> String {
    wait_leader_other_than(nodes, "")
}

fn wait_leader_other_than(nodes: &[&LedgerNode], old: &str) -> String {
    let first = nodes[0];
    let h = first.handle();
    let elected = first.block_on(h.wait_for(PATIENCE, |s| s.leader.as_ref().is_some_and(|l| l != old)));
    assert!(elected, "no leader elected: {:?}", h.status());
    let leader = h.status().leader.unwrap();
    for node in nodes {
        let h = node.handle();
        let want = leader.clone();
        assert!(node.block_on(h.wait_for(PATIENCE, |s| s.leader.as_deref() == Some(&want))), "leader not agreed");
    }
    leader
}

fn wait_applied(nodes: &[&LedgerNode], index: u64) {
    for node in nodes {
        let h = node.handle();
        assert!(
            node.block_on(h.wait_for(PATIENCE, |s| s.last_applied.unwrap_or(0) >= index)),
            "{} did not apply up to {index}: {:?}",
            h.peer_id(),
            h.status()
        );
    }
}

fn submit(node: &LedgerNode, command: Command) -> Result<crate::node::Committed, LedgerError> {
    let h = node.handle();
    node.block_on(h.submit(command))
}

fn accounts(node: &LedgerNode) -> std::collections::BTreeMap<String, crate::ledger::Account> {
    node.handle().local_read(|l| l.state().accounts.clone())
}

#[test]
fn three_nodes_commit_survive_a_leader_crash_and_restart_from_disk() {
    let people: Vec<Who> = (1..=3).map(who).collect();
    let founders: Vec<&Who> = people.iter().collect();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let net = MemoryNetwork::new();
    let mut nodes: Vec<Option<LedgerNode>> =
        people.iter().zip(&dirs).map(|(p, d)| Some(start(d.path(), p, &net, &founders))).collect();
    let ids: Vec<String> = people.iter().map(|p| p.id.clone()).collect();
    {
        let n0 = nodes[0].as_ref().unwrap();
        n0.block_on(n0.handle().initialize(&ids)).expect("initialize");
    }
    let all: Vec<&LedgerNode> = nodes.iter().map(|n| n.as_ref().unwrap()).collect();
    let leader_id = wait_leader(&all);
    let li = ids.iter().position(|i| *i == leader_id).unwrap();
    let leader = nodes[li].as_ref().unwrap();

    // a follower refuses writes and names the leader
    let follower = nodes[(li + 1) % 3].as_ref().unwrap();
    match submit(follower, transfer("x", &people[0], &people[1], 1, 0)) {
        Err(LedgerError::NotLeader { leader: Some(l) }) => assert_eq!(l, leader_id),
        other => panic!("expected NotLeader, got {other:?}"),
    }

    let mut reference = Ledger::new();
    let g = genesis(&[(&people[0], 1000 * UNITS_PER_CREDIT), (&people[1], 1000 * UNITS_PER_CREDIT)], &[&people[0], &people[1], &people[2]]);
    assert_eq!(submit(leader, g.clone()).unwrap().outcome, Outcome::Applied);
    reference.apply(&g, 0);
    let mut last = 0;
    for i in 0..30 {
        let (from, to) = (&people[i % 2], &people[2]);
        let tx = transfer(&format!("t{i}"), from, to, (i as u64 + 1) * 1000, 10);
        let committed = submit(leader, tx.clone()).expect("transfer commits");
        assert_eq!(committed.outcome, Outcome::Applied);
        reference.apply(&tx, 0);
        last = committed.index;
    }
    // idempotent retry and conflicting reuse, through consensus
    let retry = transfer("t3", &people[1], &people[2], 4000, 10);
    assert_eq!(submit(leader, retry).unwrap().outcome, Outcome::Exists);
    let conflict = transfer("t3", &people[1], &people[2], 4001, 10);
    match submit(leader, conflict) {
        Err(LedgerError::Rejected { code: RejectCode::IdConflict, .. }) => {}
        other => panic!("expected id_conflict, got {other:?}"),
    }
    wait_applied(&all, last);
    let hashes: Vec<_> = all.iter().map(|n| n.handle().state_hash()).collect();
    let leader_applied = leader.handle().status().last_applied.unwrap();
    wait_applied(&all, leader_applied);
    let hashes_now: Vec<_> = all.iter().map(|n| n.handle().state_hash().0).collect();
    assert!(hashes_now.windows(2).all(|w| w[0] == w[1]), "state hashes differ: {hashes:?}");
    assert_eq!(accounts(leader), reference.state().accounts);
    // the log was compacted: a snapshot exists and old entries were purged
    let lh = leader.handle();
    assert!(leader.block_on(lh.wait_for(PATIENCE, |s| s.snapshot_index.is_some() && s.purged_index.is_some())));
    // linearizable read on the leader
    let pool = leader.block_on(lh.read(|l| l.summary().pool)).unwrap();
    assert_eq!(pool, 300);

    // crash the leader: detach it and drop it without a graceful shutdown
    let before_crash = (accounts(leader), lh.state_hash());
    drop(all);
    net.detach(&leader_id);
    nodes[li] = None;
    let survivors: Vec<&LedgerNode> = nodes.iter().flatten().collect();
    let new_leader_id = wait_leader_other_than(&survivors, &leader_id);
    assert_ne!(new_leader_id, leader_id);
    let ni = ids.iter().position(|i| *i == new_leader_id).unwrap();
    for i in 30..40 {
        let tx = transfer(&format!("t{i}"), &people[0], &people[1], 777, 1);
        assert_eq!(submit(nodes[ni].as_ref().unwrap(), tx.clone()).unwrap().outcome, Outcome::Applied);
        reference.apply(&tx, 0);
    }

    // restart the crashed leader from its redb file: everything it had applied is still there
    let restarted = start(dirs[li].path(), &people[li], &MemoryNetwork::new(), &founders);
    let (hash_on_disk, applied_on_disk) = restarted.handle().state_hash();
    assert_eq!(hash_on_disk, before_crash.1 .0, "restart lost or re-applied state");
    assert!(applied_on_disk >= before_crash.1 .1);
    assert_eq!(accounts(&restarted), before_crash.0);
    drop(restarted);
    let rejoined = start(dirs[li].path(), &people[li], &net, &founders);
    nodes[li] = Some(rejoined);
    let all: Vec<&LedgerNode> = nodes.iter().map(|n| n.as_ref().unwrap()).collect();
    let target = all[ni].handle().status().last_applied.unwrap();
    wait_applied(&all, target);
    let hashes: Vec<_> = all.iter().map(|n| n.handle().state_hash().0).collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "state hashes differ after restart");
    for node in &all {
        assert_eq!(accounts(node), reference.state().accounts, "double or missing apply");
        node.handle().local_read(|l| l.check_invariants()).unwrap();
    }
}

fn vote_request(term: u64, candidate: &Who) -> Vec<u8> {
    let request = openraft::raft::VoteRequest::new(Vote::new(term, raft_id(&candidate.id)), None);
    encode(&RaftRequest::Vote(request))
}

#[test]
fn outsiders_impostors_garbage_and_removed_members_are_refused() {
    let people: Vec<Who> = (11..=13).map(who).collect();
    let outsider = who(14);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let net = MemoryNetwork::new();
    let founders: Vec<&Who> = people.iter().collect();
    let nodes: Vec<LedgerNode> = people.iter().zip(&dirs).map(|(p, d)| start(d.path(), p, &net, &founders)).collect();
    let ids: Vec<String> = people.iter().map(|p| p.id.clone()).collect();
    nodes[0].block_on(nodes[0].handle().initialize(&ids)).unwrap();
    let refs: Vec<&LedgerNode> = nodes.iter().collect();
    let leader_id = wait_leader(&refs);
    let li = ids.iter().position(|i| *i == leader_id).unwrap();
    let leader = &nodes[li];
    let lh = leader.handle();
    let term_before = lh.status().term;

    // an outsider (not a member) is refused before its bytes are even decoded
    let err = leader.block_on(lh.handle_rpc(&outsider.id, &vote_request(term_before + 10, &outsider))).unwrap_err();
    assert_eq!(err, LedgerError::NotMember { peer: outsider.id.clone() });
    // a member that speaks for another member is refused
    let (a, b) = (&people[(li + 1) % 3], &people[(li + 2) % 3]);
    let err = leader.block_on(lh.handle_rpc(&a.id, &vote_request(term_before + 10, b))).unwrap_err();
    assert_eq!(err.code(), "bad_message");
    // garbage and oversized input from a member is a clear error
    let err = leader.block_on(lh.handle_rpc(&a.id, &[0xff, 0x13, 0x37])).unwrap_err();
    assert_eq!(err.code(), "bad_message");
    let huge = vec![0u8; crate::network::MAX_RPC_BYTES + 1];
    assert_eq!(leader.block_on(lh.handle_rpc(&a.id, &huge)).unwrap_err().code(), "bad_message");
    let status = lh.status();
    assert_eq!(status.refused_rpcs, 1);
    assert_eq!(status.bad_messages, 3);
    assert_eq!(status.leader.as_deref(), Some(leader_id.as_str()), "refused input disturbed the leader");
    assert_eq!(status.term, term_before);

    // remove a member: from then on its RPCs are refused
    let removed = b;
    leader.block_on(lh.remove_member(&removed.id)).unwrap();
    assert!(leader.block_on(lh.wait_for(PATIENCE, |s| !s.voters.contains(&removed.id))));
    let err = leader.block_on(lh.handle_rpc(&removed.id, &vote_request(term_before + 10, removed))).unwrap_err();
    assert_eq!(err, LedgerError::NotMember { peer: removed.id.clone() });
    // the remaining two still commit
    let g = genesis(&[(&people[0], 10)], &[&people[0]]);
    assert_eq!(submit(leader, g).unwrap().outcome, Outcome::Applied);
}

#[test]
fn a_new_witness_joins_through_a_snapshot() {
    let people: Vec<Who> = (21..=24).map(who).collect();
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let net = MemoryNetwork::new();
    let founders: Vec<&Who> = people[..3].iter().collect();
    let mut nodes: Vec<LedgerNode> =
        founders.iter().zip(&dirs).map(|(p, d)| start(d.path(), p, &net, &founders)).collect();
    let ids: Vec<String> = founders.iter().map(|p| p.id.clone()).collect();
    nodes[0].block_on(nodes[0].handle().initialize(&ids)).unwrap();
    let refs: Vec<&LedgerNode> = nodes.iter().collect();
    let leader_id = wait_leader(&refs);
    let li = ids.iter().position(|i| *i == leader_id).unwrap();
    let g = genesis(&[(&people[0], 500)], &founders);
    submit(&nodes[li], g).unwrap();
    for i in 0..40 {
        submit(&nodes[li], transfer(&format!("j{i}"), &people[0], &people[1], 1, 0)).unwrap();
    }
    let lh = nodes[li].handle();
    assert!(nodes[li].block_on(lh.wait_for(PATIENCE, |s| s.purged_index.is_some())), "log was never purged");
    // the newcomer accepts the leader's RPCs before it knows any membership (bootstrap peers)
    nodes.push(start(dirs[3].path(), &people[3], &net, &founders));
    let newcomer = people[3].id.clone();
    nodes[li].block_on(lh.add_witness(&newcomer)).expect("add witness");
    assert!(lh.status().voters.contains(&newcomer));
    let target = lh.status().last_applied.unwrap();
    let all: Vec<&LedgerNode> = nodes.iter().collect();
    wait_applied(&all, target);
    assert_eq!(nodes[3].handle().state_hash().0, lh.state_hash().0);
    assert_eq!(accounts(&nodes[3]).get(&people[1].id).unwrap().balance, 40);
}

#[test]
fn a_fresh_node_takes_rpcs_only_from_the_bootstrap_peers_it_was_last_given() {
    let (me, witness, stranger) = (who(21), who(22), who(23));
    let dir = tempfile::tempdir().unwrap();
    let net = MemoryNetwork::new();
    let node = start(dir.path(), &me, &net, &[]);
    let h = node.handle();
    // no membership and no bootstrap peers: everyone is refused
    let err = node.block_on(h.handle_rpc(&witness.id, &vote_request(1, &witness))).unwrap_err();
    assert_eq!(err, LedgerError::NotMember { peer: witness.id.clone() });
    // the host learns the witnesses later (gossip): from then on they are heard, others still not
    h.set_bootstrap_peers(std::slice::from_ref(&witness.id)).unwrap();
    assert!(node.block_on(h.handle_rpc(&witness.id, &vote_request(1, &witness))).is_ok());
    let err = node.block_on(h.handle_rpc(&stranger.id, &vote_request(1, &stranger))).unwrap_err();
    assert_eq!(err, LedgerError::NotMember { peer: stranger.id.clone() });
    assert_eq!(h.set_bootstrap_peers(&["not-a-peer-id".to_owned()]).unwrap_err().code(), "invalid_argument");
    // a refused update leaves the previous set in place
    assert!(node.block_on(h.handle_rpc(&witness.id, &vote_request(2, &witness))).is_ok());
    assert_eq!(h.status().refused_rpcs, 2);
}
