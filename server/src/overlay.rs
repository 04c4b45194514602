//! Wires the network of nodes (`peers`) to the fabric: the endpoint the
//! server runs, the [`peers::Host`] the fabric provides to it (membership,
//! invites, shared records), and the `glow node invite` / `join` work.

use fabric::{Fabric, NodeId, Principal, SharedRecord, VersionVector};

use peers::{BoxFuture, Hello, Host, MemberAddr, Record, Standing, Welcome};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const _: () = assert!(fabric::INVITE_SECRET_LEN == peers::invite::SECRET_LEN);

/// The fabric, as the overlay sees it.
pub struct FabricHost {
    fabric: Fabric,
}

impl FabricHost {
    /// The host for `fabric`.
    pub fn new(fabric: Fabric) -> Arc<FabricHost> {
        Arc::new(FabricHost { fabric })
    }
}

const SYSTEM: Principal = Principal::System;

fn strings(addrs: &[SocketAddr]) -> Vec<String> {
    addrs.iter().map(|a| a.to_string()).collect()
}

fn sockets(addrs: &[String]) -> Vec<SocketAddr> {
    addrs.iter().filter_map(|a| a.parse().ok()).collect()
}

fn reach_of(hello: &Hello) -> fabric::Reach {
    fabric::Reach {
        name: hello.name.clone(),
        addrs: strings(&hello.addrs),
        relays: hello.relays.clone(),
        home_relay: hello.home_relay.clone(),
    }
}

fn member_addr(m: fabric::Member) -> MemberAddr {
    MemberAddr {
        id: m.id.to_string(),
        name: m.name,
        addrs: sockets(&m.addrs),
        relays: m.relays,
        home_relay: m.home_relay,
    }
}

fn to_wire(r: SharedRecord) -> Record {
    Record {
        version: r.version.iter().map(|(n, c)| (n.to_owned(), c)).collect(),
        kind: r.kind,
        key: r.key,
        value: r.value.into_bytes(),
        origin: r.origin,
        changed_at: r.changed_at,
        changed_by: r.changed_by,
        deleted: r.deleted,
        sequence: r.sequence.max(0) as u64,
    }
}

fn from_wire(r: Record) -> Option<SharedRecord> {
    Some(SharedRecord {
        version: r.version.into_iter().collect::<VersionVector>(),
        value: String::from_utf8(r.value).ok()?,
        kind: r.kind,
        key: r.key,
        origin: r.origin,
        changed_at: r.changed_at,
        changed_by: r.changed_by,
        deleted: r.deleted,
        sequence: i64::try_from(r.sequence).ok()?,
    })
}

impl Host for FabricHost {
    fn standing<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Standing> {
        Box::pin(async move {
            let Ok(id) = node.parse::<NodeId>() else {
                return Standing::Stranger;
            };
            match self.fabric.node_standing(&id).await {
                Ok(fabric::NodeStanding::Member) => Standing::Member,
                Ok(fabric::NodeStanding::Revoked) => Standing::Revoked,
                Ok(fabric::NodeStanding::Stranger) => Standing::Stranger,
                Err(e) => {
                    tracing::warn!("cannot read the member list: {e}");
                    Standing::Stranger
                }
            }
        })
    }

    fn redeem<'a>(
        &'a self,
        node: &'a str,
        proof: [u8; 32],
        hello: Hello,
    ) -> BoxFuture<'a, Result<Welcome, String>> {
        Box::pin(async move {
            let refused = || "unknown, used or expired invite".to_owned();
            let id: NodeId = node.parse().map_err(|_| "not a node id".to_owned())?;
            let me = self.fabric.node_id().to_string();
            // The proof names this node and the joiner, keyed by the
            // invite's digest: find the open invite it was made with.
            let digest = self
                .fabric
                .open_invite_digests(&SYSTEM)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|d| {
                    peers::invite::same_proof(&proof, &peers::invite::join_proof(d, &me, node))
                })
                .ok_or_else(refused)?;
            self.fabric
                .redeem_invite_digest(&SYSTEM, &digest, &id, &reach_of(&hello))
                .await
                .map_err(|e| match e {
                    fabric::FabricError::Forbidden => refused(),
                    other => other.to_string(),
                })?;
            let members = self
                .fabric
                .members(&SYSTEM)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|m| !m.revoked)
                .map(member_addr)
                .collect();
            Ok(Welcome {
                proof: peers::invite::welcome_proof(&digest, &me, node),
                inviter: self.fabric.node_name().unwrap_or_default(),
                members,
            })
        })
    }

    fn welcomed<'a>(
        &'a self,
        inviter: &'a str,
        welcome: Welcome,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let inviter: NodeId = inviter.parse().map_err(|_| "not a node id".to_owned())?;
            let members: Vec<(NodeId, fabric::Reach)> = welcome
                .members
                .into_iter()
                .filter_map(|m| {
                    Some((
                        m.id.parse().ok()?,
                        fabric::Reach {
                            name: m.name,
                            addrs: strings(&m.addrs),
                            relays: m.relays,
                            home_relay: m.home_relay,
                        },
                    ))
                })
                .collect();
            self.fabric
                .joined(&SYSTEM, &inviter, &members)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn records_since(
        &self,
        since: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Record>, String>> {
        Box::pin(async move {
            let since = i64::try_from(since).unwrap_or(i64::MAX);
            Ok(self
                .fabric
                .records_since(&SYSTEM, since, limit)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(to_wire)
                .collect())
        })
    }

    fn apply<'a>(
        &'a self,
        from: &'a str,
        records: Vec<Record>,
        more: bool,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let from: NodeId = from.parse().map_err(|_| "not a node id".to_owned())?;
            let records: Vec<SharedRecord> = records.into_iter().filter_map(from_wire).collect();
            self.fabric
                .apply_records(&SYSTEM, &from, records, more)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn cursor<'a>(&'a self, peer: &'a str) -> BoxFuture<'a, u64> {
        Box::pin(async move {
            let Ok(id) = peer.parse::<NodeId>() else {
                return 0;
            };
            self.fabric
                .peer_cursor(&SYSTEM, &id)
                .await
                .map(|c| c.max(0) as u64)
                .unwrap_or(0)
        })
    }

    fn members(&self) -> BoxFuture<'_, Vec<MemberAddr>> {
        Box::pin(async move {
            let me = self.fabric.node_id();
            match self.fabric.members(&SYSTEM).await {
                Ok(members) => members
                    .into_iter()
                    .filter(|m| !m.revoked && m.id != me)
                    .map(member_addr)
                    .collect(),
                Err(e) => {
                    tracing::warn!("cannot read the member list: {e}");
                    Vec::new()
                }
            }
        })
    }

    fn heard<'a>(&'a self, node: &'a str, hello: Hello) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Ok(id) = node.parse::<NodeId>() else {
                return;
            };
            if let Err(e) = self.fabric.member_reached(&id, &reach_of(&hello)).await {
                tracing::warn!("cannot record where {} listens: {e}", id.short());
            }
        })
    }

    fn invite_open(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move { self.fabric.invite_open().await.unwrap_or(false) })
    }

    fn invite(&self, ttl: Duration) -> BoxFuture<'_, Result<peers::Invite, String>> {
        Box::pin(async move { invite(&self.fabric, ttl).await.map_err(|e| e.to_string()) })
    }
}

/// The Devices page's "Add", done by the overlay's endpoint.
pub struct PagePairing(pub peers::Peers);

impl gateways::http::pairing::DevicePairing for PagePairing {
    fn pairings(&self) -> Vec<gateways::http::pairing::PairingView> {
        self.0
            .pairings()
            .into_iter()
            .map(|p| {
                let name = if p.peer_name.is_empty() {
                    p.peer.chars().take(10).collect()
                } else {
                    p.peer_name.clone()
                };
                let (state, detail) = match p.state {
                    peers::PairState::Confirm => {
                        ("confirm", format!("check that {name} shows the same code"))
                    }
                    peers::PairState::Waiting => {
                        ("waiting", format!("waiting for {name} to say yes"))
                    }
                    peers::PairState::Joining => ("joining", "joining…".to_owned()),
                    peers::PairState::Done(how) => ("done", how),
                    peers::PairState::Failed(why) => ("failed", why),
                };
                gateways::http::pairing::PairingView {
                    id: p.id,
                    node: p.peer,
                    name,
                    code: p.code,
                    outgoing: p.outgoing,
                    state,
                    detail,
                }
            })
            .collect()
    }

    fn offer<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move { self.0.pair(node).await.map_err(|e| e.to_string()) })
    }

    fn decide(&self, id: u64, accept: bool) -> bool {
        self.0.decide(id, accept)
    }
}

/// The overlay as the server runs it.
pub struct Overlay {
    /// The endpoint.
    pub peers: peers::Peers,
    /// Whether LAN discovery runs (a host without multicast has none; the
    /// endpoint still serves).
    pub mdns: bool,
    /// The relay the HTTP front serves for the members.
    pub relay: peers::Relay,
}

/// Starts the overlay's endpoint on `text` (a UDP address; port 0: the
/// port of the last run if it is free, else any) with LAN discovery,
/// membership and record exchange, and records what it hears in the
/// catalog. `relay_port`: the plain-HTTP front's port, where this node
/// relays for the members (`None`: a TLS front; no relay).
pub async fn start_peers(
    fabric: &Fabric,
    text: &str,
    name: &str,
    relay_port: Option<u16>,
) -> anyhow::Result<Overlay> {
    let bind: SocketAddr = text.parse().map_err(|_| {
        anyhow::anyhow!("--overlay {text:?} is not an address; try 0.0.0.0:7410, or off")
    })?;
    let host: Arc<dyn Host> = FabricHost::new(fabric.clone());
    let mut cfg = peers::PeersConfig {
        seed: fabric.node_key().seed(),
        name: name.to_owned(),
        bind,
        mdns: true,
        announce: true,
        relay_port,
    };
    // Members remember where this node listened: take the same port again.
    let last_port = fabric
        .own_addrs()
        .await
        .unwrap_or_default()
        .iter()
        .find_map(|a| a.parse::<SocketAddr>().ok().map(|a| a.port()));
    let mut tries = vec![cfg.clone()];
    if bind.port() == 0
        && let Some(port) = last_port
    {
        tries.insert(
            0,
            peers::PeersConfig {
                bind: SocketAddr::new(bind.ip(), port),
                ..cfg.clone()
            },
        );
    }
    let mut started = None;
    for attempt in tries {
        cfg = attempt.clone();
        match peers::Peers::start(attempt.clone(), Some(host.clone())).await {
            Ok(p) => {
                started = Some((p, true));
                break;
            }
            Err(peers::PeersError::Endpoint(e)) => {
                tracing::info!("no LAN discovery here ({e}); other nodes can still dial this one");
                let p = peers::Peers::start(
                    peers::PeersConfig {
                        mdns: false,
                        ..attempt
                    },
                    Some(host.clone()),
                )
                .await?;
                started = Some((p, false));
                break;
            }
            Err(e) if cfg.bind != bind => {
                tracing::debug!("the last run's overlay port is taken ({e}); taking any");
            }
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "{e} (is another Glow using it? pick another with --overlay, or --no-overlay)"
                ));
            }
        }
    }
    let (p, mdns) = started.ok_or_else(|| anyhow::anyhow!("the overlay endpoint did not start"))?;
    let system = Principal::System;
    // Whatever was nearby in an earlier run must be heard again.
    fabric.node_not_nearby(&system, None).await?;
    keep_own_addrs(fabric.clone(), p.clone());
    report_links(fabric.clone(), p.clone());
    let mut events = p.subscribe();
    let (f, known) = (fabric.clone(), p.nearby());
    tokio::spawn(async move {
        let heard = |n: peers::Nearby| {
            let f = f.clone();
            async move {
                let Ok(id) = n.id.parse::<NodeId>() else {
                    return;
                };
                let addrs: Vec<String> = strings(&n.addrs);
                let name = n.name.as_deref().unwrap_or("");
                if let Err(e) = f.node_heard(&SYSTEM, id, name, &addrs).await {
                    tracing::warn!("cannot record the node {}: {e}", id.short());
                }
            }
        };
        for n in known {
            heard(n).await;
        }
        loop {
            match events.recv().await {
                Ok(peers::PeerEvent::Found(n)) => heard(n).await,
                Ok(peers::PeerEvent::Gone { id }) => {
                    if let Ok(id) = id.parse::<NodeId>() {
                        let _ = f.node_not_nearby(&SYSTEM, Some(id)).await;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    Ok(Overlay {
        peers: p,
        mdns,
        relay: peers::Relay::new(host, fabric.node_id().to_string()),
    })
}

/// Passes the overlay's links to the fabric every second (lists and pages
/// show them).
fn report_links(fabric: Fabric, p: peers::Peers) {
    tokio::spawn(async move {
        loop {
            let links = p
                .links()
                .into_iter()
                .filter_map(|l| {
                    let rtt_ms = l.rtt.as_secs_f64() * 1000.0;
                    let private = l
                        .remote
                        .parse::<SocketAddr>()
                        .is_ok_and(|a| is_private(a.ip()));
                    Some((
                        l.id.parse::<NodeId>().ok()?,
                        fabric::LinkInfo {
                            direct: l.direct,
                            rtt_ms,
                            class: fabric::LinkClass::of(l.direct, rtt_ms, private),
                            remote: l.remote,
                        },
                    ))
                })
                .collect();
            if let Err(e) = fabric.set_links(&SYSTEM, links).await {
                tracing::debug!("links not noted: {e}");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// A LAN's address: private IPv4, link-local, unique-local IPv6.
fn is_private(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_private() || v4.is_link_local() || v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Keeps the catalog's note of this node's overlay addresses current (the
/// interfaces' addresses with the endpoint's port), for invites.
fn keep_own_addrs(fabric: Fabric, p: peers::Peers) {
    tokio::spawn(async move {
        let mut last: Vec<String> = Vec::new();
        let mut wait = Duration::from_millis(300);
        loop {
            tokio::time::sleep(wait).await;
            wait = Duration::from_secs(5);
            let hello = p.hello();
            let mut addrs = hello.addrs;
            if addrs.is_empty() {
                addrs = p.local_addrs();
            }
            let mut now = strings(&addrs);
            if let Some(home) = hello.home_relay {
                now.push(home);
            }
            if now != last && fabric.set_own_addrs(&SYSTEM, &now).await.is_ok() {
                last = now;
            }
        }
    });
}

/// `glow node invite`: writes an invite that works once for `ttl` and
/// returns it (the short code and the full form).
pub async fn invite(fabric: &Fabric, ttl: Duration) -> anyhow::Result<peers::Invite> {
    let secret = fabric.create_invite(&SYSTEM, ttl).await?;
    let addrs = sockets(&fabric.own_addrs().await?);
    Ok(peers::Invite {
        secret,
        inviter: Some(*fabric.node_id().as_bytes()),
        addrs: addrs
            .into_iter()
            .filter(|a| !a.ip().is_unspecified())
            .collect(),
        relay: fabric.own_home_relay().await?,
    })
}

/// `glow node join`: joins the glow of the node that wrote `text` (a code
/// or a full invite) with a short-lived endpoint of this node's key.
/// Returns the inviter's id.
pub async fn join(fabric: &Fabric, text: &str, name: &str) -> anyhow::Result<String> {
    let invite = peers::Invite::parse(text)?;
    let lan_only = invite.inviter.is_none();
    let p = peers::Peers::start(
        peers::PeersConfig {
            seed: fabric.node_key().seed(),
            name: name.to_owned(),
            bind: "0.0.0.0:0".parse().expect("an address"),
            mdns: lan_only,
            announce: false,
            relay_port: None,
        },
        None,
    )
    .await?;
    let host = FabricHost::new(fabric.clone());
    let joined = p.join(&invite, &*host).await;
    p.close().await;
    Ok(joined?)
}
