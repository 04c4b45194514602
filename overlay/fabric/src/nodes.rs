//! The other nodes this node knows of, as the catalog keeps them: found on
//! the LAN by the overlay (the server passes on what `peers` hears), listed
//! by `glow node list` and, next, the Devices page.

use crate::access::Principal;
use crate::error::{FabricError, Result};
use crate::fabric::Fabric;
use crate::ids::NodeId;
use crate::resource::now_ms;

/// Nodes the catalog keeps at most: a LAN that announces made-up ids, one
/// after another, cannot grow the table past it.
pub const MAX_KNOWN_NODES: i64 = 1024;

/// Days after which a node not heard from (and not a member) is forgotten.
pub const FORGET_AFTER_DAYS: i64 = 30;

/// A node this node knows of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownNode {
    /// Its id (its Ed25519 public key).
    pub id: NodeId,
    /// The name it announced.
    pub name: String,
    /// The socket addresses it announced.
    pub addrs: Vec<String>,
    /// When it was last heard from, ms since the epoch.
    pub last_seen_ms: i64,
    /// Still heard from on the LAN (not yet a member: "nearby").
    pub nearby: bool,
}

/// Only the node itself (the server's overlay, the local CLI) records
/// what it heard.
fn only_system(who: &Principal) -> Result<()> {
    match who {
        Principal::System => Ok(()),
        _ => Err(FabricError::Forbidden),
    }
}

/// File in the data dir holding the name the node last ran under.
pub const NODE_NAME_FILE: &str = "node.name";

/// The name the node in `data_dir` last ran under, if it ran. Blocking.
pub fn read_node_name(data_dir: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join(NODE_NAME_FILE))
        .ok()
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
}

impl Fabric {
    /// Records that `id` was heard from on the LAN now, with its name and
    /// addresses. This node itself is never recorded.
    pub async fn node_heard(
        &self,
        who: &Principal,
        id: NodeId,
        name: &str,
        addrs: &[String],
    ) -> Result<()> {
        only_system(who)?;
        if id == self.node_id() {
            return Ok(());
        }
        self.inner
            .catalog
            .node_heard(&id.to_string(), name, addrs, now_ms(), MAX_KNOWN_NODES)
            .await
    }

    /// Records that `id` (or, with `None`, every node: at start-up) is no
    /// longer heard from on the LAN. At start-up, nodes not heard from for
    /// [`FORGET_AFTER_DAYS`] are forgotten, so announcements of made-up ids
    /// cannot pile up run after run.
    pub async fn node_not_nearby(&self, who: &Principal, id: Option<NodeId>) -> Result<()> {
        only_system(who)?;
        let cat = &self.inner.catalog;
        if id.is_none() {
            cat.forget_nodes_before(now_ms() - FORGET_AFTER_DAYS * 86_400_000)
                .await?;
        }
        let id = id.map(|i| i.to_string());
        cat.node_not_nearby(id.as_deref()).await
    }

    /// Sets the name this node runs under (kept in the data dir, where
    /// `glow node id` reads it). Blocking (a small write).
    pub fn set_node_name(&self, name: &str) -> Result<()> {
        *self
            .inner
            .node_name
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(name.to_owned());
        std::fs::write(self.data_dir().join(NODE_NAME_FILE), format!("{name}\n"))?;
        Ok(())
    }

    /// The name this node runs (or last ran) under, if it has one.
    pub fn node_name(&self) -> Option<String> {
        let set = self
            .inner
            .node_name
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        set.or_else(|| read_node_name(self.data_dir()))
    }

    /// Every node this node knows of, nearby ones first: for the local
    /// operator and the node's administrators.
    pub async fn known_nodes(&self, who: &Principal) -> Result<Vec<KnownNode>> {
        match who {
            Principal::System => {}
            Principal::User { name, .. } if self.user(name).await?.is_admin => {}
            _ => return Err(FabricError::Forbidden),
        }
        let rows = self.inner.catalog.nodes().await?;
        Ok(rows
            .into_iter()
            // A row that does not name a node (never written by Glow) is
            // left out rather than failing the list.
            .filter_map(|r| {
                Some(KnownNode {
                    id: r.id.parse().ok()?,
                    name: r.name,
                    addrs: r.addrs,
                    last_seen_ms: r.last_seen,
                    nearby: r.nearby,
                })
            })
            .collect())
    }
}
