//! Raft RPCs as opaque bytes that a host carries between peers.
//!
//! Theory of operation
//! -------------------
//! The crate never opens a socket. When openraft wants to send an RPC
//! (append-entries, vote, install-snapshot) to a member, the connection
//! encodes it, registers a pending request under a fresh `request_id`, and
//! queues an [`OutboundRpc`] `{request_id, target, bytes}` where `target` is
//! the member's PeerId. The host (the libp2p links engine, or
//! [`crate::memory::MemoryNetwork`] in tests) takes requests from the queue,
//! sends `bytes` to `target` over its authenticated request/response protocol
//! (`/vudo/raft/1`), and hands the answer back with `deliver_reply(request_id,
//! Ok(reply_bytes))`, or `Err(reason)` when the peer cannot be reached. A
//! request without an answer within openraft's deadline fails as a network
//! error; a late reply is ignored.
//!
//! On the receiving side the host calls `handle_rpc(from, bytes)` with the
//! *authenticated* PeerId of the sender. It is refused unless `from` is a
//! current member (or, before this node knows any membership, one of its
//! bootstrap peers), and unless the leader named inside the request is `from`
//! itself. Input is size-capped before decoding.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, SnapshotMismatch, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::types::TypeConfig;

type NodeId = u64;

/// Largest RPC message (request or reply) accepted, in bytes.
pub const MAX_RPC_BYTES: usize = 16 * 1024 * 1024;

/// One Raft RPC the host must carry to `target` (a PeerId string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundRpc {
    pub request_id: u64,
    pub target: String,
    pub bytes: Vec<u8>,
}

/// The wire form of a request (postcard).
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum RaftRequest {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
}

/// The wire form of a reply (postcard).
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum RaftReply {
    Append(AppendEntriesResponse<NodeId>),
    Vote(VoteResponse<NodeId>),
    Snapshot(InstallSnapshotResponse<NodeId>),
    SnapshotMismatch(SnapshotMismatch),
    /// The receiver refused or could not serve the request; the text says why.
    Refused(String),
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding plain serde data into a Vec cannot fail.
    postcard::to_stdvec(value).unwrap_or_default()
}

pub(crate) fn decode_bounded<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    if bytes.len() > MAX_RPC_BYTES {
        return Err(format!("{} bytes exceeds the {MAX_RPC_BYTES}-byte cap", bytes.len()));
    }
    postcard::from_bytes(bytes).map_err(|e| format!("does not decode: {e}"))
}

type Waker = Arc<dyn Fn() + Send + Sync>;
type ReplySender = oneshot::Sender<Result<Vec<u8>, String>>;

/// Pending outbound requests and the queue the host drains.
pub(crate) struct RpcHub {
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, ReplySender>>,
    tx: mpsc::UnboundedSender<OutboundRpc>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<OutboundRpc>>,
    wake: Option<Waker>,
}

/// Removes a pending request when its caller gives up.
struct PendingGuard<'a> {
    hub: &'a RpcHub,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.hub.pending.lock() {
            pending.remove(&self.id);
        }
    }
}

impl RpcHub {
    pub(crate) fn new(wake: Option<Waker>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            tx,
            rx: tokio::sync::Mutex::new(rx),
            wake,
        }
    }

    /// Queue `bytes` for `target` and wait for the host to deliver the reply.
    pub(crate) async fn call(&self, target: &str, bytes: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, CallFailure> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().map_err(|_| CallFailure::Unreachable("hub poisoned".into()))?.insert(id, tx);
        let _guard = PendingGuard { hub: self, id };
        self.tx
            .send(OutboundRpc { request_id: id, target: target.to_owned(), bytes })
            .map_err(|_| CallFailure::Unreachable("node stopped".into()))?;
        if let Some(wake) = &self.wake {
            wake();
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(reply))) => Ok(reply),
            Ok(Ok(Err(reason))) => Err(CallFailure::Unreachable(reason)),
            Ok(Err(_)) => Err(CallFailure::Unreachable("reply dropped".into())),
            Err(_) => Err(CallFailure::Timeout(timeout)),
        }
    }

    /// Hand back the answer to request `request_id`; false when nobody waits for it any more.
    pub(crate) fn deliver_reply(&self, request_id: u64, reply: Result<Vec<u8>, String>) -> bool {
        let sender = self.pending.lock().ok().and_then(|mut pending| pending.remove(&request_id));
        match sender {
            Some(sender) => sender.send(reply).is_ok(),
            None => false,
        }
    }

    pub(crate) fn try_next(&self) -> Option<OutboundRpc> {
        self.rx.try_lock().ok()?.try_recv().ok()
    }

    pub(crate) async fn next(&self) -> Option<OutboundRpc> {
        self.rx.lock().await.recv().await
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }
}

#[derive(Debug)]
pub(crate) enum CallFailure {
    Unreachable(String),
    Timeout(Duration),
}

/// A plain error carrying a reason, for openraft's error constructors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Reason(pub String);

/// Creates one [`Connection`] per target member.
pub(crate) struct NetworkFactory {
    pub(crate) hub: Arc<RpcHub>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Connection {
        Connection { hub: self.hub.clone(), target, peer: node.addr.clone() }
    }
}

/// Sends RPCs to one member through the host's queue.
pub(crate) struct Connection {
    hub: Arc<RpcHub>,
    target: NodeId,
    peer: String,
}

impl Connection {
    async fn exchange<E: std::error::Error>(
        &self,
        request: RaftRequest,
        option: &RPCOption,
    ) -> Result<RaftReply, RPCError<NodeId, BasicNode, E>> {
        let reply = self.hub.call(&self.peer, encode(&request), option.hard_ttl()).await.map_err(|failure| match failure {
            CallFailure::Unreachable(reason) => RPCError::Unreachable(Unreachable::new(&Reason(reason))),
            CallFailure::Timeout(t) => RPCError::Network(NetworkError::new(&Reason(format!("no reply within {t:?}")))),
        })?;
        let reply: RaftReply = decode_bounded(&reply)
            .map_err(|e| RPCError::Network(NetworkError::new(&Reason(format!("reply from {}: {e}", self.peer)))))?;
        if let RaftReply::Refused(reason) = &reply {
            return Err(RPCError::Unreachable(Unreachable::new(&Reason(format!("{} refused: {reason}", self.peer)))));
        }
        Ok(reply)
    }

    fn unexpected<E: std::error::Error>(&self, reply: &RaftReply) -> RPCError<NodeId, BasicNode, E> {
        RPCError::Network(NetworkError::new(&Reason(format!("{} answered with the wrong reply kind: {reply:?}", self.peer))))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.exchange(RaftRequest::Append(rpc), &option).await? {
            RaftReply::Append(resp) => Ok(resp),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        match self.exchange(RaftRequest::Snapshot(rpc), &option).await? {
            RaftReply::Snapshot(resp) => Ok(resp),
            RaftReply::SnapshotMismatch(mismatch) => Err(RPCError::RemoteError(RemoteError::new(
                self.target,
                RaftError::APIError(InstallSnapshotError::SnapshotMismatch(mismatch)),
            ))),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.exchange(RaftRequest::Vote(rpc), &option).await? {
            RaftReply::Vote(resp) => Ok(resp),
            other => Err(self.unexpected(&other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reply_reaches_its_caller_and_only_once() {
        let hub = Arc::new(RpcHub::new(None));
        let caller = {
            let hub = hub.clone();
            tokio::spawn(async move { hub.call("peer", b"ping".to_vec(), Duration::from_secs(60)).await })
        };
        let rpc = hub.next().await.expect("queued");
        assert_eq!((rpc.target.as_str(), rpc.bytes.as_slice()), ("peer", b"ping".as_slice()));
        assert!(hub.deliver_reply(rpc.request_id, Ok(b"pong".to_vec())));
        assert_eq!(caller.await.unwrap().unwrap(), b"pong");
        assert!(!hub.deliver_reply(rpc.request_id, Ok(b"again".to_vec())), "a second reply must be ignored");
        assert_eq!(hub.pending_count(), 0);
    }

    #[tokio::test]
    async fn an_unanswered_request_fails_and_leaves_nothing_pending() {
        let hub = RpcHub::new(None);
        let result = hub.call("peer", vec![1], Duration::from_millis(20)).await;
        assert!(matches!(result, Err(CallFailure::Timeout(_))));
        assert_eq!(hub.pending_count(), 0);
        let late = hub.try_next().expect("the request was queued");
        assert!(!hub.deliver_reply(late.request_id, Ok(vec![])), "a late reply is dropped");
    }

    #[tokio::test]
    async fn an_unreachable_peer_is_reported_as_such() {
        let hub = Arc::new(RpcHub::new(None));
        let caller = {
            let hub = hub.clone();
            tokio::spawn(async move { hub.call("peer", vec![], Duration::from_secs(60)).await })
        };
        let rpc = hub.next().await.unwrap();
        hub.deliver_reply(rpc.request_id, Err("dial failed".into()));
        match caller.await.unwrap() {
            Err(CallFailure::Unreachable(reason)) => assert_eq!(reason, "dial failed"),
            other => panic!("expected unreachable, got {other:?}"),
        }
    }

    #[test]
    fn decoding_is_bounded_and_rejects_garbage() {
        assert!(decode_bounded::<RaftReply>(&vec![0u8; MAX_RPC_BYTES + 1]).unwrap_err().contains("cap"));
        assert!(decode_bounded::<RaftReply>(&[0xff, 0xff, 0xff]).is_err());
        let reply = RaftReply::Refused("x".into());
        assert!(matches!(decode_bounded::<RaftReply>(&encode(&reply)), Ok(RaftReply::Refused(r)) if r == "x"));
    }
}
