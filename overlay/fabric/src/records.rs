//! What the members of a glow share, as versioned records: users (with
//! their password hashes, app passwords and SSH keys) and the member list
//! itself; folder definitions and share links next.
//!
//! Every change made on this node is *published*: the record of that kind
//! and key gets this node's counter bumped in its version vector and the
//! next sequence number, and its previous value goes to the record's
//! history. Records pulled from a member are *applied*: a newer one
//! (its vector after ours) replaces ours and changes the tables the fronts
//! read; of two concurrent ones the later change wins (then the higher
//! node id), the same choice on every node, with the vectors merged so the
//! result is newer than both; the loser stays in history. A node that
//! just joined adopts the glow's values over its own for its first pull
//! (its own accounts give way to the glow's).

use crate::access::Principal;
use crate::catalog::{AppPasswordRow, RecordRow, UserRow, new_id};
use crate::error::{FabricError, Result};
use crate::fabric::Fabric;
use crate::ids::{Causality, NodeId, VersionVector};
use crate::path::RelPath;
use crate::resource::{SshKey, now_ms};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Records of the members of the glow (key: node id).
pub const MEMBER: &str = "member";
/// Records of users (key: user name).
pub const USER: &str = "user";
/// Records of share links (key: the link's id).
pub const SHARE: &str = "share";
/// Records of folder definitions (key: `owner/name`). A definition says
/// the folder exists in the glow; where its replicas are is each node's
/// own (folder sync builds on it).
pub const FOLDER: &str = "folder";
/// Bytes of an invite's secret.
pub const INVITE_SECRET_LEN: usize = 10;
/// How long an invite works unless told otherwise.
pub const DEFAULT_INVITE_TTL: Duration = Duration::from_secs(15 * 60);
/// The longest an invite may be made to work.
pub const MAX_INVITE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The largest record value accepted from a member (a batch of them stays
/// well under the wire's largest message).
const MAX_VALUE: usize = 16 << 10;
/// The most nodes a record's version vector may name.
const MAX_VECTOR: usize = 256;
/// Meta key: the member whose records a node that just joined adopts.
const ADOPT_FROM: &str = "adopt_records_from";

/// A record as the fabric hands it to the overlay and takes it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedRecord {
    /// What it describes ([`USER`], [`MEMBER`], …).
    pub kind: String,
    /// Which one.
    pub key: String,
    /// Its value (JSON).
    pub value: String,
    /// Its version vector.
    pub version: VersionVector,
    /// The node where this value was made.
    pub origin: String,
    /// When, ms since the epoch.
    pub changed_at: i64,
    /// Who made it.
    pub changed_by: String,
    /// A deletion.
    pub deleted: bool,
    /// The sequence number of the node it comes from.
    pub sequence: i64,
}

impl SharedRecord {
    fn of(row: RecordRow) -> SharedRecord {
        SharedRecord {
            version: VersionVector::parse(&row.version_vector),
            kind: row.kind,
            key: row.key,
            value: row.value,
            origin: row.origin,
            changed_at: row.changed_at,
            changed_by: row.changed_by,
            deleted: row.deleted,
            sequence: row.sequence,
        }
    }

    fn row(&self) -> RecordRow {
        RecordRow {
            kind: self.kind.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
            version_vector: self.version.to_string(),
            origin: self.origin.clone(),
            changed_at: self.changed_at,
            changed_by: self.changed_by.clone(),
            deleted: self.deleted,
            sequence: 0,
            replaced_at: 0,
            reason: String::new(),
        }
    }
}

/// An earlier value of a record: who changed what, where and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordChange {
    /// The record's kind.
    pub kind: String,
    /// Its key.
    pub key: String,
    /// The node where the change was made.
    pub origin: String,
    /// Who made it.
    pub changed_by: String,
    /// When, ms.
    pub changed_at: i64,
    /// It was a deletion.
    pub deleted: bool,
    /// Still the current value (else replaced, for `reason`).
    pub current: bool,
    /// Why it was replaced ("replaced", "conflict", "joined"), if it was.
    pub reason: String,
}

/// What a node is to this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStanding {
    /// A member of this node's glow.
    Member,
    /// Was a member and was removed.
    Revoked,
    /// Never was a member.
    Stranger,
}

/// A member of this node's glow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its id.
    pub id: NodeId,
    /// Its name.
    pub name: String,
    /// Removed from the glow.
    pub revoked: bool,
    /// When it was added (or removed), ms.
    pub changed_at: i64,
    /// Its last known addresses.
    pub addrs: Vec<String>,
    /// The relay URLs it serves.
    pub relays: Vec<String>,
    /// The relay it was last reachable through.
    pub home_relay: Option<String>,
}

/// Where a member said it can be reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    /// Its name.
    pub name: String,
    /// Its direct addresses.
    pub addrs: Vec<String>,
    /// The relay URLs it serves.
    pub relays: Vec<String>,
    /// The relay it is reachable through now.
    pub home_relay: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct MemberValue {
    name: String,
    #[serde(default)]
    revoked: bool,
}

#[derive(Serialize, Deserialize)]
struct UserValue {
    name: String,
    password_hash: String,
    is_admin: bool,
    created_at: i64,
    #[serde(default)]
    ssh_keys: Vec<KeyValue>,
    #[serde(default)]
    app_passwords: Vec<AppValue>,
}

/// A folder as members pass its definition.
#[derive(Serialize, Deserialize)]
struct FolderValue {
    owner: String,
    name: String,
    #[serde(default)]
    media: bool,
}

/// A folder of the glow, as its definition says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlowFolder {
    /// Its owner's name.
    pub owner: String,
    /// Its name.
    pub name: String,
    /// Shown to TVs where it has a replica.
    pub media: bool,
    /// The node where it was defined.
    pub origin: String,
    /// When, ms.
    pub defined_at: i64,
}

/// A share link as members pass it: its folder by owner and name (ids
/// are each node's own), its token only as a digest. Opens and downloads
/// are counted on each node.
#[derive(Serialize, Deserialize)]
struct ShareValue {
    token_digest: String,
    owner: String,
    folder: String,
    path: String,
    kind: String,
    permission: String,
    expires_at: Option<i64>,
    password_hash: Option<String>,
    max_downloads: Option<i64>,
    revoked: bool,
    created_at: i64,
}

#[derive(Serialize, Deserialize)]
struct KeyValue {
    id: String,
    algorithm: String,
    public_key: String,
    fingerprint: String,
    comment: String,
}

#[derive(Serialize, Deserialize)]
struct AppValue {
    id: String,
    label: String,
    password_hash: String,
    created_at: i64,
}

/// What to do with a pulled record.
enum Decision {
    /// Ours is as new or newer.
    Skip,
    /// Theirs replaces ours (`reason` for ours in history).
    Take(&'static str),
    /// Ours wins a conflict: keep it with both vectors merged.
    Keep,
}

fn only_system(who: &Principal) -> Result<()> {
    match who {
        Principal::System => Ok(()),
        _ => Err(FabricError::Forbidden),
    }
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("records always encode")
}

fn bad_record(kind: &str, key: &str, why: impl std::fmt::Display) -> FabricError {
    FabricError::Invalid(format!("record {kind}/{key}: {why}"))
}

impl Fabric {
    async fn admin_or_system(&self, who: &Principal) -> Result<()> {
        match who {
            Principal::System => Ok(()),
            Principal::User { name, .. } if self.user(name).await?.is_admin => Ok(()),
            _ => Err(FabricError::Forbidden),
        }
    }

    /// Publishes a change made on this node: the record's vector gets this
    /// node's counter bumped and the next sequence number.
    async fn publish(
        &self,
        kind: &str,
        key: &str,
        value: String,
        deleted: bool,
        actor: &str,
    ) -> Result<()> {
        let _one_at_a_time = self.inner.records_lock.lock().await;
        let cat = &self.inner.catalog;
        let mut version = cat
            .record(kind, key)
            .await?
            .map(|r| VersionVector::parse(&r.version_vector))
            .unwrap_or_default();
        version.bump(&self.node_id());
        let now = now_ms();
        let record = SharedRecord {
            kind: kind.to_owned(),
            key: key.to_owned(),
            value,
            version,
            origin: self.node_id().to_string(),
            changed_at: now,
            changed_by: actor.to_owned(),
            deleted,
            sequence: 0,
        };
        cat.put_record(&record.row(), "replaced", now).await?;
        Ok(())
    }

    /// Publishes user `name` as it is now in the catalog (or its deletion).
    pub(crate) async fn publish_user(&self, name: &str, actor: &str) -> Result<()> {
        let cat = &self.inner.catalog;
        let Some(user) = cat.user_by_name(name).await? else {
            return self.publish(USER, name, "{}".into(), true, actor).await;
        };
        let value = UserValue {
            name: user.name.clone(),
            password_hash: user.password_hash.clone(),
            is_admin: user.is_admin != 0,
            created_at: user.created_at,
            ssh_keys: cat
                .ssh_keys(&user.id)
                .await?
                .into_iter()
                .map(|k| KeyValue {
                    id: k.id,
                    algorithm: k.algorithm,
                    public_key: k.public_key,
                    fingerprint: k.fingerprint,
                    comment: k.comment,
                })
                .collect(),
            app_passwords: cat
                .app_passwords(&user.id)
                .await?
                .into_iter()
                .map(|a| AppValue {
                    id: a.id,
                    label: a.label,
                    password_hash: a.password_hash,
                    created_at: a.created_at,
                })
                .collect(),
        };
        self.publish(USER, name, json(&value), false, actor).await
    }

    /// Publishes share link `id` as it is now in the catalog.
    pub(crate) async fn publish_share(&self, id: &str, actor: &str) -> Result<()> {
        let cat = &self.inner.catalog;
        let Some(row) = cat.share_by_id_or_digest(id, "").await? else {
            return Ok(());
        };
        let folders = cat.folders().await?;
        let Some(folder) = folders.iter().find(|f| f.id == row.folder_id) else {
            return Ok(());
        };
        let value = ShareValue {
            token_digest: row.token_digest,
            owner: folder.owner.clone(),
            folder: folder.name.clone(),
            path: row.path,
            kind: row.kind,
            permission: row.permission,
            expires_at: row.expires_at,
            password_hash: row.password_hash,
            max_downloads: row.max_downloads,
            revoked: row.revoked,
            created_at: row.created_at,
        };
        self.publish(SHARE, id, json(&value), false, actor).await
    }

    /// Publishes the definition of folder `owner/name` (it has a replica
    /// here).
    pub(crate) async fn publish_folder(&self, owner: &str, name: &str, actor: &str) -> Result<()> {
        let folders = self.inner.catalog.folders().await?;
        let Some(f) = folders.iter().find(|f| f.owner == owner && f.name == name) else {
            return Ok(());
        };
        let value = FolderValue {
            owner: f.owner.clone(),
            name: f.name.clone(),
            media: f.media,
        };
        self.publish(
            FOLDER,
            &format!("{owner}/{name}"),
            json(&value),
            false,
            actor,
        )
        .await
    }

    /// The folders of the glow, as their definitions say (with or without
    /// a replica on this node).
    pub async fn glow_folders(&self, who: &Principal) -> Result<Vec<GlowFolder>> {
        self.admin_or_system(who).await?;
        Ok(self
            .inner
            .catalog
            .records_of_kind(FOLDER)
            .await?
            .into_iter()
            .filter(|r| !r.deleted)
            .filter_map(|r| {
                let v: FolderValue = serde_json::from_str(&r.value).ok()?;
                Some(GlowFolder {
                    owner: v.owner,
                    name: v.name,
                    media: v.media,
                    origin: r.origin,
                    defined_at: r.changed_at,
                })
            })
            .collect())
    }

    /// Gives every user and share link that has none a record (a catalog
    /// from before records, or a change made by an older binary). At
    /// start-up.
    pub(crate) async fn ensure_records(&self) -> Result<()> {
        // One read per kind (every command opens the fabric), a write only
        // for what lacks a record.
        let cat = &self.inner.catalog;
        let keys = |rows: Vec<RecordRow>| {
            rows.into_iter()
                .map(|r| r.key)
                .collect::<std::collections::HashSet<String>>()
        };
        let users = keys(cat.records_of_kind(USER).await?);
        for user in cat.users().await? {
            if !users.contains(&user.name) {
                self.publish_user(&user.name, "system").await?;
            }
        }
        let folders = keys(cat.records_of_kind(FOLDER).await?);
        for f in cat.folders().await? {
            if !folders.contains(&format!("{}/{}", f.owner, f.name)) {
                self.publish_folder(&f.owner, &f.name, "system").await?;
            }
        }
        let shares = keys(cat.records_of_kind(SHARE).await?);
        for share in cat.shares(None).await? {
            if !shares.contains(&share.id) {
                self.publish_share(&share.id, "system").await?;
            }
        }
        Ok(())
    }

    /// This node's records numbered after `since`, in order: what a member
    /// pulls.
    pub async fn records_since(
        &self,
        who: &Principal,
        since: i64,
        limit: usize,
    ) -> Result<Vec<SharedRecord>> {
        only_system(who)?;
        // A node that just joined serves nothing until it has the glow's
        // records: its own accounts must not win over the glow's.
        if self.inner.catalog.meta(ADOPT_FROM).await?.is_some() {
            return Ok(Vec::new());
        }
        let rows = self
            .inner
            .catalog
            .records_since(since, limit.min(10_000) as i64)
            .await?;
        Ok(rows.into_iter().map(SharedRecord::of).collect())
    }

    /// The last of `peer`'s sequence numbers applied here (0: none).
    pub async fn peer_cursor(&self, who: &Principal, peer: &NodeId) -> Result<i64> {
        only_system(who)?;
        self.inner.catalog.peer_cursor(&peer.to_string()).await
    }

    /// Applies records pulled from member `from` (see the module's
    /// comment), then remembers the last sequence number. `more`: another
    /// batch follows. A record that does not make sense is skipped and
    /// logged; it does not stop the others.
    pub async fn apply_records(
        &self,
        who: &Principal,
        from: &NodeId,
        records: Vec<SharedRecord>,
        more: bool,
    ) -> Result<()> {
        only_system(who)?;
        // A node removed since its link was made gets nothing applied.
        if self.node_standing(from).await? != NodeStanding::Member {
            return Err(FabricError::Forbidden);
        }
        let _one_at_a_time = self.inner.records_lock.lock().await;
        let cat = &self.inner.catalog;
        let from_text = from.to_string();
        let adopting = cat.meta(ADOPT_FROM).await?.as_deref() == Some(from_text.as_str());
        let mut last = None;
        for record in records {
            match self.apply_one(&record, adopting).await {
                Ok(()) => {}
                Err(e @ FabricError::Invalid(_)) => {
                    tracing::warn!(from = %from.short(), "record from a member skipped: {e}");
                }
                // A database that failed now may not later: the cursor
                // stays before this record, which comes again.
                Err(e) => {
                    if let Some(done) = last {
                        cat.set_peer_cursor(&from_text, done).await?;
                    }
                    return Err(e);
                }
            }
            last = Some(last.unwrap_or(0).max(record.sequence));
        }
        if let Some(last) = last {
            cat.set_peer_cursor(&from_text, last).await?;
        }
        if adopting && !more {
            cat.delete_meta(ADOPT_FROM).await?;
            tracing::info!(from = %from.short(), "this node now has the glow's records");
        }
        Ok(())
    }

    async fn apply_one(&self, theirs: &SharedRecord, adopting: bool) -> Result<()> {
        let (kind, key) = (&theirs.kind, &theirs.key);
        if key.is_empty() || key.len() > 256 || kind.is_empty() || kind.len() > 32 {
            return Err(bad_record(kind, key, "no such kind or key"));
        }
        if theirs.value.len() > MAX_VALUE {
            return Err(bad_record(kind, key, "too large"));
        }
        if theirs.origin.parse::<NodeId>().is_err()
            || theirs.changed_by.len() > 64
            || theirs.version.iter().count() > MAX_VECTOR
            || key.chars().any(|c| c.is_control())
        {
            return Err(bad_record(kind, key, "malformed"));
        }
        let cat = &self.inner.catalog;
        let ours = cat.record(kind, key).await?.map(SharedRecord::of);
        let decision = match &ours {
            None => Decision::Take("replaced"),
            Some(o) if o.version == theirs.version => Decision::Skip,
            Some(_) if adopting => Decision::Take("joined"),
            Some(o) => match theirs.version.compare(&o.version) {
                Causality::After => Decision::Take("replaced"),
                Causality::Equal | Causality::Before => Decision::Skip,
                Causality::Concurrent => {
                    if (theirs.changed_at, &theirs.origin) > (o.changed_at, &o.origin) {
                        Decision::Take("conflict")
                    } else {
                        Decision::Keep
                    }
                }
            },
        };
        let now = now_ms();
        match decision {
            Decision::Skip => Ok(()),
            Decision::Take(reason) => {
                let mut stored = theirs.clone();
                if reason == "conflict"
                    && let Some(o) = &ours
                {
                    stored.version.merge(&o.version);
                }
                self.take_effect(&stored).await?;
                cat.put_record(&stored.row(), reason, now).await?;
                Ok(())
            }
            Decision::Keep => {
                let mut kept = ours.expect("a conflict has our side");
                kept.version.merge(&theirs.version);
                cat.add_record_history(&theirs.row(), "conflict", now)
                    .await?;
                cat.put_record(&kept.row(), "merged", now).await?;
                Ok(())
            }
        }
    }

    /// Makes the tables the fronts read say what `record` says.
    async fn take_effect(&self, record: &SharedRecord) -> Result<()> {
        let (kind, key) = (record.kind.as_str(), record.key.as_str());
        let cat = &self.inner.catalog;
        match kind {
            USER => {
                let local = cat.user_by_name(key).await?;
                if record.deleted {
                    if let Some(user) = local {
                        cat.delete_user(&user.id).await?;
                        self.inner.cache.clear();
                        self.reload_folders().await?;
                    }
                    return Ok(());
                }
                let v: UserValue =
                    serde_json::from_str(&record.value).map_err(|e| bad_record(kind, key, e))?;
                if v.name != key {
                    return Err(bad_record(kind, key, "names another user"));
                }
                crate::fabric::check_user_name(key)?;
                let row = UserRow {
                    id: local.map(|u| u.id).unwrap_or_else(new_id),
                    name: v.name,
                    password_hash: v.password_hash,
                    is_admin: v.is_admin as i64,
                    created_at: v.created_at,
                };
                let keys: Vec<SshKey> = v
                    .ssh_keys
                    .into_iter()
                    .map(|k| SshKey {
                        id: k.id,
                        algorithm: k.algorithm,
                        public_key: k.public_key,
                        fingerprint: k.fingerprint,
                        comment: k.comment,
                    })
                    .collect();
                let apps: Vec<AppPasswordRow> = v
                    .app_passwords
                    .into_iter()
                    .map(|a| AppPasswordRow {
                        id: a.id,
                        label: a.label,
                        password_hash: a.password_hash,
                        created_at: a.created_at,
                    })
                    .collect();
                cat.put_user_with_credentials(&row, &keys, &apps, now_ms())
                    .await?;
                self.inner.cache.clear();
                Ok(())
            }
            FOLDER => {
                let v: FolderValue =
                    serde_json::from_str(&record.value).map_err(|e| bad_record(kind, key, e))?;
                if key != format!("{}/{}", v.owner, v.name) {
                    return Err(bad_record(kind, key, "names another folder"));
                }
                crate::fabric::check_user_name(&v.owner)?;
                RelPath::from_components([v.name.as_str()])
                    .map_err(|_| bad_record(kind, key, "not a folder name"))?;
                // A definition only: no replica is made here (folder sync).
                Ok(())
            }
            SHARE => {
                let v: ShareValue =
                    serde_json::from_str(&record.value).map_err(|e| bad_record(kind, key, e))?;
                if record.deleted {
                    cat.revoke_share(key).await?;
                    return Ok(());
                }
                // The link's folder may not be on this node (yet): the
                // record is kept and passed on; the link opens where the
                // folder is.
                let folders = cat.folders().await?;
                let Some(folder) = folders
                    .iter()
                    .find(|f| f.owner == v.owner && f.name == v.folder)
                else {
                    return Ok(());
                };
                let path =
                    RelPath::parse(&v.path).map_err(|_| bad_record(kind, key, "not a path"))?;
                if !matches!(v.kind.as_str(), "file" | "dir")
                    || !matches!(v.permission.as_str(), "read" | "upload" | "readwrite")
                    || v.token_digest.len() != 64
                {
                    return Err(bad_record(kind, key, "not a link"));
                }
                cat.put_share(&crate::catalog::ShareRow {
                    id: key.to_owned(),
                    token_digest: v.token_digest,
                    token_sealed: None,
                    owner_id: folder.owner_id.clone(),
                    folder_id: folder.id.clone(),
                    path: path.as_str().to_owned(),
                    kind: v.kind,
                    permission: v.permission,
                    expires_at: v.expires_at,
                    password_hash: v.password_hash,
                    max_downloads: v.max_downloads,
                    served_millis: 0,
                    uses: 0,
                    revoked: v.revoked,
                    created_at: v.created_at,
                })
                .await?;
                Ok(())
            }
            MEMBER => {
                let id = key
                    .parse::<NodeId>()
                    .map_err(|_| bad_record(kind, key, "not a node id"))?;
                let v = serde_json::from_str::<MemberValue>(&record.value)
                    .map_err(|e| bad_record(kind, key, e))?;
                // Removal is for good: no record brings a removed node back
                // (records are not signed; a removed node could forge one).
                if !v.revoked
                    && !record.deleted
                    && self.node_standing(&id).await? == NodeStanding::Revoked
                {
                    return Err(bad_record(kind, key, "that node was removed for good"));
                }
                Ok(())
            }
            // A kind a newer node knows: kept and passed on as it is.
            _ => Ok(()),
        }
    }

    /// What `node` is to this node: a member of its glow, a removed one,
    /// or a stranger. The member this node joined through counts as a
    /// member until its records are here.
    pub async fn node_standing(&self, node: &NodeId) -> Result<NodeStanding> {
        let cat = &self.inner.catalog;
        let key = node.to_string();
        if let Some(r) = cat.record(MEMBER, &key).await? {
            let v: Option<MemberValue> = serde_json::from_str(&r.value).ok();
            return Ok(match v {
                Some(v) if !r.deleted && !v.revoked => NodeStanding::Member,
                _ => NodeStanding::Revoked,
            });
        }
        if cat.meta(ADOPT_FROM).await?.as_deref() == Some(key.as_str()) {
            return Ok(NodeStanding::Member);
        }
        Ok(NodeStanding::Stranger)
    }

    /// Every member of this node's glow (itself included), removed ones
    /// too, with their last known addresses. Empty: not in a glow.
    pub async fn members(&self, who: &Principal) -> Result<Vec<Member>> {
        self.admin_or_system(who).await?;
        let cat = &self.inner.catalog;
        let nodes: std::collections::HashMap<String, crate::catalog::NodeRow> = cat
            .nodes()
            .await?
            .into_iter()
            .map(|n| (n.id.clone(), n))
            .collect();
        let adopting = cat.meta(ADOPT_FROM).await?;
        let mut out = Vec::new();
        for r in cat.records_of_kind(MEMBER).await? {
            let (Ok(id), Ok(v)) = (
                r.key.parse::<NodeId>(),
                serde_json::from_str::<MemberValue>(&r.value),
            ) else {
                continue;
            };
            out.push(member_at(
                id,
                v.name,
                v.revoked || r.deleted,
                r.changed_at,
                nodes.get(&r.key),
            ));
        }
        // While it adopts the glow's records, a node that just joined
        // knows the inviter only (and pulls from no one else).
        if let Some(inviter) = adopting
            && let Ok(id) = inviter.parse::<NodeId>()
        {
            out.retain(|m| m.id == self.node_id());
            let node = nodes.get(&inviter);
            let name = node.map(|n| n.name.clone()).unwrap_or_default();
            out.push(member_at(id, name, false, 0, node));
        }
        Ok(out)
    }

    /// Records where member `id` can be reached (it said so).
    pub async fn member_reached(&self, id: &NodeId, reach: &Reach) -> Result<()> {
        if *id == self.node_id() {
            return Ok(());
        }
        let clean = |v: &[String]| -> Vec<String> {
            v.iter()
                .filter(|a| a.len() <= 256 && !a.contains(','))
                .take(16)
                .cloned()
                .collect()
        };
        self.inner
            .catalog
            .node_reached(
                &id.to_string(),
                &clean_name(&reach.name),
                &clean(&reach.addrs),
                &clean(&reach.relays),
                reach
                    .home_relay
                    .as_deref()
                    .filter(|h| h.len() <= 256 && !h.contains(','))
                    .unwrap_or(""),
                now_ms(),
                crate::nodes::MAX_KNOWN_NODES,
            )
            .await
    }

    /// Whether an invite this node wrote is open (unused, not expired).
    pub async fn invite_open(&self) -> Result<bool> {
        self.inner.catalog.invite_open(now_ms()).await
    }

    /// Writes an invite that works once, for `ttl`: returns its secret
    /// (kept here only as a digest). The first invite forms the glow: this
    /// node becomes its first member.
    pub async fn create_invite(
        &self,
        who: &Principal,
        ttl: Duration,
    ) -> Result<[u8; INVITE_SECRET_LEN]> {
        self.admin_or_system(who).await?;
        if ttl.is_zero() || ttl > MAX_INVITE_TTL {
            return Err(FabricError::Invalid(
                "an invite works for between 1 second and 7 days".into(),
            ));
        }
        let me = self.node_id().to_string();
        if self.inner.catalog.record(MEMBER, &me).await?.is_none() {
            let name = self.node_name().unwrap_or_default();
            self.publish(
                MEMBER,
                &me,
                json(&MemberValue {
                    name,
                    revoked: false,
                }),
                false,
                &actor_of(who),
            )
            .await?;
        }
        let mut secret = [0u8; INVITE_SECRET_LEN];
        getrandom::fill(&mut secret)
            .map_err(|e| FabricError::Io(std::io::Error::other(e.to_string())))?;
        let now = now_ms();
        self.inner.catalog.forget_invites_before(now).await?;
        self.inner
            .catalog
            .insert_invite(
                &blake3::hash(&secret).to_hex(),
                now,
                now + ttl.as_millis() as i64,
                &actor_of(who),
            )
            .await?;
        Ok(secret)
    }

    /// Node `node` presents an invite's secret: if it is known, unused and
    /// not expired, it is used up and the node becomes a member. The error
    /// never says which of the three it was.
    pub async fn redeem_invite(
        &self,
        who: &Principal,
        secret: &[u8],
        node: &NodeId,
        reach: &Reach,
    ) -> Result<()> {
        let digest: [u8; 32] = *blake3::hash(secret).as_bytes();
        self.redeem_invite_digest(who, &digest, node, reach).await
    }

    /// The digests of the invites open now (the overlay checks a joining
    /// node's proof against each).
    pub async fn open_invite_digests(&self, who: &Principal) -> Result<Vec<[u8; 32]>> {
        only_system(who)?;
        Ok(self
            .inner
            .catalog
            .open_invites(now_ms())
            .await?
            .iter()
            .filter_map(|d| d.parse::<crate::ids::ContentHash>().ok())
            .map(|h| *h.as_bytes())
            .collect())
    }

    /// [`Fabric::redeem_invite`] for the invite of this digest.
    pub async fn redeem_invite_digest(
        &self,
        who: &Principal,
        digest: &[u8; 32],
        node: &NodeId,
        reach: &Reach,
    ) -> Result<()> {
        only_system(who)?;
        if self.node_standing(node).await? == NodeStanding::Revoked {
            return Err(FabricError::Forbidden);
        }
        let digest = blake3::Hash::from_bytes(*digest).to_hex();
        if !self
            .inner
            .catalog
            .use_invite(&digest, &node.to_string(), now_ms())
            .await?
        {
            return Err(FabricError::Forbidden);
        }
        let name = clean_name(&reach.name);
        self.member_reached(node, reach).await?;
        self.publish(
            MEMBER,
            &node.to_string(),
            json(&MemberValue {
                name,
                revoked: false,
            }),
            false,
            "invite",
        )
        .await
    }

    /// This node was welcomed into the glow of `inviter`: it will adopt
    /// that member's records over its own on its first pull, and it knows
    /// where the members listen.
    pub async fn joined(
        &self,
        who: &Principal,
        inviter: &NodeId,
        members: &[(NodeId, Reach)],
    ) -> Result<()> {
        only_system(who)?;
        // The glow this node was in before (if any) is left behind: its
        // members would otherwise travel into the new one.
        {
            let _one_at_a_time = self.inner.records_lock.lock().await;
            self.inner.catalog.leave_glow(now_ms()).await?;
        }
        for (id, reach) in members {
            self.member_reached(id, reach).await?;
        }
        self.inner
            .catalog
            .set_meta(ADOPT_FROM, &inviter.to_string())
            .await
    }

    /// Removes a member (by id, the start of its id, or its name) from the
    /// glow: every member refuses its key from then on.
    pub async fn remove_member(&self, who: &Principal, which: &str) -> Result<Member> {
        self.admin_or_system(who).await?;
        let members = self.members(who).await?;
        let found: Vec<&Member> = members
            .iter()
            .filter(|m| {
                !m.revoked
                    && (m.name == which
                        || (which.len() >= 6 && m.id.to_string().starts_with(which)))
            })
            .collect();
        let member = match found.as_slice() {
            [one] => (*one).clone(),
            [] => {
                return Err(FabricError::Invalid(format!(
                    "no member named {which:?} (see `glow node list`)"
                )));
            }
            _ => {
                return Err(FabricError::Invalid(format!(
                    "{which:?} names several members: give its id"
                )));
            }
        };
        if member.id == self.node_id() {
            return Err(FabricError::Invalid(
                "this node cannot remove itself: remove it from another member".into(),
            ));
        }
        self.publish(
            MEMBER,
            &member.id.to_string(),
            json(&MemberValue {
                name: member.name.clone(),
                revoked: true,
            }),
            false,
            &actor_of(who),
        )
        .await?;
        Ok(Member {
            revoked: true,
            ..member
        })
    }

    /// Changes to shared records, newest first (of `kind`, or all): the
    /// current values, then earlier ones.
    pub async fn record_changes(
        &self,
        who: &Principal,
        kind: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RecordChange>> {
        self.admin_or_system(who).await?;
        let cat = &self.inner.catalog;
        let mut out: Vec<RecordChange> = Vec::new();
        let kinds: Vec<&str> = match kind {
            Some(k) => vec![k],
            None => vec![USER, FOLDER, SHARE, MEMBER],
        };
        for k in kinds {
            for r in cat.records_of_kind(k).await? {
                out.push(RecordChange {
                    kind: r.kind,
                    key: r.key,
                    origin: r.origin,
                    changed_by: r.changed_by,
                    changed_at: r.changed_at,
                    deleted: r.deleted,
                    current: true,
                    reason: String::new(),
                });
            }
        }
        for r in cat.record_history(kind, limit as i64).await? {
            out.push(RecordChange {
                kind: r.kind,
                key: r.key,
                origin: r.origin,
                changed_by: r.changed_by,
                changed_at: r.changed_at,
                deleted: r.deleted,
                current: false,
                reason: r.reason,
            });
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.changed_at));
        out.truncate(limit);
        Ok(out)
    }
}

/// A member as [`Fabric::members`] lists it, with where `node` (this
/// node's row for it, if any) says it was last reached.
fn member_at(
    id: NodeId,
    name: String,
    revoked: bool,
    changed_at: i64,
    node: Option<&crate::catalog::NodeRow>,
) -> Member {
    Member {
        id,
        name,
        revoked,
        changed_at,
        addrs: node.map(|n| n.addrs.clone()).unwrap_or_default(),
        relays: node.map(|n| n.relays.clone()).unwrap_or_default(),
        home_relay: node.map(|n| n.home_relay.clone()).filter(|h| !h.is_empty()),
    }
}

/// Who made a change, as records keep it.
pub(crate) fn actor_of(who: &Principal) -> String {
    match who {
        Principal::User { name, .. } => name.clone(),
        _ => "operator".into(),
    }
}

/// A node name as this node keeps it: printable, at most 64 characters.
fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect::<String>()
        .trim()
        .to_owned()
}
