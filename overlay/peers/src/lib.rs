//! Glow's network of nodes: each node's endpoint on the wire and the
//! nodes it finds with no configuration.
//!
//! The endpoint is an iroh 1.x QUIC endpoint made from the node's Ed25519
//! seed (the one the fabric keeps in the data dir), so the id peers dial is
//! the node id of the banner and of version vectors. It starts from iroh's
//! `Minimal` preset: none of n0's public relays or DNS discovery is used;
//! nodes on a LAN find each other over mDNS (service `_glow._udp.local`),
//! each announcing its addresses and its friendly name. A serving node also
//! asks its router for a port mapping (UPnP IGD, NAT-PMP, PCP): a node
//! behind a NAT that gives every flow a new port is then still reached
//! directly.
//!
//! Nodes that trust each other form a *glow*: [`members`] admits only
//! members on Glow's protocol, welcomes a node that presents an invite
//! ([`invite`]) and keeps every member's records in step over the
//! messages of [`wire`].
//!
//! This crate knows nothing of the fabric (as Syncthing's protocol package
//! knows nothing of its model): the layer above implements [`Host`],
//! subscribes to [`PeerEvent`]s and decides what a found node means.

pub mod invite;
pub mod members;
pub mod pair;
pub mod relay;
pub mod wire;

pub use futures_util::future::BoxFuture;
pub use invite::Invite;
pub use iroh::endpoint::{Connection, RecvStream, SendStream};
pub use members::{Host, JoinError, Link, Standing};
pub use pair::{PairError, PairState, Pairing};
pub use relay::Relay;
pub use wire::{Hello, MemberAddr, Record, Welcome};

use futures_util::StreamExt;
use iroh::endpoint::presets;
use iroh::endpoint_info::UserData;
use iroh::{Endpoint, EndpointId, SecretKey};
use iroh_mdns_address_lookup::{DiscoveryEvent, MdnsAddressLookup};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::broadcast;

/// The overlay's protocol between members on QUIC (ALPN).
pub const ALPN: &[u8] = b"glow/1";
/// The protocol a node that holds an invite joins with (ALPN).
pub const JOIN_ALPN: &[u8] = b"glow-join/1";
/// The mDNS service Glow nodes announce: `_glow._udp.local`. Other iroh
/// applications on the LAN use other names and are not seen.
pub const MDNS_SERVICE: &str = "glow";
/// Nodes heard on the LAN kept at once: a LAN flooded with made-up ids
/// costs at most this many entries (newcomers beyond it are not heard).
pub const MAX_NEARBY: usize = 256;

/// What went wrong starting the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum PeersError {
    /// The UDP socket could not be bound.
    #[error("cannot bind the overlay's UDP port {addr}: {reason}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why not.
        reason: String,
    },
    /// Anything else iroh refused.
    #[error("overlay endpoint: {0}")]
    Endpoint(String),
}

/// How to start the endpoint.
#[derive(Clone)]
pub struct PeersConfig {
    /// The node's Ed25519 seed.
    pub seed: [u8; 32],
    /// The name other nodes show for this one.
    pub name: String,
    /// The UDP address QUIC listens on (port 0: any free port).
    pub bind: SocketAddr,
    /// Whether to look for other nodes on the LAN.
    pub mdns: bool,
    /// Whether to announce this node on the LAN too, and ask the router
    /// for a port mapping (UPnP IGD, NAT-PMP or PCP, when it offers one);
    /// a command's short-lived endpoint does neither.
    pub announce: bool,
    /// The port of the plain-HTTP front that serves this node's relay (the
    /// other members are told `http://ADDRESS:PORT/` for each of its
    /// addresses); `None`: it serves none.
    pub relay_port: Option<u16>,
}

impl std::fmt::Debug for PeersConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeersConfig")
            .field("name", &self.name)
            .field("bind", &self.bind)
            .field("mdns", &self.mdns)
            .field("announce", &self.announce)
            .field("relay_port", &self.relay_port)
            .finish_non_exhaustive()
    }
}

/// A node found on the LAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nearby {
    /// Its node id (64 hex digits: its Ed25519 public key).
    pub id: String,
    /// The name it announces, if any.
    pub name: Option<String>,
    /// The addresses it announces.
    pub addrs: Vec<SocketAddr>,
    /// When it was last heard from.
    pub seen: SystemTime,
}

/// A change in what this node knows of others.
#[derive(Clone, Debug)]
pub enum PeerEvent {
    /// A node was found on the LAN, or what it announces changed.
    Found(Nearby),
    /// A node found earlier has not been heard from for a while.
    Gone {
        /// Its node id.
        id: String,
    },
}

/// This node's endpoint and what it has found. Cloning is cheap.
#[derive(Clone)]
pub struct Peers {
    endpoint: Endpoint,
    name: String,
    relay_port: Option<u16>,
    /// The other members' relays put in the endpoint's relay map so far.
    relays_in_map: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Per member: what wakes its link from back-off.
    wakers: Arc<Mutex<HashMap<String, Arc<tokio::sync::Notify>>>>,
    /// Addresses members saw this node come from (outside its NAT).
    external: Arc<Mutex<std::collections::HashSet<SocketAddr>>>,
    nearby: Arc<Mutex<HashMap<String, Nearby>>>,
    links: Arc<Mutex<HashMap<String, iroh::endpoint::Connection>>>,
    events: broadcast::Sender<PeerEvent>,
    /// What this node serves for (none: a command's endpoint).
    host: Option<Arc<dyn Host>>,
    /// Devices being added from a page, or offered to join.
    pairings: pair::Pairings,
    /// The protocols the layer above serves to members, by ALPN.
    protocols: Arc<Mutex<Protocols>>,
}

/// The protocols of the layer above, by ALPN.
type Protocols = HashMap<Vec<u8>, Arc<dyn Protocol>>;

/// A protocol the layer above serves to members on an ALPN of its own
/// (folder sync): this crate admits members only, then hands the
/// connection over.
pub trait Protocol: Send + Sync + 'static {
    /// Serves one connection of member `member` (64 hex digits).
    fn serve(&self, conn: Connection, member: String) -> BoxFuture<'static, ()>;
}

/// The ALPNs this crate serves itself.
fn own_alpns() -> Vec<Vec<u8>> {
    vec![ALPN.to_vec(), JOIN_ALPN.to_vec(), pair::PAIR_ALPN.to_vec()]
}

impl Peers {
    /// Binds the endpoint and, with `mdns`, starts announcing and looking.
    /// With a `host`, serves members and joining nodes and keeps a link to
    /// every member; without one, refuses every incoming connection.
    pub async fn start(cfg: PeersConfig, host: Option<Arc<dyn Host>>) -> Result<Peers, PeersError> {
        let name = UserData::try_from(truncate(&cfg.name, UserData::MAX_LENGTH))
            .map_err(|e| PeersError::Endpoint(e.to_string()))?;
        let builder = Endpoint::builder(presets::Minimal)
            .secret_key(SecretKey::from_bytes(&cfg.seed))
            .alpns(own_alpns())
            // No public relay: the members' own relays are added as they
            // are heard of.
            .relay_mode(iroh::RelayMode::Custom(iroh::RelayMap::empty()))
            .user_data_for_address_lookup(name)
            .portmapper_config(if cfg.announce {
                iroh::endpoint::PortmapperConfig::default()
            } else {
                iroh::endpoint::PortmapperConfig::Disabled
            })
            .clear_ip_transports()
            .bind_addr(cfg.bind)
            .map_err(|e| PeersError::Bind {
                addr: cfg.bind,
                reason: e.to_string(),
            })?;
        let endpoint = builder.bind().await.map_err(|e| PeersError::Bind {
            addr: cfg.bind,
            reason: e.to_string(),
        })?;
        let (events, _) = broadcast::channel(256);
        let peers = Peers {
            endpoint,
            name: cfg.name.clone(),
            relay_port: cfg.relay_port,
            relays_in_map: Arc::default(),
            external: Arc::default(),
            wakers: Arc::default(),
            nearby: Arc::default(),
            links: Arc::default(),
            events,
            host: host.clone(),
            pairings: pair::Pairings::default(),
            protocols: Arc::default(),
        };
        if cfg.mdns {
            peers.start_mdns(cfg.announce)?;
        }
        peers.serve(host);
        Ok(peers)
    }

    fn start_mdns(&self, announce: bool) -> Result<(), PeersError> {
        let mdns = MdnsAddressLookup::builder()
            .service_name(MDNS_SERVICE)
            .advertise(announce)
            .build(self.endpoint.id())
            .map_err(|e| PeersError::Endpoint(format!("mDNS: {e}")))?;
        self.endpoint
            .address_lookup()
            .map_err(|e| PeersError::Endpoint(e.to_string()))?
            .add(mdns.clone());
        let me = self.clone();
        tokio::spawn(async move {
            let mut found = mdns.subscribe().await;
            while let Some(event) = found.next().await {
                me.note(event);
            }
        });
        Ok(())
    }

    /// Records one mDNS event and passes it on.
    fn note(&self, event: DiscoveryEvent) {
        let event = match event {
            DiscoveryEvent::Discovered { endpoint_info, .. } => {
                let id = endpoint_info.endpoint_id;
                if id == self.endpoint.id() {
                    return;
                }
                let node = Nearby {
                    id: id.to_string(),
                    name: endpoint_info.data.user_data().map(|u| u.to_string()),
                    addrs: endpoint_info.data.ip_addrs().copied().collect(),
                    seen: SystemTime::now(),
                };
                {
                    let mut nearby = self.lock();
                    if nearby.len() >= MAX_NEARBY && !nearby.contains_key(&node.id) {
                        tracing::debug!(id = %id.fmt_short(), "node on the LAN not heard: too many");
                        return;
                    }
                    nearby.insert(node.id.clone(), node.clone());
                }
                tracing::debug!(id = %id.fmt_short(), name = ?node.name, "node found on the LAN");
                PeerEvent::Found(node)
            }
            DiscoveryEvent::Expired { endpoint_id } => {
                let id = endpoint_id.to_string();
                self.lock().remove(&id);
                PeerEvent::Gone { id }
            }
            _ => return,
        };
        let _ = self.events.send(event);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Nearby>> {
        self.nearby.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This node's id (64 hex digits).
    pub fn id(&self) -> String {
        self.endpoint.id().to_string()
    }

    /// The UDP addresses the endpoint listens on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.endpoint.bound_sockets()
    }

    /// The nodes found on the LAN and still heard from.
    pub fn nearby(&self) -> Vec<Nearby> {
        let mut v: Vec<Nearby> = self.lock().values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Whether node `id` is heard on the LAN now.
    pub fn is_nearby(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PeerEvent> {
        self.events.subscribe()
    }

    /// Serves `protocol` to members on `alpn` from now on.
    pub fn serve_protocol(&self, alpn: &[u8], protocol: Arc<dyn Protocol>) {
        let mut protocols = self.protocols.lock().unwrap_or_else(|e| e.into_inner());
        protocols.insert(alpn.to_vec(), protocol);
        let mut alpns = own_alpns();
        alpns.extend(protocols.keys().cloned());
        self.endpoint.set_alpns(alpns);
    }

    /// The protocol served on `alpn`, if any.
    pub(crate) fn protocol(&self, alpn: &[u8]) -> Option<Arc<dyn Protocol>> {
        self.protocols
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(alpn)
            .cloned()
    }

    /// Tells peers this node is leaving and closes the endpoint.
    pub async fn close(&self) {
        self.endpoint.close().await;
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The id of `seed` as [`Peers::id`] writes it, without an endpoint.
pub fn id_of(seed: &[u8; 32]) -> String {
    EndpointId::from(SecretKey::from_bytes(seed).public()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("abc", 2), "ab");
        assert_eq!(truncate("éé", 3), "é");
        assert_eq!(truncate("", 10), "");
    }

    #[test]
    fn the_endpoint_id_is_the_ed25519_public_key_of_the_seed() {
        // RFC 8032, section 7.1, test 1: the fabric's NodeId of the same
        // seed is this key too (its own test checks the same vector).
        let mut seed = [0u8; 32];
        let hex = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        assert_eq!(
            id_of(&seed),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    #[tokio::test]
    async fn an_endpoint_binds_and_reports_its_id() {
        let peers = Peers::start(
            PeersConfig {
                seed: [3; 32],
                name: "test node".into(),
                bind: "127.0.0.1:0".parse().unwrap(),
                mdns: false,
                announce: false,
                relay_port: None,
            },
            None,
        )
        .await
        .unwrap();
        assert_eq!(peers.id(), id_of(&[3; 32]));
        assert!(peers.local_addrs().iter().any(|a| a.port() != 0));
        assert!(peers.nearby().is_empty());

        // Another endpoint that dials it is refused (no node is a member).
        let other = Peers::start(
            PeersConfig {
                seed: [4; 32],
                name: "stranger".into(),
                bind: "127.0.0.1:0".parse().unwrap(),
                mdns: false,
                announce: false,
                relay_port: None,
            },
            None,
        )
        .await
        .unwrap();
        let addr =
            iroh::EndpointAddr::new(peers.endpoint.id()).with_ip_addr(peers.local_addrs()[0]);
        let dialed = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            other.endpoint.connect(addr, ALPN),
        )
        .await
        .expect("a refusal, not a hang");
        assert!(dialed.is_err(), "a stranger's connection is refused");
        other.close().await;
        peers.close().await;
    }
}
