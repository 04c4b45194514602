//! History: keeping earlier contents as versions, listing and restoring them,
//! and the trash.
//!
//! A version is a row in the catalog pointing at a blob. Keeping one costs a
//! copy of the old content unless the blob store already holds it (always the
//! case for folders with `keep_copies`, whose current contents are stored as
//! they are written or scanned).

use crate::access::{Op, Principal};
use crate::catalog::NewVersion;
use crate::error::{FabricError, Result};
use crate::fabric::{Address, Fabric, blocking};
use crate::path::RelPath;
use crate::resource::{Folder, TrashItem, Version, now_ms};
use crate::store::local;

impl Fabric {
    /// Keeps the current content of `file` (the file at `rel`, open) as a
    /// version of `rel`. Reuses the stored blob when the catalog's hash
    /// still describes the file; otherwise copies the file into the blob
    /// store. Caller holds the folder lock.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn keep_version(
        &self,
        folder: &Folder,
        rel: &RelPath,
        file: std::fs::File,
        reason: &str,
        front: &str,
        actor: &str,
        trash_id: Option<i64>,
    ) -> Result<Option<i64>> {
        if crate::path::is_os_metadata(rel.name()) {
            return Ok(None);
        }
        // From the look at the store until the version row refers to it.
        let _lease = self.inner.blobs.lease().await?;
        let file = std::sync::Arc::new(file);
        let meta = {
            let f = file.clone();
            blocking(move || Ok(f.metadata()?)).await?
        };
        let (size, mtime) = (meta.len() as i64, local::mtime_ns(&meta));
        let known = self.inner.catalog.entry(&folder.id, rel.as_str()).await?;
        let mut reusable = known
            .filter(|e| !e.deleted && e.size == size && e.mtime_ns == mtime)
            .and_then(|e| e.hash);
        if let Some(h) = &reusable
            && !self.inner.blobs.has(h).await
        {
            reusable = None;
        }
        let hash = match reusable {
            Some(h) => h,
            None => {
                let blobs = self.inner.blobs.clone();
                let min_free = self.inner.min_free_space;
                blocking(move || {
                    blobs.ensure_room(size as u64, min_free)?;
                    blobs.ingest(&file)
                })
                .await?
                .0
            }
        };
        let v = NewVersion {
            folder_id: &folder.id,
            path: rel.as_str(),
            hash: &hash,
            size,
            mtime_ns: mtime,
            reason,
            front,
            actor,
            trash_id,
        };
        Ok(Some(self.inner.catalog.insert_version(&v, now_ms()).await?))
    }

    /// Earlier contents of a file, newest first.
    pub async fn versions(&self, who: &Principal, addr: &Address) -> Result<Vec<Version>> {
        let folder = self.folder_for(who, addr, Op::History).await?;
        self.inner
            .catalog
            .versions(&folder.id, addr.path.as_str())
            .await
    }

    /// Opens the content of a version of the file at `addr`.
    pub async fn open_version(
        &self,
        who: &Principal,
        addr: &Address,
        id: i64,
    ) -> Result<(tokio::fs::File, Version)> {
        let folder = self.folder_for(who, addr, Op::History).await?;
        let v = self
            .inner
            .catalog
            .version(id)
            .await?
            .ok_or(FabricError::NotFound)?;
        if v.folder_id != folder.id || v.path != addr.path {
            return Err(FabricError::NotFound);
        }
        let (blobs, hash) = (self.inner.blobs.clone(), v.hash);
        let f = blocking(move || blobs.open_blob(&hash)).await?;
        Ok((tokio::fs::File::from_std(f), v))
    }

    /// Makes a version the current content again. This is a write like any
    /// other: the content it replaces becomes a version in turn.
    pub async fn restore_version(
        &self,
        who: &Principal,
        addr: &Address,
        id: i64,
        front: &str,
    ) -> Result<()> {
        let (file, _) = self.open_version(who, addr, id).await?;
        self.mkdir_all(who, &addr.with_path(addr.path.parent()))
            .await?;
        self.write(who, addr, file, front).await?;
        Ok(())
    }

    /// The trash of a user's folders, newest first.
    pub async fn trash(&self, who: &Principal, owner: &str) -> Result<Vec<TrashItem>> {
        self.namespace(who, owner).await?;
        let folders = self.folders(who, Some(owner)).await?;
        let ids: Vec<String> = folders.iter().map(|f| f.id.clone()).collect();
        let rows = self.inner.catalog.trash(&ids).await?;
        Ok(rows
            .into_iter()
            .map(|t| TrashItem {
                folder: folders
                    .iter()
                    .find(|f| f.id == t.folder_id)
                    .map(|f| f.name.clone())
                    .unwrap_or_default(),
                kind: t.kind(),
                path: RelPath::parse(&t.path).unwrap_or_default(),
                id: t.id,
                folder_id: t.folder_id,
                files: t.files as u64,
                size: t.size as u64,
                deleted_at: t.deleted_at,
                actor: t.actor,
                front: t.front,
            })
            .collect())
    }

    /// Puts a trash item back where it was (replacing, with versioning, any
    /// file that took its place).
    pub async fn restore_trash(
        &self,
        who: &Principal,
        owner: &str,
        id: i64,
        front: &str,
    ) -> Result<()> {
        let item = self.trash_item(who, owner, id).await?;
        let base = Address::new(owner, item.folder.clone(), item.path.clone());
        if item.kind == crate::resource::EntryKind::Dir {
            self.mkdir_all(who, &base).await?;
        }
        for v in self.inner.catalog.trash_versions(id).await? {
            let addr = base.with_path(v.path.clone());
            self.mkdir_all(who, &addr.with_path(v.path.parent()))
                .await?;
            let (blobs, hash) = (self.inner.blobs.clone(), v.hash);
            let f = blocking(move || blobs.open_blob(&hash)).await?;
            self.write(who, &addr, tokio::fs::File::from_std(f), front)
                .await?;
        }
        self.inner.catalog.remove_trash(id, false).await?;
        Ok(())
    }

    /// Deletes a trash item for good (or all of a user's, with `None`), and
    /// the blobs nothing else refers to.
    pub async fn purge_trash(&self, who: &Principal, owner: &str, id: Option<i64>) -> Result<u64> {
        let ids: Vec<i64> = match id {
            Some(id) => vec![self.trash_item(who, owner, id).await?.id],
            None => self.trash(who, owner).await?.iter().map(|t| t.id).collect(),
        };
        let mut freed = 0;
        for id in ids {
            let hashes = self.inner.catalog.remove_trash(id, true).await?;
            if hashes.is_empty() {
                continue;
            }
            // No writer may take up one of these blobs between the check
            // and the removal (see `BlobStore`).
            let blobs = self.inner.blobs.clone();
            let _alone = blocking(move || blobs.alone()).await?;
            for hash in hashes {
                if !self.inner.catalog.blob_in_use(&hash).await? {
                    let (blobs, h) = (self.inner.blobs.clone(), hash);
                    blocking(move || blobs.remove(&h)).await?;
                    freed += 1;
                }
            }
        }
        Ok(freed)
    }

    async fn trash_item(&self, who: &Principal, owner: &str, id: i64) -> Result<TrashItem> {
        self.trash(who, owner)
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or(FabricError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FabricConfig, FolderOptions};

    /// Garbage collection used to check that nothing referred to a blob and
    /// then remove it with no lock, while a writer that had just found the
    /// blob present went on to refer to it: the new row pointed at nothing.
    /// Now the writer holds a lease from its look until its row is in, and
    /// collection waits for every lease.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn collection_never_removes_a_blob_a_writer_is_taking_up() {
        let tmp = tempfile::tempdir().unwrap();
        let docs = tmp.path().join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        let fabric = Fabric::open(FabricConfig::new(tmp.path().join("data")))
            .await
            .unwrap();
        fabric
            .create_user("alice", "alice-password", false)
            .await
            .unwrap();
        fabric
            .add_folder("alice", "docs", &docs, FolderOptions::default())
            .await
            .unwrap();
        let sys = Principal::System;
        let a = Address::parse("alice/docs/a.txt").unwrap();
        let out = fabric.write(&sys, &a, &b"alpha"[..], "test").await.unwrap();
        let trash = fabric.delete(&sys, &a, "test").await.unwrap().unwrap();
        let hash = out.hash;
        assert!(fabric.inner.blobs.contains(&hash));

        // A writer found the blob present and is about to refer to it.
        let lease = fabric.inner.blobs.lease().await.unwrap();
        let f = fabric.clone();
        let purge = tokio::spawn(async move { f.purge_trash(&sys, "alice", Some(trash)).await });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!purge.is_finished(), "collection waits for the lease");
        let folder = fabric.all_folders().pop().unwrap();
        let v = NewVersion {
            folder_id: &folder.id,
            path: "b.txt",
            hash: &hash,
            size: 5,
            mtime_ns: 0,
            reason: "overwrite",
            front: "test",
            actor: "test",
            trash_id: None,
        };
        fabric
            .inner
            .catalog
            .insert_version(&v, now_ms())
            .await
            .unwrap();
        drop(lease);
        assert_eq!(purge.await.unwrap().unwrap(), 0, "nothing to free");
        assert!(fabric.inner.blobs.contains(&hash), "the blob stays");
    }
}
