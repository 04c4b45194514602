//! Copies of current content: which files keep one, within which budget,
//! when they are made, which go first, and the sweep of blobs nothing
//! refers to.
//!
//! An edit made on disk behind Glow's back destroys the old bytes before
//! the watcher hears of it, so the old content can be kept as a version
//! only if a copy of it was made before. That guarantee costs disk: copying
//! a 1 TB media library would fill the disk. So:
//!
//! - each folder says which files keep copies ([`CopyPolicy`]: none, small
//!   files that are not media — the default —, or all);
//! - copies live within a budget: the node's (`--copies-budget`, 10 % of the
//!   data dir's disk by default) and optionally the folder's; when a new
//!   copy needs room, the oldest copies go first; and never below the
//!   disk's reserve (`--min-free-space`);
//! - the start-up scan only hashes: copies of what it found are made
//!   afterwards, in the background, newest files first, until the budget is
//!   full ([`Fabric::fill_copies`]), so the catalog is complete first;
//! - writes through Glow are fully versioned whatever the policy (the old
//!   content is read before it is replaced); a copy of the new content is
//!   kept if the policy covers it.

use crate::error::{FabricError, Result};
use crate::fabric::{Fabric, blocking};
use crate::ids::ContentHash;
use crate::path::RelPath;
use crate::resource::{CopyPolicy, Folder, SMALL_FILE_LIMIT, now_ms};
use crate::store::beneath::Root;
use std::fs::File;
use std::sync::Arc;

/// How large the node's budget for copies is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopiesBudget {
    /// A share of the data dir's disk, in percent.
    Percent(u8),
    /// A number of bytes.
    Bytes(u64),
}

impl Default for CopiesBudget {
    fn default() -> Self {
        CopiesBudget::Percent(10)
    }
}

impl std::fmt::Display for CopiesBudget {
    /// `10%`, or a number of bytes (what [`str::parse`] reads back).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopiesBudget::Percent(p) => write!(f, "{p}%"),
            CopiesBudget::Bytes(b) => write!(f, "{b}"),
        }
    }
}

impl std::str::FromStr for CopiesBudget {
    type Err = String;

    /// `10%` or a size such as `20GiB`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: u8 = p
                .trim()
                .parse()
                .ok()
                .filter(|p| *p <= 100)
                .ok_or_else(|| format!("{s:?} is not a percentage from 0% to 100%"))?;
            return Ok(CopiesBudget::Percent(p));
        }
        s.parse::<bytesize::ByteSize>()
            .map(|b| CopiesBudget::Bytes(b.as_u64()))
            .map_err(|_| format!("{s:?} is neither a size (20GiB) nor a percentage (10%)"))
    }
}

/// What copies take and may take, for people to see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopiesUsage {
    /// Bytes the copies take.
    pub used: u64,
    /// The most they may take.
    pub budget: u64,
}

impl Fabric {
    /// The node's budget for copies, in bytes.
    pub fn copies_budget(&self) -> u64 {
        match self.inner.copies_budget {
            CopiesBudget::Bytes(b) => b,
            CopiesBudget::Percent(p) => rustix::fs::statvfs(self.data_dir())
                .map(|s| s.f_blocks.saturating_mul(s.f_frsize) / 100 * u64::from(p))
                .unwrap_or(0),
        }
    }

    /// What copies take, on the whole node or in one folder (whose budget
    /// is its own, or else the node's).
    pub async fn copies_usage(&self, folder: Option<&Folder>) -> Result<CopiesUsage> {
        let used = self
            .inner
            .catalog
            .copy_bytes(folder.map(|f| f.id.as_str()))
            .await?
            .max(0) as u64;
        let node = self.copies_budget();
        let budget = match folder.and_then(|f| f.copy_budget) {
            Some(b) => b.min(node),
            None => node,
        };
        Ok(CopiesUsage { used, budget })
    }

    /// Sets which files of a folder keep copies, and its own budget.
    pub async fn set_folder_copies(
        &self,
        who: &crate::Principal,
        addr: &crate::Address,
        policy: CopyPolicy,
        budget: Option<u64>,
    ) -> Result<()> {
        let folder = self.folder_for(who, addr, crate::Op::Write).await?;
        self.inner
            .catalog
            .set_folder_copies(&folder.id, policy.as_str(), budget.map(|b| b as i64))
            .await?;
        self.reload_folders().await
    }

    /// Keeps a copy of what `file` holds (content `hash`, `size` bytes) as
    /// current content of `folder`, if its policy covers `name`: with
    /// `evict`, the oldest copies go to make room; without, a full budget
    /// means no copy. Best effort: a copy that does not fit is not made,
    /// and the write it belongs to goes on. The caller holds a blob lease.
    pub(crate) async fn keep_copy(
        &self,
        folder: &Folder,
        name: &str,
        file: &Arc<File>,
        hash: &ContentHash,
        size: u64,
        evict: bool,
    ) -> Result<bool> {
        if !folder.copies.covers(name, size) {
            return Ok(false);
        }
        let cat = &self.inner.catalog;
        if cat.has_copy(&folder.id, hash).await? {
            return Ok(true);
        }
        if !self.room_for(folder, size, evict).await? {
            return Ok(false);
        }
        let (blobs, f, h, min_free) = (
            self.inner.blobs.clone(),
            file.clone(),
            *hash,
            self.inner.min_free_space,
        );
        let stored = blocking(move || {
            if !blobs.contains(&h) {
                blobs.ensure_room(size, min_free)?;
                blobs.ingest_file_known(&f, &h)?;
            }
            Ok(())
        })
        .await;
        match stored {
            Ok(()) => {}
            Err(FabricError::NoSpace) => return Ok(false),
            Err(e) => return Err(e),
        }
        cat.add_copy(&folder.id, hash, size as i64, now_ms())
            .await?;
        Ok(true)
    }

    /// Whether `size` more bytes of copies fit in the folder's and the
    /// node's budgets; with `evict`, the oldest copies go until they do.
    async fn room_for(&self, folder: &Folder, size: u64, evict: bool) -> Result<bool> {
        let node = self.copies_budget();
        let own = folder.copy_budget.map_or(node, |b| b.min(node));
        if size > own {
            return Ok(false);
        }
        for scope in [Some(folder.id.as_str()), None] {
            let budget = if scope.is_some() { own } else { node };
            loop {
                let used = self.inner.catalog.copy_bytes(scope).await?.max(0) as u64;
                if used + size <= budget {
                    break;
                }
                if !evict {
                    return Ok(false);
                }
                let oldest = self.inner.catalog.oldest_copies(scope, 32).await?;
                if oldest.is_empty() {
                    return Ok(false);
                }
                for (f, h, _) in oldest {
                    self.evict_copy(&f, &h).await?;
                }
            }
        }
        Ok(true)
    }

    /// Forgets a copy; its blob goes later if nothing else refers to it.
    /// The caller may hold a blob lease (a write making room for its own
    /// copy), so the removal cannot wait here for the store alone: it is
    /// left to [`Fabric::collect_later`].
    async fn evict_copy(&self, folder_id: &str, hash: &ContentHash) -> Result<()> {
        self.inner.catalog.remove_copy(folder_id, hash).await?;
        self.collect_later(vec![*hash]);
        Ok(())
    }

    /// Removes, in the background, those of `hashes` that nothing refers to
    /// once the store is alone (every lease ended, in every process), so
    /// that no writer can take one up between the check and the removal.
    pub(crate) fn collect_later(&self, hashes: Vec<ContentHash>) {
        let fabric = self.clone();
        tokio::spawn(async move {
            if let Err(e) = fabric.collect(hashes).await {
                tracing::warn!("could not remove unused copies: {e}");
            }
        });
    }

    async fn collect(&self, hashes: Vec<ContentHash>) -> Result<()> {
        let blobs = self.inner.blobs.clone();
        let alone = blocking(move || blobs.alone()).await?;
        for hash in hashes {
            if !self.inner.catalog.blob_in_use(&hash).await? {
                let blobs = self.inner.blobs.clone();
                blocking(move || blobs.remove(&hash)).await?;
            }
        }
        drop(alone);
        Ok(())
    }

    /// Makes the copies the policies ask for that the catalog does not have
    /// yet (after the start-up scan, which only hashes): newest files first,
    /// until a budget is full; nothing is evicted for them. A blob already
    /// stored (from a version, or another folder) is taken up without a
    /// copy. Returns how many copies were made or taken up.
    pub async fn fill_copies(&self) -> Result<u64> {
        let mut made = 0;
        for folder in self.all_folders() {
            if folder.copies == CopyPolicy::Off {
                continue;
            }
            let max = (folder.copies == CopyPolicy::Small).then_some(SMALL_FILE_LIMIT as i64);
            // Files passed over (not covered, say media under the size
            // limit, or changed on disk meanwhile) stay in the query's
            // answer: page past them, or newer ones would hide the rest.
            let mut skip = 0;
            'folder: loop {
                let batch = self
                    .inner
                    .catalog
                    .files_without_copies(&folder.id, max, skip, 256)
                    .await?;
                if batch.is_empty() {
                    break;
                }
                for (path, hash, size, mtime) in batch {
                    let covered = RelPath::parse(&path)
                        .ok()
                        .filter(|rel| folder.copies.covers(rel.name(), size as u64));
                    let Some(rel) = covered else {
                        skip += 1;
                        continue;
                    };
                    if !self.room_for(&folder, size as u64, false).await? {
                        break 'folder;
                    }
                    if self.fill_one(&folder, &rel, &hash, size, mtime).await? {
                        made += 1;
                    } else {
                        skip += 1;
                    }
                }
            }
        }
        Ok(made)
    }

    /// Copies one file whose catalog entry says it holds `hash`, if it still
    /// does (same size and mtime, same hash).
    async fn fill_one(
        &self,
        folder: &Arc<Folder>,
        rel: &RelPath,
        hash: &ContentHash,
        size: i64,
        mtime: i64,
    ) -> Result<bool> {
        let _lease = self.inner.blobs.lease().await?;
        if self.inner.blobs.has(hash).await {
            self.inner
                .catalog
                .add_copy(&folder.id, hash, size, now_ms())
                .await?;
            return Ok(true);
        }
        let (path, r) = (folder.path.clone(), rel.clone());
        let opened = blocking(move || {
            let (_, f, m) = Root::open_regular(&path, &r)?;
            Ok((f, m))
        })
        .await;
        let Ok((file, meta)) = opened else {
            return Ok(false);
        };
        if meta.len() as i64 != size || crate::store::local::mtime_ns(&meta) != mtime {
            return Ok(false);
        }
        let (blobs, min_free) = (self.inner.blobs.clone(), self.inner.min_free_space);
        let ingested = blocking(move || {
            blobs.ensure_room(size as u64, min_free)?;
            blobs.ingest(&file)
        })
        .await;
        let got = match ingested {
            Ok((h, _)) => h,
            Err(FabricError::NoSpace) => return Ok(false),
            Err(e) => return Err(e),
        };
        if got != *hash {
            // Changed while it was read: what was stored is nobody's (the
            // lease is held here, so it goes once the store is alone).
            self.collect_later(vec![got]);
            return Ok(false);
        }
        self.inner
            .catalog
            .add_copy(&folder.id, hash, size, now_ms())
            .await?;
        Ok(true)
    }

    /// Removes the blobs nothing refers to (no version, no copy): copies an
    /// older Glow made of every file, and what a crash left between a blob
    /// and its row. Returns how many went and their bytes.
    pub async fn sweep_blobs(&self) -> Result<(u64, u64)> {
        let blobs = self.inner.blobs.clone();
        let all = blocking(move || blobs.list()).await?;
        let (mut files, mut bytes) = (0, 0);
        for chunk in all.chunks(512) {
            let blobs = self.inner.blobs.clone();
            let alone = blocking(move || blobs.alone()).await?;
            for (hash, size) in chunk {
                if !self.inner.catalog.blob_in_use(hash).await? {
                    let (blobs, h) = (self.inner.blobs.clone(), *hash);
                    blocking(move || blobs.remove(&h)).await?;
                    files += 1;
                    bytes += size;
                }
            }
            drop(alone);
        }
        Ok((files, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_as_sizes_or_percentages() {
        assert_eq!("10%".parse(), Ok(CopiesBudget::Percent(10)));
        assert_eq!("20 GiB".parse(), Ok(CopiesBudget::Bytes(20 << 30)));
        assert_eq!("0".parse(), Ok(CopiesBudget::Bytes(0)));
        assert!("101%".parse::<CopiesBudget>().is_err());
        assert!("lots".parse::<CopiesBudget>().is_err());
        for b in [CopiesBudget::Percent(7), CopiesBudget::Bytes(12345)] {
            assert_eq!(b.to_string().parse(), Ok(b), "written as it is read");
        }
    }

    #[test]
    fn policies_cover_what_they_say() {
        assert!(CopyPolicy::Small.covers("notes.txt", 1000));
        assert!(!CopyPolicy::Small.covers("film.mkv", 1000));
        assert!(!CopyPolicy::Small.covers("big.iso", SMALL_FILE_LIMIT + 1));
        assert!(CopyPolicy::All.covers("film.mkv", 1 << 40));
        assert!(!CopyPolicy::Off.covers("notes.txt", 1));
        assert!(!CopyPolicy::All.covers(".DS_Store", 1));
    }
}
