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
        }
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
    }

    pub fn stats(&self) -> AdmissionStats {
        AdmissionStats {
            cap: self.cap,
            admitted: self.slots.len(),
            trusted: self.trusted.len(),
            refused: Refusal::ALL.iter().zip(self.refused).map(|(r, n)| (r.label(), n)).collect(),
            released: self.released,
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
}
