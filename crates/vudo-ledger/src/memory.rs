//! An in-process host for the network interface: many nodes in one process,
//! links that can be cut and healed. Used by tests, benchmarks and simulations;
//! it drives each node exactly as the libp2p host will (outbound queue ->
//! `handle_rpc` on the target -> `deliver_reply`).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::node::{LedgerHandle, LedgerNode};

#[derive(Clone, Default)]
pub struct MemoryNetwork {
    nodes: Arc<Mutex<HashMap<String, LedgerHandle>>>,
    cut: Arc<Mutex<BTreeSet<(String, String)>>>,
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

impl MemoryNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    /// Connect a node: its outbound RPCs are carried from now on (on its own runtime).
    pub fn attach(&self, node: &LedgerNode) {
        let handle = node.handle();
        if let Ok(mut nodes) = self.nodes.lock() {
            nodes.insert(handle.peer_id().to_owned(), handle.clone());
        }
        let net = self.clone();
        node.spawn(async move {
            while let Some(rpc) = handle.next_outbound().await {
                let net = net.clone();
                let source = handle.clone();
                tokio::spawn(async move {
                    let from = source.peer_id().to_owned();
                    let target = net.reachable(&from, &rpc.target);
                    let reply = match target {
                        Some(target) => target.handle_rpc(&from, &rpc.bytes).await.map_err(|e| e.to_string()),
                        None => Err(format!("{} is unreachable", rpc.target)),
                    };
                    source.deliver_reply(rpc.request_id, reply);
                });
            }
        });
    }

    /// Forget a node (it crashed or left): RPCs to it fail as unreachable.
    pub fn detach(&self, peer_id: &str) {
        if let Ok(mut nodes) = self.nodes.lock() {
            nodes.remove(peer_id);
        }
    }

    /// Drop every RPC between `a` and `b`, both ways.
    pub fn cut(&self, a: &str, b: &str) {
        if let Ok(mut cut) = self.cut.lock() {
            cut.insert(pair(a, b));
        }
    }

    pub fn heal(&self, a: &str, b: &str) {
        if let Ok(mut cut) = self.cut.lock() {
            cut.remove(&pair(a, b));
        }
    }

    /// Serve an RPC from `from` at `target` as if it came over the network (tests of refusal).
    pub fn handle(&self, target: &str) -> Option<LedgerHandle> {
        self.nodes.lock().ok()?.get(target).cloned()
    }

    fn reachable(&self, from: &str, target: &str) -> Option<LedgerHandle> {
        if self.cut.lock().ok()?.contains(&pair(from, target)) {
            return None;
        }
        self.handle(target)
    }
}
