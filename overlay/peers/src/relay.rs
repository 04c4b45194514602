//! The relay every node runs for the members of its glow: iroh's relay
//! service (`iroh-relay`, the server half of what iroh's endpoints dial
//! when no direct path exists), embedded in the node's HTTP front on the
//! same port. The front hands over a connection whose request starts
//! `GET /relay` ([`PREFIX`]); the relay's handshake proves the client's
//! key, and only members (and, while an invite is open, nodes that may
//! be joining) are admitted.
//!
//! Members tell each other the relay addresses they serve
//! ([`crate::Hello::relays`]); each node puts the other members' relays
//! in its endpoint's relay map, iroh picks the closest reachable one as
//! its home relay, and members dial each other through it until a direct
//! path is found.

use crate::members::{Host, Standing, short};
use iroh::EndpointId;
use iroh_relay::KeyCache;
use iroh_relay::server::{
    Access, AccessControl, ClientRequest, ConnectionId, Handlers, Metrics, RelayService,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The first bytes of a request for the relay.
pub const PREFIX: &[u8] = b"GET /relay";
/// The longest a relay client may take to finish its handshake.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// Keys the relay remembers (parsed once per client).
const KEY_CACHE: usize = 1024;
/// How often the relay's clients are checked again: a member removed, or
/// a stranger let in while an invite was open, is cut off.
const RECHECK_EVERY: Duration = Duration::from_secs(5);

/// The clients the relay admitted, and how many connections each has.
type Admitted = Arc<Mutex<HashMap<EndpointId, usize>>>;

/// This node's relay. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Relay {
    service: RelayService,
}

/// Admits this node itself, members, and strangers only while an invite
/// is open.
struct MembersOnly {
    host: Arc<dyn Host>,
    me: String,
    admitted: Admitted,
}

impl std::fmt::Debug for MembersOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MembersOnly")
    }
}

impl AccessControl for MembersOnly {
    async fn on_connect(&self, request: &ClientRequest) -> Access {
        let key = request.endpoint_id();
        let id = key.to_string();
        if id == self.me {
            return Access::Allow;
        }
        let allow = || {
            *lock(&self.admitted).entry(key).or_default() += 1;
            Access::Allow
        };
        match self.host.standing(&id).await {
            Standing::Member => allow(),
            Standing::Stranger if self.host.invite_open().await => allow(),
            standing => {
                tracing::warn!(node = %short(&id), "relay refused: {standing}");
                Access::Deny {
                    reason: Some("not a member of this glow".into()),
                }
            }
        }
    }

    fn on_disconnect(&self, endpoint_id: EndpointId, _connection_id: ConnectionId) {
        let mut admitted = lock(&self.admitted);
        if let Some(n) = admitted.get_mut(&endpoint_id) {
            *n -= 1;
            if *n == 0 {
                admitted.remove(&endpoint_id);
            }
        }
    }
}

fn lock(admitted: &Admitted) -> std::sync::MutexGuard<'_, HashMap<EndpointId, usize>> {
    admitted.lock().unwrap_or_else(|e| e.into_inner())
}

impl Relay {
    /// A relay for node `me`, admitting the members `host` lists, and
    /// checking its clients again every few seconds (a removal, or an
    /// invite that closed, cuts them off). Call within a Tokio runtime.
    pub fn new(host: Arc<dyn Host>, me: String) -> Relay {
        let admitted = Admitted::default();
        let service = RelayService::new(
            Handlers::default(),
            Default::default(),
            None,
            KeyCache::new(KEY_CACHE),
            Arc::new(MembersOnly {
                host: host.clone(),
                me,
                admitted: admitted.clone(),
            }),
            Arc::new(Metrics::default()),
        );
        let watched = service.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RECHECK_EVERY).await;
                let clients: Vec<EndpointId> = lock(&admitted).keys().copied().collect();
                for key in clients {
                    let allowed = match host.standing(&key.to_string()).await {
                        Standing::Member => true,
                        Standing::Stranger => host.invite_open().await,
                        Standing::Revoked => false,
                    };
                    if !allowed {
                        tracing::warn!(node = %short(&key.to_string()), "relay connection cut: not a member");
                        watched.clients().disconnect(key, None);
                        lock(&admitted).remove(&key);
                    }
                }
            }
        });
        Relay { service }
    }

    /// Serves one plain-HTTP connection whose request is for the relay.
    pub async fn serve(&self, stream: tokio::net::TcpStream) {
        self.service
            .clone()
            .handle_connection(stream, None, ESTABLISH_TIMEOUT)
            .await;
    }
}
