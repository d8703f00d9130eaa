//! The open-gossip transport: plain chitchat datagrams, read and filtered
//! by the admission policy before chitchat sees them.
//!
//! Theory of operation
//! -------------------
//! Like [`crate::sealed`], chitchat's own UDP socket serves as a codec on
//! an ephemeral loopback port, reached through one loopback pipe per peer
//! (see [`crate::pipes`]); datagrams on the public socket are plain chitchat:
//!
//! ```text
//!  send(to, envelope):  codec --bytes--> pipe[to] ; public --bytes--> to
//!  recv():              public <--bytes-- from ; parse ; admit ids ; pipe[from] --bytes'--> codec
//! ```
//!
//! Every incoming datagram is parsed by [`crate::wire`]; one that cannot be
//! parsed is dropped and counted (`undecodable`), so chitchat never decodes
//! a byte we could not. The digest entries a member sends about itself are
//! noted ([`Admission::owner_claim`]); every digest entry goes through
//! [`Admission::decide`] and every delta section through
//! [`Admission::decide_section`], and the key-value operations of every
//! admitted section through [`Admission::decide_values`] (per-identity key
//! and byte budgets); when some are refused the datagram is written again
//! without them (`rewritten`), otherwise the original bytes go on. A delta
//! that expands beyond [`wire::MAX_EXPANDED`] goes on cut after its last
//! whole operation within that bound (`truncated`); chitchat asks again for
//! the rest.
//! Our own datagrams leave unchanged: chitchat's table only holds what was
//! admitted (trusted members plus at most the cap of others, ids of bounded
//! length), so its digest fits one datagram.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use chitchat::ChitchatEnvelope;

use crate::admission::Admission;
use crate::pipes::{Incoming, Relay};
use crate::sealed::{now_ms, TransportCounters, MAX_DATAGRAM};
use crate::wire;

/// A shared admission policy (the transport decides, the node syncs it).
pub type SharedAdmission = Arc<Mutex<Admission>>;

pub(crate) fn lock(admission: &SharedAdmission) -> std::sync::MutexGuard<'_, Admission> {
    admission.lock().unwrap_or_else(|p| p.into_inner())
}

/// Datagram counters of the open transport.
#[derive(Debug, Default)]
pub struct GuardCounters {
    /// Datagrams that are not chitchat 0.13 messages we can read.
    pub undecodable: AtomicU64,
    /// Datagrams larger than a UDP payload can be.
    pub oversize: AtomicU64,
    /// Datagrams passed on without the identities the admission refused.
    pub rewritten: AtomicU64,
    /// Datagrams whose delta expanded beyond [`wire::MAX_EXPANDED`], passed on cut at that bound.
    pub truncated: AtomicU64,
}

pub struct GuardedTransport {
    pub admission: SharedAdmission,
    pub counters: Arc<TransportCounters>,
    pub guard: Arc<GuardCounters>,
}

#[async_trait]
impl Transport for GuardedTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        Ok(Box::new(GuardedSocket {
            relay: Relay::open(listen_addr, self.counters.clone()).await?,
            admission: self.admission.clone(),
            guard: self.guard.clone(),
        }))
    }
}

struct GuardedSocket {
    relay: Relay,
    admission: SharedAdmission,
    guard: Arc<GuardCounters>,
}

/// What to hand chitchat for one datagram from `from`: `None` drops it.
pub(crate) fn admit(
    datagram: &[u8],
    from: SocketAddr,
    admission: &SharedAdmission,
    guard: &GuardCounters,
    now_ms: u64,
) -> Option<Vec<u8>> {
    if datagram.len() > MAX_DATAGRAM {
        guard.oversize.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    let Ok(message) = wire::parse(datagram) else {
        guard.undecodable.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    let (keep_digest, keep_delta, keep_kvs) = {
        let mut policy = lock(admission);
        for entry in &message.digest {
            policy.owner_claim(&entry.id, from, entry.max_version);
        }
        let digest: Vec<bool> = message.digest.iter().map(|e| policy.decide(&e.id, from, now_ms).is_ok()).collect();
        let delta: Vec<bool> = message
            .delta
            .iter()
            .map(|s| policy.decide_section(&s.id, from, s.max_version, now_ms).is_ok())
            .collect();
        let kvs: Vec<Vec<bool>> = message
            .delta
            .iter()
            .zip(&delta)
            .map(|(s, kept)| match kept {
                true => policy.decide_values(&s.id, s.kvs.iter().map(|kv| (kv.key.as_str(), kv.value_len))),
                false => Vec::new(),
            })
            .collect();
        (digest, delta, kvs)
    };
    let all_kept = keep_digest.iter().chain(&keep_delta).chain(keep_kvs.iter().flatten()).all(|k| *k);
    if all_kept && !message.truncated {
        return Some(datagram.to_vec());
    }
    let rewritten = message.encode_cut(&keep_digest, &keep_delta, &keep_kvs);
    if rewritten.len() > MAX_DATAGRAM {
        guard.oversize.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    if message.truncated {
        guard.truncated.fetch_add(1, Ordering::Relaxed);
    }
    if !all_kept {
        guard.rewritten.fetch_add(1, Ordering::Relaxed);
    }
    Some(rewritten)
}

#[async_trait]
impl Socket for GuardedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.relay.local_addr()
    }

    async fn send(&mut self, to: SocketAddr, envelope: ChitchatEnvelope) -> anyhow::Result<SendOutcome> {
        let datagram = self.relay.encode(to, envelope).await?.to_vec();
        let num_bytes_sent = self.relay.send_public(&datagram, to).await?;
        Ok(SendOutcome { num_bytes_sent })
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            match self.relay.next().await? {
                Incoming::Decoded(outcome) => return Ok(outcome),
                Incoming::Datagram { from, len } => {
                    let datagram = self.relay.datagram(len);
                    if let Some(bytes) = admit(datagram, from, &self.admission, &self.guard, now_ms()) {
                        self.relay.deliver(from, &bytes).await?;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Admission;
    use crate::wire::{build, Ident};

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn refused_identities_are_cut_and_garbage_is_dropped() {
        let admission: SharedAdmission = Arc::new(Mutex::new(Admission::new(Ident::new("me", 1, at(1)), 4)));
        let guard = GuardCounters::default();
        let ids: Vec<Ident> = (0..10).map(|i| Ident::new(format!("fake-{i}"), 1, at(2000 + i))).collect();
        let datagram = build::syn_ack(&ids);
        let out = admit(&datagram, at(9999), &admission, &guard, 0).unwrap();
        let kept = wire::parse(&out).unwrap();
        assert_eq!(kept.digest.len(), 3, "4 slots, one kept for identities that speak for themselves");
        assert_eq!(kept.delta.len(), 3);
        assert_eq!(guard.rewritten.load(Ordering::Relaxed), 1);
        // Admitted ones pass unchanged next time.
        let again = build::syn_ack(&ids[..3]);
        assert_eq!(admit(&again, at(9999), &admission, &guard, 1).unwrap(), again);
        assert_eq!(guard.rewritten.load(Ordering::Relaxed), 1);
        // Garbage and truncated datagrams never reach chitchat.
        assert!(admit(b"hello", at(9999), &admission, &guard, 2).is_none());
        assert!(admit(&datagram[..datagram.len() - 3], at(9999), &admission, &guard, 2).is_none());
        assert_eq!(guard.undecodable.load(Ordering::Relaxed), 2);
        assert!(admit(&vec![0u8; MAX_DATAGRAM + 1], at(9999), &admission, &guard, 2).is_none());
        assert_eq!(guard.oversize.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_delta_expanding_past_the_read_bound_goes_on_cut_not_dropped() {
        use crate::admission::UNVERIFIED_MAX_KEYS;
        let admission: SharedAdmission = Arc::new(Mutex::new(Admission::new(Ident::new("me", 1, at(1)), 4)));
        let guard = GuardCounters::default();
        let stranger = Ident::new("stranger", 1, at(2000));
        // 1.2 MB of compressible values in a few KB: more than the engine reads from one datagram.
        let kvs: Vec<(String, String)> = (0..300).map(|k| (format!("k{k:03}"), "x".repeat(4000))).collect();
        let out = admit(&build::ack(&[(stranger, kvs)]), at(2000), &admission, &guard, 0).unwrap();
        let kept = wire::parse(&out).unwrap();
        assert!(!kept.truncated, "what goes on is a whole delta");
        assert_eq!(kept.delta[0].kvs.len(), UNVERIFIED_MAX_KEYS, "then the stranger's key budget applies");
        assert_eq!(guard.truncated.load(Ordering::Relaxed), 1);
        assert_eq!(guard.undecodable.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn key_values_beyond_an_identitys_budget_are_cut_across_datagrams() {
        use crate::admission::{ValueRefusal, UNVERIFIED_MAX_KEYS};
        use crate::wire::build;
        let admission: SharedAdmission = Arc::new(Mutex::new(Admission::new(Ident::new("me", 1, at(1)), 4)));
        let guard = GuardCounters::default();
        let stranger = Ident::new("stranger", 1, at(2000));
        let mut held = std::collections::HashSet::new();
        for datagram in 0..50 {
            let kvs: Vec<(String, String)> = (0..10).map(|k| (format!("junk-{datagram}-{k}"), "x".repeat(64))).collect();
            let out = admit(&build::ack(&[(stranger.clone(), kvs)]), at(2000), &admission, &guard, datagram).unwrap();
            let kept = wire::parse(&out).unwrap();
            assert_eq!(kept.delta.len(), 1, "the identity itself is admitted");
            held.extend(kept.delta[0].kvs.iter().map(|kv| kv.key.clone()));
        }
        assert_eq!(held.len(), UNVERIFIED_MAX_KEYS, "no reserved keys here: the whole budget");
        assert_eq!(guard.rewritten.load(Ordering::Relaxed), 50);
        let stats = lock(&admission).stats();
        let keys_refused = stats.values_refused.iter().find(|(l, _)| *l == ValueRefusal::Keys.label()).unwrap().1;
        assert_eq!(keys_refused, 500 - UNVERIFIED_MAX_KEYS as u64);
        // A refused identity's section is cut whole; its values are not looked at.
        let refused_ids: Vec<Ident> = (0..10).map(|i| Ident::new(format!("fake-{i}"), 1, at(3000 + i))).collect();
        admit(&build::syn_ack(&refused_ids), at(9999), &admission, &guard, 100).unwrap();
        assert_eq!(lock(&admission).stats().tracked, 4, "the stranger and the 3 hearsay identities admitted");
    }
}
