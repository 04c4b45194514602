//! A folder's local replica: a plain directory on this node's disk. Paths
//! below a folder are reached through `beneath::Root` (the kernel confines
//! them); this module holds what is shared: entries from metadata, the free
//! space a write must leave, durable renames of Glow's own files, and the
//! clean-up of temp files a crash left behind.
//!
//! Everything here is blocking and is called from `spawn_blocking`.

use crate::error::{FabricError, Result};
use crate::path::{RelPath, is_internal_name};
use crate::resource::{Entry, EntryKind};
use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Nanoseconds since the epoch of a file's modification time.
pub fn mtime_ns(meta: &Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// An [`Entry`] from disk metadata.
pub fn entry_from(rel: RelPath, name: String, meta: &Metadata) -> Entry {
    let kind = if meta.is_dir() {
        EntryKind::Dir
    } else {
        EntryKind::File
    };
    Entry {
        path: rel,
        name,
        kind,
        size: if meta.is_dir() { 0 } else { meta.len() },
        mtime_ns: mtime_ns(meta),
        inode: meta.ino(),
        mode: std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
    }
}

/// Bytes an unprivileged writer may still use on the filesystem that holds
/// `path` (`None` if the filesystem cannot say).
pub fn free_space(path: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Refuses ([`FabricError::NoSpace`]) to write `needed` more bytes on the
/// filesystem of `dir` if that would leave less than `min_free` there: for
/// the copies Glow makes itself (a version kept, a copy of new content, the
/// old content copied into a partial update). Blocking (a `statvfs`).
pub fn ensure_room(dir: &Path, needed: u64, min_free: u64) -> Result<()> {
    match free_space(dir) {
        Some(free) if min_free > 0 && free < needed.saturating_add(min_free) => {
            Err(FabricError::NoSpace)
        }
        _ => Ok(()),
    }
}

/// How many bytes a write may add between two looks at the free space.
const SPACE_CHECK_EVERY: u64 = 8 << 20;

/// Keeps a write from taking the space its disk must keep free: the
/// filesystem is asked before the first byte and after every
/// [`SPACE_CHECK_EVERY`] bytes, and the write stops with
/// [`FabricError::NoSpace`] once less than `min_free` is left.
#[derive(Debug)]
pub struct SpaceGuard {
    dir: PathBuf,
    min_free: u64,
    unchecked: u64,
}

impl SpaceGuard {
    /// A guard for a write into `dir` that must leave `min_free` bytes.
    pub fn new(dir: &Path, min_free: u64) -> SpaceGuard {
        SpaceGuard {
            dir: dir.to_path_buf(),
            min_free,
            unchecked: SPACE_CHECK_EVERY,
        }
    }

    /// Counts `n` more bytes written (or about to be); blocking only when
    /// it is time to look.
    pub fn wrote(&mut self, n: u64) -> Result<()> {
        self.unchecked = self.unchecked.saturating_add(n);
        if self.min_free == 0 || self.unchecked < SPACE_CHECK_EVERY {
            return Ok(());
        }
        self.unchecked = 0;
        match free_space(&self.dir) {
            Some(free) if free < self.min_free => Err(FabricError::NoSpace),
            _ => Ok(()),
        }
    }
}

/// fsyncs the directory holding `path`, so that a rename in it survives a crash.
pub fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// When this process started: temp files older than that cannot belong to
/// one of its writes.
static STARTED: std::sync::LazyLock<std::time::SystemTime> =
    std::sync::LazyLock::new(std::time::SystemTime::now);

/// Notes the process start (call early, before any write).
pub fn mark_start() {
    let _ = *STARTED;
}

/// Removes a temp file left by a write that a crash interrupted; a temp file
/// newer than this process's start may be an upload in progress and stays,
/// and so does a transfer from another replica for a day (it resumes from
/// what it holds: `.glow-tmp-sync-<hash>`).
pub fn remove_stale_temp(path: &Path) {
    let resumable = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(crate::sync::PARTIAL_PREFIX));
    let keep_until = if resumable {
        STARTED.checked_sub(std::time::Duration::from_secs(24 * 3600))
    } else {
        Some(*STARTED)
    };
    let stale = fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| keep_until.is_some_and(|k| t < k));
    if stale
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_internal_name)
    {
        match fs::remove_file(path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a partial upload left by a crash")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot remove a stale temp file: {e}")
            }
        }
    }
}

/// Reads a 32-byte secret kept at `path`, making a random one on first use
/// (readable by the owner only, written whole before anyone reads it).
/// `consequence` says what a person loses if they replace a damaged one.
/// Blocking.
pub(crate) fn load_or_make_secret(path: &Path, consequence: &str) -> Result<[u8; 32]> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut f) => {
            let key = crate::catalog::random_bytes::<32>();
            f.write_all(&key)?;
            f.sync_all()?;
            return Ok(key);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.into()),
    }
    let mut key = [0u8; 32];
    // A process that made it a moment ago may still be writing it.
    for _ in 0..50 {
        let mut f = std::fs::File::open(path)?;
        if f.metadata()?.len() == 32 {
            f.read_exact(&mut key)?;
            return Ok(key);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(FabricError::Invalid(format!(
        "{} is damaged (not 32 bytes); move it away to make a new one ({consequence})",
        path.display()
    )))
}
