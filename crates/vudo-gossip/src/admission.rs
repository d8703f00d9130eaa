//! Which node identities may enter chitchat's table (open gossip).
//!
//! Theory of operation
//! -------------------
//! chitchat records every identity a datagram names — in a digest or a
//! delta — and forgets one only when its failure detector has seen it dead
//! for the whole grace period; it has no call to forget a node. In open
//! gossip anyone who reaches the port can name identities, so the transport
//! asks this policy about every identity of every incoming datagram
//! *before* chitchat sees it, and the refused ones are cut out:
//!
//! | identity                                        | decision                          |
//! |-------------------------------------------------|-----------------------------------|
//! | ours, or trusted by the host (verified member)  | pass                              |
//! | already admitted                                | pass                              |
//! | unverified node id longer than [`MAX_ID_LEN`]   | refuse (`long_id`)                |
//! | speaks for itself (its address is the sender's) | admit into a free *direct* slot, else a free *hearsay* slot, else refuse (`cap`) |
//! | hearsay (named by someone else)                 | admit into a free hearsay slot, else refuse (`cap`) |
//!
//! Delta sections (key-values) get two more checks, against squatting on a
//! member's exact identity (same node id, generation *and* address, sent
//! from elsewhere), which would otherwise let a stranger overwrite the
//! member's signed values with higher-versioned garbage:
//!
//! | delta section about                              | decision                          |
//! |--------------------------------------------------|-----------------------------------|
//! | us                                               | refuse (`about_self`): we are the only source of our own values |
//! | a trusted member, beyond the highest version the member itself claimed in a digest sent from its own address | refuse (`ahead_of_owner`) |
//!
//! (A relay's legitimate newer section is only delayed until the member
//! gossips with us directly; a member we never heard directly is not checked.)
//!
//! Key-values are bounded per identity too (chitchat keeps every key it is
//! ever sent until the identity is forgotten). Each key-value operation of
//! an admitted section goes through [`Admission::decide_values`]; the policy
//! remembers, per identity, every key name it let through and the size of
//! its latest value, so a flood of distinct keys spread over many datagrams
//! is bounded, not just one datagram:
//!
//! | key-value operation about a non-self identity    | decision                          |
//! |--------------------------------------------------|-----------------------------------|
//! | key longer than [`MAX_KEY_LEN`]                  | refuse (`long_key`)               |
//! | value longer than [`MAX_VALUE_LEN`]              | refuse (`long_value`)             |
//! | a new key beyond the identity's key budget       | refuse (`keys`)                   |
//! | key + value bytes beyond the identity's byte budget | refuse (`bytes`)               |
//!
//! Budgets: an unverified identity [`UNVERIFIED_MAX_KEYS`] keys and
//! [`UNVERIFIED_MAX_BYTES`] bytes, a trusted one [`TRUSTED_MAX_KEYS`] and
//! [`TRUSTED_MAX_BYTES`]. The keys the host reads before it trusts anyone
//! (its probe keys, [`Admission::set_reserved_keys`]) have their room set
//! aside, so junk keys pushed about a newcomer cannot crowd out the
//! announcement that gets it verified. A key deleted by its owner still
//! counts (chitchat keeps its tombstone). The record of an identity goes
//! with its slot (or its trust), when chitchat has forgotten it.
//!
//! There are `cap` slots in all; `cap / 4` (at least one) are kept for
//! identities that speak for themselves, at most [`DIRECT_PER_ADDR`] per
//! address, so a flood of made-up names (hearsay) cannot lock a real new
//! node out. The host tells the policy which identities it trusts and which
//! identities chitchat still holds ([`Admission::sync`], on every view it
//! takes): an admitted identity keeps its slot while chitchat holds it, so
//! chitchat never holds more than `cap` unverified identities; a slot frees
//! once chitchat has forgotten the identity (its grace period) — the
//! transport stopped feeding it. Identities chitchat holds that the host no
//! longer trusts take slots too. Pure and synchronous: time is injected.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use crate::wire::Ident;

/// Longest node id of an unverified identity (a VUDO PeerId is 52 characters).
pub const MAX_ID_LEN: usize = 64;
/// Most identities one address may vouch for itself (a restart adds a generation).
pub const DIRECT_PER_ADDR: usize = 2;
/// An admitted identity chitchat did not record within this time frees its slot.
pub const SETTLE_MS: u64 = 10_000;
/// Largest cap: the engine's own digest (every identity it holds) must fit one datagram.
pub const MAX_CAP: usize = 256;

// Value budgets. A VUDO node publishes five keys ("announcement", "gradient",
// "links", "spirits", "leave"), each a signed value of at most 8 KiB
// (`vudo.hyphal.signed.MAX_SIGNED_VALUE`); the budgets leave room to grow.

/// Longest key accepted about another node (VUDO's keys are at most 12 bytes).
pub const MAX_KEY_LEN: usize = 64;
/// Longest value accepted about another node (twice the largest signed value).
pub const MAX_VALUE_LEN: usize = 16 * 1024;
/// Most distinct keys of an unverified identity (VUDO publishes 5).
pub const UNVERIFIED_MAX_KEYS: usize = 8;
/// Most key + value bytes of an unverified identity (VUDO's 5 keys: at most ~40 KiB).
pub const UNVERIFIED_MAX_BYTES: usize = 64 * 1024;
/// Most distinct keys of a trusted member (a verified member could still misbehave).
pub const TRUSTED_MAX_KEYS: usize = 64;
/// Most key + value bytes of a trusted member.
pub const TRUSTED_MAX_BYTES: usize = 512 * 1024;
/// Most reserved (probe) keys; each sets aside one key and [`MAX_KEY_LEN`] + [`MAX_VALUE_LEN`] bytes.
pub const MAX_RESERVED_KEYS: usize = 2;
// A trusted member's budget is the larger; the reserved room fits in the unverified budget.
const _: () = assert!(TRUSTED_MAX_KEYS >= UNVERIFIED_MAX_KEYS && TRUSTED_MAX_BYTES >= UNVERIFIED_MAX_BYTES);
const _: () = assert!(UNVERIFIED_MAX_KEYS > MAX_RESERVED_KEYS);
const _: () = assert!(UNVERIFIED_MAX_BYTES > MAX_RESERVED_KEYS * (MAX_KEY_LEN + MAX_VALUE_LEN));

/// Why an identity was cut out of a datagram (metric label: [`Refusal::label`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Cap,
    LongId,
    AboutSelf,
    AheadOfOwner,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [Refusal::Cap, Refusal::LongId, Refusal::AboutSelf, Refusal::AheadOfOwner];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::Cap => "cap",
            Refusal::LongId => "long_id",
            Refusal::AboutSelf => "about_self",
            Refusal::AheadOfOwner => "ahead_of_owner",
        }
    }

    fn index(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Why a key-value operation was cut out of a delta section (metric label: [`ValueRefusal::label`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRefusal {
    LongKey,
    LongValue,
    Keys,
    Bytes,
}

impl ValueRefusal {
    pub const ALL: [ValueRefusal; 4] = [ValueRefusal::LongKey, ValueRefusal::LongValue, ValueRefusal::Keys, ValueRefusal::Bytes];

    pub fn label(self) -> &'static str {
        match self {
            ValueRefusal::LongKey => "long_key",
            ValueRefusal::LongValue => "long_value",
            ValueRefusal::Keys => "keys",
            ValueRefusal::Bytes => "bytes",
        }
    }

    fn index(self) -> usize {
        ValueRefusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// What one identity's admitted key-values take: key + value bytes of each key's latest value.
#[derive(Clone, Debug, Default)]
struct Usage {
    sizes: HashMap<String, usize>,
    /// Keys and bytes outside the reserved keys.
    other_keys: usize,
    other_bytes: usize,
}

#[derive(Clone, Debug)]
struct Slot {
    direct: bool,
    /// Last time chitchat was seen holding it (or when it was admitted).
    seen_ms: u64,
}

/// Admission counters and sizes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    pub cap: usize,
    /// Unverified identities holding a slot.
    pub admitted: usize,
    pub trusted: usize,
    /// `(reason, identities refused)` for every reason in [`Refusal::ALL`].
    pub refused: Vec<(&'static str, u64)>,
    /// Slots freed because chitchat forgot the identity.
    pub released: u64,
    /// `(reason, key-value operations refused)` for every reason in [`ValueRefusal::ALL`].
    pub values_refused: Vec<(&'static str, u64)>,
    /// Identities whose admitted key-values are tracked.
    pub tracked: usize,
}

pub struct Admission {
    cap: usize,
    direct_reserve: usize,
    self_id: Ident,
    trusted: HashSet<Ident>,
    slots: HashMap<Ident, Slot>,
    /// Highest max version each trusted member claimed about itself, from its own address.
    owner_claims: HashMap<Ident, u64>,
    refused: [u64; Refusal::ALL.len()],
    released: u64,
    reserved_keys: Vec<String>,
    values: HashMap<Ident, Usage>,
    values_refused: [u64; ValueRefusal::ALL.len()],
}

impl Admission {
    pub fn new(self_id: Ident, cap: usize) -> Self {
        Self {
            cap,
            direct_reserve: (cap / 4).max(1).min(cap),
            self_id,
            trusted: HashSet::new(),
            slots: HashMap::new(),
            owner_claims: HashMap::new(),
            refused: [0; Refusal::ALL.len()],
            released: 0,
            reserved_keys: Vec::new(),
            values: HashMap::new(),
            values_refused: [0; ValueRefusal::ALL.len()],
        }
    }

    /// The keys the host reads before it trusts an identity (at most
    /// [`MAX_RESERVED_KEYS`] of at most [`MAX_KEY_LEN`] bytes are kept):
    /// their room is set aside in every identity's budget.
    pub fn set_reserved_keys(&mut self, keys: &[String]) {
        if keys.len() <= MAX_RESERVED_KEYS && keys.iter().all(|k| k.len() <= MAX_KEY_LEN) && keys != self.reserved_keys {
            self.reserved_keys = keys.to_vec();
            // Re-account what is tracked under the new split (rare: set once by the host).
            for usage in self.values.values_mut() {
                usage.other_keys = usage.sizes.keys().filter(|k| !keys.contains(k)).count();
                usage.other_bytes = usage.sizes.iter().filter(|(k, _)| !keys.contains(k)).map(|(_, n)| n).sum();
            }
        }
    }

    /// For each key-value operation `(key, value length)` of an admitted delta
    /// section about `id`, in order: may it reach chitchat?
    pub fn decide_values<'k>(&mut self, id: &Ident, ops: impl IntoIterator<Item = (&'k str, usize)>) -> Vec<bool> {
        if *id == self.self_id {
            return ops.into_iter().map(|_| true).collect();
        }
        let (max_keys, max_bytes) = if self.trusted.contains(id) {
            (TRUSTED_MAX_KEYS, TRUSTED_MAX_BYTES)
        } else {
            (UNVERIFIED_MAX_KEYS, UNVERIFIED_MAX_BYTES)
        };
        let reserved = self.reserved_keys.len();
        let other_keys_cap = max_keys.saturating_sub(reserved);
        let other_bytes_cap = max_bytes.saturating_sub(reserved * (MAX_KEY_LEN + MAX_VALUE_LEN));
        let usage = self.values.entry(id.clone()).or_default();
        let mut out = Vec::new();
        for (key, value_len) in ops {
            let size = key.len() + value_len;
            let is_reserved = self.reserved_keys.iter().any(|k| k == key);
            let old = usage.sizes.get(key).copied();
            let refusal = if key.len() > MAX_KEY_LEN {
                Some(ValueRefusal::LongKey)
            } else if value_len > MAX_VALUE_LEN {
                Some(ValueRefusal::LongValue)
            } else if is_reserved {
                None
            } else if old.is_none() && usage.other_keys >= other_keys_cap {
                Some(ValueRefusal::Keys)
            } else if usage.other_bytes - old.unwrap_or(0) + size > other_bytes_cap {
                Some(ValueRefusal::Bytes)
            } else {
                None
            };
            match refusal {
                Some(r) => self.values_refused[r.index()] += 1,
                None => {
                    if !is_reserved {
                        usage.other_keys += usize::from(old.is_none());
                        usage.other_bytes = usage.other_bytes - old.unwrap_or(0) + size;
                    }
                    match usage.sizes.get_mut(key) {
                        Some(old) => *old = size,
                        None => {
                            usage.sizes.insert(key.to_owned(), size);
                        }
                    }
                }
            }
            out.push(refusal.is_none());
        }
        out
    }

    /// Replace the set of identities the host trusts (they always pass and take no slot).
    pub fn set_trusted(&mut self, trusted: HashSet<Ident>) {
        self.slots.retain(|id, _| !trusted.contains(id));
        self.owner_claims.retain(|id, _| trusted.contains(id));
        self.trusted = trusted;
    }

    /// A digest entry about `id`, saying its max version is `max_version`, in a
    /// datagram from `from`: when a trusted member says it about itself, remember it.
    pub fn owner_claim(&mut self, id: &Ident, from: SocketAddr, max_version: u64) {
        if id.addr == from && self.trusted.contains(id) {
            let claim = self.owner_claims.entry(id.clone()).or_insert(0);
            *claim = (*claim).max(max_version);
        }
    }

    /// May a delta section about `id`, whose operations go up to `max_version`, reach chitchat?
    pub fn decide_section(&mut self, id: &Ident, from: SocketAddr, max_version: u64, now_ms: u64) -> Result<(), Refusal> {
        let refusal = if *id == self.self_id {
            Refusal::AboutSelf
        } else if self.owner_claims.get(id).is_some_and(|claim| max_version > *claim) {
            Refusal::AheadOfOwner
        } else {
            return self.decide(id, from, now_ms);
        };
        self.refused[refusal.index()] += 1;
        Err(refusal)
    }

    /// May `id`, named in a datagram from `from`, reach chitchat?
    pub fn decide(&mut self, id: &Ident, from: SocketAddr, now_ms: u64) -> Result<(), Refusal> {
        if *id == self.self_id || self.trusted.contains(id) || self.slots.contains_key(id) {
            return Ok(());
        }
        let refusal = if id.node_id.len() > MAX_ID_LEN {
            Refusal::LongId
        } else if self.slots.len() >= self.cap {
            Refusal::Cap
        } else {
            let direct_used = self.slots.values().filter(|s| s.direct).count();
            let hearsay_free = self.slots.len() - direct_used < self.cap - self.direct_reserve;
            let direct = id.addr == from
                && self.slots.iter().filter(|(k, s)| s.direct && k.addr == from).count() < DIRECT_PER_ADDR
                && direct_used < self.direct_reserve;
            if direct || hearsay_free {
                self.slots.insert(id.clone(), Slot { direct, seen_ms: now_ms });
                return Ok(());
            }
            Refusal::Cap
        };
        self.refused[refusal.index()] += 1;
        Err(refusal)
    }

    /// What chitchat holds now (every identity but ours): keeps their slots,
    /// gives a slot to untrusted ones that have none, frees the slots of
    /// identities chitchat no longer holds.
    pub fn sync<'a>(&mut self, held: impl IntoIterator<Item = &'a Ident>, now_ms: u64) {
        for id in held {
            if *id == self.self_id || self.trusted.contains(id) {
                continue;
            }
            self.slots.entry(id.clone()).or_insert(Slot { direct: false, seen_ms: now_ms }).seen_ms = now_ms;
        }
        let before = self.slots.len();
        self.slots.retain(|_, s| now_ms.saturating_sub(s.seen_ms) <= SETTLE_MS);
        self.released += (before - self.slots.len()) as u64;
        let (slots, trusted) = (&self.slots, &self.trusted);
        self.values.retain(|id, _| slots.contains_key(id) || trusted.contains(id));
    }

    pub fn stats(&self) -> AdmissionStats {
        AdmissionStats {
            cap: self.cap,
            admitted: self.slots.len(),
            trusted: self.trusted.len(),
            refused: Refusal::ALL.iter().zip(self.refused).map(|(r, n)| (r.label(), n)).collect(),
            released: self.released,
            values_refused: ValueRefusal::ALL.iter().zip(self.values_refused).map(|(r, n)| (r.label(), n)).collect(),
            tracked: self.values.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn id(name: &str, port: u16) -> Ident {
        Ident::new(name, 1, at(port))
    }

    const FLOODER: u16 = 9999;

    fn refused(a: &Admission, reason: Refusal) -> u64 {
        a.stats().refused.iter().find(|(l, _)| *l == reason.label()).map_or(0, |(_, n)| *n)
    }

    #[test]
    fn trusted_and_self_always_pass_and_take_no_slot() {
        let me = id("me", 1);
        let mut a = Admission::new(me.clone(), 4);
        a.set_trusted([id("friend", 2)].into_iter().collect());
        for i in 0..100 {
            let _ = a.decide(&id(&format!("fake-{i}"), 3), at(FLOODER), 0);
        }
        assert!(a.decide(&me, at(FLOODER), 0).is_ok());
        assert!(a.decide(&id("friend", 2), at(FLOODER), 0).is_ok());
        assert_eq!(a.stats().admitted, 3, "the fourth slot is kept for identities that speak for themselves");
        assert_eq!(refused(&a, Refusal::Cap), 100 - 3);
    }

    #[test]
    fn a_flood_of_hearsay_fills_only_the_hearsay_slots() {
        let mut a = Admission::new(id("me", 1), 8);
        for i in 0..20_000 {
            let _ = a.decide(&id(&format!("fake-{i}"), 20_000 + (i % 1000) as u16), at(FLOODER), 0);
        }
        assert_eq!(a.stats().admitted, 6, "8 slots, 2 kept for identities that speak for themselves");
        // A real newcomer seeding to us speaks for itself and still gets in.
        assert!(a.decide(&id("newcomer", 7000), at(7000), 1).is_ok());
        // The flooder can vouch for itself, but only for DIRECT_PER_ADDR identities.
        assert!(a.decide(&id("flooder-a", FLOODER), at(FLOODER), 1).is_ok());
        assert_eq!(a.decide(&id("flooder-b", FLOODER), at(FLOODER), 1), Err(Refusal::Cap));
        assert_eq!(a.stats().admitted, 8);
        // Admitted identities keep passing.
        assert!(a.decide(&id("fake-3", 20_003), at(FLOODER), 2).is_ok());
    }

    #[test]
    fn long_unverified_ids_are_refused() {
        let mut a = Admission::new(id("me", 1), 8);
        let long = id(&"x".repeat(MAX_ID_LEN + 1), 5);
        assert_eq!(a.decide(&long, at(5), 0), Err(Refusal::LongId));
        a.set_trusted([long.clone()].into_iter().collect());
        assert!(a.decide(&long, at(5), 0).is_ok(), "a trusted id passes whatever its length");
        assert_eq!(refused(&a, Refusal::LongId), 1);
    }

    #[test]
    fn slots_free_only_once_chitchat_forgot_the_identity() {
        let mut a = Admission::new(id("me", 1), 2);
        let (x, y, z) = (id("x", 10), id("y", 11), id("z", 12));
        assert!(a.decide(&x, at(10), 0).is_ok());
        assert!(a.decide(&y, at(FLOODER), 0).is_ok());
        assert_eq!(a.decide(&z, at(12), 0), Err(Refusal::Cap));
        // chitchat still holds both: nothing frees, however late.
        a.sync([&x, &y], 60_000);
        assert_eq!(a.decide(&z, at(12), 60_000), Err(Refusal::Cap));
        // chitchat forgot y (its grace period ran out): its slot frees after SETTLE_MS.
        a.sync([&x], 60_000 + SETTLE_MS / 2);
        assert_eq!(a.stats().admitted, 2, "a just-admitted identity is given time to be recorded");
        a.sync([&x], 60_001 + SETTLE_MS);
        assert_eq!(a.stats().admitted, 1);
        assert_eq!(a.stats().released, 1);
        assert!(a.decide(&z, at(12), 60_002 + SETTLE_MS).is_ok());
    }

    #[test]
    fn identities_no_longer_trusted_take_slots_while_chitchat_holds_them() {
        let mut a = Admission::new(id("me", 1), 2);
        let gone: Vec<Ident> = (0..3).map(|i| id(&format!("old-{i}"), 40 + i)).collect();
        a.set_trusted(gone.iter().cloned().collect());
        a.sync(gone.iter(), 0);
        assert_eq!(a.stats().admitted, 0);
        a.set_trusted(HashSet::new());
        a.sync(gone.iter(), 1);
        assert_eq!(a.stats().admitted, 3, "over the cap: nothing new until chitchat forgets them");
        assert_eq!(a.decide(&id("new", 50), at(50), 2), Err(Refusal::Cap));
        assert!(a.decide(&gone[0], at(FLOODER), 2).is_ok());
    }

    #[test]
    fn nobody_but_the_member_itself_may_push_its_values_ahead() {
        let me = id("me", 1);
        let member = id("member", 7000);
        let mut a = Admission::new(me.clone(), 8);
        a.set_trusted([member.clone()].into_iter().collect());
        // Before the member has spoken for itself, relays are not checked.
        assert!(a.decide_section(&member, at(FLOODER), 50, 0).is_ok());
        // Claims from elsewhere do not count; the member's own digest does.
        a.owner_claim(&member, at(FLOODER), 1_000_000);
        a.owner_claim(&member, at(7000), 12);
        assert!(a.decide_section(&member, at(8000), 12, 0).is_ok(), "a relay of what the member has said");
        assert_eq!(a.decide_section(&member, at(FLOODER), 13, 0), Err(Refusal::AheadOfOwner), "a squatter's higher versions");
        a.owner_claim(&member, at(7000), 20);
        assert!(a.decide_section(&member, at(8000), 13, 0).is_ok(), "caught up once the member said so");
        // Nobody tells us about ourselves.
        assert_eq!(a.decide_section(&me, at(8000), 1, 0), Err(Refusal::AboutSelf));
        assert_eq!((refused(&a, Refusal::AheadOfOwner), refused(&a, Refusal::AboutSelf)), (1, 1));
        // Claims are forgotten with trust.
        a.set_trusted(HashSet::new());
        assert!(a.owner_claims.is_empty());
    }

    fn kept(flags: &[bool]) -> usize {
        flags.iter().filter(|k| **k).count()
    }

    fn value_refused(a: &Admission, reason: ValueRefusal) -> u64 {
        a.stats().values_refused.iter().find(|(l, _)| *l == reason.label()).map_or(0, |(_, n)| *n)
    }

    /// The keys a VUDO node publishes, at their largest signed size.
    const VUDO_KEYS: [&str; 5] = ["announcement", "gradient", "links", "spirits", "leave"];
    const SIGNED_MAX: usize = 8192;

    #[test]
    fn a_newcomers_real_values_fit_while_it_is_unverified() {
        let mut a = Admission::new(id("me", 1), 8);
        a.set_reserved_keys(&["announcement".into(), "leave".into()]);
        let newcomer = id("newcomer", 7000);
        assert!(a.decide(&newcomer, at(7000), 0).is_ok());
        // Every key at its largest, published again and again (re-signed values replace the old ones).
        for _ in 0..50 {
            let flags = a.decide_values(&newcomer, VUDO_KEYS.iter().map(|k| (*k, SIGNED_MAX)));
            assert_eq!(flags, vec![true; 5]);
        }
        assert!(a.stats().values_refused.iter().all(|(_, n)| *n == 0));
    }

    #[test]
    fn a_flood_of_distinct_keys_over_many_datagrams_is_bounded_per_identity() {
        let mut a = Admission::new(id("me", 1), 8);
        a.set_reserved_keys(&["announcement".into(), "leave".into()]);
        let stranger = id("stranger", 7000);
        assert!(a.decide(&stranger, at(7000), 0).is_ok());
        let mut admitted = 0;
        for datagram in 0..1000 {
            let keys: Vec<String> = (0..20).map(|k| format!("junk-{datagram}-{k}")).collect();
            admitted += kept(&a.decide_values(&stranger, keys.iter().map(|k| (k.as_str(), 64))));
        }
        assert_eq!(admitted, UNVERIFIED_MAX_KEYS - 2, "two keys are kept for the probe keys");
        assert_eq!(value_refused(&a, ValueRefusal::Keys), 20_000 - admitted as u64);
        // The reserved keys still fit: junk cannot crowd out the announcement.
        assert_eq!(a.decide_values(&stranger, [("announcement", SIGNED_MAX), ("leave", SIGNED_MAX)]), [true, true]);
        // Updating an admitted key is no new key, but bytes stay bounded.
        let first = "junk-0-0";
        assert_eq!(a.decide_values(&stranger, [(first, 1000)]), [true]);
        let big = UNVERIFIED_MAX_BYTES - 2 * (MAX_KEY_LEN + MAX_VALUE_LEN);
        assert_eq!(a.decide_values(&stranger, [(first, MAX_VALUE_LEN)]), [true]);
        let mut bytes_refused = 0;
        for key in ["junk-0-1", "junk-0-2", "junk-0-3", "junk-0-4", "junk-0-5"] {
            if !a.decide_values(&stranger, [(key, MAX_VALUE_LEN)])[0] {
                bytes_refused += 1;
            }
        }
        assert!(bytes_refused > 0 && value_refused(&a, ValueRefusal::Bytes) == bytes_refused, "{big} bytes in all");
        let usage = &a.values[&stranger];
        assert!(usage.other_bytes <= big && usage.sizes.len() <= UNVERIFIED_MAX_KEYS);
    }

    #[test]
    fn long_keys_and_values_are_refused_for_everyone_but_us() {
        let me = id("me", 1);
        let member = id("member", 7000);
        let mut a = Admission::new(me.clone(), 8);
        a.set_trusted([member.clone()].into_iter().collect());
        let long_key = "k".repeat(MAX_KEY_LEN + 1);
        let flags = a.decide_values(&member, [(long_key.as_str(), 1), ("v", MAX_VALUE_LEN + 1), ("ok", MAX_VALUE_LEN)]);
        assert_eq!(flags, [false, false, true]);
        assert_eq!((value_refused(&a, ValueRefusal::LongKey), value_refused(&a, ValueRefusal::LongValue)), (1, 1));
        assert_eq!(a.decide_values(&me, [(long_key.as_str(), 1)]), [true]);
    }

    #[test]
    fn a_trusted_member_gets_a_generous_budget_that_is_still_bounded() {
        let member = id("member", 7000);
        let mut a = Admission::new(id("me", 1), 8);
        a.set_trusted([member.clone()].into_iter().collect());
        let keys: Vec<String> = (0..1000).map(|k| format!("key-{k}")).collect();
        let admitted = kept(&a.decide_values(&member, keys.iter().map(|k| (k.as_str(), 16))));
        assert_eq!(admitted, TRUSTED_MAX_KEYS);
        let mut b = Admission::new(id("me", 1), 8);
        b.set_trusted([member.clone()].into_iter().collect());
        let admitted = kept(&b.decide_values(&member, keys.iter().take(60).map(|k| (k.as_str(), MAX_VALUE_LEN))));
        assert_eq!(admitted, TRUSTED_MAX_BYTES / (MAX_VALUE_LEN + "key-00".len()), "bytes bound it first");
    }

    #[test]
    fn the_record_of_an_identity_goes_when_chitchat_forgets_it() {
        let mut a = Admission::new(id("me", 1), 8);
        let (x, member) = (id("x", 10), id("member", 11));
        a.set_trusted([member.clone()].into_iter().collect());
        assert!(a.decide(&x, at(10), 0).is_ok());
        a.decide_values(&x, [("a", 1)]);
        a.decide_values(&member, [("a", 1)]);
        a.sync([&x, &member], 1);
        assert_eq!(a.stats().tracked, 2);
        // Trust lost while chitchat still holds it: kept (it now has a slot), under the smaller budget.
        a.set_trusted(HashSet::new());
        a.sync([&x, &member], 2);
        assert_eq!(a.stats().tracked, 2);
        // chitchat forgot both: slots and records go.
        a.sync([], 3 + SETTLE_MS);
        assert_eq!((a.stats().admitted, a.stats().tracked), (0, 0));
    }
}
