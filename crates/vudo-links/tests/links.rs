//! Engines on loopback TCP talking to each other (and to attackers).

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use vudo_links::{Direction, LinkEvent, LinksConfig, LinksError, LinksNode, Multiaddr, PeerId};

const HYPHAL: &str = "/vudo/hyphal/1";
const RAFT: &str = "/vudo/raft/1";
/// Generous: the test machine is slow and shared. Tests wait on conditions, never on time.
const PATIENCE: Duration = Duration::from_secs(60);

fn config(seed: u8, protocols: &[&str]) -> LinksConfig {
    let mut c = LinksConfig::new(
        [seed; 32],
        "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        protocols.iter().map(|p| p.to_string()).collect(),
    );
    c.ping_interval = Duration::from_millis(200);
    c
}

async fn start(c: LinksConfig) -> LinksNode {
    LinksNode::start_async(c).await.expect("engine starts")
}

fn addr(node: &LinksNode) -> Multiaddr {
    node.listen_addrs()[0].clone()
}

/// The first event matching `pred`, skipping others (fails after PATIENCE).
async fn wait_for(node: &LinksNode, mut pred: impl FnMut(&LinkEvent) -> bool) -> LinkEvent {
    let find = async {
        loop {
            for ev in node.poll_events(1) {
                if pred(&ev) {
                    return ev;
                }
            }
            node.events().readable().await;
        }
    };
    tokio::time::timeout(PATIENCE, find).await.expect("expected event did not arrive")
}

/// Wait until `cond` holds on the node's counters.
async fn wait_stats(node: &LinksNode, cond: impl Fn(&vudo_links::StatsSnapshot) -> bool) {
    let check = async {
        while !cond(&node.stats()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, check).await.unwrap_or_else(|_| panic!("stats never matched: {:?}", node.stats()));
}

async fn connect(a: &LinksNode, b: &LinksNode) {
    b.dial(addr(a), a.peer_id()).unwrap();
    let pa = a.peer_id();
    let pb = b.peer_id();
    wait_for(b, |e| matches!(e, LinkEvent::Connected { peer, .. } if *peer == pa)).await;
    wait_for(a, |e| matches!(e, LinkEvent::Connected { peer, .. } if *peer == pb)).await;
}

/// Send a request from `b` to `a`, answer it with `answer(payload)` on `a`, return what `b` got.
async fn round_trip(a: &LinksNode, b: &LinksNode, protocol: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
    let id = b.request(a.peer_id(), protocol, payload.to_vec()).unwrap();
    let proto = protocol.to_string();
    let inbound = async {
        if let LinkEvent::InboundRequest { channel, payload, .. } =
            wait_for(a, |e| matches!(e, LinkEvent::InboundRequest { protocol, .. } if *protocol == proto)).await
        {
            let mut answer = b"re:".to_vec();
            answer.extend_from_slice(&payload);
            a.respond(channel, answer).unwrap();
        }
    };
    let outcome = async {
        match wait_for(b, |e| match e {
            LinkEvent::Response { request_id, .. } | LinkEvent::RequestFailed { request_id, .. } => *request_id == id,
            _ => false,
        })
        .await
        {
            LinkEvent::Response { payload, .. } => Ok(payload),
            LinkEvent::RequestFailed { reason, .. } => Err(reason),
            _ => unreachable!(),
        }
    };
    tokio::select! {
        r = outcome => r,
        _ = async { inbound.await; std::future::pending::<()>().await } => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_connects_both_sides_and_requests_round_trip() {
    let a = start(config(1, &[HYPHAL, RAFT])).await;
    let b = start(config(2, &[HYPHAL, RAFT])).await;
    b.dial(addr(&a), a.peer_id()).unwrap();
    let (pa, pb) = (a.peer_id(), b.peer_id());
    let up_b = wait_for(&b, |e| matches!(e, LinkEvent::Connected { .. })).await;
    assert_eq!(up_b, LinkEvent::Connected { peer: pa, addr: addr(&a), direction: Direction::Outbound });
    match wait_for(&a, |e| matches!(e, LinkEvent::Connected { .. })).await {
        LinkEvent::Connected { peer, direction, .. } => {
            assert_eq!(peer, pb);
            assert_eq!(direction, Direction::Inbound);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(round_trip(&a, &b, HYPHAL, b"hello").await.unwrap(), b"re:hello");
    assert_eq!(round_trip(&a, &b, RAFT, b"vote").await.unwrap(), b"re:vote");
    // Either side can ask; the empty message is a message.
    assert_eq!(round_trip(&b, &a, HYPHAL, b"").await.unwrap(), b"re:");
    // Ping measures the link.
    match wait_for(&b, |e| matches!(e, LinkEvent::Rtt { .. })).await {
        LinkEvent::Rtt { peer, rtt } => {
            assert_eq!(peer, pa);
            assert!(rtt < PATIENCE);
        }
        other => panic!("{other:?}"),
    }
    let s = b.stats();
    assert_eq!((s.requests_sent, s.responses_received, s.connections_established), (2, 2, 1));
    assert_eq!(a.stats().responses_sent, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impostor_key_is_refused_and_counted() {
    let a = start(config(3, &[HYPHAL])).await;
    let b = start(config(4, &[HYPHAL])).await;
    let expected: PeerId = vudo_links::peer_id_of_secret([99; 32]).unwrap();
    b.dial(addr(&a), expected).unwrap();
    match wait_for(&b, |e| matches!(e, LinkEvent::DialFailed { .. } | LinkEvent::Connected { .. })).await {
        LinkEvent::DialFailed { addr: failed, expected_peer, reason } => {
            assert_eq!(failed, addr(&a));
            assert_eq!(expected_peer, Some(expected));
            assert!(reason.contains(&a.peer_id().to_string()), "{reason}");
            assert!(reason.contains("not the expected peer"), "{reason}");
        }
        other => panic!("impostor connection accepted: {other:?}"),
    }
    assert_eq!(b.stats().impostors_refused, 1);
    assert_eq!(b.stats().connections_established, 0);
    // The same address with the right key links fine afterwards.
    connect(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_addresses_are_checked_locally() {
    let a = start(config(5, &[HYPHAL])).await;
    let other = vudo_links::peer_id_of_secret([98; 32]).unwrap();
    let with_p2p: Multiaddr = format!("{}/p2p/{}", addr(&a), a.peer_id()).parse().unwrap();
    assert!(matches!(a.dial(with_p2p, other), Err(LinksError::InvalidArgument(_))));
    assert!(matches!(a.dial(addr(&a), a.peer_id()), Err(LinksError::InvalidArgument(_))));
    // A dial to a closed port fails with an event, not an error.
    let b = start(config(6, &[HYPHAL])).await;
    let closed: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
    b.dial(closed.clone(), other).unwrap();
    match wait_for(&b, |e| matches!(e, LinkEvent::DialFailed { .. })).await {
        LinkEvent::DialFailed { addr, reason, .. } => {
            assert_eq!(addr, closed);
            assert!(reason.starts_with("transport"), "{reason}");
        }
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_messages_are_refused_both_ways_and_the_link_survives() {
    let mut ca = config(7, &[HYPHAL]);
    ca.max_message_size = 4096;
    let mut cb = config(8, &[HYPHAL]);
    cb.max_message_size = 64 * 1024;
    let a = start(ca).await;
    let b = start(cb).await;
    connect(&a, &b).await;
    // Local limit: refused at the call.
    assert!(matches!(a.request(b.peer_id(), HYPHAL, vec![0; 4097]), Err(LinksError::InvalidArgument(_))));
    assert!(matches!(a.respond(1, vec![0; 4097]), Err(LinksError::InvalidArgument(_))));
    // Remote limit: b may send 10 KiB, a refuses to read it.
    let err = round_trip(&a, &b, HYPHAL, &[7; 10 * 1024]).await.unwrap_err();
    assert!(!err.is_empty());
    wait_stats(&a, |s| s.oversize_refused == 1).await;
    assert_eq!(a.stats().requests_received, 0);
    // A response over the reader's limit is refused by the reader too.
    let mut cc = config(9, &[HYPHAL]);
    cc.max_message_size = 16;
    let c = start(cc).await;
    connect(&b, &c).await;
    // c sends 14 bytes, b answers 17 ("re:" + 14): more than c reads.
    let err = round_trip(&b, &c, HYPHAL, b"0123456789abcd").await.unwrap_err();
    assert!(err.contains("stream error"), "{err}");
    wait_stats(&c, |s| s.oversize_refused == 1).await;
    // 13 bytes -> a 16-byte answer: exactly the limit, accepted.
    assert_eq!(round_trip(&b, &c, HYPHAL, b"0123456789abc").await.unwrap(), b"re:0123456789abc");
    // Within limits everything still works on the same links.
    assert_eq!(round_trip(&a, &b, HYPHAL, b"small").await.unwrap(), b"re:small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_caps_established_links() {
    let mut ca = config(10, &[HYPHAL]);
    ca.max_connections = 2;
    let a = start(ca).await;
    let mut others = Vec::new();
    for seed in 11..15 {
        let n = start(config(seed, &[HYPHAL])).await;
        n.dial(addr(&a), a.peer_id()).unwrap();
        others.push(n);
    }
    // Two get in, the other two are denied by a's limits.
    wait_stats(&a, |s| s.connections_established == 2 && s.connections_denied == 2).await;
    let up = a.poll_events(1024).into_iter().filter(|e| matches!(e, LinkEvent::Connected { .. })).count();
    assert_eq!(up, 2);
    // The denied dialers end up without a link (they may see it open and close).
    let open_links = || others.iter().map(|n| { let s = n.stats(); s.connections_established - s.connections_closed }).sum::<u64>();
    tokio::time::timeout(PATIENCE, async {
        while open_links() != 2 || others.iter().filter(|n| n.stats().dials_failed + n.stats().connections_closed > 0).count() != 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("denied dialers never noticed");
    // Closing a link frees a slot.
    let first = others.iter().find(|n| { let s = n.stats(); s.connections_established > s.connections_closed }).unwrap();
    first.disconnect(a.peer_id(), "make room").unwrap();
    wait_stats(&a, |s| s.connections_closed == 1).await;
    let late = start(config(15, &[HYPHAL])).await;
    connect(&a, &late).await;
    assert_eq!(round_trip(&a, &late, HYPHAL, b"in").await.unwrap(), b"re:in");
}

fn socket_addr(node: &LinksNode) -> String {
    // "/ip4/127.0.0.1/tcp/PORT"
    let text = addr(node).to_string();
    let parts: Vec<&str> = text.split('/').collect();
    format!("{}:{}", parts[2], parts[4])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_half_open_connections_do_not_hurt_the_node() {
    let mut ca = config(20, &[HYPHAL]);
    ca.handshake_timeout = Duration::from_secs(2);
    ca.max_pending_incoming = 8;
    let a = start(ca).await;
    let target = socket_addr(&a);
    // Random bytes (xorshift), including bytes that look like a length prefix.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut garbage = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(&target).await.unwrap();
        let junk: Vec<u8> = (0..4096).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x as u8 }).collect();
        let _ = s.write_all(&junk).await;
        garbage.push(s);
    }
    wait_stats(&a, |s| s.inbound_handshakes_failed >= 5).await;
    // Half-open: connect, say nothing, hold the socket (fills every pending slot).
    let mut half_open = Vec::new();
    for _ in 0..8 {
        half_open.push(TcpStream::connect(&target).await.unwrap());
    }
    // A real peer gets in (at once, or once the handshake timeout reaps the silent ones).
    let b = start(config(21, &[HYPHAL])).await;
    let pa = a.peer_id();
    tokio::time::timeout(PATIENCE, async {
        loop {
            b.dial(addr(&a), pa).unwrap();
            if let LinkEvent::Connected { .. } = wait_for(&b, |e| matches!(e, LinkEvent::Connected { .. } | LinkEvent::DialFailed { .. })).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("a real peer never got through");
    assert_eq!(round_trip(&a, &b, HYPHAL, b"still here").await.unwrap(), b"re:still here");
    // The silent connections were timed out while we still hold them open.
    wait_stats(&a, |s| s.inbound_handshakes_failed >= 13).await;
    assert_eq!(a.stats().connections_established, 1);
    drop(half_open);
    drop(garbage);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocols_are_separate_and_unknown_ones_fail_cleanly() {
    let a = start(config(30, &[HYPHAL, RAFT])).await;
    let b = start(config(31, &[HYPHAL])).await;
    connect(&a, &b).await;
    assert!(matches!(b.request(a.peer_id(), RAFT, vec![1]), Err(LinksError::InvalidArgument(_))));
    // a asks b on a protocol b does not speak.
    let err = round_trip(&b, &a, RAFT, b"x").await.unwrap_err();
    assert!(err.contains("does not speak"), "{err}");
    assert_eq!(round_trip(&b, &a, HYPHAL, b"y").await.unwrap(), b"re:y");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_is_reported_on_both_sides_and_requests_then_fail() {
    let a = start(config(40, &[HYPHAL])).await;
    let b = start(config(41, &[HYPHAL])).await;
    connect(&a, &b).await;
    b.disconnect(a.peer_id(), "bye").unwrap();
    match wait_for(&b, |e| matches!(e, LinkEvent::Disconnected { .. })).await {
        LinkEvent::Disconnected { peer, reason } => {
            assert_eq!(peer, a.peer_id());
            assert_eq!(reason, "closed locally: bye");
        }
        _ => unreachable!(),
    }
    wait_for(&a, |e| matches!(e, LinkEvent::Disconnected { peer, .. } if *peer == b.peer_id())).await;
    let id = b.request(a.peer_id(), HYPHAL, b"late".to_vec()).unwrap();
    match wait_for(&b, |e| matches!(e, LinkEvent::RequestFailed { .. })).await {
        LinkEvent::RequestFailed { request_id, reason, .. } => {
            assert_eq!(request_id, id);
            assert_eq!(reason, "not connected");
        }
        _ => unreachable!(),
    }
    // Answering an expired channel is counted, not an error.
    b.respond(12345, b"nobody".to_vec()).unwrap();
    wait_stats(&b, |s| s.responses_dropped == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_and_taken_ports_are_clear_errors() {
    let a = start(config(50, &[HYPHAL])).await;
    let mut taken = config(51, &[HYPHAL]);
    taken.listen_addr = addr(&a);
    assert!(matches!(LinksNode::start_async(taken).await, Err(LinksError::AddressInUse(_))));
    let mut udp = config(52, &[HYPHAL]);
    udp.listen_addr = "/ip4/127.0.0.1/udp/0".parse().unwrap();
    assert!(matches!(LinksNode::start_async(udp).await, Err(LinksError::InvalidConfig(_))));
    let bad_proto = config(53, &["no-slash"]);
    assert!(matches!(LinksNode::start_async(bad_proto).await, Err(LinksError::InvalidConfig(_))));
    let too_many = config(54, &["/a/1", "/b/1", "/c/1", "/d/1", "/e/1", "/f/1", "/g/1", "/h/1", "/i/1"]);
    assert!(matches!(LinksNode::start_async(too_many).await, Err(LinksError::InvalidConfig(_))));
    let twice = config(55, &[HYPHAL, HYPHAL]);
    assert!(matches!(LinksNode::start_async(twice).await, Err(LinksError::InvalidConfig(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_links_and_the_event_queue() {
    let a = start(config(60, &[HYPHAL])).await;
    let b = start(config(61, &[HYPHAL])).await;
    connect(&a, &b).await;
    a.shutdown();
    wait_for(&b, |e| matches!(e, LinkEvent::Disconnected { .. })).await;
    tokio::time::timeout(PATIENCE, async {
        while !a.is_stopped() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert!(matches!(a.dial(addr(&b), b.peer_id()), Err(LinksError::Stopped)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_requests_are_bounded_in_bytes() {
    let mut ca = config(70, &[HYPHAL]);
    ca.max_message_size = 1000;
    ca.max_inbound_bytes = 2500;
    let a = start(ca).await;
    let b = start(config(71, &[HYPHAL])).await;
    connect(&a, &b).await;
    let ids: Vec<u64> = (0..3).map(|_| b.request(a.peer_id(), HYPHAL, vec![1; 1000]).unwrap()).collect();
    // Two fit in a's budget and wait for an answer; the third is refused at once.
    let failed = wait_for(&b, |e| matches!(e, LinkEvent::RequestFailed { .. })).await;
    assert!(matches!(failed, LinkEvent::RequestFailed { request_id, .. } if ids.contains(&request_id)));
    wait_stats(&a, |s| s.inbound_shed == 1 && s.requests_received == 2).await;
    let first = wait_for(&a, |e| matches!(e, LinkEvent::InboundRequest { .. })).await;
    let LinkEvent::InboundRequest { channel, .. } = first else { unreachable!() };
    a.respond(channel, b"ok".to_vec()).unwrap();
    let second = wait_for(&a, |e| matches!(e, LinkEvent::InboundRequest { .. })).await;
    let LinkEvent::InboundRequest { channel, .. } = second else { unreachable!() };
    a.respond(channel, b"ok".to_vec()).unwrap();
    // Answering frees the budget for the next requests.
    assert_eq!(round_trip(&a, &b, HYPHAL, &[2; 990]).await.unwrap().len(), 993);
    assert_eq!(a.stats().inbound_shed, 1);
}
