//! `vudo-outsider`: whatever a stranger who can reach a gossip port can do
//! with the plain chitchat 0.13 crate, and nothing more. It links no VUDO
//! code: tests use it to attack real `vudo` nodes.
//!
//! One JSON command per stdin line, one JSON answer per stdout line:
//!
//! ```text
//! {"op":"join","name":"x","node_id":"...","generation":7,"listen":"127.0.0.1:9000",
//!  "advertise":"127.0.0.1:9000","seeds":["127.0.0.1:7400"],"cluster_id":"vudo",
//!  "gossip_interval_ms":100,"kv":{"k":"v"}}
//! {"op":"set","name":"x","key":"k","value":"v"}      {"op":"delete","name":"x","key":"k"}
//! {"op":"inject","name":"x","count":10000,"prefix":"stranger","first_port":20000,"kv":{"k":"v"}}
//!     makes up `count` node states (ids prefix-0.., loopback addresses) and gossips them on
//! {"op":"fill","name":"x","count":20000,"prefix":"k","value":"v","noise":64}
//!     sets `count` keys on itself, each value `value` and `noise` pseudo-random hex digits
//!     (values that do not compress, so chitchat packs fewer of them per datagram)
//! {"op":"dump","name":"x"}      -> {"ok":true,"members":[{node_id,generation,addr,live,kv}]}
//! {"op":"stop","name":"x"}      {"op":"quit"}
//! ```
//!
//! Every answer is `{"ok":true,...}` or `{"ok":false,"error":"..."}`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use chitchat::transport::UdpTransport;
use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, DeletionStatus, FailureDetectorConfig,
    ProtocolVersion, VersionedValue,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Command {
    Join {
        name: String,
        node_id: String,
        generation: u64,
        listen: SocketAddr,
        advertise: SocketAddr,
        #[serde(default)]
        seeds: Vec<String>,
        cluster_id: String,
        #[serde(default = "default_interval")]
        gossip_interval_ms: u64,
        #[serde(default)]
        kv: BTreeMap<String, String>,
    },
    Set { name: String, key: String, value: String },
    Delete { name: String, key: String },
    Inject {
        name: String,
        count: u32,
        prefix: String,
        first_port: u16,
        #[serde(default)]
        kv: BTreeMap<String, String>,
    },
    Fill {
        name: String,
        count: u32,
        prefix: String,
        value: String,
        #[serde(default)]
        noise: usize,
    },
    Dump { name: String },
    Stop { name: String },
    Quit,
}

fn default_interval() -> u64 {
    100
}

struct Outsider {
    nodes: HashMap<String, ChitchatHandle>,
}

impl Outsider {
    fn handle(&self, name: &str) -> anyhow::Result<&ChitchatHandle> {
        self.nodes.get(name).with_context(|| format!("no participant named {name:?}"))
    }

    async fn run(&mut self, command: Command) -> anyhow::Result<Value> {
        match command {
            Command::Join { name, node_id, generation, listen, advertise, seeds, cluster_id, gossip_interval_ms, kv } => {
                if self.nodes.contains_key(&name) {
                    bail!("participant {name:?} exists");
                }
                let interval = Duration::from_millis(gossip_interval_ms);
                let config = ChitchatConfig {
                    chitchat_id: ChitchatId::new(node_id, generation, advertise),
                    cluster_id,
                    gossip_interval: interval,
                    listen_addr: listen,
                    seed_nodes: seeds,
                    failure_detector_config: FailureDetectorConfig {
                        initial_interval: interval,
                        dead_node_grace_period: Duration::from_secs(3600),
                        ..Default::default()
                    },
                    marked_for_deletion_grace_period: Duration::from_secs(3600),
                    catchup_callback: None,
                    extra_liveness_predicate: None,
                    protocol_version: ProtocolVersion::V0,
                };
                let handle = spawn_chitchat(config, kv.into_iter().collect(), &UdpTransport).await?;
                self.nodes.insert(name, handle);
                Ok(json!({}))
            }
            Command::Set { name, key, value } => {
                let chitchat = self.handle(&name)?.chitchat();
                chitchat.lock().await.self_node_state().set(key, value);
                Ok(json!({}))
            }
            Command::Delete { name, key } => {
                let chitchat = self.handle(&name)?.chitchat();
                chitchat.lock().await.self_node_state().delete(&key);
                Ok(json!({}))
            }
            Command::Inject { name, count, prefix, first_port, kv } => {
                let chitchat = self.handle(&name)?.chitchat();
                let mut guard = chitchat.lock().await;
                for i in 0..count {
                    // Made-up identities on loopback addresses nobody listens on.
                    let ip = Ipv4Addr::new(127, 66, (i / 250) as u8, (i % 250) as u8 + 1);
                    let addr = SocketAddr::new(ip.into(), first_port.wrapping_add((i % 1000) as u16));
                    let id = ChitchatId::new(format!("{prefix}-{i}"), 1, addr);
                    let values: Vec<(String, VersionedValue)> = kv
                        .iter()
                        .enumerate()
                        .map(|(v, (k, val))| {
                            let value = VersionedValue { value: val.clone(), version: v as u64 + 1, status: DeletionStatus::Set };
                            (k.clone(), value)
                        })
                        .collect();
                    let max_version = values.len().max(1) as u64;
                    guard.reset_node_state_if_update(&id, values.into_iter(), max_version, 0);
                }
                Ok(json!({"members": guard.node_states().len()}))
            }
            Command::Fill { name, count, prefix, value, noise } => {
                let chitchat = self.handle(&name)?.chitchat();
                let mut guard = chitchat.lock().await;
                let state = guard.self_node_state();
                let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
                for i in 0..count {
                    let mut v = value.clone();
                    for _ in 0..noise {
                        // xorshift64: cheap noise for incompressible test values
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        v.push(char::from_digit((rng % 16) as u32, 16).unwrap_or('0'));
                    }
                    state.set(format!("{prefix}-{i}"), v);
                }
                Ok(json!({"keys": state.num_key_values()}))
            }
            Command::Dump { name } => {
                let chitchat = self.handle(&name)?.chitchat();
                let guard = chitchat.lock().await;
                let live: HashSet<&ChitchatId> = guard.live_nodes().collect();
                let members: Vec<Value> = guard
                    .node_states()
                    .iter()
                    .map(|(id, state)| {
                        let kv: BTreeMap<&str, &str> = state.key_values().collect();
                        json!({
                            "node_id": id.node_id,
                            "generation": id.generation_id,
                            "addr": id.gossip_advertise_addr.to_string(),
                            "live": live.contains(id),
                            "kv": kv,
                        })
                    })
                    .collect();
                Ok(json!({"members": members}))
            }
            Command::Stop { name } => {
                let handle = self.nodes.remove(&name).with_context(|| format!("no participant named {name:?}"))?;
                handle.shutdown().await?;
                Ok(json!({}))
            }
            Command::Quit => Ok(json!({})),
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut outsider = Outsider { nodes: HashMap::new() };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let (answer, quit) = match serde_json::from_str::<Command>(&line) {
            Ok(command) => {
                let quit = matches!(command, Command::Quit);
                match outsider.run(command).await {
                    Ok(mut value) => {
                        value["ok"] = json!(true);
                        (value, quit)
                    }
                    Err(err) => (json!({"ok": false, "error": format!("{err:#}")}), quit),
                }
            }
            Err(err) => (json!({"ok": false, "error": format!("bad command: {err}")}), false),
        };
        stdout.write_all(format!("{answer}\n").as_bytes()).await?;
        stdout.flush().await?;
        if quit {
            break;
        }
    }
    for (_, handle) in outsider.nodes.drain() {
        let _ = handle.shutdown().await;
    }
    Ok(())
}
