//! Membership and trust: who may talk to this node, how a node joins, and
//! how members keep each other's records.
//!
//! Two protocols share the endpoint:
//! - `glow/1` ([`crate::ALPN`]) is for members only. A node that is not a
//!   member (a stranger, or a node that was removed) is refused right after
//!   the handshake, which proved its key, and every request is checked
//!   again, so a removal cuts a connection already open.
//! - `glow-join/1` ([`crate::JOIN_ALPN`]) takes one [`JoinRequest`] from
//!   anyone: the node is welcomed only if it presents an invite the
//!   [`Host`] accepts (unknown, used and expired ones are refused and
//!   logged, without the secret). At most [`MAX_JOINING`] such connections
//!   are served at once, each for at most [`JOIN_TIMEOUT`].
//!
//! Each member keeps one connection to every other member and pulls its
//! records (users, folders, shares, members: opaque here) in the order of
//! that member's sequence numbers, from the last one it applied, every
//! [`PULL_EVERY`]. Like Syncthing's protocol package, this module knows
//! nothing of what a record means: the [`Host`] (the fabric, wired by the
//! server) stores, orders and applies them.

use crate::invite::{self, Invite};
use crate::wire::{
    self, Hello, JoinRequest, JoinResponse, MemberAddr, Record, Request, Response, Welcome,
    WireError,
};
use crate::{ALPN, JOIN_ALPN, Peers};
use futures_util::future::BoxFuture;
use iroh::endpoint::{Connection, VarInt};
use iroh::{EndpointAddr, EndpointId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How often a member asks each other member for new records.
pub const PULL_EVERY: Duration = Duration::from_secs(2);
/// How often the member list is read for members to link to (a node that
/// just joined, one just removed).
pub const MEMBERS_EVERY: Duration = Duration::from_secs(1);
/// Records in one answer at most.
pub const BATCH: usize = 200;
/// Joining nodes served at once at most; more are turned away.
pub const MAX_JOINING: usize = 8;
/// The longest a joining node may take to present its invite.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a code is tried on the nodes heard on the LAN.
pub const LAN_JOIN_WAIT: Duration = Duration::from_secs(8);
/// The longest a dial may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Error code on a refused connection: not a member.
const NOT_A_MEMBER: u32 = 403;

/// What a node is to this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// A member of this node's glow.
    Member,
    /// Was a member and was removed: refused for good.
    Revoked,
    /// Never was a member.
    Stranger,
}

impl std::fmt::Display for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Standing::Member => "member",
            Standing::Revoked => "removed from this glow",
            Standing::Stranger => "not a member",
        })
    }
}

/// What the layer above provides: membership, invites and records. Node
/// ids are 64 hex digits. Errors are one line for logs.
pub trait Host: Send + Sync + 'static {
    /// What `node` is to this node.
    fn standing<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Standing>;
    /// `node` presents a proof of an invite ([`crate::invite::join_proof`]
    /// with this node as the inviter): `Ok` makes it a member (the invite
    /// is used up) and says how to reach everyone, with the welcome proof.
    fn redeem<'a>(
        &'a self,
        node: &'a str,
        proof: [u8; 32],
        hello: Hello,
    ) -> BoxFuture<'a, Result<Welcome, String>>;
    /// This node was welcomed into `inviter`'s glow.
    fn welcomed<'a>(
        &'a self,
        inviter: &'a str,
        welcome: Welcome,
    ) -> BoxFuture<'a, Result<(), String>>;
    /// This node's records numbered after `since`, in order, at most `limit`.
    fn records_since(&self, since: u64, limit: usize)
    -> BoxFuture<'_, Result<Vec<Record>, String>>;
    /// Applies records pulled from `from` and remembers the last sequence;
    /// `more`: another batch follows.
    fn apply<'a>(
        &'a self,
        from: &'a str,
        records: Vec<Record>,
        more: bool,
    ) -> BoxFuture<'a, Result<(), String>>;
    /// The last of `peer`'s sequence numbers applied here (0: none).
    fn cursor<'a>(&'a self, peer: &'a str) -> BoxFuture<'a, u64>;
    /// The other members and where they were last reached.
    fn members(&self) -> BoxFuture<'_, Vec<MemberAddr>>;
    /// A member said who it is and where it listens.
    fn heard<'a>(&'a self, node: &'a str, hello: Hello) -> BoxFuture<'a, ()>;
    /// Whether an invite is open now (a node that may be joining is let
    /// through this node's relay).
    fn invite_open(&self) -> BoxFuture<'_, bool>;
    /// Writes an invite to this node's glow that works once for `ttl` (for
    /// a device added from a page, [`crate::pair`]).
    fn invite(&self, ttl: Duration) -> BoxFuture<'_, Result<Invite, String>>;
}

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// No node that could be the inviter answered.
    #[error("cannot reach the inviting node{0}")]
    Unreachable(String),
    /// The inviter refused the invite.
    #[error("the invite was refused: {0} (ask for a new one with `glow node invite`)")]
    Refused(String),
    /// The welcome could not be recorded here.
    #[error("joined, but this node could not record it: {0}")]
    Record(String),
}

/// How a member's link looks now.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The member's node id.
    pub id: String,
    /// Its selected path is direct (UDP to its address), not relayed.
    pub direct: bool,
    /// The selected path's address.
    pub remote: String,
    /// The selected path's round-trip time.
    pub rtt: Duration,
}

impl Peers {
    /// Serves `glow/1` and `glow-join/1` for `host` and keeps a link to
    /// every member it lists. Without it (a command's short-lived endpoint)
    /// every incoming connection is refused.
    pub(crate) fn serve(&self, host: Option<Arc<dyn Host>>) {
        if let Some(host) = host.clone() {
            let me = self.clone();
            tokio::spawn(async move { me.keep_links(host).await });
        }
        let me = self.clone();
        let joining = Arc::new(Semaphore::new(MAX_JOINING));
        tokio::spawn(async move {
            while let Some(incoming) = me.endpoint.accept().await {
                let Some(host) = host.clone() else {
                    incoming.refuse();
                    continue;
                };
                let (me, joining) = (me.clone(), joining.clone());
                tokio::spawn(async move {
                    let conn =
                        match tokio::time::timeout(DIAL_TIMEOUT, incoming.into_future()).await {
                            Ok(Ok(conn)) => conn,
                            Ok(Err(e)) => {
                                tracing::debug!("overlay handshake failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("overlay handshake timed out");
                                return;
                            }
                        };
                    if let Some(protocol) = me.protocol(conn.alpn()) {
                        let id = conn.remote_id().to_string();
                        let standing = host.standing(&id).await;
                        if standing != Standing::Member {
                            tracing::warn!(node = %short(&id), "overlay connection refused: {standing}");
                            conn.close(VarInt::from_u32(NOT_A_MEMBER), b"not a member");
                            return;
                        }
                        protocol.serve(conn, id).await;
                    } else if conn.alpn() == crate::pair::PAIR_ALPN {
                        me.serve_pair(conn, host).await;
                    } else if conn.alpn() == JOIN_ALPN {
                        let Ok(_permit) = joining.try_acquire() else {
                            conn.close(VarInt::from_u32(503), b"busy");
                            return;
                        };
                        serve_join(conn, &*host, me.id(), me.hello()).await;
                    } else {
                        me.serve_member(conn, host).await;
                    }
                });
            }
        });
    }

    /// This node's [`Hello`]: its name, direct addresses, the relays it
    /// serves and the one it can be reached through.
    pub fn hello(&self) -> Hello {
        let addr = self.endpoint.addr();
        let addrs: Vec<std::net::SocketAddr> = addr.ip_addrs().copied().collect();
        let relays = match self.relay_port {
            Some(port) => addrs
                .iter()
                .map(|a| a.ip())
                .filter(|ip| !ip.is_loopback() && !ip.is_unspecified() && !is_link_local(ip))
                .map(|ip| format!("http://{}/", std::net::SocketAddr::new(ip, port)))
                .collect(),
            None => Vec::new(),
        };
        Hello {
            name: self.name.clone(),
            addrs,
            relays,
            home_relay: addr.relay_urls().next().map(|u| u.to_string()),
            observed: None,
        }
    }

    /// Puts the relays `urls` (served by members) in the endpoint's relay
    /// map. This node's own relay is used only at a public address: behind
    /// a NAT it would be the closest, become the home relay, and be one no
    /// other node can reach.
    pub(crate) async fn use_relays(&self, urls: &[String]) {
        let own = self.hello().relays;
        for url in urls {
            if self.lock_relays().contains(url) {
                continue;
            }
            if own.contains(url) && !relay_is_public(url) {
                continue;
            }
            let Ok(parsed) = url.parse::<iroh::RelayUrl>() else {
                tracing::debug!("not a relay URL: {url:?}");
                continue;
            };
            self.lock_relays().insert(url.clone());
            tracing::info!(%url, "relay of a member in use");
            self.endpoint
                .insert_relay(
                    parsed.clone(),
                    Arc::new(iroh::RelayConfig::new(parsed, None)),
                )
                .await;
        }
    }

    fn lock_relays(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.relays_in_map.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn serve_member(&self, conn: Connection, host: Arc<dyn Host>) {
        let id = conn.remote_id().to_string();
        let standing = host.standing(&id).await;
        if standing != Standing::Member {
            tracing::warn!(node = %short(&id), "overlay connection refused: {standing}");
            conn.close(VarInt::from_u32(NOT_A_MEMBER), b"not a member");
            return;
        }
        loop {
            let Ok((mut send, mut recv)) = conn.accept_bi().await else {
                return;
            };
            let (host, id, conn, me) = (host.clone(), id.clone(), conn.clone(), self.clone());
            tokio::spawn(async move {
                let request: Request = match tokio::time::timeout(
                    wire::EXCHANGE_TIMEOUT,
                    wire::read_message(&mut recv),
                )
                .await
                {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => {
                        tracing::debug!(node = %short(&id), "bad request: {e}");
                        return;
                    }
                    Err(_) => return,
                };
                let standing = host.standing(&id).await;
                if standing != Standing::Member {
                    tracing::warn!(node = %short(&id), "overlay connection closed: {standing}");
                    conn.close(VarInt::from_u32(NOT_A_MEMBER), b"not a member");
                    return;
                }
                let response = match request {
                    Request::Hello(hello) => {
                        host.heard(&id, hello).await;
                        if !me.lock_links().contains_key(&id) {
                            me.waker(&id).notify_one();
                        }
                        Response::Hello(Hello {
                            observed: selected_ip(&conn),
                            ..me.hello()
                        })
                    }
                    Request::Members => {
                        let mut members = host.members().await;
                        members.push(MemberAddr {
                            id: me.id(),
                            ..members_entry(me.hello())
                        });
                        Response::Members(members)
                    }
                    Request::Pull { since } => match host.records_since(since, BATCH + 1).await {
                        Ok(mut records) => {
                            let more = records.len() > BATCH;
                            records.truncate(BATCH);
                            Response::Records { records, more }
                        }
                        Err(e) => Response::Refused(e),
                    },
                };
                if let Err(e) = wire::send_message(&mut send, &response).await {
                    tracing::debug!(node = %short(&id), "answer not sent: {e}");
                }
            });
        }
    }

    /// Keeps one link to every member `host` lists, for as long as it
    /// lists it.
    async fn keep_links(&self, host: Arc<dyn Host>) {
        let mut tasks: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            let members = host.members().await;
            let mut relays: Vec<String> = members.iter().flat_map(|m| m.relays.clone()).collect();
            relays.extend(self.hello().relays);
            self.use_relays(&relays).await;
            tasks.retain(|id, task| {
                let keep = members.iter().any(|m| &m.id == id);
                if !keep {
                    // Removed: its link goes, and its connection with it.
                    task.abort();
                    if let Some(conn) = self.lock_links().remove(id) {
                        conn.close(VarInt::from_u32(NOT_A_MEMBER), b"not a member");
                    }
                    self.wakers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(id);
                }
                keep && !task.is_finished()
            });
            for m in members {
                if m.id == self.id() || tasks.contains_key(&m.id) {
                    continue;
                }
                let (me, host) = (self.clone(), host.clone());
                let id = m.id.clone();
                tasks.insert(m.id, tokio::spawn(async move { me.link(&id, host).await }));
            }
            tokio::time::sleep(MEMBERS_EVERY).await;
        }
    }

    /// Keeps a link to member `id`: dials, says hello, pulls its records
    /// every [`PULL_EVERY`]; dials again (backing off up to 30 s) when the
    /// link breaks.
    async fn link(&self, id: &str, host: Arc<dyn Host>) {
        let wake = self.waker(id);
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.link_once(id, &*host).await {
                Ok(()) => backoff = Duration::from_secs(1),
                Err(e) => tracing::debug!(node = %short(id), "link: {e}"),
            }
            self.lock_links().remove(id);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                // The member came back (it dialed this node): dial it now.
                _ = wake.notified() => backoff = Duration::from_secs(1),
            }
        }
    }

    /// What wakes the link to `id` from its back-off.
    fn waker(&self, id: &str) -> Arc<tokio::sync::Notify> {
        self.wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_owned())
            .or_default()
            .clone()
    }

    async fn link_once(&self, id: &str, host: &dyn Host) -> Result<(), WireError> {
        let member = host
            .members()
            .await
            .into_iter()
            .find(|m| m.id == id)
            .unwrap_or_default();
        if member.addrs.is_empty() && member.home_relay.is_none() && !self.is_nearby(id) {
            // Nothing to dial yet: another member will say where it is
            // (and wake this link), or the LAN will.
            return Err(WireError::Connection("no address known yet".into()));
        }
        let conn = self
            .dial(id, &member.addrs, member.home_relay.as_deref(), ALPN)
            .await?;
        self.lock_links().insert(id.to_owned(), conn.clone());
        match wire::ask(&conn, &Request::Hello(self.hello())).await? {
            Response::Hello(hello) => {
                self.use_relays(&hello.relays).await;
                if let Some(seen) = hello.observed {
                    self.seen_from_outside(seen).await;
                }
                host.heard(id, hello).await
            }
            other => return Err(WireError::Malformed(format!("{other:?} to a hello"))),
        }
        tracing::info!(node = %short(id), "linked to member");
        let mut round = 0u32;
        loop {
            // Where the others are, as this member knows: every few rounds,
            // and every round while a member is nowhere to be found.
            let lost = host
                .members()
                .await
                .iter()
                .any(|m| m.addrs.is_empty() && m.home_relay.is_none());
            if lost || round.is_multiple_of(5) {
                self.learn_members(id, &conn, host).await?;
            }
            round = round.wrapping_add(1);
            loop {
                let since = host.cursor(id).await;
                match wire::ask(&conn, &Request::Pull { since }).await? {
                    Response::Records { records, more } => {
                        if !records.is_empty() {
                            tracing::debug!(node = %short(id), since, n = records.len(), "records pulled");
                            host.apply(id, records, more)
                                .await
                                .map_err(WireError::Malformed)?;
                        }
                        if !more {
                            break;
                        }
                    }
                    Response::Refused(why) => return Err(WireError::Connection(why)),
                    other => return Err(WireError::Malformed(format!("{other:?} to a pull"))),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(PULL_EVERY) => {}
                e = conn.closed() => return Err(WireError::Connection(e.to_string())),
            }
        }
    }

    /// A member saw this node come from `seen`: if that is not one of its
    /// own addresses, it is the address its NAT maps it to, and other
    /// members behind NATs can punch a hole to it (iroh learns external
    /// addresses from relays that offer QUIC address discovery; the
    /// members' relays are plain HTTP, so the members tell each other).
    async fn seen_from_outside(&self, seen: std::net::SocketAddr) {
        let own = self.endpoint.bound_sockets();
        if own.iter().any(|a| a.ip() == seen.ip())
            || self.endpoint.addr().ip_addrs().any(|a| a.ip() == seen.ip())
        {
            return;
        }
        let fresh = self.lock_external().insert(seen);
        if fresh {
            tracing::info!(%seen, "reachable from outside at this address");
            self.endpoint.add_external_addr(seen).await;
        }
    }

    fn lock_external(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashSet<std::net::SocketAddr>> {
        self.external.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks member `via` where the other members are, and keeps what it
    /// says of those this node has no link to (a link's own hello is
    /// first-hand and wins).
    async fn learn_members(
        &self,
        via: &str,
        conn: &Connection,
        host: &dyn Host,
    ) -> Result<(), WireError> {
        let Response::Members(members) = wire::ask(conn, &Request::Members).await? else {
            return Err(WireError::Malformed("not a member list".into()));
        };
        let me = self.id();
        let known: Vec<String> = host.members().await.into_iter().map(|m| m.id).collect();
        for m in members.into_iter().take(1024) {
            if m.id == me || m.id == via || !known.contains(&m.id) {
                continue;
            }
            if self.lock_links().contains_key(&m.id) {
                continue;
            }
            if m.addrs.is_empty() && m.home_relay.is_none() {
                continue;
            }
            self.use_relays(&m.relays).await;
            let hello = Hello {
                name: m.name,
                addrs: m.addrs,
                relays: m.relays,
                home_relay: m.home_relay,
                observed: None,
            };
            host.heard(&m.id, hello).await;
            // Its link may be backing off for want of an address.
            self.waker(&m.id).notify_one();
        }
        Ok(())
    }

    /// Dials node `id` on `alpn`, at `addrs` and wherever the LAN lookup
    /// says it is.
    pub(crate) async fn dial(
        &self,
        id: &str,
        addrs: &[std::net::SocketAddr],
        relay: Option<&str>,
        alpn: &[u8],
    ) -> Result<Connection, WireError> {
        let key: EndpointId = id
            .parse()
            .map_err(|_| WireError::Malformed(format!("{id:?} is not a node id")))?;
        let mut to = EndpointAddr::new(key);
        for a in addrs {
            to = to.with_ip_addr(*a);
        }
        if let Some(url) = relay.and_then(|r| r.parse::<iroh::RelayUrl>().ok()) {
            to = to.with_addrs([iroh::TransportAddr::Relay(url)]);
        }
        tokio::time::timeout(DIAL_TIMEOUT, self.endpoint.connect(to, alpn))
            .await
            .map_err(|_| {
                WireError::Connection(format!("no connection within {}s", DIAL_TIMEOUT.as_secs()))
            })?
            .map_err(|e| WireError::Connection(e.to_string()))
    }

    fn lock_links(&self) -> std::sync::MutexGuard<'_, HashMap<String, Connection>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Dials member `id` on `alpn` (a protocol of the layer above), where
    /// its link reaches it. Only members are dialed.
    pub async fn connect(&self, id: &str, alpn: &[u8]) -> Result<Connection, WireError> {
        let host = self
            .host
            .clone()
            .ok_or_else(|| WireError::Connection("this node serves no glow".into()))?;
        if host.standing(id).await != Standing::Member {
            return Err(WireError::Connection(format!(
                "{} is not a member",
                short(id)
            )));
        }
        let member = host
            .members()
            .await
            .into_iter()
            .find(|m| m.id == id)
            .unwrap_or_default();
        self.dial(id, &member.addrs, member.home_relay.as_deref(), alpn)
            .await
    }

    /// Whether node `id` is a member now (checked again on every request
    /// of a protocol of the layer above: a removal cuts it off).
    pub async fn is_member(&self, id: &str) -> bool {
        match &self.host {
            Some(host) => host.standing(id).await == Standing::Member,
            None => false,
        }
    }

    /// The members this node has a link to now, with each link's selected
    /// path.
    pub fn links(&self) -> Vec<Link> {
        let links = self.lock_links();
        let mut out: Vec<Link> = links
            .iter()
            .filter(|(_, c)| c.close_reason().is_none())
            .filter_map(|(id, conn)| {
                let paths = conn.paths();
                let path = paths.iter().find(|p| p.is_selected())?;
                Some(Link {
                    id: id.clone(),
                    direct: path.is_ip(),
                    remote: match path.remote_addr() {
                        iroh::TransportAddr::Ip(a) => a.to_string(),
                        iroh::TransportAddr::Relay(url) => url.to_string(),
                        other => format!("{other:?}"),
                    },
                    rtt: path.rtt(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Joins the glow of the node that wrote `invite`: dials it (a full
    /// invite says where; a code is tried on every node heard on the LAN),
    /// presents the secret and, once welcomed, tells `host`.
    pub async fn join(&self, invite: &Invite, host: &dyn Host) -> Result<String, JoinError> {
        if let Some(relay) = &invite.relay {
            self.use_relays(std::slice::from_ref(relay)).await;
        }
        if let Some(key) = invite.inviter {
            let id = EndpointId::from_bytes(&key)
                .map_err(|_| JoinError::Unreachable(": the invite names no valid node".into()))?
                .to_string();
            return match self.try_join(&id, &invite.addrs, invite, host).await {
                Ok(()) => Ok(id),
                Err(e) => Err(e),
            };
        }
        // A code: the inviter is one of the nodes on this LAN. Each is
        // tried once as it is heard, for up to LAN_JOIN_WAIT.
        let deadline = tokio::time::Instant::now() + LAN_JOIN_WAIT;
        let mut tried = std::collections::HashSet::new();
        let mut last = None;
        loop {
            for n in self.nearby() {
                if !tried.insert(n.id.clone()) {
                    continue;
                }
                match self.try_join(&n.id, &n.addrs, invite, host).await {
                    Ok(()) => return Ok(n.id),
                    Err(e @ JoinError::Record(_)) => return Err(e),
                    Err(e) => last = Some(e),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(last.unwrap_or_else(|| {
                    JoinError::Unreachable(
                        ": no Glow node heard on this network (use the full GLOW:… invite to join across networks)"
                            .into(),
                    )
                }));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Presents `invite` to node `id`.
    async fn try_join(
        &self,
        id: &str,
        addrs: &[std::net::SocketAddr],
        invite: &Invite,
        host: &dyn Host,
    ) -> Result<(), JoinError> {
        let conn = self
            .dial(id, addrs, invite.relay.as_deref(), JOIN_ALPN)
            .await
            .map_err(|e| JoinError::Unreachable(format!(" {}: {e}", short(id))))?;
        let digest = invite::digest(&invite.secret);
        let me = self.id();
        let asked = wire::ask::<_, JoinResponse>(
            &conn,
            &JoinRequest {
                proof: invite::join_proof(&digest, id, &me),
                hello: self.hello(),
            },
        )
        .await;
        conn.close(VarInt::from_u32(0), b"thanks");
        match asked {
            Ok(JoinResponse::Welcome(welcome)) => {
                if !invite::same_proof(&welcome.proof, &invite::welcome_proof(&digest, id, &me)) {
                    tracing::warn!(node = %short(id), "a node that does not hold the invite answered it");
                    return Err(JoinError::Refused(
                        "the node that answered did not write this invite".into(),
                    ));
                }
                host.welcomed(id, welcome).await.map_err(JoinError::Record)
            }
            Ok(JoinResponse::Refused(why)) => Err(JoinError::Refused(why)),
            Err(e) => Err(JoinError::Unreachable(format!(" {}: {e}", short(id)))),
        }
    }
}

/// Serves one joining node: reads its request, asks the host, answers.
async fn serve_join(conn: Connection, host: &dyn Host, my_id: String, me: Hello) {
    let id = conn.remote_id().to_string();
    let served = tokio::time::timeout(JOIN_TIMEOUT, async {
        let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
        let request: JoinRequest = wire::read_message(&mut recv)
            .await
            .map_err(|e| e.to_string())?;
        let response = match host.redeem(&id, request.proof, request.hello).await {
            Ok(mut welcome) => {
                // Where this node is reached now, as it knows it best.
                welcome.members.retain(|m| m.id != my_id);
                welcome.members.push(MemberAddr {
                    id: my_id,
                    name: me.name,
                    addrs: me.addrs,
                    relays: me.relays,
                    home_relay: me.home_relay,
                });
                tracing::info!(node = %short(&id), "node joined with an invite");
                JoinResponse::Welcome(welcome)
            }
            Err(why) => {
                tracing::warn!(node = %short(&id), "join refused: {why}");
                JoinResponse::Refused(why)
            }
        };
        wire::send_message(&mut send, &response)
            .await
            .map_err(|e| e.to_string())?;
        // Let the answer arrive before the connection goes.
        let _ = send.stopped().await;
        Ok::<(), String>(())
    })
    .await;
    match served {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(node = %short(&id), "join: {e}"),
        Err(_) => {
            tracing::debug!(node = %short(&id), "join: no invite within {}s", JOIN_TIMEOUT.as_secs())
        }
    }
    conn.close(VarInt::from_u32(0), b"");
}

/// Whether a relay URL names a public address (not loopback, private,
/// carrier-grade NAT, link-local or unique-local).
fn relay_is_public(url: &str) -> bool {
    let Some(host) = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
    else {
        return false;
    };
    let Ok(addr) = host.parse::<std::net::SocketAddr>() else {
        return false;
    };
    match addr.ip() {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (a == 100 && (64..128).contains(&b)))
        }
        std::net::IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// The address the selected path of `conn` reaches, if it is a direct one.
fn selected_ip(conn: &Connection) -> Option<std::net::SocketAddr> {
    let paths = conn.paths();
    let path = paths.iter().find(|p| p.is_selected())?;
    match path.remote_addr() {
        iroh::TransportAddr::Ip(a) => Some(*a),
        _ => None,
    }
}

/// A member entry (without its id) from a node's hello.
fn members_entry(hello: Hello) -> MemberAddr {
    MemberAddr {
        id: String::new(),
        name: hello.name,
        addrs: hello.addrs,
        relays: hello.relays,
        home_relay: hello.home_relay,
    }
}

/// An IPv6 link-local address (not reachable as a relay address).
fn is_link_local(ip: &std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The first 10 digits of a node id, for logs.
pub(crate) fn short(id: &str) -> &str {
    let end = id.char_indices().nth(10).map_or(id.len(), |(i, _)| i);
    &id[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_relay_addresses_count_as_public() {
        assert!(relay_is_public("http://198.51.100.10:8080/"));
        assert!(relay_is_public("http://[2001:db8::1]:8080/"));
        for private in [
            "http://10.1.0.2:8080/",
            "http://192.168.1.2:80/",
            "http://100.100.0.1:80/",
            "http://127.0.0.1:80/",
            "http://[fd00::1]:80/",
            "http://[fe80::1]:80/",
            "not a url",
            "http://host.example:80/",
        ] {
            assert!(!relay_is_public(private), "{private}");
        }
    }
}
