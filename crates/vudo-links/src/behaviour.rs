//! The protocols every link speaks, combined into one libp2p behaviour.
//!
//! Request/response protocols are a start parameter, but a behaviour's
//! fields are fixed at compile time and one request/response behaviour
//! always negotiates its first protocol. So there are [`MAX_PROTOCOLS`]
//! slots, each one request/response behaviour for exactly one protocol id,
//! switched off ([`Toggle`]) when unused: a disabled slot advertises nothing.

use std::sync::Arc;

use libp2p::identity::Keypair;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{connection_limits, identify, ping, request_response, StreamProtocol};

use crate::codec::RawCodec;
use crate::config::{LinksConfig, MAX_PROTOCOLS};
use crate::stats::Stats;

/// Identify's protocol version: peers speaking another one are still linked,
/// the value is informative.
pub(crate) const PROTOCOL_VERSION: &str = "/vudo/1";

pub(crate) type Rr = request_response::Behaviour<RawCodec>;
pub(crate) type RrEvent = request_response::Event<Vec<u8>, Vec<u8>>;

#[derive(NetworkBehaviour)]
pub(crate) struct LinkBehaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) rr0: Toggle<Rr>,
    pub(crate) rr1: Toggle<Rr>,
    pub(crate) rr2: Toggle<Rr>,
    pub(crate) rr3: Toggle<Rr>,
    pub(crate) rr4: Toggle<Rr>,
    pub(crate) rr5: Toggle<Rr>,
    pub(crate) rr6: Toggle<Rr>,
    pub(crate) rr7: Toggle<Rr>,
}

const _: () = assert!(MAX_PROTOCOLS == 8, "one rrN field per protocol slot");

impl LinkBehaviour {
    pub(crate) fn new(key: &Keypair, config: &LinksConfig, protocols: &[StreamProtocol], stats: Arc<Stats>) -> Self {
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(config.max_connections_per_peer))
            .with_max_pending_incoming(Some(config.max_pending_incoming));
        let rr_config = request_response::Config::default()
            .with_request_timeout(config.request_timeout)
            .with_max_concurrent_streams(64);
        let slot = |i: usize| -> Toggle<Rr> {
            Toggle::from(protocols.get(i).map(|p| {
                Rr::with_codec(
                    RawCodec::new(config.max_message_size, stats.clone()),
                    [(p.clone(), request_response::ProtocolSupport::Full)],
                    rr_config.clone(),
                )
            }))
        };
        Self {
            limits: connection_limits::Behaviour::new(limits),
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(config.ping_interval)
                    .with_timeout(config.ping_timeout),
            ),
            identify: identify::Behaviour::new(
                identify::Config::new(PROTOCOL_VERSION.to_string(), key.public())
                    .with_agent_version(config.agent_version.clone())
                    .with_push_listen_addr_updates(false),
            ),
            rr0: slot(0),
            rr1: slot(1),
            rr2: slot(2),
            rr3: slot(3),
            rr4: slot(4),
            rr5: slot(5),
            rr6: slot(6),
            rr7: slot(7),
        }
    }

    /// The request/response behaviour of protocol slot `i`, if enabled.
    pub(crate) fn rr(&mut self, i: usize) -> Option<&mut Rr> {
        match i {
            0 => self.rr0.as_mut(),
            1 => self.rr1.as_mut(),
            2 => self.rr2.as_mut(),
            3 => self.rr3.as_mut(),
            4 => self.rr4.as_mut(),
            5 => self.rr5.as_mut(),
            6 => self.rr6.as_mut(),
            7 => self.rr7.as_mut(),
            _ => None,
        }
    }
}
