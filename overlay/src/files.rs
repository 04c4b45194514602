//! File operations of the fabric: stat, list, read, atomic write, mkdir,
//! rename, copy, delete-to-trash.
//!
//! Every write follows one path: the new content goes to a temp file in the
//! target's directory (hashed as it streams), is fsynced, the old content is
//! kept as a version, and the temp file is renamed over the target; then the
//! catalog records the entry. The commit runs under the folder's lock so that
//! the disk watcher never mistakes Glow's own writes for outside edits.

use crate::access::{Op, Principal, authorize};
use crate::error::{FabricError, Result};
use crate::fabric::{Address, Fabric, Resolved, blocking};
use crate::path::RelPath;
use crate::resource::{Entry, EntryKind, Folder, WriteOutcome};
use crate::store::blobs::RemoveOnDrop;
use crate::store::local;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Buffer for streaming writes.
const WRITE_CHUNK: usize = 256 * 1024;
/// Files up to this size are read whole when opened.
pub const INLINE_LIMIT: u64 = 64 * 1024;
/// How far beyond the bytes it was actually sent an upload may make a file
/// reach (a SETSTAT of a large size, a WRITE at a far offset): extending is
/// cheap on disk (sparse), but the commit hashes and may copy every byte,
/// so a 30-byte request must not be able to cost gigabytes.
pub const SPARSE_ALLOWANCE: u64 = 64 << 20;

/// A write in progress (see [`Fabric::begin_write`]).
pub struct Upload(Box<UploadState>);

/// What an [`Upload`] keeps (boxed: handles that hold one stay small).
struct UploadState {
    fabric: Fabric,
    who: Principal,
    resolved: Resolved,
    tmp: PathBuf,
    file: std::sync::Arc<fs::File>,
    guard: RemoveOnDrop,
    front: String,
    pre: Precondition,
    /// The hash of the content so far, while it arrives in order from the
    /// start (as uploads do): saves reading the whole file again on commit.
    sequential: std::sync::Mutex<Option<(u64, Box<blake3::Hasher>)>>,
    /// The pending content's size when the upload began (a copy of the
    /// old content, or nothing).
    base_len: u64,
    /// Bytes the client has sent (see [`SPARSE_ALLOWANCE`]).
    received: std::sync::atomic::AtomicU64,
    /// The space the disk must keep free.
    space: std::sync::Mutex<local::SpaceGuard>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("target", &self.0.resolved.rel)
            .finish()
    }
}

impl Upload {
    /// Writes `data` at `offset` in the pending content. Writes at distinct
    /// offsets may run concurrently (SFTP clients keep many in flight).
    pub async fn write_at(&self, offset: u64, data: bytes::Bytes) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let file = self.0.file.clone();
        blocking(move || Ok(file.write_all_at(&data, offset)?)).await
    }

    /// Tells the upload what is being written at `offset`, in the order the
    /// client sent it, before the write itself runs (possibly concurrently
    /// with others). While the pieces come in order from the start, the
    /// content is hashed on the way and commit need not read it again;
    /// anything else (a gap, a rewrite) falls back to hashing on commit.
    ///
    /// Every byte written must pass through here: what was sent bounds how
    /// large the file may become ([`SPARSE_ALLOWANCE`]), and the write is
    /// refused ([`FabricError::NoSpace`]) once the disk is down to the space
    /// it must keep free.
    pub fn note_write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.0
            .space
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .wrote(data.len() as u64)?;
        self.0
            .received
            .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut seq = self.0.sequential.lock().unwrap_or_else(|e| e.into_inner());
        match seq.as_mut() {
            Some((next, hasher)) if *next == offset => {
                hasher.update(data);
                *next += data.len() as u64;
            }
            _ => *seq = None,
        }
        Ok(())
    }

    /// Reads up to `len` bytes at `offset` of the pending content (a file
    /// opened for reading and writing at once).
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let file = self.0.file.clone();
        blocking(move || read_at(&file, offset, len)).await
    }

    /// The file the pending content is written to, for positional I/O
    /// without a trip through the blocking pool per call.
    pub fn pending_file(&self) -> std::sync::Arc<fs::File> {
        self.0.file.clone()
    }

    /// The pending content's size.
    pub async fn len(&self) -> Result<u64> {
        let file = self.0.file.clone();
        blocking(move || Ok(file.metadata()?.len())).await
    }

    /// Sets the pending content's size (truncate or extend with zeros).
    pub async fn set_len(&mut self, len: u64) -> Result<()> {
        {
            let mut seq = self.0.sequential.lock().unwrap_or_else(|e| e.into_inner());
            if seq.as_ref().is_some_and(|(next, _)| *next != len) {
                *seq = None;
            }
        }
        let file = self.0.file.clone();
        blocking(move || Ok(file.set_len(len)?)).await
    }

    /// Makes the pending content the file's, atomically (the old content is
    /// kept as a version), if the upload's precondition still holds.
    pub async fn commit(mut self) -> Result<WriteOutcome> {
        let (file, tmp) = (self.0.file.clone(), self.0.tmp.clone());
        let sequential = self
            .0
            .sequential
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let reach = self
            .0
            .base_len
            .saturating_add(*self.0.received.get_mut())
            .saturating_add(SPARSE_ALLOWANCE);
        let hash = blocking(move || {
            let len = file.metadata()?.len();
            if len > reach {
                return Err(FabricError::Invalid(format!(
                    "a file may grow at most {} MiB beyond the data sent for it; \
                     send the data instead of extending the file",
                    SPARSE_ALLOWANCE >> 20
                )));
            }
            file.sync_all()?;
            match sequential {
                Some((next, hasher)) if next == len => Ok(hasher.finalize().to_hex().to_string()),
                _ => Ok(crate::store::blobs::hash_file(&tmp)?.0),
            }
        })
        .await?;
        let outcome = self
            .0
            .fabric
            .commit_write(
                &self.0.who,
                &self.0.resolved,
                &self.0.tmp,
                &hash,
                &self.0.front,
                &self.0.pre,
            )
            .await?;
        self.0.guard.0 = None;
        Ok(outcome)
    }
}

/// Reads up to `len` bytes at `offset` of `file` (fewer only at its end).
pub fn read_at(file: &fs::File, offset: u64, len: usize) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// What must hold for a conditional write to be committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Nothing.
    None,
    /// The target must not exist (`If-None-Match: *`).
    Absent,
    /// The target must exist (`If-Match: *`).
    Exists,
    /// The target's current ETag must be this one (`If-Match: "…"`).
    Etag(String),
}

/// A file opened for reading.
#[derive(Debug)]
pub struct OpenFile {
    /// What it is.
    pub entry: Entry,
    /// Its content.
    pub body: FileBody,
}

/// The content of an opened file.
#[derive(Debug)]
pub enum FileBody {
    /// A small file, read whole (up to [`INLINE_LIMIT`] bytes; the entry's
    /// size is that of these bytes).
    Inline(bytes::Bytes),
    /// A larger file, open for streaming and seeking.
    File(tokio::fs::File),
}

impl OpenFile {
    /// The content as a reader.
    pub fn into_reader(self) -> Box<dyn AsyncRead + Unpin + Send> {
        match self.body {
            FileBody::Inline(b) => Box::new(std::io::Cursor::new(b)),
            FileBody::File(f) => Box::new(f),
        }
    }
}

impl Fabric {
    /// Describes one file or directory.
    pub async fn stat(&self, who: &Principal, addr: &Address) -> Result<Entry> {
        let r = self.resolve(who, addr, Op::Read, false).await?;
        stat_resolved(r).await
    }

    /// Lists a directory.
    pub async fn list(&self, who: &Principal, addr: &Address) -> Result<Vec<Entry>> {
        let r = self.resolve(who, addr, Op::Read, false).await?;
        // Symbolic links are listed only where they lead within reach: the
        // folder, or a share link's own subtree.
        let scope = crate::fabric::share_root(who, &r.folder);
        let root = r.folder.path.clone();
        blocking(move || {
            if !fs::metadata(&r.disk)?.is_dir() {
                return Err(FabricError::WrongKind("not a directory"));
            }
            let bound = match scope {
                Some(s) => fs::canonicalize(s)?,
                None => root,
            };
            local::list_dir(&bound, &r.disk, &r.rel)
        })
        .await
    }

    /// Opens a file for reading; the caller seeks for ranges.
    ///
    /// Confinement, open and (for small files) the read happen in one trip
    /// to the blocking pool: this is the hot path of every file server.
    pub async fn open_file(&self, who: &Principal, addr: &Address) -> Result<OpenFile> {
        let folder = self.folder_for(who, addr, Op::Content).await?;
        let root = folder.path.clone();
        let rel = addr.path.clone();
        let name = if rel.is_root() {
            folder.name.clone()
        } else {
            rel.name().to_owned()
        };
        let scope = crate::fabric::share_root(who, &folder);
        blocking(move || {
            let disk = local::confine(&root, &rel, false)?;
            crate::fabric::check_share_bound(scope.as_deref(), &disk)?;
            let f = fs::File::open(&disk)?;
            let meta = f.metadata()?;
            if meta.is_dir() {
                return Err(FabricError::WrongKind("is a directory"));
            }
            let mut entry = local::entry_from(rel, name, &meta);
            let body = if entry.size <= INLINE_LIMIT {
                let mut buf = Vec::with_capacity(entry.size as usize);
                f.take(INLINE_LIMIT + 1).read_to_end(&mut buf)?;
                // What was read is the content, even if the file changed since the stat.
                entry.size = buf.len() as u64;
                FileBody::Inline(bytes::Bytes::from(buf))
            } else {
                FileBody::File(tokio::fs::File::from_std(f))
            };
            Ok(OpenFile { entry, body })
        })
        .await
    }

    /// Reads up to `len` bytes at `offset` (positional access for SFTP).
    pub async fn read_at(
        &self,
        who: &Principal,
        addr: &Address,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        let r = self.resolve(who, addr, Op::Content, false).await?;
        blocking(move || {
            let mut f = fs::File::open(&r.disk)?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::with_capacity(len.min(1 << 20));
            f.take(len as u64).read_to_end(&mut buf)?;
            Ok(buf)
        })
        .await
    }

    /// Creates or atomically replaces a file with everything `body` yields.
    /// The old content is kept as a version first. `front` names the protocol
    /// for the version record.
    pub async fn write(
        &self,
        who: &Principal,
        addr: &Address,
        body: impl AsyncRead + Unpin + Send,
        front: &str,
    ) -> Result<WriteOutcome> {
        self.write_if(who, addr, body, front, &Precondition::None)
            .await
    }

    /// [`Fabric::write`], but only if `pre` holds when the new content is
    /// committed (checked under the folder's lock, so two conditional
    /// writers cannot both win): HTTP's If-Match / If-None-Match, WebDAV's If.
    pub async fn write_if(
        &self,
        who: &Principal,
        addr: &Address,
        body: impl AsyncRead + Unpin + Send,
        front: &str,
        pre: &Precondition,
    ) -> Result<WriteOutcome> {
        let r = self.resolve(who, addr, Op::Create, true).await?;
        if r.rel.is_root() {
            return Err(FabricError::WrongKind("is a directory"));
        }
        let target = r.disk.clone();
        let (tmp, file) = blocking(move || local::create_temp(&target)).await?;
        let mut guard = RemoveOnDrop(Some(tmp.clone()));
        let space = local::SpaceGuard::new(&r.folder.path, self.inner.min_free_space);
        let hash = stream_to_file(body, tokio::fs::File::from_std(file), space).await?;
        let outcome = self.commit_write(who, &r, &tmp, &hash, front, pre).await?;
        guard.0 = None;
        Ok(outcome)
    }

    /// Starts a write that arrives in pieces, possibly out of order (WebDAV
    /// PUT, SFTP): the pieces go to a temp file beside the target, and only
    /// [`Upload::commit`] makes them visible, atomically, keeping the old
    /// content as a version. With `keep_existing`, the temp file starts as a
    /// copy of the current content (a partial update or a resumed upload).
    /// Dropping the upload without committing leaves the target untouched.
    pub async fn begin_write(
        &self,
        who: &Principal,
        addr: &Address,
        front: &str,
        pre: Precondition,
        keep_existing: bool,
    ) -> Result<Upload> {
        let r = self.resolve(who, addr, Op::Create, true).await?;
        if r.rel.is_root() {
            return Err(FabricError::WrongKind("is a directory"));
        }
        let target = r.disk.clone();
        let min_free = self.inner.min_free_space;
        let (tmp, file, existed, base_len) = blocking(move || {
            if let Ok(m) = fs::symlink_metadata(&target)
                && m.is_dir()
            {
                return Err(FabricError::WrongKind("is a directory"));
            }
            let (tmp, file) = local::create_temp(&target)?;
            let existed = target.is_file();
            let mut base_len = 0;
            if keep_existing && existed {
                let dir = target.parent().unwrap_or(&target);
                if let Err(e) = local::ensure_room(dir, fs::metadata(&target)?.len(), min_free) {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
                let mut guard = RemoveOnDrop(Some(tmp.clone()));
                base_len = io::copy(&mut fs::File::open(&target)?, &mut &file)?;
                guard.0 = None;
            }
            Ok((tmp, file, existed, base_len))
        })
        .await?;
        let space = local::SpaceGuard::new(&r.folder.path, self.inner.min_free_space);
        Ok(Upload(Box::new(UploadState {
            fabric: self.clone(),
            who: who.clone(),
            resolved: r,
            guard: RemoveOnDrop(Some(tmp.clone())),
            tmp,
            file: std::sync::Arc::new(file),
            front: front.to_owned(),
            pre,
            // A copy of the old content was not seen piece by piece.
            sequential: std::sync::Mutex::new(
                (!keep_existing || !existed).then(|| (0, Box::new(blake3::Hasher::new()))),
            ),
            base_len,
            received: Default::default(),
            space: std::sync::Mutex::new(space),
        })))
    }

    /// Second half of a write: keep the old content, move the temp file in,
    /// record the entry. Runs under the folder lock.
    async fn commit_write(
        &self,
        who: &Principal,
        r: &Resolved,
        tmp: &Path,
        hash: &str,
        front: &str,
        pre: &Precondition,
    ) -> Result<WriteOutcome> {
        let actor = who.actor();
        let _held = self.lock_folder(&r.folder.id).await?;
        let target = r.disk.clone();
        let current = match tokio::fs::symlink_metadata(&target).await {
            Ok(m) if m.is_dir() => return Err(FabricError::WrongKind("is a directory")),
            Ok(m) => Some(local::entry_from(r.rel.clone(), r.rel.name().to_owned(), &m).etag()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let holds = match pre {
            Precondition::None => true,
            Precondition::Absent => current.is_none(),
            Precondition::Exists => current.is_some(),
            Precondition::Etag(e) => current.as_deref() == Some(e.as_str()),
        };
        if !holds {
            return Err(FabricError::PreconditionFailed);
        }
        let existed = current.is_some();
        // From the look at the blob store until the entry refers to its copy.
        let _lease = self.inner.blobs.lease().await?;
        if existed {
            // Replacing needs more than creating (a drop box may only add).
            if authorize(who, &r.folder, &r.rel, Op::Write).is_err() {
                return Err(FabricError::AlreadyExists);
            }
            self.keep_version(&r.folder, &r.rel, &target, "overwrite", front, actor, None)
                .await?;
        }
        let (blobs, keep, tmp, h) = (
            self.inner.blobs.clone(),
            r.folder.keep_copies && !crate::path::is_os_metadata(r.rel.name()),
            tmp.to_path_buf(),
            hash.to_owned(),
        );
        let rel = r.rel.clone();
        let name = rel.name().to_owned();
        let min_free = self.inner.min_free_space;
        let entry = blocking(move || {
            if keep && !blobs.contains(&h) {
                blobs.ensure_room(fs::metadata(&tmp)?.len(), min_free)?;
                blobs.ingest_known(&tmp, &h)?;
            }
            local::commit_temp(&tmp, &target)?;
            Ok(local::entry_from(rel, name, &fs::metadata(&target)?))
        })
        .await?;
        self.record(&r.folder, &entry, Some(hash), false).await?;
        Ok(WriteOutcome {
            created: !existed,
            entry,
            hash: hash.to_owned(),
        })
    }

    /// Creates a directory; its parent must exist.
    pub async fn mkdir(&self, who: &Principal, addr: &Address) -> Result<Entry> {
        let r = self.resolve(who, addr, Op::Create, true).await?;
        let _held = self.lock_folder(&r.folder.id).await?;
        let (disk, rel) = (r.disk.clone(), r.rel.clone());
        let entry = blocking(move || {
            fs::create_dir(&disk)?;
            local::sync_parent(&disk);
            let name = rel.name().to_owned();
            Ok(local::entry_from(rel, name, &fs::metadata(&disk)?))
        })
        .await?;
        self.record(&r.folder, &entry, None, false).await?;
        Ok(entry)
    }

    /// Sets a file's or directory's permission bits (`mode & 0o777`) and
    /// modification time (SFTP's setstat: `chmod`, `put -p`). The content is
    /// unchanged, so no version is kept; the catalog records the new mtime.
    pub async fn set_attributes(
        &self,
        who: &Principal,
        addr: &Address,
        mode: Option<u32>,
        modified: Option<std::time::SystemTime>,
    ) -> Result<Entry> {
        let r = self.resolve(who, addr, Op::Write, false).await?;
        if r.rel.is_root() && mode.is_some() {
            return Err(FabricError::Forbidden); // a folder's own root stays as its owner set it
        }
        let _held = self.lock_folder(&r.folder.id).await?;
        let (disk, rel, name) = (r.disk.clone(), r.rel.clone(), entry_name(&r));
        let entry = blocking(move || {
            use std::os::unix::fs::PermissionsExt;
            let meta = fs::symlink_metadata(&disk)?;
            if meta.file_type().is_symlink() {
                return Err(FabricError::Forbidden);
            }
            if let Some(m) = mode {
                fs::set_permissions(&disk, fs::Permissions::from_mode(m & 0o777))?;
            }
            if let Some(t) = modified {
                let f = fs::File::open(&disk)?;
                f.set_modified(t)?;
            }
            Ok(local::entry_from(rel, name, &fs::metadata(&disk)?))
        })
        .await?;
        let hash = self
            .inner
            .catalog
            .entry(&r.folder.id, r.rel.as_str())
            .await?
            .and_then(|e| e.hash);
        self.record(&r.folder, &entry, hash.as_deref(), false)
            .await?;
        Ok(entry)
    }

    /// Creates a directory and any missing parents inside the folder.
    pub async fn mkdir_all(&self, who: &Principal, addr: &Address) -> Result<()> {
        let mut path = RelPath::root();
        for part in addr.path.as_str().split('/').filter(|p| !p.is_empty()) {
            path = path.join(part)?;
            match self.mkdir(who, &addr.with_path(path.clone())).await {
                Ok(_) | Err(FabricError::AlreadyExists) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Moves a file or directory. With `overwrite`, an existing target is kept
    /// as a version (a file) or moved to the trash (a directory) first.
    pub async fn rename(
        &self,
        who: &Principal,
        from: &Address,
        to: &Address,
        overwrite: bool,
        front: &str,
    ) -> Result<()> {
        let src = self.resolve(who, from, Op::Write, false).await?;
        let dst = self.resolve(who, to, Op::Create, true).await?;
        if src.rel.is_root() || dst.rel.is_root() {
            return Err(FabricError::Forbidden);
        }
        if src.folder.id == dst.folder.id && dst.rel.starts_with(&src.rel) {
            return Err(FabricError::Invalid(
                "cannot move a directory into itself".into(),
            ));
        }
        if src.disk == dst.disk {
            return Ok(());
        }
        if self.replace_target(who, &dst, overwrite, front).await? {
            // The target was moved away; its place is free.
        }
        let _held = self.lock_folders(&src.folder.id, &dst.folder.id).await?;
        let moved = self
            .inner
            .catalog
            .entries_under(&src.folder.id, src.rel.as_str())
            .await?;
        let (s, d) = (src.disk.clone(), dst.disk.clone());
        blocking(move || match fs::rename(&s, &d) {
            Err(e) if e.raw_os_error() == Some(18) => {
                // EXDEV: folders on different filesystems.
                copy_tree(&s, &d)?;
                if fs::metadata(&s)?.is_dir() {
                    fs::remove_dir_all(&s)?
                } else {
                    fs::remove_file(&s)?
                }
                Ok(())
            }
            other => {
                other?;
                local::sync_parent(&d);
                local::sync_parent(&s);
                Ok(())
            }
        })
        .await?;
        self.inner
            .catalog
            .move_properties(
                &src.folder.id,
                src.rel.as_str(),
                &dst.folder.id,
                dst.rel.as_str(),
            )
            .await?;
        for e in moved {
            let Ok(old) = RelPath::parse(&e.path) else {
                continue;
            };
            let new = old.rebase(&src.rel, &dst.rel);
            let cat = &self.inner.catalog;
            cat.record_entry(
                &src.folder.id,
                self.node_id(),
                &e.path,
                e.kind(),
                e.size,
                e.mtime_ns,
                e.hash.as_deref(),
                true,
            )
            .await?;
            cat.record_entry(
                &dst.folder.id,
                self.node_id(),
                new.as_str(),
                e.kind(),
                e.size,
                e.mtime_ns,
                e.hash.as_deref(),
                false,
            )
            .await?;
        }
        Ok(())
    }

    /// Copies a file or a directory tree. With `overwrite`, an existing target
    /// is replaced (and kept as a version or in the trash).
    pub async fn copy(
        &self,
        who: &Principal,
        from: &Address,
        to: &Address,
        overwrite: bool,
        front: &str,
    ) -> Result<()> {
        let src = self.resolve(who, from, Op::Content, false).await?;
        let dst = self.resolve(who, to, Op::Create, true).await?;
        if dst.rel.is_root() {
            return Err(FabricError::Forbidden);
        }
        if src.folder.id == dst.folder.id && dst.rel.starts_with(&src.rel) {
            return Err(FabricError::Invalid(
                "cannot copy a directory into itself".into(),
            ));
        }
        let src_is_dir = tokio::fs::metadata(&src.disk).await?.is_dir();
        if src_is_dir {
            self.replace_target(who, &dst, overwrite, front).await?;
            let base = src.disk.clone();
            let base_rel = src.rel.clone();
            let items = blocking(move || walk(&base, &base_rel)).await?;
            self.mkdir(who, to).await?;
            for (rel, kind) in items {
                let target = to.with_path(rel.rebase(&src.rel, &dst.rel));
                match kind {
                    EntryKind::Dir => {
                        self.mkdir(who, &target).await?;
                    }
                    EntryKind::File => {
                        let file = self.open_file(who, &from.with_path(rel)).await?;
                        self.write(who, &target, file.into_reader(), front).await?;
                    }
                }
            }
        } else {
            if let Ok(m) = tokio::fs::symlink_metadata(&dst.disk).await {
                if !overwrite {
                    return Err(FabricError::AlreadyExists);
                }
                if m.is_dir() {
                    self.delete(who, to, front).await?;
                }
            }
            let file = self.open_file(who, from).await?;
            self.write(who, to, file.into_reader(), front).await?;
        }
        Ok(())
    }

    /// Frees the place of a rename or copy target. Returns whether something
    /// was there.
    async fn replace_target(
        &self,
        who: &Principal,
        dst: &Resolved,
        overwrite: bool,
        front: &str,
    ) -> Result<bool> {
        let Ok(meta) = tokio::fs::symlink_metadata(&dst.disk).await else {
            return Ok(false);
        };
        if !overwrite || authorize(who, &dst.folder, &dst.rel, Op::Write).is_err() {
            return Err(FabricError::AlreadyExists);
        }
        let addr = Address::new(
            dst.folder.owner.clone(),
            dst.folder.name.clone(),
            dst.rel.clone(),
        );
        if meta.is_dir() {
            self.delete(who, &addr, front).await?;
        } else {
            let _held = self.lock_folder(&dst.folder.id).await?;
            self.keep_version(
                &dst.folder,
                &dst.rel,
                &dst.disk,
                "overwrite",
                front,
                who.actor(),
                None,
            )
            .await?;
        }
        Ok(true)
    }

    /// Moves a file or directory to the trash: its files are kept as versions
    /// attached to one trash item, then removed from disk. Returns the trash
    /// id, or `None` for a lone OS metadata file ([`is_os_metadata`]), which
    /// is removed without one.
    ///
    /// [`is_os_metadata`]: crate::path::is_os_metadata
    pub async fn delete(
        &self,
        who: &Principal,
        addr: &Address,
        front: &str,
    ) -> Result<Option<i64>> {
        let r = self.resolve(who, addr, Op::Write, false).await?;
        if r.rel.is_root() {
            return Err(FabricError::Forbidden);
        }
        let _held = self.lock_folder(&r.folder.id).await?;
        let meta = tokio::fs::symlink_metadata(&r.disk).await?;
        let kind = if meta.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        };
        let cat = &self.inner.catalog;
        let trash_id = if kind == EntryKind::File && crate::path::is_os_metadata(r.rel.name()) {
            None
        } else {
            Some(
                cat.insert_trash(
                    &r.folder.id,
                    r.rel.as_str(),
                    kind,
                    who.actor(),
                    front,
                    crate::resource::now_ms(),
                )
                .await?,
            )
        };
        let files = if meta.is_dir() {
            let (base, rel) = (r.disk.clone(), r.rel.clone());
            blocking(move || walk(&base, &rel)).await?
        } else {
            vec![(r.rel.clone(), EntryKind::File)]
        };
        for (rel, kind) in &files {
            if *kind == EntryKind::File {
                let disk = rel.to_disk(&r.folder.path);
                self.keep_version(
                    &r.folder,
                    rel,
                    &disk,
                    "delete",
                    front,
                    who.actor(),
                    trash_id,
                )
                .await?;
            }
        }
        let disk = r.disk.clone();
        blocking(move || {
            if meta.is_dir() {
                fs::remove_dir_all(&disk)?
            } else {
                fs::remove_file(&disk)?
            }
            local::sync_parent(&disk);
            Ok(())
        })
        .await?;
        cat.drop_properties(&r.folder.id, r.rel.as_str()).await?;
        for e in cat.entries_under(&r.folder.id, r.rel.as_str()).await? {
            cat.record_entry(
                &r.folder.id,
                self.node_id(),
                &e.path,
                e.kind(),
                e.size,
                e.mtime_ns,
                e.hash.as_deref(),
                true,
            )
            .await?;
        }
        Ok(trash_id)
    }

    /// Records an entry as it is on disk now.
    pub(crate) async fn record(
        &self,
        folder: &Folder,
        entry: &Entry,
        hash: Option<&str>,
        deleted: bool,
    ) -> Result<()> {
        self.inner
            .catalog
            .record_entry(
                &folder.id,
                self.node_id(),
                entry.path.as_str(),
                entry.kind,
                entry.size as i64,
                entry.mtime_ns,
                hash,
                deleted,
            )
            .await
    }
}

async fn stat_resolved(r: Resolved) -> Result<Entry> {
    let name = entry_name(&r);
    let rel = r.rel.clone();
    blocking(move || Ok(local::entry_from(rel, name, &fs::metadata(&r.disk)?))).await
}

fn entry_name(r: &Resolved) -> String {
    if r.rel.is_root() {
        r.folder.name.clone()
    } else {
        r.rel.name().to_owned()
    }
}

/// Streams `body` into `file`, hashing it; fsyncs. Returns the BLAKE3 hex.
async fn stream_to_file(
    mut body: impl AsyncRead + Unpin + Send,
    mut file: tokio::fs::File,
    mut space: local::SpaceGuard,
) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; WRITE_CHUNK];
    loop {
        let n = body.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        space.wrote(n as u64)?;
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).await?;
    }
    file.flush().await?;
    file.sync_all().await?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Every file and directory below `base` (not `base` itself), parents first.
/// Symbolic links are skipped. A regular file (or directory) whose name Glow
/// cannot address (not UTF-8, reserved) is an error: callers that delete or
/// copy the tree would otherwise lose or drop it silently.
fn walk(base: &Path, base_rel: &RelPath) -> Result<Vec<(RelPath, EntryKind)>> {
    let mut out = Vec::new();
    for item in walkdir::WalkDir::new(base)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
    {
        let item = item.map_err(|e| FabricError::Io(io::Error::other(e.to_string())))?;
        let ft = item.file_type();
        if !(ft.is_file() || ft.is_dir()) {
            continue;
        }
        let Some(rest) = RelPath::from_disk(base, item.path()) else {
            return Err(FabricError::Invalid(format!(
                "{} holds a name Glow cannot handle ({}); rename or remove it on disk first",
                base_rel,
                item.path()
                    .strip_prefix(base)
                    .unwrap_or(item.path())
                    .display()
            )));
        };
        let rel = if base_rel.is_root() {
            rest
        } else {
            RelPath::parse(&format!("{base_rel}/{rest}"))?
        };
        out.push((
            rel,
            if ft.is_dir() {
                EntryKind::Dir
            } else {
                EntryKind::File
            },
        ));
    }
    Ok(out)
}

/// Copies a tree (for moves across filesystems), as `mv` does: symbolic
/// links are made again as links (never followed: one that leads out of
/// the folder must not pull outside data in), special files are left out.
/// Blocking.
fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
    } else if ft.is_dir() {
        fs::create_dir(dst)?;
        for item in fs::read_dir(src)? {
            let item = item?;
            copy_tree(&item.path(), &dst.join(item.file_name()))?;
        }
    } else if ft.is_file() {
        fs::copy(src, dst)?;
        fs::File::open(dst)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_across_filesystems_never_follow_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.txt");
        fs::write(&outside, b"outside").unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/a.txt"), b"a").unwrap();
        std::os::unix::fs::symlink(&outside, src.join("sub/out")).unwrap();
        std::os::unix::fs::symlink(dir.path(), src.join("up")).unwrap();
        let dst = dir.path().join("dst");
        copy_tree(&src, &dst).unwrap();
        assert_eq!(fs::read(dst.join("sub/a.txt")).unwrap(), b"a");
        assert!(
            fs::symlink_metadata(dst.join("sub/out"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_link(dst.join("sub/out")).unwrap(), outside);
        assert!(
            fs::symlink_metadata(dst.join("up"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}
