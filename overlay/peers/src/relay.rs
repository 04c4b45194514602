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
use iroh_relay::KeyCache;
use iroh_relay::server::{Access, AccessControl, ClientRequest, Handlers, Metrics, RelayService};
use std::sync::Arc;
use std::time::Duration;

/// The first bytes of a request for the relay.
pub const PREFIX: &[u8] = b"GET /relay";
/// The longest a relay client may take to finish its handshake.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// Keys the relay remembers (parsed once per client).
const KEY_CACHE: usize = 1024;

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
}

impl std::fmt::Debug for MembersOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MembersOnly")
    }
}

impl AccessControl for MembersOnly {
    async fn on_connect(&self, request: &ClientRequest) -> Access {
        let id = request.endpoint_id().to_string();
        if id == self.me {
            return Access::Allow;
        }
        match self.host.standing(&id).await {
            Standing::Member => Access::Allow,
            Standing::Stranger if self.host.invite_open().await => Access::Allow,
            standing => {
                tracing::warn!(node = %short(&id), "relay refused: {standing}");
                Access::Deny {
                    reason: Some("not a member of this glow".into()),
                }
            }
        }
    }
}

impl Relay {
    /// A relay for node `me`, admitting the members `host` lists.
    pub fn new(host: Arc<dyn Host>, me: String) -> Relay {
        Relay {
            service: RelayService::new(
                Handlers::default(),
                Default::default(),
                None,
                KeyCache::new(KEY_CACHE),
                Arc::new(MembersOnly { host, me }),
                Arc::new(Metrics::default()),
            ),
        }
    }

    /// Serves one plain-HTTP connection whose request is for the relay.
    pub async fn serve(&self, stream: tokio::net::TcpStream) {
        self.service
            .clone()
            .handle_connection(stream, None, ESTABLISH_TIMEOUT)
            .await;
    }
}
