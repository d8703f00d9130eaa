//! One suite, run over both transports: real UDP sockets and the in-memory network.

use std::net::{SocketAddr, UdpSocket};
use std::thread::sleep;
use std::time::{Duration, Instant};

use std::collections::HashSet;

use super::*;
use crate::wire::Ident;

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn addr(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

thread_local! {
    /// Keys every node of the current test starts with (empty: open gossip).
    static KEYS: std::cell::RefCell<Vec<GossipKey>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn sealed_udp() -> Network {
    let key = GossipKey::from_bytes(&[7u8; 32]).unwrap();
    KEYS.with(|k| *k.borrow_mut() = vec![key]);
    Network::Udp
}

fn config(network: &Network, name: &str, port: u16, seeds: Vec<String>) -> GossipConfig {
    GossipConfig {
        node_id: name.to_owned(),
        generation: 1,
        listen_addr: addr(port),
        advertise_addr: addr(port),
        seeds,
        cluster_id: "test".into(),
        gossip_interval: Duration::from_millis(50),
        phi_threshold: 8.0,
        dead_node_grace_period: Duration::from_secs(60),
        max_interval: Duration::from_secs(10),
        initial_key_values: vec![("hello".into(), name.into())],
        network: network.clone(),
        keys: KEYS.with(|k| k.borrow().clone()),
        replay_window: Duration::from_secs(30),
        max_unverified: 256,
    }
}

fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        sleep(Duration::from_millis(20));
    }
    false
}

fn has_key(node: &GossipNode, of: &str, key: &str, value: Option<&str>) -> bool {
    node.snapshot().unwrap().iter().any(|m| {
        m.node_id == of && m.key_values.iter().any(|(k, v)| k == key && value.is_none_or(|want| v == want))
    })
}

fn live(node: &GossipNode, of: &str) -> Option<bool> {
    node.snapshot().unwrap().iter().find(|m| m.node_id == of).map(|m| m.live)
}

fn two_nodes_exchange_key_values(network: Network) {
    let (pa, pb) = (free_port(), free_port());
    let a = GossipNode::start(config(&network, "a", pa, vec![])).unwrap();
    let b = GossipNode::start(config(&network, "b", pb, vec![format!("127.0.0.1:{pa}")])).unwrap();
    b.set("extra", "42").unwrap();
    assert!(wait_until(|| has_key(&a, "b", "extra", Some("42"))));
    let snap = b.snapshot().unwrap();
    let me = snap.iter().find(|m| m.is_self).unwrap();
    assert_eq!(me.node_id, "b");
    assert!(wait_until(|| has_key(&b, "a", "hello", Some("a"))));
}

fn delete_removes_a_key_for_peers(network: Network) {
    let (pa, pb) = (free_port(), free_port());
    let a = GossipNode::start(config(&network, "a", pa, vec![])).unwrap();
    let b = GossipNode::start(config(&network, "b", pb, vec![format!("127.0.0.1:{pa}")])).unwrap();
    b.set("gone", "soon").unwrap();
    assert!(wait_until(|| has_key(&a, "b", "gone", None)));
    b.delete("gone").unwrap();
    assert!(wait_until(|| !has_key(&a, "b", "gone", None) && has_key(&a, "b", "hello", None)));
}

fn binding_a_used_address_is_reported_as_address_in_use(network: Network) {
    let held = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let _first = match network {
        Network::Udp => None,
        Network::Memory(_) => Some(GossipNode::start(config(&network, "first", port, vec![])).unwrap()),
    };
    match GossipNode::start(config(&network, "x", port, vec![])) {
        Err(GossipError::AddressInUse(addr)) => assert_eq!(addr.port(), port),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("bind on a used address must fail"),
    }
}

fn invalid_config_is_rejected(network: Network) {
    let mut cfg = config(&network, "", free_port(), vec![]);
    assert!(matches!(GossipNode::start(cfg.clone()), Err(GossipError::InvalidConfig(_))));
    cfg.node_id = "n".into();
    cfg.phi_threshold = f64::NAN;
    assert!(matches!(GossipNode::start(cfg), Err(GossipError::InvalidConfig(_))));
}

fn calls_after_shutdown_fail_cleanly(network: Network) {
    let mut a = GossipNode::start(config(&network, "a", free_port(), vec![])).unwrap();
    a.shutdown().unwrap();
    a.shutdown().unwrap();
    assert!(matches!(a.set("k", "v"), Err(GossipError::Stopped)));
    assert!(matches!(a.snapshot(), Err(GossipError::Stopped)));
}

fn a_stopped_peer_is_detected_dead(network: Network) {
    let (pa, pb) = (free_port(), free_port());
    let a = GossipNode::start(config(&network, "a", pa, vec![])).unwrap();
    let mut b = GossipNode::start(config(&network, "b", pb, vec![format!("127.0.0.1:{pa}")])).unwrap();
    assert!(wait_until(|| live(&a, "b") == Some(true)));
    b.shutdown().unwrap();
    assert!(wait_until(|| live(&a, "b") == Some(false)));
}

macro_rules! over_both_transports {
    ($($name:ident),* $(,)?) => {
        mod udp {
            $( #[test] fn $name() { super::$name(super::Network::Udp) } )*
        }
        mod memory {
            $( #[test] fn $name() { super::$name(super::Network::Memory(super::MemoryNetwork::new())) } )*
        }
        mod sealed {
            $( #[test] fn $name() { super::$name(super::sealed_udp()) } )*
        }
    };
}

over_both_transports!(
    two_nodes_exchange_key_values,
    delete_removes_a_key_for_peers,
    binding_a_used_address_is_reported_as_address_in_use,
    invalid_config_is_rejected,
    calls_after_shutdown_fail_cleanly,
    a_stopped_peer_is_detected_dead,
);

#[test]
fn a_cut_link_partitions_and_healing_rejoins() {
    let net = MemoryNetwork::new();
    let network = Network::Memory(net.clone());
    let (pa, pb) = (free_port(), free_port());
    let a = GossipNode::start(config(&network, "a", pa, vec![])).unwrap();
    let b = GossipNode::start(config(&network, "b", pb, vec![format!("127.0.0.1:{pa}")])).unwrap();
    assert!(wait_until(|| live(&a, "b") == Some(true) && live(&b, "a") == Some(true)));
    net.cut(addr(pa), addr(pb));
    assert!(wait_until(|| live(&a, "b") == Some(false) && live(&b, "a") == Some(false)));
    net.heal(addr(pa), addr(pb));
    assert!(wait_until(|| live(&a, "b") == Some(true) && live(&b, "a") == Some(true)));
    let (messages, bytes) = net.statistics();
    assert!(messages > 0 && bytes > messages);
}

fn keyed(name: &str, port: u16, seeds: Vec<String>, keys: Vec<GossipKey>) -> GossipNode {
    let mut cfg = config(&Network::Udp, name, port, seeds);
    cfg.keys = keys;
    GossipNode::start(cfg).unwrap()
}

#[test]
fn a_node_without_the_key_learns_nothing_and_is_not_admitted() {
    let (k, other) = (GossipKey::generate().unwrap(), GossipKey::generate().unwrap());
    let (pa, pb, pc, pd) = (free_port(), free_port(), free_port(), free_port());
    let a = keyed("a", pa, vec![], vec![k.clone()]);
    let b = keyed("b", pb, vec![format!("127.0.0.1:{pa}")], vec![k.clone()]);
    let wrong = keyed("wrong", pc, vec![format!("127.0.0.1:{pa}")], vec![other]);
    let open = GossipNode::start(config(&Network::Udp, "open", pd, vec![format!("127.0.0.1:{pa}")])).unwrap();
    assert!(wait_until(|| live(&a, "b") == Some(true) && live(&b, "a") == Some(true)));
    assert!(wait_until(|| {
        let s = a.transport_stats();
        let get = |l: &str| s.rejected.iter().find(|(r, _)| *r == l).map_or(0, |(_, c)| *c);
        get("unknown_key") > 0 && get("not_sealed") > 0
    }));
    for outsider in [&wrong, &open] {
        assert_eq!(outsider.snapshot().unwrap().len(), 1, "an outsider sees only itself");
    }
    assert!(a.snapshot().unwrap().iter().all(|m| m.node_id == "a" || m.node_id == "b"));
    assert!(a.transport_stats().opened > 0 && a.transport_stats().sealed > 0);
}

#[test]
fn keys_rotate_live_without_losing_the_peer() {
    let (old, new) = (GossipKey::generate().unwrap(), GossipKey::generate().unwrap());
    let (pa, pb) = (free_port(), free_port());
    let a = keyed("a", pa, vec![], vec![old.clone()]);
    let b = keyed("b", pb, vec![format!("127.0.0.1:{pa}")], vec![old.clone()]);
    assert!(wait_until(|| live(&a, "b") == Some(true)));
    for n in [&a, &b] {
        n.install_key(new.clone()).unwrap();
    }
    for n in [&a, &b] {
        n.use_key(&new).unwrap();
    }
    for n in [&a, &b] {
        n.remove_key(&old).unwrap();
        assert_eq!(n.keys().unwrap(), vec![KeyInfo { id: new.id_hex(), primary: true }]);
    }
    b.set("after", "rotation").unwrap();
    assert!(wait_until(|| has_key(&a, "b", "after", Some("rotation"))));
    assert_eq!(live(&a, "b"), Some(true));
    let open = GossipNode::start(config(&Network::Udp, "open", free_port(), vec![])).unwrap();
    assert!(matches!(open.keys(), Err(GossipError::OpenGossip)));
}

#[test]
fn a_bounded_view_rotates_through_untrusted_members() {
    let network = Network::Memory(MemoryNetwork::new());
    let pa = free_port();
    let a = GossipNode::start(config(&network, "a", pa, vec![])).unwrap();
    let others: Vec<GossipNode> = (0..6)
        .map(|i| GossipNode::start(config(&network, &format!("s{i}"), free_port(), vec![format!("127.0.0.1:{pa}")])).unwrap())
        .collect();
    assert!(wait_until(|| a.snapshot().unwrap().len() == 7));
    let mut filter = ViewFilter { max_untrusted: 2, probe_keys: vec!["hello".into()], ..Default::default() };
    filter.trusted.insert(("s0".into(), 1, others[0].gossip_addr()));
    let mut seen = HashSet::new();
    for _ in 0..3 {
        let view = a.snapshot_view(&filter).unwrap();
        assert_eq!(view.total, 7);
        assert_eq!(view.members.len(), 1 + 1 + 2, "self + trusted + cap");
        assert!(view.members.iter().any(|m| m.node_id == "s0"));
        for m in &view.members {
            assert!(m.key_values.iter().all(|(k, _)| k == "hello"));
            seen.insert(m.node_id.clone());
        }
    }
    assert_eq!(seen.len(), 7, "every member is visited within a few rotations: {seen:?}");
    drop(others);
}

#[test]
fn sealed_datagrams_carry_deltas_that_fill_chitchats_mtu() {
    // Chitchat fills datagrams up to the UDP limit; sealing adds bytes, so a full message travels as
    // sealed fragments. The limit is lowered here so that every large message takes that path.
    crate::sealed::TEST_FRAME_LIMIT.store(20_000, std::sync::atomic::Ordering::Relaxed);
    let key = GossipKey::generate().unwrap();
    let (pa, pb) = (free_port(), free_port());
    let a = keyed("a", pa, vec![], vec![key.clone()]);
    let b = keyed("b", pb, vec![format!("127.0.0.1:{pa}")], vec![key]);
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut noise = |len: usize| -> String {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b'!' + (seed % 90) as u8)
            })
            .collect()
    };
    let values: Vec<(String, String)> = (0..8).map(|i| (format!("big{i}"), noise(20_000))).collect();
    for (k, v) in &values {
        b.set(k, v).unwrap();
    }
    assert!(wait_until(|| values.iter().all(|(k, v)| has_key(&a, "b", k, Some(v)))));
    let stats = b.transport_stats();
    let count = |reason: &str| stats.rejected.iter().find(|(r, _)| *r == reason).map_or(0, |(_, c)| *c);
    assert_eq!((count("oversize"), count("bad_frame")), (0, 0), "{stats:?}");
    assert!(stats.fragmented > 0, "the test must make chitchat fill a datagram: {stats:?}");
}

#[test]
fn open_gossip_stays_bounded_and_working_under_a_flood_of_made_up_identities() {
    let (pa, pb) = (free_port(), free_port());
    let mut ca = config(&Network::Udp, "a", pa, vec![]);
    ca.max_unverified = 8;
    let a = GossipNode::start(ca).unwrap();
    // A stranger who names 20 000 made-up identities, 500 per datagram, protocol 1 (compressed digests).
    let flooder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ids: Vec<Ident> = (0..20_000u32)
        .map(|i| Ident::new(format!("stranger-{i}"), 1, SocketAddr::from(([127, 66, (i / 250) as u8, (i % 250) as u8 + 1], 20_000))))
        .collect();
    for batch in ids.chunks(500) {
        flooder.send_to(&wire::build::syn_v1(batch, "test"), addr(pa)).unwrap();
    }
    flooder.send_to(b"not chitchat", addr(pa)).unwrap();
    assert!(wait_until(|| {
        let stats = a.transport_stats();
        let refused = stats.admission.as_ref().map_or(0, |s| s.refused.iter().map(|(_, n)| n).sum::<u64>());
        refused >= 20_000 - 8 && stats.rejected.iter().any(|(r, n)| *r == "undecodable" && *n == 1)
    }), "{:?}", a.transport_stats());
    // 6 strangers got a hearsay slot (2 of the 8 are kept for direct speakers) and were handed to chitchat.
    // chitchat may forget a digest-only stranger again (that frees its slot), so the table is only bounded here.
    assert!(wait_until(|| a.transport_stats().admission.is_some_and(|s| s.admitted + s.released as usize >= 6)), "{:?}", a.transport_stats());
    assert!(a.snapshot().unwrap().len() <= 1 + 6, "{:?}", a.snapshot().unwrap().len());
    // A real node joining now speaks for itself and gets in; both see each other.
    let b = GossipNode::start(config(&Network::Udp, "b", pb, vec![format!("127.0.0.1:{pa}")])).unwrap();
    assert!(wait_until(|| live(&a, "b") == Some(true) && live(&b, "a") == Some(true)));
    let table = a.snapshot().unwrap().len();
    assert!(table <= 1 + 8, "a's table holds itself and at most the cap of unverified identities: {table}");
    let stats = a.transport_stats();
    assert!(stats.rewritten >= 40, "{stats:?}");
    assert_eq!(stats.admission.as_ref().map(|s| s.cap), Some(8));
    // Once trusted, b takes no slot.
    let mut filter = ViewFilter { max_untrusted: 0, ..Default::default() };
    filter.trusted.insert(("b".into(), 1, addr(pb)));
    let view = a.snapshot_view(&filter).unwrap();
    assert!(view.members.iter().any(|m| m.node_id == "b" && m.live));
    assert_eq!(a.transport_stats().admission.map(|s| (s.trusted, s.admitted <= 7)), Some((1, true)));
}

#[test]
fn the_cap_must_keep_the_digest_within_one_datagram() {
    let mut c = config(&Network::Udp, "a", free_port(), vec![]);
    c.max_unverified = MAX_CAP + 1;
    assert!(matches!(GossipNode::start(c), Err(GossipError::InvalidConfig(_))));
}
