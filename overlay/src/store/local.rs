//! A folder's local replica: a plain directory on this node's disk.
//!
//! Everything here is blocking and is called from `spawn_blocking`. This is
//! the only code that turns a [`RelPath`] into a disk path, and it confines the
//! result to the folder: symbolic links are followed only while they stay
//! inside the folder's (canonical) root.

use crate::error::{FabricError, Result};
use crate::path::{RelPath, TEMP_PREFIX, is_internal_name};
use crate::resource::{Entry, EntryKind};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Resolves `rel` below the canonical `root`, following symbolic links only
/// while they stay inside it. A missing final component is allowed (for
/// creation); a missing parent is [`FabricError::ParentMissing`] when `create`
/// is set, otherwise [`FabricError::NotFound`].
pub fn confine(root: &Path, rel: &RelPath, create: bool) -> Result<PathBuf> {
    let disk = rel.to_disk(root);
    match fs::canonicalize(&disk) {
        Ok(real) => {
            if real.starts_with(root) {
                Ok(real)
            } else {
                Err(FabricError::Forbidden)
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if rel.is_root() {
                return Err(FabricError::NotFound);
            }
            // A dangling symlink is refused: it might point anywhere.
            if fs::symlink_metadata(&disk).is_ok() {
                return Err(FabricError::Forbidden);
            }
            let parent = match fs::canonicalize(rel.parent().to_disk(root)) {
                Ok(p) => p,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(if create {
                        FabricError::ParentMissing
                    } else {
                        FabricError::NotFound
                    });
                }
                Err(e) => return Err(e.into()),
            };
            if !parent.starts_with(root) {
                return Err(FabricError::Forbidden);
            }
            if !parent.is_dir() {
                return Err(FabricError::ParentMissing);
            }
            Ok(parent.join(rel.name()))
        }
        Err(e) if e.raw_os_error() == Some(20) => {
            // ENOTDIR: a file stands where a directory was expected.
            Err(if create {
                FabricError::ParentMissing
            } else {
                FabricError::NotFound
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Resolves `rel` for changing it (write, rename, delete): the parent is
/// confined like [`confine`], but the final component is never followed, so
/// an operation acts on the name itself; a symbolic link there is refused.
/// With `must_exist`, a missing target is [`FabricError::NotFound`].
pub fn confine_for_change(root: &Path, rel: &RelPath, must_exist: bool) -> Result<PathBuf> {
    if rel.is_root() {
        return Ok(root.to_path_buf());
    }
    let missing = if must_exist {
        FabricError::NotFound
    } else {
        FabricError::ParentMissing
    };
    let parent = match fs::canonicalize(rel.parent().to_disk(root)) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) => {
            return Err(missing);
        }
        Err(e) => return Err(e.into()),
    };
    if !parent.starts_with(root) {
        return Err(FabricError::Forbidden);
    }
    if !parent.is_dir() {
        return Err(missing);
    }
    let target = parent.join(rel.name());
    match fs::symlink_metadata(&target) {
        Ok(m) if m.file_type().is_symlink() => Err(FabricError::Forbidden),
        Ok(_) => Ok(target),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !must_exist => Ok(target),
        Err(e) => Err(e.into()),
    }
}

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

/// Lists a directory: internal files, special files and symbolic links that
/// lead outside `root` (the folder, or a share link's subtree) are left out.
pub fn list_dir(root: &Path, dir_disk: &Path, dir_rel: &RelPath) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for item in fs::read_dir(dir_disk)? {
        let item = item?;
        let Ok(name) = item.file_name().into_string() else {
            continue; // Names that are not UTF-8 cannot be addressed.
        };
        if is_internal_name(&name) {
            continue;
        }
        let ft = item.file_type()?;
        let meta = if ft.is_symlink() {
            match fs::canonicalize(item.path()) {
                Ok(real) if real.starts_with(root) => match fs::metadata(&real) {
                    Ok(m) => m,
                    Err(_) => continue,
                },
                _ => continue,
            }
        } else {
            item.metadata()?
        };
        if !meta.is_file() && !meta.is_dir() {
            continue;
        }
        let Ok(rel) = dir_rel.join(&name) else {
            continue;
        };
        out.push(entry_from(rel, name, &meta));
    }
    Ok(out)
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

/// Creates a new temporary file next to `target`, for an atomic write.
pub fn create_temp(target: &Path) -> Result<(PathBuf, fs::File)> {
    let dir = target.parent().ok_or(FabricError::ParentMissing)?;
    let b = crate::catalog::random_bytes::<8>();
    let tmp = dir.join(format!("{TEMP_PREFIX}{}", crate::catalog::hex(&b)));
    let f = fs::File::options()
        .read(true) // an SFTP handle may read back what it wrote
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    Ok((tmp, f))
}

/// Moves a finished temp file over `target` and makes the rename durable.
/// The old file's permissions carry over to the new one.
pub fn commit_temp(tmp: &Path, target: &Path) -> Result<()> {
    if let Ok(old) = fs::metadata(target) {
        let _ = fs::set_permissions(tmp, old.permissions());
    }
    fs::rename(tmp, target)?;
    sync_parent(target);
    Ok(())
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
/// newer than this process's start may be an upload in progress and stays.
pub fn remove_stale_temp(path: &Path) {
    let stale = fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t < *STARTED);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn confine_follows_inner_links_and_refuses_outer_ones() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(top.path().join("secret"), b"x").unwrap();
        fs::write(root.join("sub/a"), b"a").unwrap();
        symlink(top.path().join("secret"), root.join("out")).unwrap();
        symlink(root.join("sub"), root.join("in")).unwrap();
        symlink(top.path(), root.join("updir")).unwrap();
        let root = fs::canonicalize(&root).unwrap();
        let p = |s| RelPath::parse(s).unwrap();
        assert!(confine(&root, &p("sub/a"), false).is_ok());
        assert!(confine(&root, &p("in/a"), false).is_ok());
        assert!(matches!(
            confine(&root, &p("out"), false),
            Err(FabricError::Forbidden)
        ));
        assert!(matches!(
            confine(&root, &p("updir/secret"), false),
            Err(FabricError::Forbidden)
        ));
        assert!(matches!(
            confine(&root, &p("updir/new"), true),
            Err(FabricError::Forbidden)
        ));
        assert!(matches!(
            confine(&root, &p("nope/new"), true),
            Err(FabricError::ParentMissing)
        ));
        assert!(matches!(
            confine(&root, &p("sub/a/x"), true),
            Err(FabricError::ParentMissing)
        ));
        assert_eq!(
            confine(&root, &p("sub/new"), true).unwrap(),
            root.join("sub/new")
        );
        // Changes act on names, never through a final symbolic link.
        assert!(matches!(
            confine_for_change(&root, &p("in"), true),
            Err(FabricError::Forbidden)
        ));
        assert!(matches!(
            confine_for_change(&root, &p("out"), true),
            Err(FabricError::Forbidden)
        ));
        assert!(matches!(
            confine_for_change(&root, &p("updir/x"), false),
            Err(FabricError::Forbidden)
        ));
        assert_eq!(
            confine_for_change(&root, &p("in/a"), true).unwrap(),
            root.join("sub/a")
        );
        assert!(matches!(
            confine_for_change(&root, &p("sub/none"), true),
            Err(FabricError::NotFound)
        ));
        assert!(matches!(
            confine_for_change(&root, &p("none/x"), false),
            Err(FabricError::ParentMissing)
        ));
    }
}
