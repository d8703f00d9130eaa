use std::net::{SocketAddr, UdpSocket};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::*;

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn config(name: &str, port: u16, seeds: Vec<String>) -> GossipConfig {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    GossipConfig {
        node_id: name.to_owned(),
        generation: 1,
        listen_addr: addr,
        advertise_addr: addr,
        seeds,
        cluster_id: "test".into(),
        gossip_interval: Duration::from_millis(50),
        phi_threshold: 8.0,
        dead_node_grace_period: Duration::from_secs(60),
        max_interval: Duration::from_secs(10),
        initial_key_values: vec![("hello".into(), name.into())],
    }
}

fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn two_nodes_exchange_key_values() {
    let pa = free_port();
    let pb = free_port();
    let a = GossipNode::start(config("a", pa, vec![])).unwrap();
    let b = GossipNode::start(config("b", pb, vec![format!("127.0.0.1:{pa}")])).unwrap();
    b.set("extra", "42").unwrap();
    assert!(wait_until(|| {
        a.snapshot().unwrap().iter().any(|m| {
            m.node_id == "b" && m.key_values.contains(&("extra".into(), "42".into()))
        })
    }));
    let snap = b.snapshot().unwrap();
    let me = snap.iter().find(|m| m.is_self).unwrap();
    assert_eq!(me.node_id, "b");
    assert!(snap.iter().any(|m| m.node_id == "a" && m.key_values.contains(&("hello".into(), "a".into()))));
}

#[test]
fn delete_removes_a_key_for_peers() {
    let pa = free_port();
    let pb = free_port();
    let a = GossipNode::start(config("a", pa, vec![])).unwrap();
    let b = GossipNode::start(config("b", pb, vec![format!("127.0.0.1:{pa}")])).unwrap();
    b.set("gone", "soon").unwrap();
    assert!(wait_until(|| a.snapshot().unwrap().iter().any(|m| m.node_id == "b" && m.key_values.iter().any(|(k, _)| k == "gone"))));
    b.delete("gone").unwrap();
    assert!(wait_until(|| a.snapshot().unwrap().iter().any(|m| m.node_id == "b" && !m.key_values.iter().any(|(k, _)| k == "gone"))));
}

#[test]
fn binding_a_used_port_is_reported_as_address_in_use() {
    let held = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    match GossipNode::start(config("x", port, vec![])) {
        Err(GossipError::AddressInUse(addr)) => assert_eq!(addr.port(), port),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("bind on a used port must fail"),
    }
}

#[test]
fn invalid_config_is_rejected() {
    let mut cfg = config("", free_port(), vec![]);
    assert!(matches!(GossipNode::start(cfg.clone()), Err(GossipError::InvalidConfig(_))));
    cfg.node_id = "n".into();
    cfg.phi_threshold = f64::NAN;
    assert!(matches!(GossipNode::start(cfg), Err(GossipError::InvalidConfig(_))));
}

#[test]
fn calls_after_shutdown_fail_cleanly() {
    let mut a = GossipNode::start(config("a", free_port(), vec![])).unwrap();
    a.shutdown().unwrap();
    a.shutdown().unwrap();
    assert!(matches!(a.set("k", "v"), Err(GossipError::Stopped)));
    assert!(matches!(a.snapshot(), Err(GossipError::Stopped)));
}
