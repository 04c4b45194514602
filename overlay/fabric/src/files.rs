//! File operations of the fabric: stat, list, read, atomic write, mkdir,
//! rename, copy, delete-to-trash, and the handles fronts read and write
//! through ([`ReadHandle`], [`Upload`]) without touching the disk
//! themselves.
//!
//! Every path reaches the disk below the folder's opened root
//! (`store::beneath`): the kernel resolves it and refuses anything that
//! would leave the folder, or a share link's subtree.
//!
//! Every write follows one path: the new content goes to a temp file in the
//! target's directory (hashed as it arrives), is fsynced, the old content is
//! kept as a version, and the temp file is renamed over the target; then the
//! catalog records the entry. The commit runs under the folder's lock (held
//! across processes) so that the disk watcher never mistakes Glow's own
//! writes for outside edits. A new file being written in pieces (SFTP,
//! WebDAV) is visible by its name, with its current size, while it is open;
//! an existing file keeps its old content for every reader until commit.

use crate::access::{Op, Principal, authorize};
use crate::error::{FabricError, Result};
use crate::fabric::{Address, Fabric, Resolved, blocking};
use crate::ids::ContentHash;
use crate::path::RelPath;
use crate::resource::{Entry, EntryKind, Folder, WriteOutcome};
use crate::store::beneath::{Parent, Root, Standing, entry_from};
use crate::store::local;
use bytes::Bytes;
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Buffer for streaming writes.
const WRITE_CHUNK: usize = 256 * 1024;
/// Files up to this size are read whole when opened.
pub const INLINE_LIMIT: u64 = 64 * 1024;
/// How far beyond the bytes it was actually sent an upload may make a file
/// reach (a SETSTAT of a large size, a WRITE at a far offset): extending is
/// cheap on disk (sparse), but the commit hashes and may copy every byte,
/// so a 30-byte request must not be able to cost gigabytes.
pub const SPARSE_ALLOWANCE: u64 = 64 << 20;

// ---- reading ----------------------------------------------------------------

/// Reads up to `len` bytes at `offset` of `file` (fewer only at its end).
fn pread(file: &fs::File, offset: u64, len: usize) -> Result<Vec<u8>> {
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

/// A file opened for reading, as a stream (HTTP, WebDAV GET, DLNA).
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
    Inline(Bytes),
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

    fn from_file(entry: Entry, f: fs::File) -> Result<OpenFile> {
        let mut entry = entry;
        let body = if entry.size <= INLINE_LIMIT {
            let mut buf = Vec::with_capacity(entry.size as usize);
            (&f).take(INLINE_LIMIT + 1).read_to_end(&mut buf)?;
            // What was read is the content, even if the file changed since the stat.
            entry.size = buf.len() as u64;
            FileBody::Inline(Bytes::from(buf))
        } else {
            FileBody::File(tokio::fs::File::from_std(f))
        };
        Ok(OpenFile { entry, body })
    }
}

/// A file open for reading at any offset: SFTP's READ, and any front that
/// must not assume the bytes are on this node's disk.
#[derive(Debug, Clone)]
pub struct ReadHandle {
    entry: Entry,
    body: ReadBody,
}

#[derive(Debug, Clone)]
enum ReadBody {
    Inline(Bytes),
    File(Arc<fs::File>),
}

impl ReadHandle {
    /// What was opened.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// Up to `len` bytes at `offset` (fewer only at the end; none past it).
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        match &self.body {
            ReadBody::Inline(b) => {
                let start = offset.min(b.len() as u64) as usize;
                let end = start.saturating_add(len).min(b.len());
                Ok(b.slice(start..end))
            }
            ReadBody::File(f) => {
                let f = f.clone();
                Ok(Bytes::from(blocking(move || pread(&f, offset, len)).await?))
            }
        }
    }
}

// ---- writing ----------------------------------------------------------------

/// BLAKE3 of content that arrives in order from the start, computed off the
/// async threads as it comes (so that commit need not read the file again);
/// anything out of order gives up, and commit hashes the file instead.
enum OrderedHash {
    InOrder {
        next: u64,
        feed: Option<tokio::sync::mpsc::UnboundedSender<Bytes>>,
        done: Option<tokio::task::JoinHandle<blake3::Hasher>>,
    },
    GaveUp,
}

impl OrderedHash {
    fn new() -> OrderedHash {
        OrderedHash::InOrder {
            next: 0,
            feed: None,
            done: None,
        }
    }

    fn feed(&mut self, offset: u64, data: &Bytes) {
        let OrderedHash::InOrder { next, feed, done } = self else {
            return;
        };
        if *next != offset {
            *self = OrderedHash::GaveUp;
            return;
        }
        if data.is_empty() {
            return;
        }
        let tx = feed.get_or_insert_with(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
            *done = Some(tokio::task::spawn_blocking(move || {
                let mut h = blake3::Hasher::new();
                while let Some(b) = rx.blocking_recv() {
                    h.update(&b);
                }
                h
            }));
            tx
        });
        if tx.send(data.clone()).is_err() {
            *self = OrderedHash::GaveUp;
            return;
        }
        *next += data.len() as u64;
    }

    /// The hash if the content of `len` bytes arrived whole and in order.
    async fn finish(self, len: u64) -> Option<ContentHash> {
        match self {
            OrderedHash::InOrder { next, feed, done } if next == len => {
                drop(feed);
                let h = match done {
                    Some(d) => d.await.ok()?,
                    None => blake3::Hasher::new(),
                };
                Some(ContentHash::from(h.finalize()))
            }
            _ => None,
        }
    }
}

/// A write in progress (see [`Fabric::begin_write`]): pieces at any offset,
/// then [`Upload::commit`] makes them the file's content, atomically.
/// Dropping it without committing leaves the target as it was.
pub struct Upload(Box<UploadState>);

/// What an [`Upload`] keeps (boxed: handles that hold one stay small).
struct UploadState {
    fabric: Fabric,
    who: Principal,
    resolved: Resolved,
    parent: Arc<Parent>,
    tmp: String,
    file: Arc<fs::File>,
    front: String,
    pre: Precondition,
    hash: Mutex<OrderedHash>,
    /// The pending content's size when the upload began (a copy of the
    /// old content, or nothing).
    base_len: u64,
    /// Bytes the client has sent (see [`SPARSE_ALLOWANCE`]).
    received: AtomicU64,
    /// The space the disk must keep free.
    space: Mutex<local::SpaceGuard>,
    /// Its place among the new files visible while written.
    pending: Option<u64>,
    committed: bool,
}

impl Drop for UploadState {
    fn drop(&mut self) {
        if let Some(id) = self.pending {
            self.fabric
                .unlist_pending(&self.resolved.folder.id, &self.resolved.rel, id);
        }
        if !self.committed {
            self.parent.remove_temp(&self.tmp);
        }
    }
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("target", &self.0.resolved.rel)
            .finish()
    }
}

/// Positional access to an [`Upload`]'s pending content, for reads and
/// writes that run side by side (SFTP keeps many in flight); cloning is
/// cheap.
#[derive(Clone, Debug)]
pub struct UploadWriter(Arc<fs::File>);

impl UploadWriter {
    /// Writes `data` at `offset`. Every byte must have been announced with
    /// [`Upload::note_write`] first, in the client's order.
    pub async fn write_at(&self, offset: u64, data: Bytes) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let f = self.0.clone();
        blocking(move || Ok(f.write_all_at(&data, offset)?)).await
    }

    /// Reads up to `len` bytes at `offset` of the pending content.
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let f = self.0.clone();
        Ok(Bytes::from(blocking(move || pread(&f, offset, len)).await?))
    }

    /// Appends `data` at the end, whatever it is now.
    pub async fn append(&self, data: Bytes) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let f = self.0.clone();
        blocking(move || {
            let at = f.metadata()?.len();
            Ok(f.write_all_at(&data, at)?)
        })
        .await
    }
}

impl Upload {
    /// Tells the upload what is being written at `offset`, in the order the
    /// client sent it, before the write itself runs (possibly side by side
    /// with others). Content that comes in order from the start is hashed
    /// on the way; anything else is hashed on commit.
    ///
    /// Every byte written must pass through here: what was sent bounds how
    /// large the file may become ([`SPARSE_ALLOWANCE`]), and the write is
    /// refused ([`FabricError::NoSpace`]) once the disk is down to the space
    /// it must keep free.
    pub fn note_write(&self, offset: u64, data: &Bytes) -> Result<()> {
        self.0
            .space
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .wrote(data.len() as u64)?;
        self.0
            .received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.0
            .hash
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .feed(offset, data);
        Ok(())
    }

    /// [`Upload::note_write`], then the write (for callers that write one
    /// piece at a time, in order).
    pub async fn write_at(&self, offset: u64, data: Bytes) -> Result<()> {
        self.note_write(offset, &data)?;
        self.writer().write_at(offset, data).await
    }

    /// A handle for positional writes that run side by side.
    pub fn writer(&self) -> UploadWriter {
        UploadWriter(self.0.file.clone())
    }

    /// Reads up to `len` bytes at `offset` of the pending content (a file
    /// opened for reading and writing at once).
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let file = self.0.file.clone();
        Ok(Bytes::from(
            blocking(move || pread(&file, offset, len)).await?,
        ))
    }

    /// The pending content's size.
    pub async fn len(&self) -> Result<u64> {
        let file = self.0.file.clone();
        blocking(move || Ok(file.metadata()?.len())).await
    }

    /// Sets the pending content's size (truncate, or extend with zeros:
    /// sparse, and bounded at commit by [`SPARSE_ALLOWANCE`]).
    pub async fn set_len(&mut self, len: u64) -> Result<()> {
        *self.0.hash.get_mut().unwrap_or_else(|e| e.into_inner()) = OrderedHash::GaveUp;
        let file = self.0.file.clone();
        blocking(move || Ok(file.set_len(len)?)).await
    }

    /// Makes the pending content the file's, atomically (the old content is
    /// kept as a version), if the upload's precondition still holds.
    pub async fn commit(mut self) -> Result<WriteOutcome> {
        let s = &mut *self.0;
        let file = s.file.clone();
        let reach = s
            .base_len
            .saturating_add(*s.received.get_mut())
            .saturating_add(SPARSE_ALLOWANCE);
        let len = {
            let f = file.clone();
            blocking(move || Ok(f.metadata()?.len())).await?
        };
        if len > reach {
            return Err(FabricError::Invalid(format!(
                "a file may grow at most {} MiB beyond the data sent for it; \
                 send the data instead of extending the file",
                SPARSE_ALLOWANCE >> 20
            )));
        }
        let ordered = std::mem::replace(
            s.hash.get_mut().unwrap_or_else(|e| e.into_inner()),
            OrderedHash::GaveUp,
        );
        let known = ordered.finish(len).await;
        let hash = blocking(move || {
            file.sync_all()?;
            match known {
                Some(h) => Ok(h),
                None => Ok(crate::store::blobs::hash_file(&file)?.0),
            }
        })
        .await?;
        let outcome = s
            .fabric
            .commit_write(
                &s.who,
                &s.resolved,
                &s.parent,
                &s.tmp,
                &s.file,
                &hash,
                &s.front,
                &s.pre,
            )
            .await?;
        s.committed = true;
        Ok(outcome)
    }
}

/// One upload's temp file, by the upload's id.
type PendingFile = (u64, Arc<fs::File>);

/// New files being written in pieces, visible by their name while open:
/// `(folder id, path)` → the uploads writing it (the latest one shows).
#[derive(Default)]
pub(crate) struct PendingWrites {
    next_id: u64,
    by_name: HashMap<(String, RelPath), Vec<PendingFile>>,
}

impl Fabric {
    fn list_pending(&self, folder_id: &str, rel: &RelPath, file: Arc<fs::File>) -> u64 {
        let mut p = self.pending();
        p.next_id += 1;
        let id = p.next_id;
        p.by_name
            .entry((folder_id.to_owned(), rel.clone()))
            .or_default()
            .push((id, file));
        id
    }

    fn unlist_pending(&self, folder_id: &str, rel: &RelPath, id: u64) {
        let mut p = self.pending();
        let key = (folder_id.to_owned(), rel.clone());
        if let Some(v) = p.by_name.get_mut(&key) {
            v.retain(|(i, _)| *i != id);
            if v.is_empty() {
                p.by_name.remove(&key);
            }
        }
    }

    /// The temp file of a new file being written at `rel`, if any.
    fn pending_file(&self, folder_id: &str, rel: &RelPath) -> Option<Arc<fs::File>> {
        let p = self.pending();
        p.by_name
            .get(&(folder_id.to_owned(), rel.clone()))
            .and_then(|v| v.last())
            .map(|(_, f)| f.clone())
    }

    /// The new files being written in the directory `dir` of a folder.
    fn pending_in(&self, folder_id: &str, dir: &RelPath) -> Vec<(RelPath, Arc<fs::File>)> {
        let p = self.pending();
        p.by_name
            .iter()
            .filter(|((f, rel), _)| f == folder_id && !rel.is_root() && rel.parent() == *dir)
            .filter_map(|((_, rel), v)| v.last().map(|(_, f)| (rel.clone(), f.clone())))
            .collect()
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, PendingWrites> {
        self.inner.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// [`Fabric::open_file`] without the blocking pool, when that costs no
/// disk access: the path is in the kernel's lookup cache, and a small
/// file's bytes are in the page cache (`preadv2` with `RWF_NOWAIT`). This
/// is the hot path of a file server: two thread hand-offs per request cost
/// more than the open and the read themselves. `None` (anything missing
/// from the caches, any error, a share link's subtree) takes the blocking
/// path, which gives errors their proper meaning.
fn open_cached(fabric: &Fabric, r: &Resolved) -> Option<OpenFile> {
    if r.bound.is_some() || r.rel.is_root() {
        return None;
    }
    let f = cached_root(fabric, &r.folder.path)?.open_file_cached(&r.rel)?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let entry = entry_from(r.rel.clone(), r.name(), &meta);
    if entry.size > INLINE_LIMIT {
        return Some(OpenFile {
            entry,
            body: FileBody::File(tokio::fs::File::from_std(f)),
        });
    }
    let size = entry.size as usize;
    let mut buf = vec![0u8; size + 1];
    let n = rustix::io::preadv2(
        &f,
        &mut [io::IoSliceMut::new(&mut buf)],
        0,
        rustix::io::ReadWriteFlags::NOWAIT,
    )
    .ok()?;
    // Fewer bytes: some pages are not cached, or the file changed since
    // the stat; more: it grew. The blocking path sorts either out.
    if n != size {
        return None;
    }
    buf.truncate(n);
    Some(OpenFile {
        entry,
        body: FileBody::Inline(Bytes::from(buf)),
    })
}

/// The folder's root for the fast path, opened at most a second ago: a
/// folder's directory replaced or moved on disk is seen within a second
/// (and the kernel confines every lookup to whichever directory it is),
/// while a busy folder is not reopened for every request.
fn cached_root(fabric: &Fabric, path: &std::path::Path) -> Option<Arc<Root>> {
    const REOPEN_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
    let mut roots = fabric
        .inner
        .open_roots
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some((root, at)) = roots.get(path)
        && at.elapsed() < REOPEN_AFTER
    {
        return Some(root.clone());
    }
    let root = Arc::new(Root::open_cached(path)?);
    if roots.len() > 1024 {
        roots.clear();
    }
    roots.insert(
        path.to_path_buf(),
        (root.clone(), std::time::Instant::now()),
    );
    Some(root)
}

/// The entry of a new file being written, from its temp file.
fn pending_entry(rel: &RelPath, f: &fs::File) -> Result<Entry> {
    Ok(entry_from(
        rel.clone(),
        rel.name().to_owned(),
        &f.metadata()?,
    ))
}

impl Fabric {
    /// Describes one file or directory (a new file being written shows with
    /// its current size).
    pub async fn stat(&self, who: &Principal, addr: &Address) -> Result<Entry> {
        let r = self.resolve(who, addr, Op::Read).await?;
        let pending = self.pending_file(&r.folder.id, &r.rel);
        blocking(move || match r.root()?.entry(&r.rel, r.name()) {
            Err(FabricError::NotFound) => match pending {
                Some(f) => pending_entry(&r.rel, &f),
                None => Err(FabricError::NotFound),
            },
            other => other,
        })
        .await
    }

    /// Lists a directory (new files being written included).
    pub async fn list(&self, who: &Principal, addr: &Address) -> Result<Vec<Entry>> {
        let r = self.resolve(who, addr, Op::Read).await?;
        let pending = self.pending_in(&r.folder.id, &r.rel);
        blocking(move || {
            let root = r.root()?;
            if !root.metadata(&r.rel)?.is_dir() {
                return Err(FabricError::WrongKind("not a directory"));
            }
            let mut entries = root.list(&r.rel)?;
            for (rel, f) in pending {
                if !entries.iter().any(|e| e.path == rel) {
                    entries.push(pending_entry(&rel, &f)?);
                }
            }
            Ok(entries)
        })
        .await
    }

    /// Lists a directory in batches of up to `batch` entries, sent as they
    /// are read from the disk, for answers that start before the whole
    /// listing is built (a WebDAV PROPFIND of a 10,000-entry directory).
    /// Errors about the directory itself (not found, not a directory) come
    /// here; an error met half-way ends the stream with it.
    pub async fn list_stream(
        &self,
        who: &Principal,
        addr: &Address,
        batch: usize,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<Vec<Entry>>>> {
        let r = self.resolve(who, addr, Op::Read).await?;
        let pending = self.pending_in(&r.folder.id, &r.rel);
        let root = blocking(move || {
            let root = r.root()?;
            if !root.metadata(&r.rel)?.is_dir() {
                return Err(FabricError::WrongKind("not a directory"));
            }
            Ok((root, r.rel))
        })
        .await?;
        let batch = batch.max(1);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let (root, rel) = root;
            let mut unseen: Vec<(RelPath, Arc<fs::File>)> = pending;
            let mut out = Vec::with_capacity(batch);
            let mut open = true;
            let listed = root.list_each(&rel, |e| {
                unseen.retain(|(p, _)| *p != e.path);
                out.push(e);
                if out.len() >= batch {
                    let full = std::mem::replace(&mut out, Vec::with_capacity(batch));
                    open = tx.blocking_send(Ok(full)).is_ok();
                }
                open
            });
            if !open {
                return; // the receiver went away
            }
            let end = listed.and_then(|()| {
                for (p, f) in &unseen {
                    out.push(pending_entry(p, f)?);
                }
                Ok(())
            });
            if !out.is_empty() {
                let _ = tx.blocking_send(Ok(out));
            }
            if let Err(e) = end {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(rx)
    }

    /// Opens a file for reading; the caller seeks for ranges.
    ///
    /// Authorization, the open and (for small files) the read happen in one
    /// trip to the blocking pool: this is the hot path of every file server.
    pub async fn open_file(&self, who: &Principal, addr: &Address) -> Result<OpenFile> {
        let r = self.resolve(who, addr, Op::Content).await?;
        if let Some(opened) = open_cached(self, &r) {
            return Ok(opened);
        }
        let pending = self.pending_file(&r.folder.id, &r.rel);
        blocking(move || {
            let f = match r.root()?.open_file(&r.rel) {
                Ok(f) => f,
                Err(FabricError::NotFound) => match &pending {
                    Some(p) => p.try_clone()?,
                    None => return Err(FabricError::NotFound),
                },
                Err(e) => return Err(e),
            };
            let meta = f.metadata()?;
            if meta.is_dir() {
                return Err(FabricError::WrongKind("is a directory"));
            }
            if !meta.is_file() {
                return Err(FabricError::NotFound); // a FIFO, a device: never served
            }
            let name = r.name();
            OpenFile::from_file(entry_from(r.rel, name, &meta), f)
        })
        .await
    }

    /// Opens a file for reads at any offset (SFTP).
    pub async fn open_read_handle(&self, who: &Principal, addr: &Address) -> Result<ReadHandle> {
        let opened = self.open_file(who, addr).await?;
        let body = match opened.body {
            FileBody::Inline(b) => ReadBody::Inline(b),
            FileBody::File(f) => ReadBody::File(Arc::new(f.into_std().await)),
        };
        Ok(ReadHandle {
            entry: opened.entry,
            body,
        })
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
        let r = self.resolve(who, addr, Op::Create).await?;
        if r.rel.is_root() {
            return Err(FabricError::WrongKind("is a directory"));
        }
        let r2 = r.clone();
        let (parent, tmp, file) = blocking(move || {
            let parent = r2.root()?.parent(&r2.rel)?;
            if parent.standing()? == Standing::Dir {
                return Err(FabricError::WrongKind("is a directory"));
            }
            let (tmp, file) = parent.create_temp()?;
            Ok((Arc::new(parent), tmp, file))
        })
        .await?;
        let file = Arc::new(file);
        let space = local::SpaceGuard::new(&r.folder.path, self.inner.min_free_space);
        let hash = match stream_to_file(body, file.clone(), space).await {
            Ok(h) => h,
            Err(e) => {
                parent.remove_temp(&tmp);
                return Err(e);
            }
        };
        let outcome = self
            .commit_write(who, &r, &parent, &tmp, &file, &hash, front, pre)
            .await;
        if outcome.is_err() {
            parent.remove_temp(&tmp);
        }
        outcome
    }

    /// Starts a write that arrives in pieces, possibly out of order (WebDAV
    /// PUT, SFTP): the pieces go to a temp file beside the target, and only
    /// [`Upload::commit`] makes them the content, atomically, keeping the
    /// old content as a version. With `keep_existing`, the temp file starts
    /// as a copy of the current content (a partial update or a resumed
    /// upload). A new file shows by its name while it is written.
    pub async fn begin_write(
        &self,
        who: &Principal,
        addr: &Address,
        front: &str,
        pre: Precondition,
        keep_existing: bool,
    ) -> Result<Upload> {
        let r = self.resolve(who, addr, Op::Create).await?;
        if r.rel.is_root() {
            return Err(FabricError::WrongKind("is a directory"));
        }
        let min_free = self.inner.min_free_space;
        let (r2, folder_path) = (r.clone(), r.folder.path.clone());
        let (parent, tmp, file, existed, base_len) = blocking(move || {
            let parent = r2.root()?.parent(&r2.rel)?;
            let existed = match parent.standing()? {
                Standing::Dir => return Err(FabricError::WrongKind("is a directory")),
                Standing::Other => return Err(FabricError::Forbidden),
                Standing::File => true,
                Standing::Nothing => false,
            };
            let (tmp, file) = parent.create_temp()?;
            let mut base_len = 0;
            if keep_existing && existed {
                let copied = parent.open_file().and_then(|mut old| {
                    local::ensure_room(&folder_path, old.metadata()?.len(), min_free)?;
                    Ok(io::copy(&mut old, &mut &file)?)
                });
                match copied {
                    Ok(n) => base_len = n,
                    Err(e) => {
                        parent.remove_temp(&tmp);
                        return Err(e);
                    }
                }
            }
            Ok((Arc::new(parent), tmp, file, existed, base_len))
        })
        .await?;
        let file = Arc::new(file);
        let pending = (!existed).then(|| self.list_pending(&r.folder.id, &r.rel, file.clone()));
        let space = local::SpaceGuard::new(&r.folder.path, self.inner.min_free_space);
        Ok(Upload(Box::new(UploadState {
            fabric: self.clone(),
            who: who.clone(),
            resolved: r,
            parent,
            tmp,
            file,
            front: front.to_owned(),
            pre,
            // A copy of the old content was not seen piece by piece.
            hash: Mutex::new(if keep_existing && existed {
                OrderedHash::GaveUp
            } else {
                OrderedHash::new()
            }),
            base_len,
            received: AtomicU64::new(0),
            space: Mutex::new(space),
            pending,
            committed: false,
        })))
    }

    /// Second half of a write: keep the old content, move the temp file in,
    /// record the entry. Runs under the folder lock.
    #[allow(clippy::too_many_arguments)]
    async fn commit_write(
        &self,
        who: &Principal,
        r: &Resolved,
        parent: &Arc<Parent>,
        tmp: &str,
        tmp_file: &Arc<fs::File>,
        hash: &ContentHash,
        front: &str,
        pre: &Precondition,
    ) -> Result<WriteOutcome> {
        let actor = who.actor();
        let _held = self.lock_folder(&r.folder.id).await?;
        let (p, rel) = (parent.clone(), r.rel.clone());
        let (current, old) = blocking(move || match p.standing()? {
            Standing::Dir => Err(FabricError::WrongKind("is a directory")),
            Standing::Other => Err(FabricError::Forbidden),
            Standing::File => Ok((Some(p.entry(&rel)?.etag()), Some(p.open_file()?))),
            Standing::Nothing => Ok((None, None)),
        })
        .await?;
        let holds = match pre {
            Precondition::None => true,
            Precondition::Absent => current.is_none(),
            Precondition::Exists => current.is_some(),
            Precondition::Etag(e) => current.as_deref() == Some(e.as_str()),
        };
        if !holds {
            return Err(FabricError::PreconditionFailed);
        }
        // From the look at the blob store until the entry refers to its copy.
        let _lease = self.inner.blobs.lease().await?;
        if let Some(old) = old {
            // Replacing needs more than creating (a drop box may only add).
            if authorize(who, &r.folder, &r.rel, Op::Write).is_err() {
                return Err(FabricError::AlreadyExists);
            }
            self.keep_version(&r.folder, &r.rel, old, "overwrite", front, actor, None)
                .await?;
        }
        // A copy of the new content, if the folder's policy covers it, so
        // that a later edit on disk can keep this content as a version.
        let f = tmp_file.clone();
        let size = blocking(move || Ok(f.metadata()?.len())).await?;
        self.keep_copy(&r.folder, r.rel.name(), tmp_file, hash, size, true)
            .await?;
        let (file, p, rel, tmp) = (
            tmp_file.clone(),
            parent.clone(),
            r.rel.clone(),
            tmp.to_owned(),
        );
        let entry = blocking(move || {
            p.replace_with(&tmp, &file)?;
            p.entry(&rel)
        })
        .await?;
        self.record(&r.folder, &entry, Some(hash), false).await?;
        Ok(WriteOutcome {
            created: current.is_none(),
            entry,
            hash: hash.to_owned(),
        })
    }

    /// Creates a directory; its parent must exist.
    pub async fn mkdir(&self, who: &Principal, addr: &Address) -> Result<Entry> {
        let r = self.resolve(who, addr, Op::Create).await?;
        let _held = self.lock_folder(&r.folder.id).await?;
        let r2 = r.clone();
        let entry = blocking(move || {
            let parent = r2.root()?.parent(&r2.rel)?;
            parent.mkdir()?;
            parent.entry(&r2.rel)
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
        let r = self.resolve(who, addr, Op::Write).await?;
        if r.rel.is_root() {
            // A folder's own root stays as its owner set it.
            return Err(FabricError::Forbidden);
        }
        let _held = self.lock_folder(&r.folder.id).await?;
        let r2 = r.clone();
        let entry = blocking(move || {
            let parent = r2.root()?.parent(&r2.rel)?;
            parent.set_attributes(mode, modified)?;
            parent.entry(&r2.rel)
        })
        .await?;
        let hash = self
            .inner
            .catalog
            .entry(&r.folder.id, r.rel.as_str())
            .await?
            .and_then(|e| e.hash);
        self.record(&r.folder, &entry, hash.as_ref(), false).await?;
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
        let src = self.resolve(who, from, Op::Write).await?;
        let dst = self.resolve(who, to, Op::Create).await?;
        if src.rel.is_root() || dst.rel.is_root() {
            return Err(FabricError::Forbidden);
        }
        if src.folder.id == dst.folder.id && dst.rel.starts_with(&src.rel) {
            if dst.rel == src.rel {
                return Ok(());
            }
            return Err(FabricError::Invalid(
                "cannot move a directory into itself".into(),
            ));
        }
        self.replace_target(who, &dst, overwrite, front).await?;
        let _held = self.lock_folders(&src.folder.id, &dst.folder.id).await?;
        let moved = self
            .inner
            .catalog
            .entries_under(&src.folder.id, src.rel.as_str())
            .await?;
        let (s, d) = (src.clone(), dst.clone());
        blocking(move || {
            let from = s.root()?.parent(&s.rel)?;
            match from.standing()? {
                Standing::Nothing => return Err(FabricError::NotFound),
                Standing::Other => return Err(FabricError::Forbidden),
                _ => {}
            }
            let to = d.root()?.parent(&d.rel)?;
            // A file there (its content already kept as a version) is
            // replaced in one step; anything else was moved away above.
            if matches!(to.standing()?, Standing::Dir | Standing::Other) {
                return Err(FabricError::AlreadyExists);
            }
            from.rename_to(&to)
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
                &self.node_id(),
                &e.path,
                e.kind(),
                e.size,
                e.mtime_ns,
                e.hash.as_ref(),
                true,
            )
            .await?;
            cat.record_entry(
                &dst.folder.id,
                &self.node_id(),
                new.as_str(),
                e.kind(),
                e.size,
                e.mtime_ns,
                e.hash.as_ref(),
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
        let src = self.resolve(who, from, Op::Content).await?;
        let dst = self.resolve(who, to, Op::Create).await?;
        if dst.rel.is_root() {
            return Err(FabricError::Forbidden);
        }
        if src.folder.id == dst.folder.id && dst.rel.starts_with(&src.rel) {
            return Err(FabricError::Invalid(
                "cannot copy a directory into itself".into(),
            ));
        }
        let s = src.clone();
        let src_is_dir = blocking(move || Ok(s.root()?.metadata(&s.rel)?.is_dir())).await?;
        if src_is_dir {
            self.replace_target(who, &dst, overwrite, front).await?;
            let items = self.tree(&src).await?;
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
            let d = dst.clone();
            let standing = blocking(move || d.root()?.parent(&d.rel)?.standing()).await?;
            if standing != Standing::Nothing {
                if !overwrite {
                    return Err(FabricError::AlreadyExists);
                }
                if standing == Standing::Dir {
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
        let d = dst.clone();
        let standing = blocking(move || d.root()?.parent(&d.rel)?.standing()).await?;
        match standing {
            Standing::Nothing => return Ok(false),
            Standing::Other => return Err(FabricError::Forbidden),
            _ => {}
        }
        if !overwrite || authorize(who, &dst.folder, &dst.rel, Op::Write).is_err() {
            return Err(FabricError::AlreadyExists);
        }
        let addr = Address::new(
            dst.folder.owner.clone(),
            dst.folder.name.clone(),
            dst.rel.clone(),
        );
        if standing == Standing::Dir {
            self.delete(who, &addr, front).await?;
        } else {
            let _held = self.lock_folder(&dst.folder.id).await?;
            let d = dst.clone();
            let old = blocking(move || d.root()?.parent(&d.rel)?.open_file()).await?;
            self.keep_version(
                &dst.folder,
                &dst.rel,
                old,
                "overwrite",
                front,
                who.actor(),
                None,
            )
            .await?;
        }
        Ok(true)
    }

    /// Every file and directory below `r` (not `r` itself), parents first,
    /// through the folder's opened root.
    async fn tree(&self, r: &Resolved) -> Result<Vec<(RelPath, EntryKind)>> {
        let r = r.clone();
        blocking(move || walk(&r.root()?, &r.rel)).await
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
        let r = self.resolve(who, addr, Op::Write).await?;
        if r.rel.is_root() {
            return Err(FabricError::Forbidden);
        }
        let _held = self.lock_folder(&r.folder.id).await?;
        let r2 = r.clone();
        let standing = blocking(move || r2.root()?.parent(&r2.rel)?.standing()).await?;
        let kind = match standing {
            Standing::Nothing => return Err(FabricError::NotFound),
            Standing::Other => return Err(FabricError::Forbidden),
            Standing::Dir => EntryKind::Dir,
            Standing::File => EntryKind::File,
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
        let files = if kind == EntryKind::Dir {
            self.tree(&r).await?
        } else {
            vec![(r.rel.clone(), EntryKind::File)]
        };
        for (rel, kind) in &files {
            if *kind == EntryKind::File {
                let (r2, rel2) = (r.clone(), rel.clone());
                let old = blocking(move || r2.root()?.parent(&rel2)?.open_file()).await?;
                self.keep_version(&r.folder, rel, old, "delete", front, who.actor(), trash_id)
                    .await?;
            }
        }
        let r2 = r.clone();
        blocking(move || r2.root()?.parent(&r2.rel)?.remove()).await?;
        cat.drop_properties(&r.folder.id, r.rel.as_str()).await?;
        for e in cat.entries_under(&r.folder.id, r.rel.as_str()).await? {
            cat.record_entry(
                &r.folder.id,
                &self.node_id(),
                &e.path,
                e.kind(),
                e.size,
                e.mtime_ns,
                e.hash.as_ref(),
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
        hash: Option<&ContentHash>,
        deleted: bool,
    ) -> Result<()> {
        self.inner
            .catalog
            .record_entry(
                &folder.id,
                &self.node_id(),
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

/// Streams `body` into `file`, hashing it, both on the blocking pool a
/// chunk at a time; fsyncs. Returns the BLAKE3 hash.
pub(crate) async fn stream_to_file(
    mut body: impl AsyncRead + Unpin + Send,
    file: Arc<fs::File>,
    space: local::SpaceGuard,
) -> Result<ContentHash> {
    let mut state = Some((Box::new(blake3::Hasher::new()), space));
    let mut buf = vec![0u8; WRITE_CHUNK];
    loop {
        let n = body.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let (mut hasher, mut space) = state.take().expect("put back after each chunk");
        let f = file.clone();
        let (h, s, b) = blocking(move || {
            use std::io::Write;
            space.wrote(n as u64)?;
            hasher.update(&buf[..n]);
            (&*f).write_all(&buf[..n])?;
            Ok((hasher, space, buf))
        })
        .await?;
        state = Some((h, s));
        buf = b;
    }
    let (hasher, _) = state.take().expect("put back after each chunk");
    blocking(move || {
        file.sync_all()?;
        Ok(ContentHash::from(hasher.finalize()))
    })
    .await
}

/// Every file and directory below `base` (not `base` itself), parents first,
/// read through `root`. Symbolic links are skipped. A regular file (or
/// directory) whose name Glow cannot address (not UTF-8, reserved) is an
/// error: callers that delete or copy the tree would otherwise lose or drop
/// it silently.
fn walk(root: &Root, base: &RelPath) -> Result<Vec<(RelPath, EntryKind)>> {
    let mut out = Vec::new();
    let mut todo = vec![base.clone()];
    while let Some(dir) = todo.pop() {
        let mut names = root.list_names(&dir)?;
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let mut subdirs = Vec::new();
        for (name, kind) in names {
            let rel = dir.join(&name).map_err(|_| {
                FabricError::Invalid(format!(
                    "{dir} holds a name Glow cannot handle ({name}); rename or remove it on disk first"
                ))
            })?;
            out.push((rel.clone(), kind));
            if kind == EntryKind::Dir {
                subdirs.push(rel);
            }
        }
        // Popped in name order.
        todo.extend(subdirs.into_iter().rev());
    }
    // Parents first: a directory is listed before what it holds.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
