//! Keeping the catalog in step with the disk: a full scan (at start-up, and
//! after a crash it is the recovery) and the reconciliation of single paths
//! that the watcher reports.
//!
//! People edit folders with ordinary programs, so the disk is the truth for
//! what exists; the catalog learns from it. A file whose size or mtime
//! differs from its entry is hashed again; if the folder keeps copies, the
//! content it replaced is recorded as a version (`disk-edit`), and a file that
//! vanished goes to the trash (`disk-delete`).

use crate::catalog::{EntryRow, NewVersion};
use crate::error::Result;
use crate::fabric::{Fabric, blocking};
use crate::path::RelPath;
use crate::resource::{EntryKind, Folder, now_ms};
use crate::store::beneath::Root;
use crate::store::blobs::hash_file;
use crate::store::local;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Receives progress of long scans (the CLI draws a bar or logs lines).
pub trait ScanObserver: Send + Sync {
    /// A folder scan found `files` files (`bytes` in all) to hash.
    fn started(&self, folder: &str, files: u64, bytes: u64);
    /// `bytes` more were hashed.
    fn advanced(&self, bytes: u64);
    /// The scan of a folder is over; `changed` entries were updated.
    fn finished(&self, folder: &str, changed: u64);
}

/// A [`ScanObserver`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl ScanObserver for NoProgress {
    fn started(&self, _: &str, _: u64, _: u64) {}
    fn advanced(&self, _: u64) {}
    fn finished(&self, _: &str, _: u64) {}
}

/// What a scan saw on disk for one path.
#[derive(Debug, Clone)]
struct Seen {
    rel: RelPath,
    kind: EntryKind,
    size: i64,
    mtime_ns: i64,
}

impl Fabric {
    /// Scans a whole folder and brings the catalog in line with the disk.
    /// With `recover`, temp files left by interrupted writes are removed.
    pub async fn scan_folder(
        &self,
        folder: &Arc<Folder>,
        recover: bool,
        obs: &dyn ScanObserver,
    ) -> Result<u64> {
        let known: HashMap<String, EntryRow> = self
            .inner
            .catalog
            .entries(&folder.id)
            .await?
            .into_iter()
            .map(|e| (e.path.clone(), e))
            .collect();
        let root = folder.path.clone();
        let seen = blocking(move || walk_folder(&root, recover)).await?;
        let mut changed = 0u64;
        let mut to_hash = Vec::new();
        for s in &seen {
            let k = known.get(s.rel.as_str());
            match s.kind {
                EntryKind::Dir => {
                    if k.is_none_or(|k| k.deleted || k.kind() != EntryKind::Dir) {
                        self.record_dir(folder, &s.rel, s.mtime_ns).await?;
                        changed += 1;
                    }
                }
                EntryKind::File => {
                    if !matches_disk(k, s.size, s.mtime_ns) {
                        to_hash.push(s.clone());
                    }
                }
            }
        }
        let total: i64 = to_hash.iter().map(|s| s.size).sum();
        obs.started(&folder.name, to_hash.len() as u64, total as u64);
        for s in to_hash {
            // Hashes only: copies come afterwards (`fill_copies`), once the
            // catalog is complete.
            if self.observe_file(folder, &s.rel, false).await? {
                changed += 1;
            }
            obs.advanced(s.size as u64);
        }
        let present: std::collections::HashSet<&str> =
            seen.iter().map(|s| s.rel.as_str()).collect();
        let mut gone: Vec<&EntryRow> = known
            .values()
            .filter(|e| !e.deleted && !e.path.is_empty() && !present.contains(e.path.as_str()))
            .collect();
        gone.sort_by(|a, b| b.path.cmp(&a.path));
        for e in gone {
            if let Ok(rel) = RelPath::parse(&e.path) {
                self.observe_missing(folder, &rel).await?;
                changed += 1;
            }
        }
        obs.finished(&folder.name, changed);
        Ok(changed)
    }

    /// Compares a folder's catalog with its disk without changing either;
    /// returns one line per difference (empty when they agree).
    pub async fn verify_folder(
        &self,
        who: &crate::Principal,
        addr: &crate::Address,
    ) -> Result<Vec<String>> {
        let folder = self.folder_for(who, addr, crate::Op::Read).await?;
        let known: HashMap<String, EntryRow> = self
            .inner
            .catalog
            .entries(&folder.id)
            .await?
            .into_iter()
            .map(|e| (e.path.clone(), e))
            .collect();
        let root = folder.path.clone();
        let seen = blocking(move || walk_folder(&root, false)).await?;
        let mut out = Vec::new();
        for s in &seen {
            match known.get(s.rel.as_str()) {
                None => out.push(format!("not in catalog: {}", s.rel)),
                Some(k) if k.deleted => {
                    out.push(format!("deleted in catalog, present on disk: {}", s.rel))
                }
                Some(k) if k.kind() != s.kind => out.push(format!("kind differs: {}", s.rel)),
                Some(k)
                    if s.kind == EntryKind::File
                        && (k.size != s.size || k.mtime_ns != s.mtime_ns) =>
                {
                    out.push(format!("changed on disk: {}", s.rel))
                }
                Some(_) => {}
            }
        }
        let present: std::collections::HashSet<&str> =
            seen.iter().map(|s| s.rel.as_str()).collect();
        for k in known.values() {
            if !k.deleted && !k.path.is_empty() && !present.contains(k.path.as_str()) {
                out.push(format!("gone from disk: {}", k.path));
            }
        }
        let stray = {
            let root = folder.path.clone();
            blocking(move || Ok(stray_temp_files(&root))).await?
        };
        out.extend(
            stray
                .into_iter()
                .map(|p| format!("partial upload on disk: {}", p.display())),
        );
        out.sort();
        Ok(out)
    }

    /// Brings one path (and, for a new directory, everything below it) in
    /// line with the disk. Called by the watcher.
    pub async fn reconcile(&self, folder: &Arc<Folder>, rel: &RelPath) -> Result<()> {
        if rel.is_root() {
            return Ok(());
        }
        let disk = rel.to_disk(&folder.path);
        let meta = {
            let _held = self.lock_folder(&folder.id).await?;
            let meta = match tokio::fs::symlink_metadata(&disk).await {
                Ok(m) => Some(m),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e.into()),
            };
            let known = self.inner.catalog.entry(&folder.id, rel.as_str()).await?;
            match &meta {
                Some(m) if m.is_file() => {
                    if matches_disk(known.as_ref(), m.len() as i64, local::mtime_ns(m)) {
                        return Ok(());
                    }
                }
                Some(m) if m.is_dir() => {
                    if known
                        .as_ref()
                        .is_some_and(|k| !k.deleted && k.kind() == EntryKind::Dir)
                    {
                        return Ok(());
                    }
                }
                Some(_) => return Ok(()), // symbolic links and special files are not indexed
                None => {
                    if known.as_ref().is_none_or(|k| k.deleted) {
                        return Ok(());
                    }
                }
            }
            meta
        };
        match meta {
            Some(m) if m.is_file() => {
                self.observe_file(folder, rel, true).await?;
            }
            Some(m) => {
                // A directory appeared (created, or moved in with content).
                let (root, base) = (folder.path.clone(), disk.clone());
                let seen = blocking(move || walk_below(&root, &base)).await?;
                self.record_dir(folder, rel, local::mtime_ns(&m)).await?;
                for s in seen {
                    if s.kind == EntryKind::File {
                        self.observe_file(folder, &s.rel, true).await?;
                    } else {
                        self.record_dir(folder, &s.rel, s.mtime_ns).await?;
                    }
                }
            }
            None => {
                let mut gone = self
                    .inner
                    .catalog
                    .entries_under(&folder.id, rel.as_str())
                    .await?;
                gone.sort_by(|a, b| b.path.cmp(&a.path));
                for e in gone {
                    if let Ok(r) = RelPath::parse(&e.path) {
                        self.observe_missing(folder, &r).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Records a directory as present.
    async fn record_dir(&self, folder: &Folder, rel: &RelPath, mtime_ns: i64) -> Result<()> {
        self.inner
            .catalog
            .record_entry(
                &folder.id,
                &self.node_id(),
                rel.as_str(),
                EntryKind::Dir,
                0,
                mtime_ns,
                None,
                false,
            )
            .await
    }

    /// Hashes a file that changed on disk and records it; keeps the content it
    /// replaced as a version when the blob store has it, and (with `copy`,
    /// if the folder's policy covers it) a copy of the new content, so that
    /// the next edit can be versioned too. Returns whether the catalog
    /// changed.
    async fn observe_file(&self, folder: &Arc<Folder>, rel: &RelPath, copy: bool) -> Result<bool> {
        // The file itself, never through a link, below the folder's root.
        let (path, r) = (folder.path.clone(), rel.clone());
        let opened = blocking(move || {
            let (parent, f, meta) = Root::open_regular(&path, &r)?;
            Ok((Arc::new(parent), f, meta))
        })
        .await;
        let Ok((parent, file, before)) = opened else {
            return Ok(false); // gone again (or not a file); its own event follows
        };
        // From the look at the blob store until the catalog refers to it.
        let _lease = self.inner.blobs.lease().await?;
        // OS metadata files (`.DS_Store`, `._*`) get no copies and no versions.
        let junk = crate::path::is_os_metadata(rel.name());
        let file = Arc::new(file);
        let f = file.clone();
        let (hash, _) = blocking(move || hash_file(&f)).await?;
        if copy {
            self.keep_copy(folder, rel.name(), &file, &hash, before.len(), true)
                .await?;
        }
        let _held = self.lock_folder(&folder.id).await?;
        let r = rel.clone();
        let after = match blocking(move || parent.entry(&r)).await {
            Ok(e) => e,
            Err(_) => return Ok(false),
        };
        let (size, mtime) = (after.size as i64, after.mtime_ns);
        if before.len() as i64 != size || local::mtime_ns(&before) != mtime {
            return Ok(false); // still being written; the next event re-hashes it
        }
        let known = self.inner.catalog.entry(&folder.id, rel.as_str()).await?;
        if matches_disk(known.as_ref(), size, mtime) {
            return Ok(false); // Glow wrote it meanwhile
        }
        let earlier = known
            .filter(|k| !junk && !k.deleted && k.kind() == EntryKind::File)
            .and_then(|k| k.hash.filter(|h| *h != hash).map(|h| (k, h)));
        if let Some((k, old)) = earlier
            && self.inner.blobs.has(&old).await
        {
            let latest = self
                .inner
                .catalog
                .versions(&folder.id, rel.as_str())
                .await?;
            if latest.first().is_none_or(|v| v.hash != old) {
                let v = NewVersion {
                    folder_id: &folder.id,
                    path: rel.as_str(),
                    hash: &old,
                    size: k.size,
                    mtime_ns: k.mtime_ns,
                    reason: "disk-edit",
                    front: "disk",
                    actor: "disk",
                    trash_id: None,
                };
                self.inner.catalog.insert_version(&v, now_ms()).await?;
            }
        }
        self.inner
            .catalog
            .record_entry(
                &folder.id,
                &self.node_id(),
                rel.as_str(),
                EntryKind::File,
                size,
                mtime,
                Some(&hash),
                false,
            )
            .await?;
        Ok(true)
    }

    /// Records that a path vanished from disk; a file whose content the blob
    /// store holds goes to the trash.
    async fn observe_missing(&self, folder: &Arc<Folder>, rel: &RelPath) -> Result<()> {
        let _held = self.lock_folder(&folder.id).await?;
        let _lease = self.inner.blobs.lease().await?;
        if tokio::fs::symlink_metadata(rel.to_disk(&folder.path))
            .await
            .is_ok()
        {
            return Ok(());
        }
        let Some(k) = self.inner.catalog.entry(&folder.id, rel.as_str()).await? else {
            return Ok(());
        };
        if k.deleted {
            return Ok(());
        }
        let stored = match k.hash.as_ref() {
            Some(h) if k.kind() == EntryKind::File && !crate::path::is_os_metadata(rel.name()) => {
                self.inner.blobs.has(h).await.then_some(h)
            }
            _ => None,
        };
        if let Some(hash) = stored {
            let cat = &self.inner.catalog;
            let trash_id = cat
                .insert_trash(
                    &folder.id,
                    rel.as_str(),
                    EntryKind::File,
                    "disk",
                    "disk",
                    now_ms(),
                )
                .await?;
            let v = NewVersion {
                folder_id: &folder.id,
                path: rel.as_str(),
                hash,
                size: k.size,
                mtime_ns: k.mtime_ns,
                reason: "disk-delete",
                front: "disk",
                actor: "disk",
                trash_id: Some(trash_id),
            };
            cat.insert_version(&v, now_ms()).await?;
        }
        self.inner
            .catalog
            .record_entry(
                &folder.id,
                &self.node_id(),
                rel.as_str(),
                k.kind(),
                k.size,
                k.mtime_ns,
                k.hash.as_ref(),
                true,
            )
            .await
    }
}

fn matches_disk(k: Option<&EntryRow>, size: i64, mtime_ns: i64) -> bool {
    k.is_some_and(|k| {
        !k.deleted
            && k.kind() == EntryKind::File
            && k.size == size
            && k.mtime_ns == mtime_ns
            && k.hash.is_some()
    })
}

/// Everything in a folder; with `recover`, stale temp files are removed.
fn walk_folder(root: &Path, recover: bool) -> Result<Vec<Seen>> {
    let mut out = Vec::new();
    let mut it = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .into_iter();
    while let Some(item) = it.next() {
        let item = match item {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!("scan of {}: {e}", root.display());
                continue;
            }
        };
        let Some(rel) = RelPath::from_disk(root, item.path()) else {
            if recover && item.file_type().is_file() {
                local::remove_stale_temp(item.path());
            }
            if item.file_type().is_dir() {
                it.skip_current_dir();
            }
            continue;
        };
        if let Some(s) = seen(rel, item.path(), item.file_type()) {
            out.push(s);
        }
    }
    Ok(out)
}

/// Temp files of interrupted writes anywhere in a folder.
fn stray_temp_files(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|i| {
            i.file_name()
                .to_str()
                .is_some_and(crate::path::is_internal_name)
        })
        .map(|i| i.path().to_path_buf())
        .collect()
}

/// Everything below a directory of a folder.
fn walk_below(root: &Path, base: &Path) -> Result<Vec<Seen>> {
    let mut out = Vec::new();
    for item in walkdir::WalkDir::new(base)
        .min_depth(1)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if let Some(rel) = RelPath::from_disk(root, item.path())
            && let Some(s) = seen(rel, item.path(), item.file_type())
        {
            out.push(s);
        }
    }
    Ok(out)
}

fn seen(rel: RelPath, path: &Path, ft: fs::FileType) -> Option<Seen> {
    if !(ft.is_file() || ft.is_dir()) {
        return None;
    }
    let meta = fs::symlink_metadata(PathBuf::from(path)).ok()?;
    Some(Seen {
        rel,
        kind: if ft.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        },
        size: if ft.is_dir() { 0 } else { meta.len() as i64 },
        mtime_ns: local::mtime_ns(&meta),
    })
}
