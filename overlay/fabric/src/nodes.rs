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

/// What a node is, as lists show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// This node.
    This,
    /// A member of this node's glow.
    Member,
    /// Removed from the glow.
    Removed,
    /// Not a member, heard on the LAN now.
    Nearby,
    /// Not a member, not heard now.
    Away,
}

impl NodeState {
    /// The word lists and the JSON API use.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::This => "this",
            NodeState::Member => "member",
            NodeState::Removed => "removed",
            NodeState::Nearby => "nearby",
            NodeState::Away => "away",
        }
    }
}

/// The link this node has to a member now (the overlay reports it).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinkInfo {
    /// Over a direct path (else through a relay).
    pub direct: bool,
    /// Round-trip time of the selected path, ms.
    pub rtt_ms: f64,
    /// The selected path's address.
    pub remote: String,
    /// What the link is good for (see [`LinkClass`]).
    #[serde(default)]
    pub class: LinkClass,
}

/// What a link is good for, as the mission's seed classes them: bulk
/// transfer prefers `local`, then `wan` (direct before relayed); a
/// `control` link carries metadata only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkClass {
    /// A direct path on the same network: a private address, a few ms.
    Local,
    /// Across the Internet (direct or relayed).
    #[default]
    Wan,
    /// Slow: hundreds of ms round trip (metadata only).
    Control,
}

impl LinkClass {
    /// Round trips at or above this make a link `control`.
    pub const CONTROL_RTT_MS: f64 = 300.0;
    /// Direct round trips below this to a private address make it `local`.
    pub const LOCAL_RTT_MS: f64 = 10.0;

    /// The class of a path: `direct` or relayed, its round trip, and
    /// whether the far end's address is private (a LAN's).
    pub fn of(direct: bool, rtt_ms: f64, private_remote: bool) -> LinkClass {
        if rtt_ms >= Self::CONTROL_RTT_MS {
            LinkClass::Control
        } else if direct && private_remote && rtt_ms < Self::LOCAL_RTT_MS {
            LinkClass::Local
        } else {
            LinkClass::Wan
        }
    }

    /// The word lists and the API show.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkClass::Local => "local",
            LinkClass::Wan => "wan",
            LinkClass::Control => "control",
        }
    }
}

/// A node as lists show it: this node, members, nearby and known ones.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    /// Its id.
    pub id: NodeId,
    /// Its name.
    pub name: String,
    /// What it is to this node.
    pub state: NodeState,
    /// Heard on the LAN now.
    pub nearby: bool,
    /// Its last known addresses.
    pub addrs: Vec<String>,
    /// When it was last heard from or reached (none for this node).
    pub last_seen_ms: Option<i64>,
    /// This node's link to it now, if any.
    pub link: Option<LinkInfo>,
}

/// Only the node itself (the server's overlay, the local CLI) records
/// what it heard.
fn only_system(who: &Principal) -> Result<()> {
    match who {
        Principal::System => Ok(()),
        _ => Err(FabricError::Forbidden),
    }
}

/// Meta key: the overlay's links as the server last noted them.
const LINKS: &str = "overlay_links";
/// Meta key: the overlay addresses this node listens on.
const OWN_ADDRS: &str = "overlay_addrs";

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

    /// Records the overlay addresses this node listens on now (the server,
    /// at start): invites written by the CLI carry them, and the next
    /// start tries the same port again so members find it where it was.
    pub async fn set_own_addrs(&self, who: &Principal, addrs: &[String]) -> Result<()> {
        only_system(who)?;
        self.inner
            .catalog
            .set_meta(OWN_ADDRS, &addrs.join(","))
            .await
    }

    /// The overlay addresses this node listened on when it last ran
    /// (socket addresses; its home relay's URL is noted beside them).
    pub async fn own_addrs(&self) -> Result<Vec<String>> {
        Ok(self
            .own_notes()
            .await?
            .into_iter()
            .filter(|a| !a.contains("://"))
            .collect())
    }

    /// The relay this node was reachable through when it last ran.
    pub async fn own_home_relay(&self) -> Result<Option<String>> {
        Ok(self
            .own_notes()
            .await?
            .into_iter()
            .find(|a| a.contains("://")))
    }

    async fn own_notes(&self) -> Result<Vec<String>> {
        Ok(self
            .inner
            .catalog
            .meta(OWN_ADDRS)
            .await?
            .unwrap_or_default()
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// Sets the links the overlay has now (the server, every few seconds).
    /// They are noted in the catalog too, for commands run beside the
    /// server, when a link comes, goes or changes path, and every 30 s.
    pub async fn set_links(&self, who: &Principal, links: Vec<(NodeId, LinkInfo)>) -> Result<()> {
        only_system(who)?;
        let now = now_ms();
        let persist = {
            let mut held = self.inner.links.lock().unwrap_or_else(|e| e.into_inner());
            let shape = |l: &[(NodeId, LinkInfo)]| -> Vec<(NodeId, bool, String)> {
                l.iter()
                    .map(|(id, i)| (*id, i.direct, i.remote.clone()))
                    .collect()
            };
            let changed = shape(&held.1) != shape(&links) || now - held.0 > 30_000;
            if changed {
                held.0 = now;
            }
            held.1 = links.clone();
            changed
        };
        if persist {
            let noted: Vec<(String, LinkInfo)> = links
                .into_iter()
                .map(|(id, l)| (id.to_string(), l))
                .collect();
            let text = serde_json::to_string(&(now, noted)).unwrap_or_default();
            self.inner.catalog.set_meta(LINKS, &text).await?;
        }
        Ok(())
    }

    /// The links the overlay has now: this process's own if it runs the
    /// overlay, else what the server noted in the last minute.
    async fn links_now(&self) -> Result<Vec<(NodeId, LinkInfo)>> {
        {
            let held = self.inner.links.lock().unwrap_or_else(|e| e.into_inner());
            if held.0 != 0 {
                return Ok(held.1.clone());
            }
        }
        let Some(text) = self.inner.catalog.meta(LINKS).await? else {
            return Ok(Vec::new());
        };
        let Ok((at, noted)) = serde_json::from_str::<(i64, Vec<(String, LinkInfo)>)>(&text) else {
            return Ok(Vec::new());
        };
        if now_ms() - at > 60_000 {
            return Ok(Vec::new());
        }
        Ok(noted
            .into_iter()
            .filter_map(|(id, l)| Some((id.parse().ok()?, l)))
            .collect())
    }

    /// This node, then the members of its glow, then the other nodes it
    /// knows of (nearby first), then removed members: for `glow node list`,
    /// the Devices page and the JSON API.
    pub async fn node_views(&self, who: &Principal) -> Result<Vec<NodeView>> {
        let known = self.known_nodes(who).await?;
        let members = self.members(who).await?;
        let links = self.links_now().await?;
        let me = self.node_id();
        let mut out = vec![NodeView {
            id: me,
            name: self.node_name().unwrap_or_default(),
            state: NodeState::This,
            nearby: false,
            addrs: Vec::new(),
            last_seen_ms: None,
            link: None,
        }];
        let mut removed = Vec::new();
        for m in members.iter().filter(|m| m.id != me) {
            let k = known.iter().find(|n| n.id == m.id);
            let view = NodeView {
                id: m.id,
                name: m.name.clone(),
                state: if m.revoked {
                    NodeState::Removed
                } else {
                    NodeState::Member
                },
                nearby: k.is_some_and(|k| k.nearby),
                addrs: k.map(|k| k.addrs.clone()).unwrap_or_default(),
                last_seen_ms: k.map(|k| k.last_seen_ms),
                link: links
                    .iter()
                    .find(|(id, _)| *id == m.id)
                    .map(|(_, l)| l.clone()),
            };
            if m.revoked {
                removed.push(view);
            } else {
                out.push(view);
            }
        }
        for k in known
            .into_iter()
            .filter(|k| !members.iter().any(|m| m.id == k.id))
        {
            out.push(NodeView {
                id: k.id,
                name: k.name,
                state: if k.nearby {
                    NodeState::Nearby
                } else {
                    NodeState::Away
                },
                nearby: k.nearby,
                addrs: k.addrs,
                last_seen_ms: Some(k.last_seen_ms),
                link: None,
            });
        }
        out.extend(removed);
        Ok(out)
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

#[cfg(test)]
mod link_tests {
    use super::LinkClass;

    #[test]
    fn links_are_classed_by_path_and_round_trip() {
        assert_eq!(LinkClass::of(true, 0.4, true), LinkClass::Local);
        assert_eq!(LinkClass::of(true, 40.0, true), LinkClass::Wan);
        assert_eq!(LinkClass::of(true, 0.4, false), LinkClass::Wan);
        assert_eq!(LinkClass::of(false, 0.4, true), LinkClass::Wan);
        assert_eq!(LinkClass::of(true, 450.0, true), LinkClass::Control);
        assert_eq!(LinkClass::of(false, 800.0, false), LinkClass::Control);
    }
}
