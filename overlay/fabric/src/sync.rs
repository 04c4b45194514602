//! Folder sync's one door into the fabric: a replica's index in sequence
//! order, the content this node already has for a hash, and
//! [`Fabric::apply_remote`], which takes a change made on another replica
//! with that replica's version vector (this node's counter is not bumped:
//! the change is not this node's).
//!
//! Every change goes through the same machinery as a local write: new
//! content streams to a temp file beside its target and is checked against
//! the hash the other replica announced before it replaces anything; the
//! content it replaces is kept as a version (so "restore" works on every
//! node), and a deletion moves the file to the trash. Nothing outside the
//! folder can be named: paths are [`RelPath`]s, resolved beneath the
//! folder's root by the kernel.
//!
//! Two concurrent changes to one path (their version vectors are
//! concurrent) keep both contents, as Syncthing does: the newer
//! modification keeps the name (ties: the larger node id), the other is
//! written beside it as `name.sync-conflict-YYYYMMDD-HHMMSS-<node>.ext`,
//! named after its own time and node, so every replica makes the same copy.
//! An edit wins over a concurrent deletion.

use crate::catalog::{EntryRow, NewEntry};
use crate::error::{FabricError, Result};
use crate::fabric::{Fabric, blocking};
use crate::ids::{Causality, ContentHash, VersionVector};
use crate::path::RelPath;
use crate::resource::{EntryKind, Folder};
use crate::store::beneath::{Parent, Root, Standing};
use crate::store::local;
use std::sync::Arc;
use tokio::io::AsyncRead;

/// The name of a transfer's temp file, before the content's hash: a cut
/// transfer resumes from what it holds (kept a day across restarts).
pub const PARTIAL_PREFIX: &str = ".glow-tmp-sync-";

/// Entries in one index answer at most.
pub const INDEX_BATCH: i64 = 500;
/// What the trash and versions name as the front of a synced change.
const FRONT: &str = "sync";

/// A folder this node holds a replica of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    /// `owner/name`: how every node names the folder.
    pub key: String,
    /// This replica's index id (its folder id: a replica made again starts
    /// a new index, and peers read it from the start).
    pub index_id: String,
}

/// An entry as another replica has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteEntry {
    /// Path inside the folder.
    pub path: String,
    /// File or directory.
    pub kind: EntryKind,
    /// Size in bytes.
    pub size: i64,
    /// Modification time, ns.
    pub mtime_ns: i64,
    /// BLAKE3 of the content (live files).
    pub hash: Option<ContentHash>,
    /// Its version vector.
    pub version: VersionVector,
    /// The node that made this content.
    pub modified_by: String,
    /// A deletion.
    pub deleted: bool,
}

impl From<&EntryRow> for RemoteEntry {
    fn from(e: &EntryRow) -> RemoteEntry {
        RemoteEntry {
            path: e.path.clone(),
            kind: e.kind(),
            size: e.size,
            mtime_ns: e.mtime_ns,
            hash: e.hash,
            version: e.version_vector.clone(),
            modified_by: e.modified_by.clone(),
            deleted: e.deleted,
        }
    }
}

/// One batch of a replica's index.
#[derive(Clone, Debug)]
pub struct IndexBatch {
    /// The replica's index id (its folder id: a replica made again starts
    /// a new index, and peers read it from the start).
    pub index_id: String,
    /// The entries, in sequence order, ignored ones left out.
    pub entries: Vec<EntryRow>,
    /// The last sequence looked at (past ignored entries too).
    pub until: i64,
    /// More entries follow.
    pub more: bool,
}

/// What a remote entry needs here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: this node has it, or something newer.
    Nothing,
    /// Its content (from this node, [`Fabric::local_content`], or a peer).
    Content,
    /// Only [`Fabric::apply_remote`] without content (a deletion, a
    /// directory, the same content with another version vector).
    Apply,
}

/// What [`Fabric::apply_remote`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Nothing: this node has it, or something newer.
    Skipped,
    /// The entry was taken as it is (the disk already matched).
    Recorded,
    /// The content was written, a directory made, or a path deleted.
    Changed,
    /// Both contents kept: the losing one is at this path now.
    Conflict(String),
}

/// How a remote entry relates to the local one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Skip,
    /// Same content: only the version vectors merge.
    Merge,
    /// The remote entry replaces the local one.
    Take,
    /// Concurrent changes; `remote_wins`: the remote keeps the name.
    Conflict {
        remote_wins: bool,
    },
}

fn same_content(l: &EntryRow, r: &RemoteEntry) -> bool {
    l.deleted == r.deleted && (l.deleted || (l.kind() == r.kind && l.hash == r.hash))
}

fn decide(local: Option<&EntryRow>, r: &RemoteEntry) -> Decision {
    let Some(l) = local else {
        return if r.deleted {
            Decision::Merge
        } else {
            Decision::Take
        };
    };
    match r.version.compare(&l.version_vector) {
        Causality::Equal | Causality::Before => Decision::Skip,
        Causality::After if same_content(l, r) => Decision::Merge,
        Causality::After => Decision::Take,
        Causality::Concurrent if same_content(l, r) => Decision::Merge,
        Causality::Concurrent => {
            let remote_wins = match (l.deleted, r.deleted) {
                // An edit wins over a deletion.
                (true, false) => true,
                (false, true) => false,
                _ => (r.mtime_ns, r.modified_by.as_str()) > (l.mtime_ns, l.modified_by.as_str()),
            };
            Decision::Conflict { remote_wins }
        }
    }
}

/// Gives `file` the other replica's modification time (ns since the
/// epoch; none before it).
fn set_mtime(file: &std::fs::File, mtime_ns: i64) -> Result<()> {
    let ns = u64::try_from(mtime_ns).unwrap_or(0);
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns))?;
    Ok(())
}

/// `dir/name.sync-conflict-YYYYMMDD-HHMMSS-<node>.ext` for a content of
/// `path` made at `mtime_ns` by `node`.
pub fn conflict_name(path: &RelPath, mtime_ns: i64, node: &str) -> Result<RelPath> {
    let name = path.name();
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let when = chrono::DateTime::from_timestamp(
        mtime_ns.div_euclid(1_000_000_000),
        mtime_ns.rem_euclid(1_000_000_000) as u32,
    )
    .unwrap_or_default()
    .format("%Y%m%d-%H%M%S");
    let node: String = node.chars().take(7).collect();
    let node = if node.is_empty() {
        "unknown".into()
    } else {
        node
    };
    path.parent()
        .join(&format!("{stem}.sync-conflict-{when}-{node}{ext}"))
}

impl Fabric {
    /// The folders this node holds a replica of.
    pub fn replicas(&self) -> Vec<Replica> {
        let mut out: Vec<Replica> = self
            .all_folders()
            .into_iter()
            .map(|f| Replica {
                key: format!("{}/{}", f.owner, f.name),
                index_id: f.id.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// This node's replica of folder `key` (`owner/name`).
    fn replica(&self, key: &str) -> Result<Arc<Folder>> {
        let (owner, name) = key
            .split_once('/')
            .ok_or_else(|| FabricError::Invalid(format!("{key:?} names no folder")))?;
        self.find_folder(owner, name).ok_or(FabricError::NotFound)
    }

    /// The entries of this node's replica of `key` changed after sequence
    /// `since`, in order, at most [`INDEX_BATCH`] looked at, without those
    /// its ignore rules leave out ([`crate::ignore`]).
    pub async fn index_since(&self, key: &str, since: i64) -> Result<IndexBatch> {
        let folder = self.replica(key)?;
        let rows = self
            .inner
            .catalog
            .entries_since(&folder.id, since, INDEX_BATCH)
            .await?;
        let more = rows.len() as i64 >= INDEX_BATCH;
        let until = rows.last().map_or(since, |r| r.sequence);
        let rules = self.ignore_rules(&folder).await;
        let entries = rows
            .into_iter()
            .filter(|r| !rules.ignores(&r.path, r.kind() == EntryKind::Dir))
            .collect();
        Ok(IndexBatch {
            index_id: folder.id.clone(),
            entries,
            until,
            more,
        })
    }

    /// Where this node is in `peer`'s index of folder `key`.
    pub async fn sync_cursor(&self, key: &str, peer: &str) -> Result<Option<(String, i64)>> {
        let folder = self.replica(key)?;
        self.inner.catalog.sync_cursor(&folder.id, peer).await
    }

    /// Remembers where this node is in `peer`'s index of folder `key`.
    pub async fn set_sync_cursor(
        &self,
        key: &str,
        peer: &str,
        index_id: &str,
        sequence: i64,
    ) -> Result<()> {
        let folder = self.replica(key)?;
        self.inner
            .catalog
            .set_sync_cursor(&folder.id, peer, index_id, sequence)
            .await
    }

    /// Notes how a pull of folder `key` from `peer` went: what is left of
    /// the batch read, why it failed (empty: it did not), and how many
    /// content bytes it brought.
    pub async fn note_sync(
        &self,
        key: &str,
        peer: &str,
        left: (i64, i64),
        error: &str,
        received: u64,
    ) -> Result<()> {
        let folder = self.replica(key)?;
        let error: String = error.chars().take(300).collect();
        self.inner
            .catalog
            .set_sync_state(
                &folder.id,
                peer,
                crate::resource::now_ms(),
                left,
                &error,
                i64::try_from(received).unwrap_or(i64::MAX),
            )
            .await
    }

    /// How this node's replica of `key` stands with each peer it pulls
    /// from (administrators and the folder's owner).
    pub async fn sync_status(
        &self,
        who: &crate::access::Principal,
        key: &str,
    ) -> Result<Vec<crate::catalog::SyncStateRow>> {
        let folder = self.replica(key)?;
        match who {
            crate::access::Principal::System => {}
            crate::access::Principal::User { name, .. } if *name == folder.owner => {}
            crate::access::Principal::User { name, .. } if self.user(name).await?.is_admin => {}
            _ => return Err(FabricError::NotFound),
        }
        self.inner.catalog.sync_states(&folder.id).await
    }

    /// What remote entry `e` of folder `key` needs here.
    pub async fn remote_need(&self, key: &str, e: &RemoteEntry) -> Result<Need> {
        let folder = self.replica(key)?;
        let rel = RelPath::parse(&e.path)?;
        if rel.is_root()
            || self
                .ignore_rules(&folder)
                .await
                .ignores(rel.as_str(), e.kind == EntryKind::Dir)
        {
            return Ok(Need::Nothing);
        }
        let local = self.inner.catalog.entry(&folder.id, rel.as_str()).await?;
        Ok(match decide(local.as_ref(), e) {
            Decision::Skip => Need::Nothing,
            Decision::Merge => Need::Apply,
            Decision::Take | Decision::Conflict { .. } => {
                if e.deleted || e.kind == EntryKind::Dir {
                    Need::Apply
                } else {
                    Need::Content
                }
            }
        })
    }

    /// Content with hash `hash` this node already holds: a live file of
    /// folder `key` the catalog says has it (a renamed or copied file), or
    /// a kept version. Whoever reads it must check the hash (the disk may
    /// have changed since the catalog looked).
    pub async fn local_content(
        &self,
        key: &str,
        hash: &ContentHash,
    ) -> Result<Option<(std::fs::File, u64)>> {
        let folder = self.replica(key)?;
        let rows = self
            .inner
            .catalog
            .live_entries_with_hash(&folder.id, hash)
            .await?;
        for row in rows {
            let Ok(rel) = RelPath::parse(&row.path) else {
                continue;
            };
            let path = folder.path.clone();
            let opened = blocking(move || {
                let (_, file, meta) = Root::open_regular(&path, &rel)?;
                Ok((file, meta))
            })
            .await;
            if let Ok((file, meta)) = opened
                && meta.len() as i64 == row.size
                && local::mtime_ns(&meta) == row.mtime_ns
            {
                return Ok(Some((file, meta.len())));
            }
        }
        if self.inner.blobs.has(hash).await {
            let blobs = self.inner.blobs.clone();
            let h = *hash;
            let file = blocking(move || blobs.open_blob(&h)).await?;
            let len = {
                let f = file.try_clone()?;
                blocking(move || Ok(f.metadata()?.len())).await?
            };
            return Ok(Some((file, len)));
        }
        Ok(None)
    }

    /// Applies remote entry `e` of folder `key` made on another replica:
    /// with its content from `body` when [`Fabric::remote_need`] said
    /// [`Need::Content`] (checked against `e.hash` before it replaces
    /// anything). Decides again under the folder's lock, so a local change
    /// made meanwhile is not lost.
    pub async fn apply_remote(
        &self,
        key: &str,
        e: &RemoteEntry,
        body: Option<Box<dyn AsyncRead + Unpin + Send>>,
    ) -> Result<Applied> {
        let folder = self.replica(key)?;
        let rel = RelPath::parse(&e.path)?;
        if rel.is_root()
            || self
                .ignore_rules(&folder)
                .await
                .ignores(rel.as_str(), e.kind == EntryKind::Dir)
        {
            return Ok(Applied::Skipped);
        }
        if !e.deleted && e.kind == EntryKind::Dir {
            self.make_parents(&folder, &rel).await?;
        }
        // The content first, outside the lock: it may take long.
        let staged = match body {
            Some(body) if !e.deleted && e.kind == EntryKind::File => {
                Some(self.stage(&folder, &rel, e, body).await?)
            }
            _ => None,
        };
        let result = self.apply_staged(&folder, &rel, e, staged.as_ref()).await;
        if let Some(s) = staged
            && !s.used.load(std::sync::atomic::Ordering::Relaxed)
        {
            s.parent.remove_temp(&s.tmp);
        }
        result
    }

    /// Starts putting together remote file `e` of folder `key`: its temp
    /// file beside the target, named after the content's hash, holds what
    /// a cut transfer wrote before, or else a copy of the local file at
    /// that path, and has the new length. The caller writes what is
    /// missing and calls [`Fabric::finish_remote`]; dropped without it,
    /// the temp file stays for the next try.
    pub async fn begin_remote(&self, key: &str, e: &RemoteEntry) -> Result<Incoming> {
        let folder = self.replica(key)?;
        let rel = RelPath::parse(&e.path)?;
        let hash = e
            .hash
            .ok_or_else(|| FabricError::Invalid(format!("{}: a file without a hash", e.path)))?;
        if rel.is_root() || e.deleted || e.kind != EntryKind::File {
            return Err(FabricError::Invalid(format!("{}: not a file", e.path)));
        }
        let size = u64::try_from(e.size)
            .map_err(|_| FabricError::Invalid(format!("{}: a negative size", e.path)))?;
        // Room for all of it before anything is written (a member that
        // claims a huge size gets "no space", not a huge sparse file).
        let (dir, min_free) = (folder.path.clone(), self.inner.min_free_space);
        blocking(move || local::ensure_room(&dir, size, min_free)).await?;
        self.make_parents(&folder, &rel).await?;
        let name = format!("{PARTIAL_PREFIX}{hash}");
        let claim = {
            let path = rel.parent().to_disk(&folder.path).join(&name);
            let mut partials = self
                .inner
                .partials
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !partials.insert(path.clone()) {
                return Err(FabricError::Invalid(format!(
                    "{}: being fetched from another member already",
                    e.path
                )));
            }
            Claim {
                fabric: self.clone(),
                path,
            }
        };
        let (path, tmp) = (folder.path.clone(), name.clone());
        let (parent, file, base) = blocking(move || {
            let parent = Root::open(&path)?.parent(&rel)?;
            let (file, existed) = parent.open_temp_named(&tmp)?;
            let mut base = if existed { Base::Resumed } else { Base::Empty };
            if !existed && parent.standing()? == Standing::File {
                let old = parent.open_file()?;
                std::io::copy(&mut std::io::Read::take(old, size), &mut &file)?;
                base = Base::Previous;
            }
            file.set_len(size)?;
            Ok((Arc::new(parent), Arc::new(file), base))
        })
        .await?;
        Ok(Incoming {
            parent,
            tmp: name,
            file,
            base,
            _claim: claim,
        })
    }

    /// Checks what [`Fabric::begin_remote`] put together against its hash
    /// and applies the entry with it, as [`Fabric::apply_remote`] does. On
    /// a mismatch the temp file goes (nothing in it can be trusted).
    pub async fn finish_remote(
        &self,
        key: &str,
        e: &RemoteEntry,
        inc: Incoming,
    ) -> Result<Applied> {
        let folder = self.replica(key)?;
        let rel = RelPath::parse(&e.path)?;
        let (file, mtime) = (inc.file.clone(), e.mtime_ns);
        let got = blocking(move || {
            let mut hasher = blake3::Hasher::new();
            // From the start: a copy of the previous content moved the
            // file's position.
            std::io::Seek::rewind(&mut &*file)?;
            let mut reader = std::io::BufReader::with_capacity(256 * 1024, &*file);
            std::io::copy(&mut reader, &mut hasher)?;
            file.sync_all()?;
            set_mtime(&file, mtime)?;
            Ok(ContentHash::from(hasher.finalize()))
        })
        .await?;
        if Some(got) != e.hash {
            inc.parent.remove_temp(&inc.tmp);
            return Err(FabricError::Invalid(format!(
                "{}: the content received does not match its hash",
                e.path
            )));
        }
        let Incoming {
            parent,
            tmp,
            file,
            _claim,
            ..
        } = inc;
        let staged = Staged {
            parent,
            tmp,
            file,
            hash: got,
            used: std::sync::atomic::AtomicBool::new(false),
        };
        let result = self.apply_staged(&folder, &rel, e, Some(&staged)).await;
        if !staged.used.load(std::sync::atomic::Ordering::Relaxed) {
            staged.parent.remove_temp(&staged.tmp);
        }
        drop(_claim);
        result
    }

    /// Streams remote content into a temp file beside its target, checks
    /// its hash and gives it the remote modification time.
    async fn stage(
        &self,
        folder: &Arc<Folder>,
        rel: &RelPath,
        e: &RemoteEntry,
        body: Box<dyn AsyncRead + Unpin + Send>,
    ) -> Result<Staged> {
        let want = e
            .hash
            .ok_or_else(|| FabricError::Invalid(format!("{}: a file without a hash", e.path)))?;
        self.make_parents(folder, rel).await?;
        let (path, rel2) = (folder.path.clone(), rel.clone());
        let (parent, tmp, file) = blocking(move || {
            let parent = Root::open(&path)?.parent(&rel2)?;
            let (tmp, file) = parent.create_temp()?;
            Ok((Arc::new(parent), tmp, Arc::new(file)))
        })
        .await?;
        let space = local::SpaceGuard::new(&folder.path, self.inner.min_free_space);
        let got = match crate::files::stream_to_file(body, file.clone(), space).await {
            Ok(h) => h,
            Err(err) => {
                parent.remove_temp(&tmp);
                return Err(err);
            }
        };
        if got != want {
            parent.remove_temp(&tmp);
            return Err(FabricError::Invalid(format!(
                "{}: the content received does not match its hash",
                e.path
            )));
        }
        let (f, mtime) = (file.clone(), e.mtime_ns);
        blocking(move || set_mtime(&f, mtime)).await?;
        Ok(Staged {
            parent,
            tmp,
            file,
            hash: got,
            used: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Makes the directories above `rel` that are missing (recorded as
    /// this node's: the other replica's entries for them arrive too and
    /// merge).
    async fn make_parents(&self, folder: &Arc<Folder>, rel: &RelPath) -> Result<()> {
        let mut dir = RelPath::root();
        let parent = rel.parent();
        for part in parent.as_str().split('/').filter(|p| !p.is_empty()) {
            dir = dir.join(part)?;
            let (path, d) = (folder.path.clone(), dir.clone());
            let made = blocking(move || {
                let p = Root::open(&path)?.parent(&d)?;
                match p.standing()? {
                    Standing::Dir => Ok(None),
                    Standing::Nothing => {
                        p.mkdir()?;
                        Ok(Some(p.entry(&d)?))
                    }
                    _ => Err(FabricError::WrongKind("a file is in the way of a folder")),
                }
            })
            .await?;
            if let Some(entry) = made {
                let _held = self.lock_folder(&folder.id).await?;
                self.record(folder, &entry, None, false).await?;
            }
        }
        Ok(())
    }

    /// The part of [`Fabric::apply_remote`] under the folder's lock.
    async fn apply_staged(
        &self,
        folder: &Arc<Folder>,
        rel: &RelPath,
        e: &RemoteEntry,
        staged: Option<&Staged>,
    ) -> Result<Applied> {
        let _held = self.lock_folder(&folder.id).await?;
        let cat = &self.inner.catalog;
        let local = cat.entry(&folder.id, rel.as_str()).await?;
        let decision = decide(local.as_ref(), e);
        // A file whose content is needed now, when none came (a change made
        // here since `remote_need` looked): tried again with content.
        let needs_content = !e.deleted
            && e.kind == EntryKind::File
            && matches!(decision, Decision::Take | Decision::Conflict { .. });
        if needs_content && staged.is_none() {
            return Err(FabricError::Invalid(format!(
                "{}: changed here meanwhile; its content is needed",
                e.path
            )));
        }
        let merged = {
            let mut v = e.version.clone();
            if let Some(l) = &local {
                v.merge(&l.version_vector);
            }
            v
        };
        match decision {
            Decision::Skip => Ok(Applied::Skipped),
            Decision::Merge => {
                // The same content (or a deletion of what this node never
                // had): only the vector changes.
                let base = local.as_ref();
                self.put(
                    folder,
                    rel,
                    base.map_or(e.kind, EntryRow::kind),
                    base.map_or(e.size, |l| l.size),
                    base.map_or(e.mtime_ns, |l| l.mtime_ns),
                    base.map_or(e.hash, |l| l.hash).as_ref(),
                    &merged,
                    base.map_or(e.modified_by.as_str(), |l| l.modified_by.as_str()),
                    e.deleted,
                )
                .await?;
                Ok(Applied::Recorded)
            }
            Decision::Take => {
                self.take(folder, rel, e, &merged, staged).await?;
                Ok(Applied::Changed)
            }
            Decision::Conflict { remote_wins } => {
                let l = local.expect("a conflict has a local entry");
                if remote_wins {
                    // The local content moves aside; the remote takes the
                    // name.
                    let copy = if l.deleted || l.kind() == EntryKind::Dir {
                        None
                    } else {
                        let to = conflict_name(rel, l.mtime_ns, &l.modified_by)?;
                        self.move_aside(folder, rel, &to).await?;
                        Some(to)
                    };
                    self.take(folder, rel, e, &merged, staged).await?;
                    Ok(copy.map_or(Applied::Changed, |c| Applied::Conflict(c.to_string())))
                } else {
                    // The local content keeps the name, with a vector that
                    // now covers the remote change; the remote content is
                    // written beside it.
                    let mut copy = None;
                    if let Some(s) = staged {
                        let to = conflict_name(rel, e.mtime_ns, &e.modified_by)?;
                        self.write_staged(folder, &to, s).await?;
                        // A new file of this node's, as a copy made here.
                        let (path, t2) = (folder.path.clone(), to.clone());
                        let entry =
                            blocking(move || Root::open(&path)?.parent(&t2)?.entry(&t2)).await?;
                        self.record(folder, &entry, Some(&s.hash), false).await?;
                        copy = Some(to);
                    }
                    self.put(
                        folder,
                        rel,
                        l.kind(),
                        l.size,
                        l.mtime_ns,
                        l.hash.as_ref(),
                        &merged,
                        &l.modified_by,
                        l.deleted,
                    )
                    .await?;
                    Ok(copy.map_or(Applied::Recorded, |c| Applied::Conflict(c.to_string())))
                }
            }
        }
    }

    /// Makes the remote entry this node's: its content in place (the old
    /// kept as a version), its directory made, or its path deleted to the
    /// trash.
    async fn take(
        &self,
        folder: &Arc<Folder>,
        rel: &RelPath,
        e: &RemoteEntry,
        version: &VersionVector,
        staged: Option<&Staged>,
    ) -> Result<()> {
        let (path, r2) = (folder.path.clone(), rel.clone());
        let parent = blocking(move || Root::open(&path)?.parent(&r2)).await;
        let parent = match parent {
            Ok(p) => Some(Arc::new(p)),
            Err(FabricError::ParentMissing) if e.deleted => None,
            Err(err) => return Err(err),
        };
        if e.deleted {
            let kept = match parent {
                Some(p) => !self.delete_here(folder, rel, &p).await?,
                None => false,
            };
            if kept {
                // A directory that still holds what changed here stays,
                // with a change of this node's over the deletion (the
                // other replicas make it again).
                let mut v = version.clone();
                v.bump(&self.node_id());
                let (path, r2) = (folder.path.clone(), rel.clone());
                let entry = blocking(move || Root::open(&path)?.parent(&r2)?.entry(&r2)).await?;
                return self
                    .put(
                        folder,
                        rel,
                        EntryKind::Dir,
                        entry.size as i64,
                        entry.mtime_ns,
                        None,
                        &v,
                        &self.node_id().to_string(),
                        false,
                    )
                    .await;
            }
            return self
                .put(
                    folder,
                    rel,
                    e.kind,
                    e.size,
                    e.mtime_ns,
                    e.hash.as_ref(),
                    version,
                    &e.modified_by,
                    true,
                )
                .await;
        }
        let p = parent.expect("a live entry's parent was made");
        // A file where a folder now is, or the other way round: what is in
        // the way goes to the trash (a folder only if nothing in it
        // changed here).
        let p2 = p.clone();
        let standing = blocking(move || p2.standing()).await?;
        let in_the_way = matches!(
            (e.kind, standing),
            (EntryKind::Dir, Standing::File) | (EntryKind::File, Standing::Dir)
        );
        if in_the_way && !self.delete_here(folder, rel, &p).await? {
            return Err(FabricError::Invalid(format!(
                "{}: a folder holding files changed here is in the way",
                e.path
            )));
        }
        let entry = if e.kind == EntryKind::Dir {
            let (p2, r2) = (p.clone(), rel.clone());
            blocking(move || {
                match p2.standing()? {
                    Standing::Dir => {}
                    Standing::Nothing => p2.mkdir()?,
                    _ => return Err(FabricError::WrongKind("a file is in the way of a folder")),
                }
                p2.entry(&r2)
            })
            .await?
        } else {
            let s = staged.ok_or_else(|| {
                FabricError::Invalid(format!("{}: content needed but none received", e.path))
            })?;
            self.write_staged(folder, rel, s).await?;
            let (p2, r2) = (s.parent.clone(), rel.clone());
            blocking(move || p2.entry(&r2)).await?
        };
        self.put(
            folder,
            rel,
            e.kind,
            entry.size as i64,
            entry.mtime_ns,
            e.hash.as_ref(),
            version,
            &e.modified_by,
            false,
        )
        .await
    }

    /// Puts the staged content at `rel`, keeping what it replaces as a
    /// version. Does not record the entry.
    async fn write_staged(&self, folder: &Arc<Folder>, rel: &RelPath, s: &Staged) -> Result<()> {
        let (path, r2) = (folder.path.clone(), rel.clone());
        let target = blocking(move || Root::open(&path)?.parent(&r2)).await?;
        let (t2, old) = (Arc::new(target), None::<std::fs::File>);
        let old = {
            let t = t2.clone();
            blocking(move || match t.standing()? {
                Standing::File => Ok(Some(t.open_file()?)),
                Standing::Nothing => Ok(old),
                Standing::Dir => Err(FabricError::WrongKind("a folder is in the way of a file")),
                Standing::Other => Err(FabricError::Forbidden),
            })
            .await?
        };
        let _lease = self.inner.blobs.lease().await?;
        if let Some(old) = old {
            self.keep_version(folder, rel, old, FRONT, FRONT, FRONT, None)
                .await?;
        }
        let f = s.file.clone();
        let size = blocking(move || Ok(f.metadata()?.len())).await?;
        self.keep_copy(folder, rel.name(), &s.file, &s.hash, size, true)
            .await?;
        // The temp file was made beside the remote path; a conflict copy
        // goes beside it, in the same directory.
        let (from, tmp, file, to) = (s.parent.clone(), s.tmp.clone(), s.file.clone(), t2);
        blocking(move || {
            if from.name() == to.name() {
                to.replace_with(&tmp, &file)
            } else {
                // Same directory, another name: rename the temp file there.
                rustix::fs::renameat(from.dir(), tmp.as_str(), to.dir(), to.name())
                    .map_err(|e| FabricError::Io(std::io::Error::from(e)))?;
                to.sync();
                Ok(())
            }
        })
        .await?;
        s.mark_used();
        Ok(())
    }

    /// Moves the local file at `rel` to `to` (a conflict copy) and records
    /// both.
    async fn move_aside(&self, folder: &Arc<Folder>, rel: &RelPath, to: &RelPath) -> Result<()> {
        let (path, r2, t2) = (folder.path.clone(), rel.clone(), to.clone());
        let moved = blocking(move || {
            let root = Root::open(&path)?;
            let (from, dest) = (root.parent(&r2)?, root.parent(&t2)?);
            if from.standing()? != Standing::File {
                return Ok(None);
            }
            from.rename_to(&dest)?;
            Ok(Some(dest.entry(&t2)?))
        })
        .await?;
        if let Some(entry) = moved {
            let hash = self
                .inner
                .catalog
                .entry(&folder.id, rel.as_str())
                .await?
                .and_then(|l| l.hash);
            self.record(folder, &entry, hash.as_ref(), false).await?;
        }
        Ok(())
    }

    /// Deletes `rel` here for a remote deletion: a file goes to the trash
    /// (its content kept), a directory only once it is empty (what is
    /// still in it is newer here, and keeps it: `false`).
    async fn delete_here(
        &self,
        folder: &Arc<Folder>,
        rel: &RelPath,
        p: &Arc<Parent>,
    ) -> Result<bool> {
        let p2 = p.clone();
        let standing = blocking(move || p2.standing()).await?;
        let kind = match standing {
            Standing::Nothing => return Ok(true),
            Standing::File => EntryKind::File,
            Standing::Dir => {
                let (path, r2) = (folder.path.clone(), rel.clone());
                let empty =
                    blocking(move || Ok(Root::open(&path)?.list_names(&r2)?.is_empty())).await?;
                if !empty {
                    return Ok(false);
                }
                EntryKind::Dir
            }
            Standing::Other => return Err(FabricError::Forbidden),
        };
        let cat = &self.inner.catalog;
        let trash_id = if kind == EntryKind::File && crate::path::is_os_metadata(rel.name()) {
            None
        } else {
            Some(
                cat.insert_trash(
                    &folder.id,
                    rel.as_str(),
                    kind,
                    FRONT,
                    FRONT,
                    crate::resource::now_ms(),
                )
                .await?,
            )
        };
        if kind == EntryKind::File {
            let p2 = p.clone();
            let old = blocking(move || p2.open_file()).await?;
            self.keep_version(folder, rel, old, "delete", FRONT, FRONT, trash_id)
                .await?;
        }
        let p2 = p.clone();
        blocking(move || p2.remove()).await?;
        cat.drop_properties(&folder.id, rel.as_str()).await?;
        Ok(true)
    }

    /// Stores an entry with the given vector and the folder's next
    /// sequence number.
    #[allow(clippy::too_many_arguments)]
    async fn put(
        &self,
        folder: &Folder,
        rel: &RelPath,
        kind: EntryKind,
        size: i64,
        mtime_ns: i64,
        hash: Option<&ContentHash>,
        version: &VersionVector,
        modified_by: &str,
        deleted: bool,
    ) -> Result<()> {
        self.inner
            .catalog
            .put_entry(
                &folder.id,
                &NewEntry {
                    path: rel.as_str(),
                    kind,
                    size,
                    mtime_ns,
                    hash,
                    version,
                    modified_by,
                    deleted,
                },
            )
            .await
    }
}

/// A remote file's content being put together here, beside its target
/// (see [`Fabric::begin_remote`]): write the blocks that arrive at their
/// offsets in [`Incoming::file`], then [`Fabric::finish_remote`].
pub struct Incoming {
    parent: Arc<Parent>,
    tmp: String,
    file: Arc<std::fs::File>,
    /// What the file held before any block arrived.
    pub base: Base,
    _claim: Claim,
}

/// A temp file claimed by one transfer; released on drop.
struct Claim {
    fabric: Fabric,
    path: std::path::PathBuf,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.fabric
            .inner
            .partials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.path);
    }
}

/// What an [`Incoming`] file starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// Nothing: every block must come.
    Empty,
    /// The content this node has at that path (an edit elsewhere changed
    /// some blocks; the others are here).
    Previous,
    /// What a transfer that was cut had written.
    Resumed,
}

impl Incoming {
    /// The file to write into (positioned writes).
    pub fn file(&self) -> Arc<std::fs::File> {
        self.file.clone()
    }
}

/// Remote content in a temp file beside its target, checked.
struct Staged {
    parent: Arc<Parent>,
    tmp: String,
    file: Arc<std::fs::File>,
    hash: ContentHash,
    used: std::sync::atomic::AtomicBool,
}

impl Staged {
    /// The temp file was renamed into place: nothing to remove.
    fn mark_used(&self) {
        self.used.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(vv: &str, hash: u8, mtime: i64, by: &str, deleted: bool) -> EntryRow {
        EntryRow {
            path: "a.txt".into(),
            kind: "file".into(),
            size: 1,
            mtime_ns: mtime,
            hash: Some(ContentHash::from_bytes([hash; 32])),
            version_vector: VersionVector::parse(vv),
            sequence: 1,
            deleted,
            modified_by: by.into(),
        }
    }

    fn remote(vv: &str, hash: u8, mtime: i64, by: &str, deleted: bool) -> RemoteEntry {
        RemoteEntry::from(&row(vv, hash, mtime, by, deleted))
    }

    #[test]
    fn newer_replaces_older_and_equal_or_older_is_skipped() {
        let l = row("a:1", 1, 10, "a", false);
        assert_eq!(
            decide(Some(&l), &remote("a:1,b:1", 2, 20, "b", false)),
            Decision::Take
        );
        assert_eq!(
            decide(Some(&l), &remote("a:1", 1, 10, "a", false)),
            Decision::Skip
        );
        assert_eq!(
            decide(
                Some(&row("a:2", 1, 10, "a", false)),
                &remote("a:1", 2, 5, "a", false)
            ),
            Decision::Skip
        );
        assert_eq!(
            decide(None, &remote("b:1", 2, 20, "b", false)),
            Decision::Take
        );
        assert_eq!(
            decide(None, &remote("b:1", 2, 20, "b", true)),
            Decision::Merge
        );
        // The same content with a newer vector (a touch elsewhere).
        assert_eq!(
            decide(Some(&l), &remote("a:1,b:1", 1, 10, "b", false)),
            Decision::Merge
        );
    }

    #[test]
    fn concurrent_changes_pick_the_same_winner_on_both_sides() {
        let a = row("x:1,a:1", 1, 10, "a", false);
        let b = row("x:1,b:1", 2, 20, "b", false);
        // On a, b's change arrives; on b, a's. Both keep b's at the name.
        assert_eq!(
            decide(Some(&a), &RemoteEntry::from(&b)),
            Decision::Conflict { remote_wins: true }
        );
        assert_eq!(
            decide(Some(&b), &RemoteEntry::from(&a)),
            Decision::Conflict { remote_wins: false }
        );
        // Same time: the larger node id wins, on both sides.
        let a = row("x:1,a:1", 1, 10, "a", false);
        let b = row("x:1,b:1", 2, 10, "b", false);
        assert_eq!(
            decide(Some(&a), &RemoteEntry::from(&b)),
            Decision::Conflict { remote_wins: true }
        );
        assert_eq!(
            decide(Some(&b), &RemoteEntry::from(&a)),
            Decision::Conflict { remote_wins: false }
        );
        // An edit wins over a deletion, however old.
        let del = row("x:1,a:1", 1, 99, "a", true);
        let edit = row("x:1,b:1", 2, 1, "b", false);
        assert_eq!(
            decide(Some(&del), &RemoteEntry::from(&edit)),
            Decision::Conflict { remote_wins: true }
        );
        assert_eq!(
            decide(Some(&edit), &RemoteEntry::from(&del)),
            Decision::Conflict { remote_wins: false }
        );
        // Concurrent but the same content: merge, no copy.
        let c = row("x:1,c:1", 1, 30, "c", false);
        assert_eq!(decide(Some(&a), &RemoteEntry::from(&c)), Decision::Merge);
    }

    #[test]
    fn conflict_copies_are_named_after_their_time_and_node() {
        let p = RelPath::parse("docs/report.final.txt").unwrap();
        // 2026-12-03 19:47:43 UTC.
        let t = 1_796_327_263_000_000_000;
        assert_eq!(
            conflict_name(&p, t, "abcdef0123456789").unwrap().as_str(),
            "docs/report.final.sync-conflict-20261203-194743-abcdef0.txt"
        );
        let p = RelPath::parse("Makefile").unwrap();
        assert_eq!(
            conflict_name(&p, t, "").unwrap().as_str(),
            "Makefile.sync-conflict-20261203-194743-unknown"
        );
        let p = RelPath::parse(".bashrc").unwrap();
        assert!(
            conflict_name(&p, t, "n")
                .unwrap()
                .as_str()
                .starts_with(".bashrc.sync-conflict-")
        );
    }
}
