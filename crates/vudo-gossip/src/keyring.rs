//! The cluster keyring: sealing and opening gossip datagrams.
//!
//! Theory of operation
//! -------------------
//! Chitchat authenticates nothing, so with a keyring every datagram is
//! sealed with XChaCha20-Poly1305 before it leaves and opened before chitchat
//! sees a byte of it (Serf/memberlist "gossip encryption"). Wire format:
//!
//! ```text
//! "VG" | version (1) | key id (4) | nonce (24, random) | AEAD( timestamp_ms u64 LE | frame )
//! ```
//!
//! where a frame is a whole chitchat message or a fragment of one (see
//! `frames`). The 7-byte header is authenticated as associated data. The key id is the
//! first 4 bytes of SHA-256("vudo-gossip-key-id" | key): it selects the key
//! without trial decryption and says nothing about the key.
//!
//! Several keys can be installed; the *primary* seals, all of them open.
//! That is what makes live rotation work, as in `serf keys`: install the new
//! key everywhere, make it primary everywhere, remove the old one.
//!
//! Replays: chitchat state is idempotent (old versions and heartbeats are
//! ignored), so a replayed datagram cannot roll state back, but it can make
//! a node answer (reflection) and it is evidence of tampering. The sealed
//! timestamp must be within `window` of the receiver's clock, and the nonce
//! of every datagram accepted within the window is remembered (bounded);
//! a second datagram with a remembered nonce is a replay. When the cache is
//! full, the oldest entries are evicted and everything at or below their
//! timestamp is refused from then on, so a full cache never re-admits a
//! replay.
//!
//! All of this is synchronous and clock-injected (`now_ms`) so it is tested
//! without sockets.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::error::GossipError;

pub const KEY_LEN: usize = 32;
const MAGIC: &[u8; 2] = b"VG";
const WIRE_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = MAGIC.len() + 1 + KEY_ID_LEN;
const TIMESTAMP_LEN: usize = 8;
const TAG_LEN: usize = 16;
/// Bytes a sealed datagram adds to the chitchat payload.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TIMESTAMP_LEN + TAG_LEN;
/// Most keys a keyring holds (rotation needs two; a few spare are harmless).
pub const MAX_KEYS: usize = 8;
/// Nonces remembered for replay detection.
pub const REPLAY_CACHE: usize = 65_536;

/// Why a datagram was dropped; the metric label is [`Reject::label`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Not a sealed datagram at all (e.g. plain chitchat from an outsider).
    NotSealed,
    /// Shorter than the smallest sealed datagram.
    Truncated,
    /// Sealed under a key this node does not hold.
    UnknownKey,
    /// Authentication failed: tampered, cut short, or forged.
    AuthFailed,
    /// A datagram already accepted (same nonce) came again.
    Replayed,
    /// Sealed timestamp outside the accepted window.
    OutOfWindow,
    /// Larger than a UDP datagram (received), or a message too large to frame (sent).
    Oversize,
    /// Opened, but not a valid frame (see `frames`): only a key holder can send one.
    BadFrame,
}

impl Reject {
    pub const ALL: [Reject; 8] = [
        Reject::NotSealed,
        Reject::Truncated,
        Reject::UnknownKey,
        Reject::AuthFailed,
        Reject::Replayed,
        Reject::OutOfWindow,
        Reject::Oversize,
        Reject::BadFrame,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reject::NotSealed => "not_sealed",
            Reject::Truncated => "truncated",
            Reject::UnknownKey => "unknown_key",
            Reject::AuthFailed => "auth_failed",
            Reject::Replayed => "replayed",
            Reject::OutOfWindow => "out_of_window",
            Reject::Oversize => "oversize",
            Reject::BadFrame => "bad_frame",
        }
    }

    fn index(self) -> usize {
        Reject::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// A 32-byte cluster key.
#[derive(Clone, PartialEq, Eq)]
pub struct GossipKey([u8; KEY_LEN]);

impl GossipKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, GossipError> {
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            GossipError::InvalidKey(format!("a gossip key is {KEY_LEN} bytes, got {}", bytes.len()))
        })?;
        Ok(Self(key))
    }

    pub fn generate() -> Result<Self, GossipError> {
        let mut key = [0u8; KEY_LEN];
        getrandom::getrandom(&mut key).map_err(|err| GossipError::InvalidKey(format!("no randomness: {err}")))?;
        Ok(Self(key))
    }

    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        let digest = Sha256::new().chain_update(b"vudo-gossip-key-id").chain_update(self.0).finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        id
    }

    pub fn id_hex(&self) -> String {
        self.id().iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GossipKey({})", self.id_hex())
    }
}

/// One installed key, as listed to operators (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: String,
    pub primary: bool,
}

/// Counters of one keyring (atomic: read while the transport runs).
#[derive(Debug, Default)]
pub struct KeyringStats {
    pub sealed: AtomicU64,
    pub opened: AtomicU64,
    rejected: [AtomicU64; Reject::ALL.len()],
}

impl KeyringStats {
    pub fn rejected(&self, reason: Reject) -> u64 {
        self.rejected[reason.index()].load(Ordering::Relaxed)
    }

    pub fn count(&self, reason: Reject) {
        self.rejected[reason.index()].fetch_add(1, Ordering::Relaxed);
    }
}

struct Installed {
    key: GossipKey,
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha20Poly1305,
}

/// Remembered nonces of accepted datagrams, bounded in size and time.
#[derive(Default)]
struct ReplayGuard {
    seen: HashSet<[u8; NONCE_LEN]>,
    order: VecDeque<(u64, [u8; NONCE_LEN])>,
    /// Timestamps at or below this are refused (their nonces were evicted early).
    floor: Option<u64>,
}

impl ReplayGuard {
    fn check_and_insert(&mut self, nonce: [u8; NONCE_LEN], ts: u64, now_ms: u64, window_ms: u64) -> Result<(), Reject> {
        let oldest_allowed = now_ms.saturating_sub(window_ms);
        while let Some(&(t, n)) = self.order.front() {
            if t >= oldest_allowed {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&n);
        }
        if self.floor.is_some_and(|floor| ts <= floor) {
            return Err(Reject::Replayed);
        }
        if self.seen.contains(&nonce) {
            return Err(Reject::Replayed);
        }
        if self.order.len() >= REPLAY_CACHE {
            if let Some((t, n)) = self.order.pop_front() {
                self.seen.remove(&n);
                self.floor = Some(self.floor.map_or(t, |f| f.max(t)));
                if ts <= t {
                    return Err(Reject::Replayed);
                }
            }
        }
        self.seen.insert(nonce);
        // Keep `order` sorted by timestamp so eviction is oldest-first.
        let pos = self.order.partition_point(|(t, _)| *t <= ts);
        self.order.insert(pos, (ts, nonce));
        Ok(())
    }
}

/// The keys of one node and the replay state of its receive side.
pub struct Keyring {
    keys: Vec<Installed>,
    window_ms: u64,
    replay: ReplayGuard,
    pub stats: std::sync::Arc<KeyringStats>,
}

impl Keyring {
    /// `keys[0]` is the primary. `window_ms` bounds clock skew + delivery delay.
    pub fn new(keys: Vec<GossipKey>, window_ms: u64) -> Result<Self, GossipError> {
        if keys.is_empty() {
            return Err(GossipError::InvalidKey("a keyring needs at least one key".into()));
        }
        let mut ring = Self { keys: Vec::new(), window_ms, replay: ReplayGuard::default(), stats: Default::default() };
        for key in keys {
            ring.install(key)?;
        }
        Ok(ring)
    }

    pub fn list(&self) -> Vec<KeyInfo> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| KeyInfo { id: k.key.id_hex(), primary: i == 0 })
            .collect()
    }

    /// Add a key that opens datagrams (idempotent). It seals only once used.
    pub fn install(&mut self, key: GossipKey) -> Result<(), GossipError> {
        let id = key.id();
        if let Some(existing) = self.keys.iter().find(|k| k.id == id) {
            if existing.key != key {
                return Err(GossipError::InvalidKey(format!(
                    "another installed key has the same id {}; generate a new key",
                    key.id_hex()
                )));
            }
            return Ok(());
        }
        if self.keys.len() >= MAX_KEYS {
            return Err(GossipError::InvalidKey(format!("the keyring holds at most {MAX_KEYS} keys; remove one first")));
        }
        let cipher = XChaCha20Poly1305::new(key.as_bytes().into());
        self.keys.push(Installed { key, id, cipher });
        Ok(())
    }

    /// Make an installed key the primary (the one that seals).
    pub fn use_key(&mut self, key: &GossipKey) -> Result<(), GossipError> {
        let pos = self.position(key)?;
        let chosen = self.keys.remove(pos);
        self.keys.insert(0, chosen);
        Ok(())
    }

    /// Remove a key that is not the primary.
    pub fn remove(&mut self, key: &GossipKey) -> Result<(), GossipError> {
        let pos = self.position(key)?;
        if pos == 0 {
            return Err(GossipError::InvalidKey(format!(
                "key {} is the primary; `use` another key before removing it",
                key.id_hex()
            )));
        }
        self.keys.remove(pos);
        Ok(())
    }

    fn position(&self, key: &GossipKey) -> Result<usize, GossipError> {
        self.keys
            .iter()
            .position(|k| k.key == *key)
            .ok_or_else(|| GossipError::InvalidKey(format!("key {} is not installed", key.id_hex())))
    }

    /// Seal `plaintext` under the primary key with a random nonce.
    pub fn seal(&self, plaintext: &[u8], now_ms: u64) -> Result<Vec<u8>, GossipError> {
        let primary = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|err| GossipError::InvalidKey(format!("no randomness: {err}")))?;
        let mut header = [0u8; HEADER_LEN];
        header[..2].copy_from_slice(MAGIC);
        header[2] = WIRE_VERSION;
        header[3..].copy_from_slice(&primary.id);
        let mut msg = Vec::with_capacity(TIMESTAMP_LEN + plaintext.len());
        msg.extend_from_slice(&now_ms.to_le_bytes());
        msg.extend_from_slice(plaintext);
        let sealed = primary
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: &msg, aad: &header })
            .map_err(|_| GossipError::InvalidKey("sealing failed".into()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        self.stats.sealed.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// Open a datagram; on failure the reason is counted and returned.
    pub fn open(&mut self, datagram: &[u8], now_ms: u64) -> Result<Vec<u8>, Reject> {
        let result = self.open_inner(datagram, now_ms);
        match &result {
            Ok(_) => {
                self.stats.opened.fetch_add(1, Ordering::Relaxed);
            }
            Err(reason) => self.stats.count(*reason),
        }
        result
    }

    fn open_inner(&mut self, datagram: &[u8], now_ms: u64) -> Result<Vec<u8>, Reject> {
        if datagram.len() < MAGIC.len() + 1 || &datagram[..2] != MAGIC || datagram[2] != WIRE_VERSION {
            return Err(if datagram.len() < MAGIC.len() + 1 && datagram.starts_with(&MAGIC[..datagram.len().min(2)]) {
                Reject::Truncated
            } else {
                Reject::NotSealed
            });
        }
        if datagram.len() < OVERHEAD {
            return Err(Reject::Truncated);
        }
        let (header, rest) = datagram.split_at(HEADER_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let key_id = &header[3..];
        let key = self.keys.iter().find(|k| k.id == key_id).ok_or(Reject::UnknownKey)?;
        let plain = key
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: header })
            .map_err(|_| Reject::AuthFailed)?;
        let ts = u64::from_le_bytes(plain[..TIMESTAMP_LEN].try_into().map_err(|_| Reject::Truncated)?);
        if ts.abs_diff(now_ms) > self.window_ms {
            return Err(Reject::OutOfWindow);
        }
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Reject::Truncated)?;
        self.replay.check_and_insert(nonce, ts, now_ms, self.window_ms)?;
        Ok(plain[TIMESTAMP_LEN..].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(keys: &[&GossipKey]) -> Keyring {
        Keyring::new(keys.iter().map(|k| (*k).clone()).collect(), 30_000).unwrap()
    }

    #[test]
    fn seal_then_open_round_trips() {
        let k = GossipKey::generate().unwrap();
        let (a, mut b) = (ring(&[&k]), ring(&[&k]));
        let sealed = a.seal(b"hello chitchat", 1_000_000).unwrap();
        assert_eq!(sealed.len(), b"hello chitchat".len() + OVERHEAD);
        assert_eq!(b.open(&sealed, 1_000_500).unwrap(), b"hello chitchat");
        assert_eq!(b.stats.opened.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn wrong_key_truncated_tampered_and_plain_are_rejected_and_counted() {
        let (k1, k2) = (GossipKey::generate().unwrap(), GossipKey::generate().unwrap());
        let (a, mut b) = (ring(&[&k1]), ring(&[&k2]));
        let sealed = a.seal(b"payload", 5_000).unwrap();
        assert_eq!(b.open(&sealed, 5_000), Err(Reject::UnknownKey));
        let mut b = ring(&[&k1]);
        assert_eq!(b.open(&sealed[..20], 5_000), Err(Reject::Truncated));
        assert_eq!(b.open(&sealed[..sealed.len() - 1], 5_000), Err(Reject::AuthFailed));
        let mut flipped = sealed.clone();
        flipped[40] ^= 1;
        assert_eq!(b.open(&flipped, 5_000), Err(Reject::AuthFailed));
        let mut other_id = sealed.clone();
        other_id[3] ^= 1; // header is authenticated: a changed key id is unknown or fails
        assert!(b.open(&other_id, 5_000).is_err());
        assert_eq!(b.open(b"\xd3\xb0\x00\x00plain chitchat", 5_000), Err(Reject::NotSealed));
        assert_eq!(b.open(&sealed, 5_000).unwrap(), b"payload");
        assert_eq!(b.stats.rejected(Reject::Truncated), 1);
        assert_eq!(b.stats.rejected(Reject::AuthFailed), 2);
        assert_eq!(b.stats.rejected(Reject::NotSealed), 1);
    }

    #[test]
    fn replays_and_old_datagrams_are_refused() {
        let k = GossipKey::generate().unwrap();
        let (a, mut b) = (ring(&[&k]), ring(&[&k]));
        let sealed = a.seal(b"x", 100_000).unwrap();
        assert!(b.open(&sealed, 100_000).is_ok());
        assert_eq!(b.open(&sealed, 100_001), Err(Reject::Replayed));
        // Once outside the window the nonce is forgotten but the timestamp is too old.
        assert_eq!(b.open(&sealed, 200_000), Err(Reject::OutOfWindow));
        let future = a.seal(b"x", 500_000).unwrap();
        assert_eq!(b.open(&future, 200_000), Err(Reject::OutOfWindow));
    }

    #[test]
    fn a_full_replay_cache_never_readmits_an_evicted_datagram() {
        let k = GossipKey::generate().unwrap();
        let a = ring(&[&k]);
        let mut b = Keyring::new(vec![k.clone()], u64::MAX / 4).unwrap();
        let first = a.seal(b"first", 1).unwrap();
        assert!(b.open(&first, 1).is_ok());
        for i in 0..REPLAY_CACHE as u64 {
            let d = a.seal(b"", 2 + i).unwrap();
            assert!(b.open(&d, 2 + i).is_ok());
        }
        assert_eq!(b.open(&first, 3 + REPLAY_CACHE as u64), Err(Reject::Replayed));
    }

    #[test]
    fn rotation_install_use_remove() {
        let (old, new) = (GossipKey::generate().unwrap(), GossipKey::generate().unwrap());
        let mut a = ring(&[&old]);
        let mut b = ring(&[&old]);
        a.install(new.clone()).unwrap();
        b.install(new.clone()).unwrap();
        a.use_key(&new).unwrap();
        assert_eq!(a.list()[0], KeyInfo { id: new.id_hex(), primary: true });
        // b still seals with old; a opens both.
        assert!(a.open(&b.seal(b"1", 10).unwrap(), 10).is_ok());
        assert!(b.open(&a.seal(b"2", 10).unwrap(), 10).is_ok());
        assert!(a.remove(&new).is_err(), "the primary cannot be removed");
        b.use_key(&new).unwrap();
        a.remove(&old).unwrap();
        b.remove(&old).unwrap();
        assert_eq!(a.list().len(), 1);
        assert!(a.open(&b.seal(b"3", 11).unwrap(), 11).is_ok());
        let stale = ring(&[&old]);
        assert_eq!(a.open(&stale.seal(b"4", 11).unwrap(), 11), Err(Reject::UnknownKey));
        assert!(a.use_key(&old).is_err());
    }
}
