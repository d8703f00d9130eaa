//! One suite, run over both transports: real UDP sockets and the in-memory network.

use std::net::{SocketAddr, UdpSocket};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::*;

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn addr(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
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
