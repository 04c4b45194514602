//! Content-addressed blob store: each blob is a file named by the BLAKE3 hash
//! of its content, under `<data dir>/blobs/ab/cd/<hash>`. Identical content is
//! stored once. Blobs are written to a temp file, fsynced and renamed, so a
//! blob that exists is whole.
//!
//! Copies use reflinks (copy-on-write clones) where the filesystem has them
//! (btrfs, XFS, bcachefs, APFS), so keeping a copy of a file costs no space
//! until one side changes; elsewhere they are ordinary copies.

use crate::catalog::hex;
use crate::error::Result;
use crate::ids::ContentHash;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Size of the buffer used to copy and hash.
const CHUNK: usize = 1 << 20;

/// The blob store; cloning is cheap.
///
/// Whoever makes the catalog refer to a blob (keeps a version, records a
/// file's copy, decides a stored blob can be reused) holds a [`lease`]
/// from before it looks at the store until the catalog row is written;
/// garbage collection holds the lock [`alone`] while it checks that nothing
/// refers to a blob and removes it. So a blob that a writer found present
/// cannot vanish before the writer's row refers to it, in any process.
///
/// [`lease`]: BlobStore::lease
/// [`alone`]: BlobStore::alone
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
    gc: std::sync::Arc<super::locks::SharedLock>,
}

impl BlobStore {
    /// Opens (creating) the store under `root`.
    pub fn open(root: PathBuf) -> Result<BlobStore> {
        fs::create_dir_all(root.join("tmp"))?;
        // Beside the store (in the data dir's `locks/`), not in it: the
        // store holds blobs only.
        let lock = root.with_file_name("locks").join("blobs.lock");
        let gc = std::sync::Arc::new(super::locks::SharedLock::new(lock));
        Ok(BlobStore { root, gc })
    }

    /// A lease that keeps garbage collection away (see the type's docs).
    pub async fn lease(&self) -> Result<super::locks::SharedGuard> {
        if let Some(g) = self.gc.try_share()? {
            return Ok(g);
        }
        let gc = self.gc.clone();
        crate::fabric::blocking(move || gc.share()).await
    }

    /// The store alone, for garbage collection: waits for every lease, in
    /// every process, to end. Blocking.
    pub fn alone(&self) -> Result<super::locks::SoleGuard> {
        self.gc.alone()
    }

    /// Refuses ([`crate::FabricError::NoSpace`]) to store `needed` more bytes
    /// if that would leave less than `min_free` on the store's disk. Blocking.
    pub fn ensure_room(&self, needed: u64, min_free: u64) -> Result<()> {
        super::local::ensure_room(&self.root, needed, min_free)
    }

    /// Where the blob `hash` lives. Only a validated [`ContentHash`] names
    /// a path here, so no catalog row or peer can point outside the store.
    pub fn path(&self, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_string();
        self.root.join(&hex[0..2]).join(&hex[2..4]).join(hex)
    }

    /// True if the blob is stored. Blocking (a `stat`).
    pub fn contains(&self, hash: &ContentHash) -> bool {
        self.path(hash).is_file()
    }

    /// [`BlobStore::contains`] off the async threads.
    pub async fn has(&self, hash: &ContentHash) -> bool {
        let (me, h) = (self.clone(), *hash);
        tokio::task::spawn_blocking(move || me.contains(&h))
            .await
            .unwrap_or(false)
    }

    /// Copies what `input` holds (from its start) into the store while
    /// hashing it, in one pass. Returns the hash and the number of bytes.
    /// Blocking.
    pub fn ingest(&self, input: &File) -> Result<(ContentHash, u64)> {
        let (tmp, mut out) = self.temp_file()?;
        let mut guard = RemoveOnDrop(Some(tmp.clone()));
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = match std::os::unix::fs::FileExt::read_at(input, &mut buf, total) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            total += n as u64;
        }
        out.sync_all()?;
        drop(out);
        let hash = ContentHash::from(hasher.finalize());
        self.commit(&tmp, &hash)?;
        guard.0 = None;
        Ok((hash, total))
    }

    /// Stores a copy of what `src` holds, whose hash the caller already
    /// knows (it was computed while the file was written): a reflink
    /// (copy-on-write clone) where the filesystem has them, else a copy.
    /// Blocking.
    pub fn ingest_file_known(&self, src: &File, hash: &ContentHash) -> Result<()> {
        if self.contains(hash) {
            return Ok(());
        }
        let (tmp, mut out) = self.temp_file()?;
        let mut guard = RemoveOnDrop(Some(tmp.clone()));
        if rustix::fs::ioctl_ficlone(&out, src).is_err() {
            let mut input = src.try_clone()?;
            io::Seek::seek(&mut input, io::SeekFrom::Start(0))?;
            io::copy(&mut input, &mut out)?;
        }
        out.sync_all()?;
        drop(out);
        self.commit(&tmp, hash)?;
        guard.0 = None;
        Ok(())
    }

    /// Every blob in the store, with its size. Blocking.
    pub fn list(&self) -> Result<Vec<(ContentHash, u64)>> {
        let mut out = Vec::new();
        for a in fs::read_dir(&self.root)? {
            let a = a?;
            let name = a.file_name();
            let is_fan = |n: &std::ffi::OsStr| {
                n.len() == 2
                    && n.to_str()
                        .is_some_and(|s| s.bytes().all(|b| b.is_ascii_hexdigit()))
            };
            if !a.file_type()?.is_dir() || !is_fan(&name) {
                continue; // `tmp/`
            }
            for b in fs::read_dir(a.path())? {
                let b = b?;
                if !b.file_type()?.is_dir() {
                    continue;
                }
                for blob in fs::read_dir(b.path())? {
                    let blob = blob?;
                    // Anything not named by a hash is not a blob.
                    if let Some(hash) = blob.file_name().to_str().and_then(|n| n.parse().ok())
                        && let Ok(m) = blob.metadata()
                    {
                        out.push((hash, m.len()));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Opens a blob for reading. Blocking.
    pub fn open_blob(&self, hash: &ContentHash) -> Result<File> {
        Ok(File::open(self.path(hash))?)
    }

    /// Deletes a blob (callers check that nothing refers to it).
    pub fn remove(&self, hash: &ContentHash) -> Result<()> {
        match fs::remove_file(self.path(hash)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn temp_file(&self) -> Result<(PathBuf, File)> {
        let tmp = self
            .root
            .join("tmp")
            .join(hex(&crate::catalog::random_bytes::<12>()));
        let f = File::options().write(true).create_new(true).open(&tmp)?;
        Ok((tmp, f))
    }

    fn commit(&self, tmp: &Path, hash: &ContentHash) -> Result<()> {
        let dst = self.path(hash);
        if dst.is_file() {
            fs::remove_file(tmp)?;
            return Ok(());
        }
        if let Some(dir) = dst.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::rename(tmp, &dst)?;
        // Make the rename (and any new fan-out directory) durable before the
        // caller replaces the file this blob keeps a version of.
        crate::store::local::sync_parent(&dst);
        if let Some(fan) = dst.parent() {
            crate::store::local::sync_parent(fan);
        }
        Ok(())
    }
}

/// BLAKE3 of what `file` holds, from its start, without copying it.
/// Blocking.
pub fn hash_file(file: &File) -> Result<(ContentHash, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match std::os::unix::fs::FileExt::read_at(file, &mut buf, total) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((ContentHash::from(hasher.finalize()), total))
}

/// Deletes a file when dropped unless disarmed (`.0 = None`).
pub(crate) struct RemoveOnDrop(pub Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_dedupes_and_names_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("blobs")).unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::write(&a, b"same bytes").unwrap();
        fs::write(&b, b"same bytes").unwrap();
        let (h1, n) = store.ingest(&File::open(&a).unwrap()).unwrap();
        let (h2, _) = store.ingest(&File::open(&b).unwrap()).unwrap();
        assert_eq!(n, 10);
        assert_eq!(h1, h2);
        assert_eq!(h1, ContentHash::of(b"same bytes"));
        assert!(store.path(&h1).ends_with(h1.to_string()));
        assert_eq!(fs::read(store.path(&h1)).unwrap(), b"same bytes");
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(),
            0
        );
        store
            .ingest_file_known(&File::open(&a).unwrap(), &h1)
            .unwrap();
        assert_eq!(hash_file(&File::open(&a).unwrap()).unwrap().0, h1);
        // A copy of content the store does not hold yet.
        fs::write(&a, b"other bytes").unwrap();
        let h3 = ContentHash::of(b"other bytes");
        store
            .ingest_file_known(&File::open(&a).unwrap(), &h3)
            .unwrap();
        assert_eq!(fs::read(store.path(&h3)).unwrap(), b"other bytes");
    }
}
